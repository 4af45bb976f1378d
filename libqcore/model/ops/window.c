/* Sliding windows of convolution and pooling, and im2col (window.h). */
#include <string.h>

#include "ops/window.h"

static int64_t window_out(int64_t in, int64_t span, int64_t pads, int64_t stride, int ceil_mode)
{
    int64_t room = in + pads - span;
    int64_t out = (ceil_mode ? (room + stride - 1) / stride : room / stride) + 1;
    return out;
}

qc_status qce__window_init(const qce_call *call, window *w, const qc_tensor *x, const int64_t *kernel, int ceil_mode)
{
    int spatial = x->ndim - 2;
    if (spatial < 1 || spatial > SPATIAL) return qce__fail(call, QC_ERR_UNSUPPORTED, "only 1-, 2- and 3-D spatial inputs");
    const int64_t *strides, *dilations, *pads;
    size_t ns = qce__attr_ints(call, "strides", &strides), nd = qce__attr_ints(call, "dilations", &dilations);
    size_t np = qce__attr_ints(call, "pads", &pads);
    if ((ns && ns != (size_t)spatial) || (nd && nd != (size_t)spatial) || (np && np != 2 * (size_t)spatial))
        return qce__fail(call, QC_ERR_INVALID_ARG, "strides, dilations or pads do not match the %d spatial axes", spatial);
    const Onnx__AttributeProto *auto_pad = qce__attr(call, "auto_pad");
    int same = auto_pad && auto_pad->s.len >= 4 && memcmp(auto_pad->s.data, "SAME", 4) == 0;
    int upper = same && auto_pad->s.len == 10 && memcmp(auto_pad->s.data, "SAME_UPPER", 10) == 0;
    int lead = SPATIAL - spatial;
    for (int d = 0; d < SPATIAL; d++) {
        int k = d - lead; /* index among the input's spatial axes, negative for the padding ones */
        w->in[d] = k < 0 ? 1 : x->dims[2 + k];
        w->kernel[d] = k < 0 ? 1 : kernel[k];
        w->stride[d] = k < 0 || !ns ? 1 : strides[k];
        w->dilation[d] = k < 0 || !nd ? 1 : dilations[k];
        int64_t begin = k < 0 || !np ? 0 : pads[k], end = k < 0 || !np ? 0 : pads[spatial + k];
        if (w->stride[d] < 1 || w->dilation[d] < 1 || w->kernel[d] < 1 || begin < 0 || end < 0)
            return qce__fail(call, QC_ERR_INVALID_ARG, "kernel, strides, dilations must be >= 1 and pads >= 0");
        int64_t span = (w->kernel[d] - 1) * w->dilation[d] + 1;
        if (same && k >= 0) {
            int64_t out = (w->in[d] + w->stride[d] - 1) / w->stride[d];
            int64_t total = (out - 1) * w->stride[d] + span - w->in[d];
            total = total > 0 ? total : 0;
            begin = upper ? total / 2 : total - total / 2;
            end = total - begin;
        }
        if (w->in[d] + begin + end < span) return qce__fail(call, QC_ERR_SHAPE, "the kernel is larger than the padded input");
        w->pad_begin[d] = begin;
        w->out[d] = window_out(w->in[d], span, begin + end, w->stride[d], ceil_mode);
        /* With ceil_mode, a last window must still start inside the input or its leading padding. */
        if (ceil_mode && (w->out[d] - 1) * w->stride[d] >= w->in[d] + begin) w->out[d]--;
    }
    return QC_OK;
}

int64_t qce__window_pixels(const window *w)
{
    return w->out[0] * w->out[1] * w->out[2];
}

/* The output positions o in [0, out) whose tap k reads inside [0, in) along axis d: [*first, *last). */
static void valid_outputs(const window *w, int d, int64_t k, int64_t *first, int64_t *last)
{
    int64_t shift = w->pad_begin[d] - k * w->dilation[d]; /* tap(o) = o * stride - shift */
    int64_t lo = shift > 0 ? (shift + w->stride[d] - 1) / w->stride[d] : 0;
    int64_t top = w->in[d] - 1 + shift, hi = top >= 0 ? top / w->stride[d] + 1 : 0;
    *first = lo < w->out[d] ? lo : w->out[d];
    *last = hi < w->out[d] ? hi : w->out[d];
    if (*last < *first) *last = *first;
}

/* One im2col row segment: output row (oz, oy) of tap (kz, ky, kx), zero where the tap reads padding. */
static void im2col_segment(float *dst, const float *plane, const window *w, int64_t iz, int64_t iy, int64_t kx,
                           int64_t first, int64_t last)
{
    int64_t out = w->out[2];
    if (iz < 0 || iz >= w->in[0] || iy < 0 || iy >= w->in[1]) {
        memset(dst, 0, (size_t)out * sizeof *dst);
        return;
    }
    const float *src = plane + (iz * w->in[1] + iy) * w->in[2] + kx * w->dilation[2] - w->pad_begin[2];
    for (int64_t ox = 0; ox < first; ox++) dst[ox] = 0.0f;
    for (int64_t ox = first; ox < last; ox++) dst[ox] = src[ox * w->stride[2]];
    for (int64_t ox = last; ox < out; ox++) dst[ox] = 0.0f;
}

/* im2col of one image's channel group: rows are (channel, kernel offset), columns are output pixels.
 * Bounds are worked out once per row segment, so the inner loop is a strided copy. */
void qce__im2col(float *columns, const float *image, int64_t channels, const window *w)
{
    int64_t pixels = qce__window_pixels(w), plane = w->in[0] * w->in[1] * w->in[2];
    float *dst = columns;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t kz = 0; kz < w->kernel[0]; kz++)
            for (int64_t ky = 0; ky < w->kernel[1]; ky++)
                for (int64_t kx = 0; kx < w->kernel[2]; kx++, dst += pixels) {
                    int64_t first, last;
                    valid_outputs(w, 2, kx, &first, &last);
                    for (int64_t oz = 0; oz < w->out[0]; oz++)
                        for (int64_t oy = 0; oy < w->out[1]; oy++)
                            im2col_segment(dst + (oz * w->out[1] + oy) * w->out[2], image + c * plane, w,
                                           tap(w, 0, oz, kz), tap(w, 1, oy, ky), kx, first, last);
                }
}

