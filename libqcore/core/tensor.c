/* The tensor view: construction, validation and size queries. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor_check.h"

int qc_dtype_bits(qc_dtype dtype)
{
    switch (dtype) {
    case QC_DT_F32: return 32;
    case QC_DT_F64: return 64;
    case QC_DT_I8: return 8;
    case QC_DT_U8: return 8;
    case QC_DT_I16: return 16;
    case QC_DT_I32: return 32;
    case QC_DT_I64: return 64;
    case QC_DT_INT4: return 4;
    case QC_DT_UINT4: return 4;
    }
    return 0;
}

const char *qc_dtype_string(qc_dtype dtype)
{
    switch (dtype) {
    case QC_DT_F32: return "f32";
    case QC_DT_F64: return "f64";
    case QC_DT_I8: return "i8";
    case QC_DT_U8: return "u8";
    case QC_DT_I16: return "i16";
    case QC_DT_I32: return "i32";
    case QC_DT_I64: return "i64";
    case QC_DT_INT4: return "int4";
    case QC_DT_UINT4: return "uint4";
    }
    return "unknown";
}

int64_t qc_tensor_numel(const qc_tensor *t)
{
    if (t == NULL || t->ndim < 0 || t->ndim > QC_MAX_DIMS) return -1;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->dims[i];
    return n;
}

int qc_tensor_is_contiguous(const qc_tensor *t)
{
    if (t == NULL || t->ndim < 0 || t->ndim > QC_MAX_DIMS) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->dims[i] == 0) return 1; /* no element: strides do not matter, wherever the 0 is */
    int64_t expected = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->dims[i] != 1 && t->strides[i] != expected) return 0;
        expected *= t->dims[i];
    }
    return 1;
}

static int is_packed4(qc_dtype dtype)
{
    return dtype == QC_DT_INT4 || dtype == QC_DT_UINT4;
}

/* Element count, failing on negative dims and on products that overflow int64 (checked by the multiply
 * itself: a division per dimension cost more than the rest of a check, which every kernel call makes
 * several times). */
static qc_status checked_numel(int64_t *out, const qc_tensor *t, const char *function, const char *name)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->dims[i] < 0)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s': dims[%d] = %lld is negative", name, i,
                              (long long)t->dims[i]);
        if (__builtin_mul_overflow(n, t->dims[i], &n))
            return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "argument '%s': the element count overflows int64", name);
    }
    *out = n;
    return QC_OK;
}

qc_status qc__tensor_check(const qc_tensor *t, const char *function, const char *name)
{
    if (name == NULL) name = "tensor";
    if (t == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s' is NULL", name);
    if (qc_dtype_bits(t->dtype) == 0)
        return QC_FAIL_IN(function, QC_ERR_DTYPE, "argument '%s': unknown dtype %d", name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > QC_MAX_DIMS)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s': ndim = %d is outside 0..%d", name, (int)t->ndim,
                          QC_MAX_DIMS);
    int64_t n = 0;
    QC_TRY(checked_numel(&n, t, function, name));
    if (n > 0 && t->data == NULL)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s': data is NULL but the tensor has %lld elements",
                          name, (long long)n);
    size_t item = (size_t)qc_dtype_bits(t->dtype) / 8; /* kernels read whole typed elements */
    if (n > 0 && item > 1 && (uintptr_t)t->data % item != 0)
        return QC_FAIL_IN(function, QC_ERR_LAYOUT, "argument '%s': data at %p is not aligned to its %zu-byte %s elements",
                          name, t->data, item, qc_dtype_string(t->dtype));
    if (is_packed4(t->dtype) && !qc_tensor_is_contiguous(t))
        return QC_FAIL_IN(function, QC_ERR_LAYOUT, "argument '%s': packed %s tensors must be C-contiguous", name,
                          qc_dtype_string(t->dtype));
    if (n > INT64_MAX / 8)
        return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "argument '%s': %lld elements exceed the byte range", name,
                          (long long)n);
    return QC_OK;
}

qc_status qc_tensor_check(const qc_tensor *t, const char *name)
{
    return qc__tensor_check(t, __func__, name);
}

