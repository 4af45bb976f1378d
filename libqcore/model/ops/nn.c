/* Neural-network ops: Softmax, LogSoftmax, LayerNormalization, BatchNormalization (inference), Conv
 * (im2col + BLAS), MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/blas.h"
#include "ops/ops.h"
#include "ops/vmath.h"
#include "ops/window.h"

/* [outer, extent, inner] around `axis`; before opset 13 Softmax flattened everything from the axis. */
static void split_at(const qc_tensor *x, int axis, int flatten_tail, int64_t *outer, int64_t *extent, int64_t *inner)
{
    *outer = 1, *extent = 1, *inner = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d < axis) *outer *= x->dims[d];
        else if (d == axis || flatten_tail) *extent *= x->dims[d];
        else *inner *= x->dims[d];
    }
}

/* The largest element; eight independent lanes so that the loop vectorizes without fast-math. */
static float row_max(const float *row, int64_t n)
{
    float lanes[8];
    for (int l = 0; l < 8; l++) lanes[l] = -INFINITY;
    int64_t e = 0;
    for (; e + 8 <= n; e += 8)
        for (int l = 0; l < 8; l++) lanes[l] = row[e + l] > lanes[l] ? row[e + l] : lanes[l];
    float top = -INFINITY;
    for (int l = 0; l < 8; l++) top = lanes[l] > top ? lanes[l] : top;
    for (; e < n; e++) top = row[e] > top ? row[e] : top;
    return top;
}

/* A contiguous row: exponentials (vectorized) stored once, then scaled or turned into logs. */
static void softmax_row(float *dst, const float *row, int64_t n, int log_output)
{
    float top = row_max(row, n);
    float sum = qcm_vexp_sum_shifted(dst, row, (size_t)n, top);
    if (log_output) {
        float log_sum = logf(sum); /* subtracted after top: top + log_sum would round away log_sum's bits */
        for (int64_t e = 0; e < n; e++) dst[e] = (row[e] - top) - log_sum;
    } else {
        float inv = 1.0f / sum;
        for (int64_t e = 0; e < n; e++) dst[e] *= inv;
    }
}

/* A row strided by `inner` (softmax over a non-last axis). */
static void softmax_strided(float *dst, const float *row, int64_t n, int64_t inner, int log_output)
{
    float top = -INFINITY;
    for (int64_t e = 0; e < n; e++) top = row[e * inner] > top ? row[e * inner] : top;
    double sum = 0.0;
    for (int64_t e = 0; e < n; e++) {
        float v = expf(row[e * inner] - top);
        dst[e * inner] = v;
        sum += v;
    }
    for (int64_t e = 0; e < n; e++)
        dst[e * inner] = log_output ? (float)((double)row[e * inner] - top - log(sum)) : (float)(dst[e * inner] / sum);
}

static qc_status softmax(const qce_call *call, int log_output)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int legacy = call->opset < 13, axis;
    QCE_TRY(qce__axis(call, qce__attr_int(call, "axis", legacy ? 1 : -1), x->ndim, &axis));
    QCE_TRY(qce__output(call, 0, QC_DT_F32, x->ndim, x->dims));
    int64_t outer, extent, inner;
    split_at(x, axis, legacy, &outer, &extent, &inner);
    const float *in = x->data;
    float *out = call->outputs[0]->tensor.data;
    int64_t rows = outer * inner;
#pragma omp parallel for num_threads(call->threads > 0 ? call->threads : 1) schedule(static) if (rows * extent > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / inner, i = r % inner, first = o * extent * inner + i;
        if (inner == 1) softmax_row(out + first, in + first, extent, log_output);
        else softmax_strided(out + first, in + first, extent, inner, log_output);
    }
    return QC_OK;
}

static qc_status op_softmax(const qce_call *call) { return softmax(call, 0); }
static qc_status op_log_softmax(const qce_call *call) { return softmax(call, 1); }

