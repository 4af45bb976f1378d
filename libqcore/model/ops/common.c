/* Helpers every op uses: generic element access, copies and moves of values, integer lists, axes. */
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/ops.h"

double qce__load(const qc_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case QC_DT_F32: return ((const float *)t->data)[i];
    case QC_DT_F64: return ((const double *)t->data)[i];
    case QC_DT_I8: return ((const int8_t *)t->data)[i];
    case QC_DT_U8: return ((const uint8_t *)t->data)[i];
    case QC_DT_I16: return ((const int16_t *)t->data)[i];
    case QC_DT_I32: return ((const int32_t *)t->data)[i];
    case QC_DT_I64: return (double)((const int64_t *)t->data)[i];
    case QC_DT_INT4: case QC_DT_UINT4: { /* two per byte, low nibble first */
        int nibble = (((const uint8_t *)t->data)[i >> 1] >> (4 * (i & 1))) & 15;
        return t->dtype == QC_DT_INT4 && nibble > 7 ? nibble - 16 : nibble;
    }
    default: return 0.0;
    }
}

void qce__store(qc_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case QC_DT_F32: ((float *)t->data)[i] = (float)v; break;
    case QC_DT_F64: ((double *)t->data)[i] = v; break;
    case QC_DT_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    case QC_DT_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case QC_DT_I16: ((int16_t *)t->data)[i] = (int16_t)v; break;
    case QC_DT_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case QC_DT_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    default: break;
    }
}

qc_status qce__copy_input(const qce_call *call, size_t in, size_t out)
{
    QCE_TRY(qce__expect_input(call, in, ~0u));
    const qc_tensor *x = &call->inputs[in]->tensor;
    int reused;
    QCE_TRY(qce__output_over_input(call, out, in, x->dtype, x->ndim, x->dims, &reused));
    size_t bytes;
    if (qc_tensor_nbytes(&bytes, x) != QC_OK) return qce__fail(call, QC_ERR_INTERNAL, "bad input tensor");
    if (bytes && call->outputs[out] && !reused) memmove(call->outputs[out]->tensor.data, x->data, bytes);
    return QC_OK;
}

qc_status qce__move_value(qce_value *dst, qce_value *src)
{
    void *storage = dst->storage;
    size_t capacity = dst->capacity;
    dst->storage = src->storage;
    dst->capacity = src->capacity;
    dst->tensor = src->tensor;
    dst->is_bound = 1;
    src->storage = storage;
    src->capacity = capacity;
    return QC_OK;
}

qc_status qce__int_list(const qce_call *call, size_t k, int64_t *out, size_t capacity, size_t *count)
{
    QCE_TRY(qce__expect_input(call, k, QCE_DT(QC_DT_I64) | QCE_DT(QC_DT_I32)));
    const qc_tensor *t = &call->inputs[k]->tensor;
    int64_t n = qce__numel(t);
    if (t->ndim > 1 || (size_t)n > capacity)
        return qce__fail(call, QC_ERR_SHAPE, "input %zu must be a list of at most %zu integers", k, capacity);
    /* int64 read directly: through a double, INT64_MAX (Slice's "to the end") would overflow */
    for (int64_t i = 0; i < n; i++) out[i] = t->dtype == QC_DT_I64 ? ((const int64_t *)t->data)[i] : (int64_t)qce__load(t, i);
    *count = (size_t)n;
    return QC_OK;
}

qc_status qce__axis(const qce_call *call, int64_t axis, int ndim, int *out)
{
    int64_t a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= (ndim > 0 ? ndim : 1))
        return qce__fail(call, QC_ERR_INVALID_ARG, "axis %lld is outside the input's %d axes", (long long)axis, ndim);
    *out = (int)a;
    return QC_OK;
}

int qce__present(const qce_call *call, size_t k)
{
    return k < call->num_inputs && call->inputs[k] != NULL;
}

void qce__copy_ints(int64_t *dst, const int64_t *src, size_t n)
{
    if (n > 0) memcpy(dst, src, n * sizeof *dst);
}

int qce__worker_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