qc_status qc_tensor_init(qc_tensor *out, void *data, qc_dtype dtype, int ndim, const int64_t *dims,
                         const int64_t *strides)
{
    QC_CHECK_NOT_NULL(out);
    if (ndim < 0 || ndim > QC_MAX_DIMS)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'ndim': %d is outside 0..%d", ndim, QC_MAX_DIMS);
    if (ndim > 0 && dims == NULL) return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'dims' is NULL but ndim = %d", ndim);
    qc_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.dims[i] = dims[i];
    int64_t expected = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.strides[i] = strides ? strides[i] : expected;
        if (dims[i] > 0 && expected <= INT64_MAX / dims[i]) expected *= dims[i];
    }
    QC_TRY(qc__tensor_check(&t, __func__, "out"));
    *out = t;
    return QC_OK;
}

qc_status qc_tensor_nbytes(size_t *out, const qc_tensor *t)
{
    QC_CHECK_NOT_NULL(out);
    QC_TRY(qc__tensor_check(t, __func__, "t"));
    uint64_t n = (uint64_t)qc_tensor_numel(t);
    int bits = qc_dtype_bits(t->dtype);
    /* Bytes, not bits: n * bits can exceed 64 bits while the byte count fits (checked above). */
    *out = (size_t)(bits == 4 ? n / 2 + n % 2 : n * (uint64_t)(bits / 8));
    return QC_OK;
}

qc_status qc__tensor_expect(const qc_tensor *t, const char *function, const char *name, qc_dtype dtype)
{
    QC_TRY(qc__tensor_check(t, function, name));
    if (t->dtype != dtype)
        return QC_FAIL_IN(function, QC_ERR_DTYPE, "argument '%s': dtype is %s, expected %s", name,
                          qc_dtype_string(t->dtype), qc_dtype_string(dtype));
    if (!qc_tensor_is_contiguous(t))
        return QC_FAIL_IN(function, QC_ERR_LAYOUT, "argument '%s': must be C-contiguous", name);
    return QC_OK;
}

qc_status qc__tensor_expect_float(const qc_tensor *t, const char *function, const char *name)
{
    QC_TRY(qc__tensor_check(t, function, name));
    if (t->dtype != QC_DT_F32 && t->dtype != QC_DT_F64)
        return QC_FAIL_IN(function, QC_ERR_DTYPE, "argument '%s': dtype is %s, expected f32 or f64", name,
                          qc_dtype_string(t->dtype));
    if (!qc_tensor_is_contiguous(t))
        return QC_FAIL_IN(function, QC_ERR_LAYOUT, "argument '%s': must be C-contiguous", name);
    return QC_OK;
}

/* Whether n contiguous floats are all finite: their exponent bits are never all ones. One branch-free pass
 * that vectorizes, so that the check costs little beside the kernels that call it on every input. */
static int f32_all_finite(const float *x, int64_t n)
{
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    return !bad;
}

qc_status qc__tensor_check_finite(const qc_tensor *t, const char *function, const char *name)
{
    int64_t n = qc_tensor_numel(t);
    if (t->dtype == QC_DT_F32 && qc_tensor_is_contiguous(t) && f32_all_finite(t->data, n)) return QC_OK;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(qc__tensor_float_at(t, i)))
            return QC_FAIL_IN(function, QC_ERR_NUMERIC, "argument '%s': element %lld is %g; inputs must be finite", name,
                              (long long)i, qc__tensor_float_at(t, i));
    return QC_OK;
}

qc_status qc__tensor_same_shape(const qc_tensor *a, const qc_tensor *b, const char *function, const char *name_a,
                                const char *name_b)
{
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->dims[i] == b->dims[i];
    if (same) return QC_OK;
    char sa[160], sb[160];
    qc__shape_string(sa, sizeof sa, a->ndim, a->dims);
    qc__shape_string(sb, sizeof sb, b->ndim, b->dims);
    return QC_FAIL_IN(function, QC_ERR_SHAPE, "arguments '%s' %s and '%s' %s must have the same shape", name_a, sa,
                      name_b, sb);
}

void qc__shape_string(char *buf, size_t size, int ndim, const int64_t *dims)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
}
