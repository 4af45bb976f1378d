/* Levels, thresholds and codes of a basis (qc_lq.h), and the checks the lq entry points share. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "core/tensor_check.h"
#include "lq/lq.h"

double qc__lq_level(const float *basis, int bits, qc_lq_code code, unsigned c)
{
    double sum = 0.0;
    for (int j = 0; j < bits; j++) {
        double b = (c >> j) & 1u ? 1.0 : (code == QC_LQ_SIGNED ? -1.0 : 0.0);
        sum += b * (double)basis[j];
    }
    return sum;
}

/* The smallest float f with f > t: then, for every float x, x > t exactly when x >= f. Rounding t to the
 * nearest float gives it unless that lands on or below t. Thresholds beyond the float range give
 * +-infinity (every finite x is below or above them, as with the double). */
static float smallest_float_above(double t)
{
    float f = (float)t;
    return (double)f > t ? f : nextafterf(f, INFINITY);
}

void qc__lq_table(qc_lq_table *t, const float *basis, int bits, qc_lq_code code)
{
    t->bits = bits;
    t->count = 1 << bits;
    /* Insertion sort of at most 16 levels; strict comparison keeps equal levels in code order. */
    for (int c = 0; c < t->count; c++) {
        double v = qc__lq_level(basis, bits, code, (unsigned)c);
        int i = c;
        for (; i > 0 && t->level[i - 1] > v; i--) {
            t->level[i] = t->level[i - 1];
            t->code[i] = t->code[i - 1];
        }
        t->level[i] = v;
        t->code[i] = (uint8_t)c;
    }
    t->encoder.bits = bits;
    t->encoder.count = t->count;
    for (int i = 0; i < QC_LQ_MAX_LEVELS; i++) t->encoder.code[i] = i < t->count ? t->code[i] : 0;
    for (int i = 0; i + 1 < t->count; i++) {
        t->threshold[i] = 0.5 * (t->level[i] + t->level[i + 1]);
        t->encoder.lower[i] = smallest_float_above(t->threshold[i]);
    }
}

qc_status qc__lq_check_code(qc_lq_code code, const char *function, const char *name)
{
    if (code != QC_LQ_SIGNED && code != QC_LQ_UNSIGNED)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "argument '%s' is %d; expected QC_LQ_SIGNED (1) or QC_LQ_UNSIGNED (2)", name, (int)code);
    return QC_OK;
}

qc_status qc__lq_check_matrix(const qc_tensor *t, qc_dtype dtype, int64_t rows, int64_t cols, const char *function,
                              const char *name)
{
    if (t == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s' is NULL", name);
    QC_TRY(qc__tensor_expect(t, function, name, dtype));
    if (t->ndim == 2 && (rows < 0 || t->dims[0] == rows) && (cols < 0 || t->dims[1] == cols)) return QC_OK;
    char shape[160];
    qc__shape_string(shape, sizeof shape, t->ndim, t->dims);
    if (t->ndim != 2)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': expected 2 dimensions, got %s", name, shape);
    return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': expected [%lld, %lld] (-1: any), got %s", name,
                      (long long)rows, (long long)cols, shape);
}

qc_status qc__lq_check_basis(const qc_tensor *basis, int64_t rows, int broadcast, int *bits, const char *function,
                             const char *name)
{
    QC_TRY(qc__lq_check_matrix(basis, QC_DT_F32, -1, -1, function, name));
    if (basis->dims[0] != rows && !(broadcast && basis->dims[0] == 1))
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': %lld rows, expected %lld%s", name,
                          (long long)basis->dims[0], (long long)rows, broadcast ? " or 1" : "");
    if (basis->dims[1] < 1 || basis->dims[1] > QC_LQ_MAX_BITS)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s': K = dims[1] = %lld, expected 1..%d", name,
                          (long long)basis->dims[1], QC_LQ_MAX_BITS);
    QC_TRY(qc__tensor_check_finite(basis, function, name));
    *bits = (int)basis->dims[1];
    return QC_OK;
}

qc_status qc_lq_levels(qc_tensor *levels, qc_tensor *codes, qc_tensor *thresholds, const qc_tensor *basis,
                       qc_lq_code code)
{
    int bits;
    QC_TRY(qc__lq_check_code(code, __func__, "code"));
    QC_CHECK_NOT_NULL(basis);
    QC_TRY(qc__lq_check_basis(basis, basis->dims[0], 0, &bits, __func__, "basis"));
    int64_t g = basis->dims[0], count = (int64_t)1 << bits;
    QC_TRY(qc__lq_check_matrix(levels, QC_DT_F64, g, count, __func__, "levels"));
    if (codes) QC_TRY(qc__lq_check_matrix(codes, QC_DT_U8, g, count, __func__, "codes"));
    if (thresholds) QC_TRY(qc__lq_check_matrix(thresholds, QC_DT_F64, g, count - 1, __func__, "thresholds"));
    for (int64_t r = 0; r < g; r++) {
        qc_lq_table t;
        qc__lq_table(&t, (const float *)basis->data + r * bits, bits, code);
        for (int64_t i = 0; i < count; i++) {
            ((double *)levels->data)[r * count + i] = t.level[i];
            if (codes) ((uint8_t *)codes->data)[r * count + i] = t.code[i];
            if (thresholds && i + 1 < count) ((double *)thresholds->data)[r * (count - 1) + i] = t.threshold[i];
        }
    }
    return QC_OK;
}
