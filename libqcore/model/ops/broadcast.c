/* Multidirectional broadcasting: shapes are right-aligned, and a dimension of 1 stretches to the other. */
#include "ops/broadcast.h"

qc_status qce__broadcast_init(qce_broadcast *b, const qce_call *call, const qc_tensor *const *inputs, int count)
{
    b->ndim = 0;
    b->num_inputs = count;
    for (int i = 0; i < count; i++)
        if (inputs[i]->ndim > b->ndim) b->ndim = inputs[i]->ndim;
    for (int d = 0; d < b->ndim; d++) {
        b->dims[d] = 1;
        for (int i = 0; i < count; i++) {
            int k = d - (b->ndim - inputs[i]->ndim);
            int64_t extent = k < 0 ? 1 : inputs[i]->dims[k];
            if (extent == b->dims[d] || extent == 1) continue;
            if (b->dims[d] != 1)
                return qce__fail(call, QC_ERR_SHAPE, "inputs cannot be broadcast: dimension %d is %lld and %lld", d,
                                 (long long)b->dims[d], (long long)extent);
            b->dims[d] = extent;
        }
    }
    for (int i = 0; i < count; i++) {
        int64_t stride = 1;
        for (int d = b->ndim - 1; d >= 0; d--) {
            int k = d - (b->ndim - inputs[i]->ndim);
            int64_t extent = k < 0 ? 1 : inputs[i]->dims[k];
            b->strides[i][d] = extent == 1 ? 0 : stride;
            stride *= extent;
        }
    }
    return QC_OK;
}

void qce__broadcast_offsets(const qce_broadcast *b, int64_t first, int64_t n, int64_t *offsets[3])
{
    int64_t index[QC_MAX_DIMS], rest = first;
    for (int d = b->ndim - 1; d >= 0; d--) {
        index[d] = b->dims[d] ? rest % b->dims[d] : 0;
        rest = b->dims[d] ? rest / b->dims[d] : 0;
    }
    int64_t off[3] = {0, 0, 0};
    for (int i = 0; i < b->num_inputs; i++)
        for (int d = 0; d < b->ndim; d++) off[i] += index[d] * b->strides[i][d];
    for (int64_t j = 0; j < n; j++) {
        for (int i = 0; i < b->num_inputs; i++) offsets[i][j] = off[i];
        for (int d = b->ndim - 1; d >= 0; d--) { /* advance the odometer, carrying left */
            for (int i = 0; i < b->num_inputs; i++) off[i] += b->strides[i][d];
            if (++index[d] < b->dims[d]) break;
            for (int i = 0; i < b->num_inputs; i++) off[i] -= b->strides[i][d] * b->dims[d];
            index[d] = 0;
        }
    }
}

int64_t qce__broadcast_row_length(const qce_broadcast *b)
{
    return b->ndim ? b->dims[b->ndim - 1] : 1;
}

void qce__broadcast_row(const qce_broadcast *b, int64_t row, int64_t offsets[3])
{
    for (int i = 0; i < b->num_inputs; i++) offsets[i] = 0;
    for (int d = b->ndim - 2; d >= 0; d--) {
        int64_t index = b->dims[d] ? row % b->dims[d] : 0;
        row = b->dims[d] ? row / b->dims[d] : 0;
        for (int i = 0; i < b->num_inputs; i++) offsets[i] += index * b->strides[i][d];
    }
}
