/* Internal: the argument checks shared by qc_quantize, qc_dequantize and qc_fake_quantize. */
#ifndef QC_QUANT_PARAMS_CHECK_H
#define QC_QUANT_PARAMS_CHECK_H

#include "quant/grid.h"
#include "quant/layout.h"

/* A quantization call's checked state: grid, layout and the parameter arrays. */
typedef struct qc_quant_call {
    qc_grid grid;
    qc_quant_layout layout;
    const float *scale;
    const int32_t *zero_point; /* NULL: the grid's fixed zero point */
} qc_quant_call;

/* Checks ctx, opts, the shape of `shaped` (the float side, `shaped_name` in messages), and that scale
 * and zero_point have the parameter shape with valid values. */
qc_status qc__quant_call_init(qc_quant_call *call, const qc_ctx *ctx, const qc_quant_options *opts,
                              const qc_tensor *shaped, const char *shaped_name, const qc_tensor *scale,
                              const qc_tensor *zero_point, const char *function);

/* QC_ERR_SHAPE unless `t` (argument `name`) has the parameter shape for `shaped` under opts
 * (per tensor: any shape with one element). */
qc_status qc__quant_check_param_shape(const qc_tensor *t, const char *name, const qc_tensor *shaped,
                                      const qc_quant_options *opts, const char *function);

/* The grid of run k's parameter p. */
qc_grid_run qc__quant_call_grid(const qc_quant_call *call, int64_t p);

/* Index of the first NaN or Inf among n floats, or -1. */
int64_t qc__first_nonfinite(const float *x, int64_t n);

#endif
