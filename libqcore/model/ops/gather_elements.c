/* GatherElements (opset 11, 13): out[i] = data[i with its `axis` coordinate replaced by indices[i]], the
 * output shaped as the indices (each non-axis extent at most the data's). It decodes LQ weights (UINT4
 * codes cast to INT64 index each channel's level table; qc_model.h, "LQ weights in a recipe"). */
#include <string.h>

#include "ops/ops.h"

static qc_status check_shapes(const qce_call *call, const qc_tensor *x, const qc_tensor *idx, int axis)
{
    if (x->ndim < 1) return qce__fail(call, QC_ERR_SHAPE, "the data is a scalar; GatherElements needs rank >= 1");
    if (idx->ndim != x->ndim)
        return qce__fail(call, QC_ERR_SHAPE, "indices have %d dims, data %d; GatherElements needs the same rank", (int)idx->ndim,
                         (int)x->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (d != axis && idx->dims[d] > x->dims[d])
            return qce__fail(call, QC_ERR_SHAPE, "indices extent %lld on axis %d exceeds the data's %lld", (long long)idx->dims[d], d,
                             (long long)x->dims[d]);
    return QC_OK;
}

/* Element `flat` of the indices' shape as an offset into x, its axis coordinate being `at`. */
static int64_t data_offset(const qc_tensor *x, const qc_tensor *idx, int axis, int64_t flat, int64_t at)
{
    int64_t offset = 0, stride = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        int64_t coordinate = flat % idx->dims[d];
        flat /= idx->dims[d];
        offset += (d == axis ? at : coordinate) * stride;
        stride *= x->dims[d];
    }
    return offset;
}

static qc_status op_gather_elements(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_I64) | QCE_DT(QC_DT_I32)));
    const qc_tensor *x = &call->inputs[0]->tensor, *idx = &call->inputs[1]->tensor;
    int axis = 0;
    if (x->dtype == QC_DT_INT4 || x->dtype == QC_DT_UINT4)
        return qce__fail(call, QC_ERR_UNSUPPORTED, "4-bit data is not gathered; cast it first");
    if (x->ndim > 0) QCE_TRY(qce__axis(call, qce__attr_int(call, "axis", 0), x->ndim, &axis));
    QCE_TRY(check_shapes(call, x, idx, axis));
    QCE_TRY(qce__output(call, 0, x->dtype, idx->ndim, idx->dims));
    size_t item = (size_t)qc_dtype_bits(x->dtype) / 8;
    int64_t extent = x->dims[axis];
    uint8_t *out = call->outputs[0]->tensor.data;
    for (int64_t j = 0; j < qce__numel(idx); j++) {
        /* int64 read directly: through a double, a huge index would overflow the conversion back */
        int64_t i = idx->dtype == QC_DT_I64 ? ((const int64_t *)idx->data)[j] : (int64_t)qce__load(idx, j);
        if (i < -extent || i >= extent)
            return qce__fail(call, QC_ERR_INVALID_ARG, "index %lld is outside [-%lld, %lld)", (long long)i, (long long)extent,
                             (long long)extent);
        memcpy(out + (size_t)j * item, (const uint8_t *)x->data + (size_t)data_offset(x, idx, axis, j, i < 0 ? i + extent : i) * item, item);
    }
    return QC_OK;
}

const qce_op qce__gather_elements_ops[] = {
    {"GatherElements", op_gather_elements}, {NULL, NULL},
};
