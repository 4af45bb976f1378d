/* Checks of quantization parameters against the grid and the tensor they apply to. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_check.h"
#include "quant/params_check.h"

qc_status qc__quant_check_param_shape(const qc_tensor *t, const char *name, const qc_tensor *shaped,
                                   const qc_quant_options *opts, const char *function)
{
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    QC_TRY(qc_quant_param_shape(&ndim, dims, shaped, opts));
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->dims[i] == dims[i];
    if (opts->granularity == QC_GRAN_TENSOR) ok = qc_tensor_numel(t) == 1;
    if (ok) return QC_OK;
    char want[160], got[160];
    qc__shape_string(want, sizeof want, ndim, dims);
    qc__shape_string(got, sizeof got, t->ndim, t->dims);
    return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': shape %s, expected %s for this granularity and axis",
                      name, got, want);
}

static qc_status check_scale_values(const float *scale, int64_t n, const char *function)
{
    for (int64_t i = 0; i < n; i++)
        if (!(isfinite(scale[i]) && scale[i] > 0.0f))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'scale': entry %lld is %g; scales must be finite and > 0",
                              (long long)i, (double)scale[i]);
    return QC_OK;
}

static qc_status check_zero_points(const int32_t *zp, int64_t n, const qc_grid *g, const char *function)
{
    for (int64_t i = 0; i < n; i++)
        if (zp[i] < g->qmin || zp[i] > g->qmax)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'zero_point': entry %lld is %d, outside the grid [%d, %d]",
                              (long long)i, (int)zp[i], (int)g->qmin, (int)g->qmax);
    return QC_OK;
}

qc_status qc__quant_call_init(qc_quant_call *call, const qc_ctx *ctx, const qc_quant_options *opts,
                              const qc_tensor *shaped, const char *shaped_name, const qc_tensor *scale,
                              const qc_tensor *zero_point, const char *function)
{
    if (ctx == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'ctx' is NULL");
    QC_TRY(qc__tensor_check(shaped, function, shaped_name));
    QC_TRY(qc__quant_grid(&call->grid, opts, shaped, function));
    QC_TRY(qc__tensor_expect(scale, function, "scale", QC_DT_F32));
    QC_TRY(qc__quant_check_param_shape(scale, "scale", shaped, opts, function));
    int64_t params = qc_tensor_numel(scale);
    QC_TRY(check_scale_values(scale->data, params, function));
    call->scale = scale->data;
    call->zero_point = NULL;
    if (zero_point == NULL) {
        if (!opts->symmetric)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'zero_point' is NULL but the grid is asymmetric");
    } else {
        QC_TRY(qc__tensor_expect(zero_point, function, "zero_point", QC_DT_I32));
        QC_TRY(qc__quant_check_param_shape(zero_point, "zero_point", shaped, opts, function));
        QC_TRY(check_zero_points(zero_point->data, params, &call->grid, function));
        call->zero_point = zero_point->data;
    }
    qc__quant_layout_init(&call->layout, shaped, opts);
    return QC_OK;
}

qc_grid_run qc__quant_call_grid(const qc_quant_call *call, int64_t p)
{
    qc_grid_run g = {call->scale[p], call->zero_point ? call->zero_point[p] : call->grid.fixed_zero_point,
                     call->grid.qmin, call->grid.qmax};
    return g;
}

int64_t qc__first_nonfinite(const float *x, int64_t n)
{
    /* A branch-free reduction first (it vectorizes); the position is searched only on failure. */
    uint32_t any = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        any |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    if (!any) return -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}
