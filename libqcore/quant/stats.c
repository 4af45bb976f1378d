/* Statistics reported across qcore: SQNR, relative MSE, kurtosis, max/RMS. Sums in double, in element
 * order, so results do not depend on threads. */
#include <math.h>

#include "core/error.h"
#include "core/tensor_check.h"
#include "qcore/qc_quant.h"

static qc_status check_one(const qc_tensor *x, const char *name, const char *function)
{
    QC_TRY(qc__tensor_expect_float(x, function, name));
    if (qc_tensor_numel(x) == 0)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s' has no elements", name);
    return qc__tensor_check_finite(x, function, name);
}

/* Sum of ref^2 and of (ref - approx)^2, after checking both arguments. */
static qc_status error_sums(double *signal, double *noise, const qc_tensor *ref, const qc_tensor *approx,
                            const char *function)
{
    QC_TRY(check_one(ref, "ref", function));
    QC_TRY(check_one(approx, "approx", function));
    QC_TRY(qc__tensor_same_shape(ref, approx, function, "ref", "approx"));
    double s = 0.0, e = 0.0;
    int64_t n = qc_tensor_numel(ref);
    for (int64_t i = 0; i < n; i++) {
        double r = qc__tensor_float_at(ref, i), d = r - qc__tensor_float_at(approx, i);
        s += r * r;
        e += d * d;
    }
    *signal = s;
    *noise = e;
    return QC_OK;
}

qc_status qc_stat_sqnr_db(double *out, const qc_tensor *ref, const qc_tensor *approx)
{
    QC_CHECK_NOT_NULL(out);
    double signal, noise;
    QC_TRY(error_sums(&signal, &noise, ref, approx, __func__));
    if (noise == 0.0) {
        *out = INFINITY;
        return QC_OK;
    }
    if (signal == 0.0) return QC_FAIL(QC_ERR_NUMERIC, "argument 'ref' is all zero while 'approx' is not: SQNR is undefined");
    *out = 10.0 * log10(signal / noise);
    return QC_OK;
}

qc_status qc_stat_relative_mse(double *out, const qc_tensor *ref, const qc_tensor *approx)
{
    QC_CHECK_NOT_NULL(out);
    double signal, noise;
    QC_TRY(error_sums(&signal, &noise, ref, approx, __func__));
    if (signal == 0.0) return QC_FAIL(QC_ERR_NUMERIC, "argument 'ref' is all zero: relative MSE is undefined");
    *out = noise / signal;
    return QC_OK;
}

qc_status qc_stat_kurtosis(double *out, const qc_tensor *x)
{
    QC_CHECK_NOT_NULL(out);
    QC_TRY(check_one(x, "x", __func__));
    int64_t n = qc_tensor_numel(x);
    double mean = 0.0;
    for (int64_t i = 0; i < n; i++) mean += qc__tensor_float_at(x, i);
    mean /= (double)n;
    double m2 = 0.0, m4 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = qc__tensor_float_at(x, i) - mean, d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
    }
    if (m2 == 0.0) return QC_FAIL(QC_ERR_NUMERIC, "argument 'x' is constant: kurtosis is undefined");
    *out = (double)n * m4 / (m2 * m2);
    return QC_OK;
}

qc_status qc_stat_max_over_rms(double *out, const qc_tensor *x)
{
    QC_CHECK_NOT_NULL(out);
    QC_TRY(check_one(x, "x", __func__));
    int64_t n = qc_tensor_numel(x);
    double absmax = 0.0, squares = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = qc__tensor_float_at(x, i);
        absmax = fmax(absmax, fabs(v));
        squares += v * v;
    }
    if (squares == 0.0) return QC_FAIL(QC_ERR_NUMERIC, "argument 'x' is all zero: max/RMS is undefined");
    *out = absmax / sqrt(squares / (double)n);
    return QC_OK;
}
