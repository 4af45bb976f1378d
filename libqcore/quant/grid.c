/* Quantization options: defaults, checks, integer ranges, and parameters from a value range. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_check.h"
#include "quant/grid.h"

qc_status qc_quant_options_init(qc_quant_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_QUANT_OPTIONS_VERSION, "qc_quant_options", __func__));
    qc_quant_options defaults = QC_QUANT_OPTIONS_INIT;
    *opts = defaults;
    return QC_OK;
}

int qc__quant_axis(const qc_quant_options *opts, int ndim)
{
    return opts->axis < 0 ? opts->axis + ndim : opts->axis;
}

static qc_status check_axis(const qc_quant_options *o, const qc_tensor *x, const char *function)
{
    if (o->granularity == QC_GRAN_TENSOR || x == NULL) return QC_OK;
    int axis = qc__quant_axis(o, x->ndim);
    if (axis < 0 || axis >= x->ndim)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "argument 'opts': axis = %d is outside the %d axes of 'x' (negative values count from the end)",
                          (int)o->axis, (int)x->ndim);
    return QC_OK;
}

static qc_status check_scale_method(const qc_quant_options *o, const char *function)
{
    switch (o->scale_method) {
    case QC_SCALE_MINMAX: return QC_OK;
    case QC_SCALE_PERCENTILE:
        if (!(o->percentile > 50.0 && o->percentile <= 100.0))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': percentile = %g is outside (50, 100]",
                              o->percentile);
        return QC_OK;
    case QC_SCALE_MSE:
        if (o->mse_steps < 2 || o->mse_steps > 10000)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': mse_steps = %d is outside 2..10000",
                              (int)o->mse_steps);
        if (!(o->mse_min_ratio > 0.0 && o->mse_min_ratio < 1.0))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': mse_min_ratio = %g is outside (0, 1)",
                              o->mse_min_ratio);
        return QC_OK;
    }
    return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': unknown scale_method %d", (int)o->scale_method);
}

static qc_status check_options(const qc_quant_options *o, const qc_tensor *x, const char *function)
{
    if (o == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts' is NULL");
    if (o->version == 0 || o->version > QC_QUANT_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION,
                          "argument 'opts': version = %u is unknown (this library knows 1..%d; use QC_QUANT_OPTIONS_INIT)",
                          (unsigned)o->version, QC_QUANT_OPTIONS_VERSION);
    if (o->bits < 2 || o->bits > 16)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': bits = %d is outside 2..16", (int)o->bits);
    if ((o->is_signed | o->symmetric | o->narrow_range) & ~1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': is_signed, symmetric and narrow_range must be 0 or 1");
    if (o->granularity != QC_GRAN_TENSOR && o->granularity != QC_GRAN_CHANNEL && o->granularity != QC_GRAN_GROUP)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': unknown granularity %d", (int)o->granularity);
    if (o->granularity == QC_GRAN_GROUP && o->group_size < 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': group_size = %lld must be >= 1",
                          (long long)o->group_size);
    QC_TRY(check_scale_method(o, function));
    return check_axis(o, x, function);
}

qc_status qc__quant_grid(qc_grid *grid, const qc_quant_options *o, const qc_tensor *x, const char *function)
{
    QC_TRY(check_options(o, x, function));
    int32_t levels_half = (int32_t)1 << (o->bits - 1);
    if (o->is_signed) {
        grid->qmin = -levels_half + (o->narrow_range ? 1 : 0);
        grid->qmax = levels_half - 1;
        grid->fixed_zero_point = 0;
    } else {
        grid->qmin = o->narrow_range ? 1 : 0;
        grid->qmax = 2 * levels_half - 1;
        grid->fixed_zero_point = (grid->qmin + grid->qmax + 1) / 2;
    }
    grid->symmetric = o->symmetric;
    return QC_OK;
}

qc_status qc_quant_options_check(const qc_quant_options *opts, const qc_tensor *x)
{
    if (x != NULL) QC_TRY(qc__tensor_check(x, __func__, "x"));
    qc_grid g;
    return qc__quant_grid(&g, opts, x, __func__);
}

qc_status qc_quant_range(int32_t *qmin, int32_t *qmax, const qc_quant_options *opts)
{
    qc_grid g;
    QC_TRY(qc__quant_grid(&g, opts, NULL, __func__));
    if (qmin) *qmin = g.qmin;
    if (qmax) *qmax = g.qmax;
    return QC_OK;
}

qc_status qc_quant_param_shape(int32_t *ndim, int64_t *dims, const qc_tensor *x, const qc_quant_options *opts)
{
    QC_CHECK_NOT_NULL(ndim);
    QC_CHECK_NOT_NULL(dims);
    QC_TRY(qc__tensor_check(x, __func__, "x"));
    qc_grid g;
    QC_TRY(qc__quant_grid(&g, opts, x, __func__));
    memset(dims, 0, QC_MAX_DIMS * sizeof *dims);
    int axis = qc__quant_axis(opts, x->ndim);
    switch (opts->granularity) {
    case QC_GRAN_TENSOR: *ndim = 0; break;
    case QC_GRAN_CHANNEL:
        *ndim = 1;
        dims[0] = x->dims[axis];
        break;
    case QC_GRAN_GROUP:
        *ndim = x->ndim;
        for (int i = 0; i < x->ndim; i++) dims[i] = x->dims[i];
        dims[axis] = (x->dims[axis] + opts->group_size - 1) / opts->group_size;
        break;
    }
    return QC_OK;
}

static double round_half_even(double v)
{
    return nearbyint(v); /* the default rounding mode rounds halves to even */
}

qc_grid_run qc__grid_from_range(const qc_grid *grid, double lo, double hi)
{
    lo = fmin(lo, 0.0);
    hi = fmax(hi, 0.0);
    qc_grid_run run = {.qmin = grid->qmin, .qmax = grid->qmax};
    double scale;
    if (grid->symmetric) {
        double absmax = fmax(-lo, hi);
        run.zero_point = grid->fixed_zero_point;
        scale = absmax / (double)(grid->qmax - grid->fixed_zero_point);
    } else {
        scale = (hi - lo) / (double)(grid->qmax - grid->qmin);
    }
    run.scale = (float)scale;
    if (!(run.scale > 0.0f) || !isfinite(run.scale)) run.scale = 1.0f; /* width 0, or below float's range */
    if (!grid->symmetric) {
        double z = round_half_even((double)grid->qmin - lo / (double)run.scale);
        run.zero_point = (int32_t)fmin(fmax(z, (double)grid->qmin), (double)grid->qmax);
    }
    return run;
}
