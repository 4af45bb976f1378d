/* Outlier metrics of one tensor (qc_rotate.h), built from qc_quant's statistics and fake quantization so
 * that "before and after rotation" uses exactly the quantizer the rest of qcore uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_check.h"
#include "rotate/rotate.h"

/* A failure of a call made on behalf of `function`: its message is kept, prefixed by `function`. */
static qc_status relay(qc_status st, const char *function)
{
    if (st == QC_OK) return st;
    char message[512];
    strncpy(message, qc_last_error(), sizeof message - 1);
    message[sizeof message - 1] = '\0';
    return QC_FAIL_IN(function, st, "%s", message);
}

/* SQNR of fake_quantize(x) under grid; scale, zero_point and y are caller-provided scratch. */
static qc_status quantized_sqnr(double *out, qc_ctx *ctx, const qc_tensor *x, const qc_quant_options *grid,
                                void *scale, void *zero_point, float *y)
{
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    QC_TRY(qc_quant_param_shape(&ndim, dims, x, grid));
    qc_tensor s, z, yt;
    QC_TRY(qc_tensor_init(&s, scale, QC_DT_F32, ndim, dims, NULL));
    QC_TRY(qc_tensor_init(&z, zero_point, QC_DT_I32, ndim, dims, NULL));
    QC_TRY(qc_tensor_init(&yt, y, QC_DT_F32, x->ndim, x->dims, NULL));
    QC_TRY(qc_quant_choose_params(ctx, &s, &z, x, grid));
    QC_TRY(qc_fake_quantize(ctx, &yt, x, &s, &z, grid));
    return qc_stat_sqnr_db(out, x, &yt);
}

/* Parameters are at most one per element (a group or channel covers at least one). */
static qc_status sqnr_under(double *out, qc_ctx *ctx, const qc_tensor *x, const qc_quant_options *grid,
                            const char *function)
{
    QC_TRY(relay(qc_quant_options_check(grid, x), function));
    size_t count = (size_t)qc_tensor_numel(x);
    float *scale = malloc(count * sizeof *scale), *y = malloc(count * sizeof *y);
    int32_t *zero_point = malloc(count * sizeof *zero_point);
    qc_status st = scale && y && zero_point ? relay(quantized_sqnr(out, ctx, x, grid, scale, zero_point, y), function)
                                            : QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu values", count);
    free(scale);
    free(y);
    free(zero_point);
    return st;
}

qc_status qc_outlier_metrics_compute(qc_ctx *ctx, qc_outlier_metrics *out, const qc_tensor *x,
                                     const qc_quant_options *grid)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(ctx);
    if (out->version == 0 || out->version > QC_OUTLIER_METRICS_VERSION)
        return QC_FAIL(QC_ERR_VERSION, "argument 'out': version = %u is unknown (this library knows 1..%d; use "
                       "QC_OUTLIER_METRICS_INIT)", (unsigned)out->version, QC_OUTLIER_METRICS_VERSION);
    QC_TRY(qc__tensor_expect(x, __func__, "x", QC_DT_F32));
    qc_outlier_metrics m = {.version = out->version, .sqnr_db = NAN};
    QC_TRY(relay(qc_stat_kurtosis(&m.kurtosis, x), __func__));
    QC_TRY(relay(qc_stat_max_over_rms(&m.max_over_rms, x), __func__));
    if (grid) QC_TRY(sqnr_under(&m.sqnr_db, ctx, x, grid, __func__));
    *out = m; /* version 1 is the only one so far: every field is written */
    return QC_OK;
}