/* Outputs: Y, and optionally Mean and InvStdDev, shaped as X with the normalized axes reduced to 1. */
static qc_status layer_norm_outputs(const qce_call *call, const qc_tensor *x, int axis)
{
    QCE_TRY(qce__output(call, 0, QC_DT_F32, x->ndim, x->dims));
    int64_t dims[QC_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) dims[d] = d < axis ? x->dims[d] : 1;
    for (size_t k = 1; k < 3 && k < call->num_outputs; k++) QCE_TRY(qce__output(call, k, QC_DT_F32, x->ndim, dims));
    return QC_OK;
}

static float *optional_output(const qce_call *call, size_t k)
{
    return k < call->num_outputs && call->outputs[k] ? call->outputs[k]->tensor.data : NULL;
}

static qc_status op_layer_norm(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[0]->tensor, *scale = &call->inputs[1]->tensor;
    const qc_tensor *bias = call->num_inputs > 2 && call->inputs[2] ? &call->inputs[2]->tensor : NULL;
    int axis;
    QCE_TRY(qce__axis(call, qce__attr_int(call, "axis", -1), x->ndim, &axis));
    float eps = qce__attr_float(call, "epsilon", 1e-5f);
    int64_t outer, extent, inner;
    split_at(x, axis, 1, &outer, &extent, &inner);
    if (qce__numel(scale) != extent || (bias && qce__numel(bias) != extent))
        return qce__fail(call, QC_ERR_SHAPE, "scale and bias must have the normalized shape's %lld elements", (long long)extent);
    QCE_TRY(layer_norm_outputs(call, x, axis));
    const float *in = x->data, *g = scale->data, *b = bias ? bias->data : NULL;
    float *out = call->outputs[0]->tensor.data, *means = optional_output(call, 1), *inv_stds = optional_output(call, 2);
#pragma omp parallel for num_threads(call->threads > 0 ? call->threads : 1) if (outer * extent > 65536)
    for (int64_t o = 0; o < outer; o++) {
        const float *row = in + o * extent;
        double mean = 0.0, var = 0.0;
        for (int64_t e = 0; e < extent; e++) mean += row[e];
        mean /= (double)extent;
        for (int64_t e = 0; e < extent; e++) var += ((double)row[e] - mean) * ((double)row[e] - mean);
        double inv = 1.0 / sqrt(var / (double)extent + eps);
        for (int64_t e = 0; e < extent; e++)
            out[o * extent + e] = (float)(((double)row[e] - mean) * inv * g[e] + (b ? b[e] : 0.0f));
        if (means) means[o] = (float)mean;
        if (inv_stds) inv_stds[o] = (float)inv;
    }
    return QC_OK;
}

