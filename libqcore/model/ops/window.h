/* Internal: the sliding windows of convolution and pooling over 1-, 2- and 3-D spatial inputs, and
 * im2col, shared by the Conv kernel and the pipeline's convolution layers. Spatial axes are held as three,
 * the missing leading ones of extent 1, so one loop nest serves all. */
#ifndef QC_OPS_WINDOW_H
#define QC_OPS_WINDOW_H

#include "ops/ops.h"

enum { SPATIAL = 3 };

typedef struct window {
    int64_t in[SPATIAL], out[SPATIAL], kernel[SPATIAL], stride[SPATIAL], dilation[SPATIAL], pad_begin[SPATIAL];
} window;

/* The window of the call's node (strides, dilations, pads, auto_pad) over input x with `kernel`'s extents
 * (one per spatial axis of x). */
qc_status qce__window_init(const qce_call *call, window *w, const qc_tensor *x, const int64_t *kernel, int ceil_mode);

/* Output positions per image. */
int64_t qce__window_pixels(const window *w);

/* The input coordinate of output o and kernel tap k along axis d. */
static inline int64_t tap(const window *w, int d, int64_t o, int64_t k)
{
    return o * w->stride[d] - w->pad_begin[d] + k * w->dilation[d];
}

/* im2col of one image's `channels` channels: [channels * taps, pixels], rows are (channel, kernel
 * offset), columns are output pixels, zeros where a tap reads padding. */
void qce__im2col(float *columns, const float *image, int64_t channels, const window *w);

#endif