static qc_status op_batch_norm(const qce_call *call)
{
    for (size_t k = 0; k < 5; k++) QCE_TRY(qce__expect_input(call, k, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[0]->tensor;
    if (x->ndim < 2) return qce__fail(call, QC_ERR_SHAPE, "input must have a channel axis");
    int64_t channels = x->dims[1], inner = 1;
    for (int d = 2; d < x->ndim; d++) inner *= x->dims[d];
    for (size_t k = 1; k < 5; k++)
        if (qce__numel(&call->inputs[k]->tensor) != channels)
            return qce__fail(call, QC_ERR_SHAPE, "input %zu must have one value per channel", k);
    float eps = qce__attr_float(call, "epsilon", 1e-5f);
    QCE_TRY(qce__output(call, 0, QC_DT_F32, x->ndim, x->dims));
    const float *in = x->data, *g = call->inputs[1]->tensor.data, *b = call->inputs[2]->tensor.data;
    const float *mean = call->inputs[3]->tensor.data, *var = call->inputs[4]->tensor.data;
    float *out = call->outputs[0]->tensor.data;
    for (int64_t n = 0; n < x->dims[0]; n++)
        for (int64_t c = 0; c < channels; c++) {
            float s = g[c] / sqrtf(var[c] + eps), t = b[c] - mean[c] * s;
            const float *src = in + (n * channels + c) * inner;
            float *dst = out + (n * channels + c) * inner;
            for (int64_t i = 0; i < inner; i++) dst[i] = src[i] * s + t;
        }
    return QC_OK;
}

/* ---- convolution and pooling over 1-, 2- and 3-D spatial inputs (windows: ops/window.c) ---------- */

static void output_dims(int64_t *dims, const qc_tensor *x, int64_t channels, const window *w)
{
    dims[0] = x->dims[0];
    dims[1] = channels;
    for (int d = 2; d < x->ndim; d++) dims[d] = w->out[SPATIAL - (x->ndim - d)];
}

/* What one image's convolution needs (see conv_group). */
typedef struct conv_operands {
    const float *x, *weight, *bias;
    float *y;
    const window *w;
    int64_t in_channels, out_channels, cpg, opg, patch, pixels, image_size;
} conv_operands;

/* Image n, channel group g: im2col into `columns`, then Y = W·columns + bias as one GEMM over
 * bias-filled outputs. */
static void conv_group(const conv_operands *c, int64_t n, int64_t g, float *columns, int threads)
{
    const float *image = c->x + (n * c->in_channels + g * c->cpg) * c->image_size;
    float *dst = c->y + (n * c->out_channels + g * c->opg) * c->pixels;
    qce__im2col(columns, image, c->cpg, c->w);
    for (int64_t o = 0; c->bias && o < c->opg; o++)
        for (int64_t p = 0; p < c->pixels; p++) dst[o * c->pixels + p] = c->bias[g * c->opg + o];
    qce__sgemm(threads, 0, 0, c->opg, c->pixels, c->patch, 1.0f, c->weight + g * c->opg * c->patch, c->patch, columns,
               c->pixels, c->bias ? 1.0f : 0.0f, dst, c->pixels);
}

static qc_status op_conv(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[0]->tensor, *wt = &call->inputs[1]->tensor;
    const qc_tensor *bias = call->num_inputs > 2 && call->inputs[2] ? &call->inputs[2]->tensor : NULL;
    int64_t group = qce__attr_int(call, "group", 1);
    if (wt->ndim != x->ndim || x->ndim < 3 || group < 1 || x->dims[1] % group || wt->dims[0] % group ||
        wt->dims[1] * group != x->dims[1])
        return qce__fail(call, QC_ERR_SHAPE, "weight and input channels do not agree with group %lld", (long long)group);
    window w;
    QCE_TRY(qce__window_init(call, &w, x, wt->dims + 2, 0));
    int64_t batch = x->dims[0], out_channels = wt->dims[0], cpg = wt->dims[1], opg = out_channels / group;
    if (bias && qce__numel(bias) != out_channels) return qce__fail(call, QC_ERR_SHAPE, "bias needs one value per output channel");
    int64_t dims[QC_MAX_DIMS];
    output_dims(dims, x, out_channels, &w);
    QCE_TRY(qce__output(call, 0, QC_DT_F32, x->ndim, dims));
    int64_t patch = cpg * w.kernel[0] * w.kernel[1] * w.kernel[2], pixels = qce__window_pixels(&w);
    /* Several images: one per thread, each with its own im2col buffer and a single-threaded GEMM; one
     * image: BLAS threads it. */
    int threads = call->threads > 0 ? call->threads : 1, across = batch * group >= threads && threads > 1;
    int workers = across ? threads : 1;
    size_t scratch = (size_t)(patch * pixels > 0 ? patch * pixels : 1);
    float *columns = malloc((size_t)workers * scratch * sizeof *columns);
    if (columns == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for im2col");
    conv_operands ops = {x->data, wt->data, bias ? bias->data : NULL, call->outputs[0]->tensor.data, &w,
                         x->dims[1], out_channels, cpg, opg, patch, pixels, w.in[0] * w.in[1] * w.in[2]};
#pragma omp parallel for num_threads(workers) schedule(static) if (across)
    for (int64_t t = 0; t < batch * group; t++)
        conv_group(&ops, t / group, t % group, columns + (size_t)qce__worker_index() * scratch, across ? 1 : threads);
    free(columns);
    return QC_OK;
}

typedef enum { POOL_MAX, POOL_AVERAGE } pool_kind;

/* The taps k in [0, kernel) of output o that read inside the input along axis d: [*first, *last). */
static void valid_taps(const window *w, int d, int64_t o, int64_t *first, int64_t *last)
{
    int64_t start = o * w->stride[d] - w->pad_begin[d], dil = w->dilation[d]; /* tap(k) = start + k * dil */
    int64_t lo = start < 0 ? (-start + dil - 1) / dil : 0;
    int64_t hi = w->in[d] - 1 - start >= 0 ? (w->in[d] - 1 - start) / dil + 1 : 0;
    *first = lo < w->kernel[d] ? lo : w->kernel[d];
    *last = hi < w->kernel[d] ? hi : w->kernel[d];
    if (*last < *first) *last = *first;
}

/* The taps of output o along axis d that lie in the padded input (for count_include_pad): those before
 * the end of the trailing padding; ceil_mode may add taps beyond it, which never count. */
static int64_t padded_taps(const window *w, int d, int64_t o, int64_t pad_end)
{
    int64_t n = 0;
    for (int64_t k = 0; k < w->kernel[d]; k++) n += tap(w, d, o, k) < w->in[d] + pad_end;
    return n;
}

/* One output of a pooling window: max, or average over the taps inside the input (or all taps within
 * the padding, with count_include_pad). Bounds are found per axis, so the inner loops only read. */
static float pool_window(const float *plane, const window *w, const int64_t *o, pool_kind kind, int include_pad,
                         const int64_t *pads_end)
{
    int64_t first[SPATIAL], last[SPATIAL];
    for (int d = 0; d < SPATIAL; d++) valid_taps(w, d, o[d], &first[d], &last[d]);
    float best = -INFINITY;
    double sum = 0.0;
    for (int64_t kz = first[0]; kz < last[0]; kz++)
        for (int64_t ky = first[1]; ky < last[1]; ky++) {
            const float *row = plane + (tap(w, 0, o[0], kz) * w->in[1] + tap(w, 1, o[1], ky)) * w->in[2];
            for (int64_t kx = first[2]; kx < last[2]; kx++) {
                float v = row[tap(w, 2, o[2], kx)];
                best = v > best ? v : best;
                sum += v;
            }
        }
    if (kind == POOL_MAX) return best;
    int64_t count = 1;
    for (int d = 0; d < SPATIAL; d++) count *= include_pad ? padded_taps(w, d, o[d], pads_end[d]) : last[d] - first[d];
    return (float)(sum / (double)(count ? count : 1));
}

/* Whether every window lies inside the input: no padding read, no ceil_mode overhang. */
static int windows_inside(const window *w)
{
    for (int d = 0; d < SPATIAL; d++)
        if (w->pad_begin[d] != 0 || (w->out[d] - 1) * w->stride[d] + (w->kernel[d] - 1) * w->dilation[d] >= w->in[d])
            return 0;
    return 1;
}

/* One output of a window inside the plane, starting at `base`: no bounds to work out per tap. */
static float pool_inside(const float *base, const window *w, pool_kind kind)
{
    float best = -INFINITY;
    double sum = 0.0;
    for (int64_t kz = 0; kz < w->kernel[0]; kz++)
        for (int64_t ky = 0; ky < w->kernel[1]; ky++) {
            const float *row = base + (kz * w->dilation[0] * w->in[1] + ky * w->dilation[1]) * w->in[2];
            for (int64_t kx = 0; kx < w->kernel[2]; kx++) {
                float v = row[kx * w->dilation[2]];
                best = v > best ? v : best;
                sum += v;
            }
        }
    return kind == POOL_MAX ? best : (float)(sum / (double)(w->kernel[0] * w->kernel[1] * w->kernel[2]));
}

/* A row of max-pool outputs whose windows lie inside the plane: tap by tap over the whole row, so that
 * the inner loop is a strided max the compiler vectorizes. */
static void max_row_inside(float *y, const float *plane, const window *w, int64_t oz, int64_t oy)
{
    int64_t n = w->out[2], stride = w->stride[2];
    for (int64_t ox = 0; ox < n; ox++) y[ox] = -INFINITY;
    for (int64_t kz = 0; kz < w->kernel[0]; kz++)
        for (int64_t ky = 0; ky < w->kernel[1]; ky++) {
            const float *row = plane + ((oz * w->stride[0] + kz * w->dilation[0]) * w->in[1] + oy * w->stride[1] +
                                        ky * w->dilation[1]) * w->in[2];
            for (int64_t kx = 0; kx < w->kernel[2]; kx++) {
                const float *src = row + kx * w->dilation[2];
                for (int64_t ox = 0; ox < n; ox++) y[ox] = src[ox * stride] > y[ox] ? src[ox * stride] : y[ox];
            }
        }
}

/* One plane of outputs: windows inside the input take the plain loops, others work out their taps. */
static void pool_plane(float *y, const float *plane, const window *w, pool_kind kind, int include_pad,
                       const int64_t *pads_end)
{
    int inside = windows_inside(w);
    if (inside && kind == POOL_MAX) {
        for (int64_t oz = 0; oz < w->out[0]; oz++)
            for (int64_t oy = 0; oy < w->out[1]; oy++) max_row_inside(y + (oz * w->out[1] + oy) * w->out[2], plane, w, oz, oy);
        return;
    }
    for (int64_t oz = 0, o = 0; oz < w->out[0]; oz++)
        for (int64_t oy = 0; oy < w->out[1]; oy++)
            for (int64_t ox = 0; ox < w->out[2]; ox++, o++) {
                int64_t at[SPATIAL] = {oz, oy, ox};
                y[o] = inside ? pool_inside(plane + ((oz * w->stride[0]) * w->in[1] + oy * w->stride[1]) * w->in[2] +
                                                ox * w->stride[2],
                                            w, kind)
                              : pool_window(plane, w, at, kind, include_pad, pads_end);
            }
}

/* The flat position in X of input coordinate (z, y, x) of plane p: row-major, or with storage_order = 1
 * column-major over the spatial axes (ONNX MaxPool's Indices). */
static int64_t flat_index(const window *w, int64_t p, int64_t z, int64_t y, int64_t x, int column_major)
{
    int64_t image = w->in[0] * w->in[1] * w->in[2];
    int64_t within = column_major ? z + y * w->in[0] + x * w->in[0] * w->in[1] : (z * w->in[1] + y) * w->in[2] + x;
    return p * image + within;
}

/* MaxPool's general path: any element type the executor holds, and the Indices output (the first
 * maximum in scan order). */
static void max_pool_general(const qc_tensor *x, qc_tensor *y, int64_t *indices, const window *w, int column_major)
{
    int64_t planes = x->dims[0] * x->dims[1], o = 0;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oz = 0; oz < w->out[0]; oz++)
            for (int64_t oy = 0; oy < w->out[1]; oy++)
                for (int64_t ox = 0; ox < w->out[2]; ox++, o++) {
                    int64_t at[SPATIAL] = {oz, oy, ox}, first[SPATIAL], last[SPATIAL], best_at = -1;
                    for (int d = 0; d < SPATIAL; d++) valid_taps(w, d, at[d], &first[d], &last[d]);
                    double best = -INFINITY;
                    for (int64_t kz = first[0]; kz < last[0]; kz++)
                        for (int64_t ky = first[1]; ky < last[1]; ky++)
                            for (int64_t kx = first[2]; kx < last[2]; kx++) {
                                int64_t iz = tap(w, 0, oz, kz), iy = tap(w, 1, oy, ky), ix = tap(w, 2, ox, kx);
                                double v = qce__load(x, flat_index(w, p, iz, iy, ix, 0));
                                if (best_at < 0 || v > best) best = v, best_at = flat_index(w, p, iz, iy, ix, column_major);
                            }
                    qce__store(y, o, best);
                    if (indices) indices[o] = best_at;
                }
}

static qc_status pool(const qce_call *call, pool_kind kind, int global)
{
    unsigned types = kind == POOL_MAX ? QCE_DT(QC_DT_F32) | QCE_DT(QC_DT_U8) | QCE_DT(QC_DT_I8) : QCE_DT(QC_DT_F32);
    QCE_TRY(qce__expect_input(call, 0, types));
    const qc_tensor *x = &call->inputs[0]->tensor;
    if (x->ndim < 3 || x->ndim > 5) return qce__fail(call, QC_ERR_UNSUPPORTED, "only 1-, 2- and 3-D pooling");
    int spatial = x->ndim - 2;
    int64_t kernel[SPATIAL] = {1, 1, 1}, pads_end[SPATIAL] = {0, 0, 0};
    const int64_t *shape, *pads;
    size_t nk = qce__attr_ints(call, "kernel_shape", &shape), np = qce__attr_ints(call, "pads", &pads);
    if (!global && nk != (size_t)spatial) return qce__fail(call, QC_ERR_INVALID_ARG, "kernel_shape must give each spatial axis");
    for (int d = 0; d < spatial; d++) kernel[d] = global ? x->dims[2 + d] : shape[d];
    window w;
    QCE_TRY(qce__window_init(call, &w, x, kernel, !global && qce__attr_int(call, "ceil_mode", 0) != 0));
    if (global) memset(w.pad_begin, 0, sizeof w.pad_begin), w.out[0] = w.out[1] = w.out[2] = 1;
    for (int d = 0; d < spatial && np && !global; d++) pads_end[SPATIAL - spatial + d] = pads[spatial + d];
    int include_pad = qce__attr_int(call, "count_include_pad", 0) != 0;
    int64_t dims[QC_MAX_DIMS];
    output_dims(dims, x, x->dims[1], &w);
    QCE_TRY(qce__output(call, 0, x->dtype, x->ndim, dims));
    int indices = kind == POOL_MAX && call->num_outputs > 1 && call->outputs[1] != NULL;
    if (indices) QCE_TRY(qce__output(call, 1, QC_DT_I64, x->ndim, dims));
    if (indices || x->dtype != QC_DT_F32) {
        max_pool_general(x, &call->outputs[0]->tensor, indices ? call->outputs[1]->tensor.data : NULL, &w,
                         qce__attr_int(call, "storage_order", 0) == 1);
        return QC_OK;
    }
    float *y = call->outputs[0]->tensor.data;
    int64_t planes = x->dims[0] * x->dims[1], pixels = qce__window_pixels(&w), image = w.in[0] * w.in[1] * w.in[2];
    int64_t work = planes * pixels * w.kernel[0] * w.kernel[1] * w.kernel[2];
#pragma omp parallel for num_threads(call->threads > 0 ? call->threads : 1) schedule(static) if (work > 262144)
    for (int64_t p = 0; p < planes; p++)
        pool_plane(y + p * pixels, (const float *)x->data + p * image, &w, kind, include_pad, pads_end);
    return QC_OK;
}

static qc_status op_max_pool(const qce_call *call) { return pool(call, POOL_MAX, 0); }
static qc_status op_average_pool(const qce_call *call) { return pool(call, POOL_AVERAGE, 0); }
static qc_status op_global_average_pool(const qce_call *call) { return pool(call, POOL_AVERAGE, 1); }
static qc_status op_global_max_pool(const qce_call *call) { return pool(call, POOL_MAX, 1); }

const qce_op qce__nn_ops[] = {
    {"Softmax", op_softmax}, {"LogSoftmax", op_log_softmax}, {"LayerNormalization", op_layer_norm},
    {"BatchNormalization", op_batch_norm}, {"Conv", op_conv}, {"MaxPool", op_max_pool},
    {"AveragePool", op_average_pool}, {"GlobalAveragePool", op_global_average_pool},
    {"GlobalMaxPool", op_global_max_pool}, {NULL, NULL},
};
