/* MatMul (numpy semantics: batched, broadcast batch dimensions, 1-D operands promoted) and Gemm, on BLAS. */
#include <string.h>

#include "ops/blas.h"
#include "ops/broadcast.h"
#include "ops/ops.h"

static qc_status op_matmul(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_F32)));
    qc_tensor a = call->inputs[0]->tensor, b = call->inputs[1]->tensor;
    if (a.ndim == 0 || b.ndim == 0) return qce__fail(call, QC_ERR_SHAPE, "MatMul needs inputs of rank 1 or more");
    int a_vector = a.ndim == 1, b_vector = b.ndim == 1;
    /* Promote 1-D operands: [k] -> [1, k] on the left, [k] -> [k, 1] on the right. */
    if (a_vector) a.dims[1] = a.dims[0], a.dims[0] = 1, a.ndim = 2;
    if (b_vector) b.dims[1] = 1, b.ndim = 2;
    int64_t m = a.dims[a.ndim - 2], k = a.dims[a.ndim - 1], n = b.dims[b.ndim - 1];
    if (b.dims[b.ndim - 2] != k)
        return qce__fail(call, QC_ERR_SHAPE, "inner dimensions differ: %lld and %lld", (long long)k,
                         (long long)b.dims[b.ndim - 2]);
    qc_tensor batch_a = a, batch_b = b; /* the batch dimensions alone */
    batch_a.ndim -= 2, batch_b.ndim -= 2;
    const qc_tensor *batches[2] = {&batch_a, &batch_b};
    qce_broadcast bc;
    QCE_TRY(qce__broadcast_init(&bc, call, batches, 2));
    int64_t dims[QC_MAX_DIMS + 2];
    int ndim = 0;
    for (int d = 0; d < bc.ndim; d++) dims[ndim++] = bc.dims[d];
    if (!a_vector) dims[ndim++] = m;
    if (!b_vector) dims[ndim++] = n;
    QCE_TRY(qce__output(call, 0, QC_DT_F32, ndim, dims));
    int64_t count = 1;
    for (int d = 0; d < bc.ndim; d++) count *= bc.dims[d];
    float *y = call->outputs[0]->tensor.data;
    /* Many small products (attention heads): one single-threaded GEMM per batch entry, the entries
     * spread over the threads; few large ones: BLAS threads each. */
    int threads = call->threads > 0 ? call->threads : 1, across = count >= threads && count > 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (across)
    for (int64_t i = 0; i < count; i++) {
        int64_t oa, ob, *offsets[3] = {&oa, &ob, NULL};
        qce__broadcast_offsets(&bc, i, 1, offsets);
        qce__sgemm(across ? 1 : call->threads, 0, 0, m, n, k, 1.0f, (const float *)a.data + oa * m * k, k,
                   (const float *)b.data + ob * k * n, n, 0.0f, y + i * m * n, n);
    }
    return QC_OK;
}

/* Y = alpha * A' B' + beta * C, C broadcast to [M, N]. */
static qc_status op_gemm(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_F32)));
    const qc_tensor *a = &call->inputs[0]->tensor, *b = &call->inputs[1]->tensor;
    if (a->ndim != 2 || b->ndim != 2) return qce__fail(call, QC_ERR_SHAPE, "Gemm takes 2-D A and B");
    int ta = qce__attr_int(call, "transA", 0) != 0, tb = qce__attr_int(call, "transB", 0) != 0;
    float alpha = qce__attr_float(call, "alpha", 1.0f), beta = qce__attr_float(call, "beta", 1.0f);
    int64_t m = ta ? a->dims[1] : a->dims[0], k = ta ? a->dims[0] : a->dims[1];
    int64_t n = tb ? b->dims[0] : b->dims[1], kb = tb ? b->dims[1] : b->dims[0];
    if (k != kb) return qce__fail(call, QC_ERR_SHAPE, "inner dimensions differ: %lld and %lld", (long long)k, (long long)kb);
    int64_t dims[2] = {m, n};
    QCE_TRY(qce__output(call, 0, QC_DT_F32, 2, dims));
    float *y = call->outputs[0]->tensor.data;
    int has_c = call->num_inputs > 2 && call->inputs[2] != NULL && beta != 0.0f;
    if (has_c) {
        QCE_TRY(qce__expect_input(call, 2, QCE_DT(QC_DT_F32)));
        const qc_tensor *c = &call->inputs[2]->tensor;
        qce_broadcast bc;
        qc_tensor target = {.dtype = QC_DT_F32, .ndim = 2, .dims = {m, n}};
        const qc_tensor *pair[2] = {&target, c};
        QCE_TRY(qce__broadcast_init(&bc, call, pair, 2));
        if (bc.ndim != 2 || bc.dims[0] != m || bc.dims[1] != n)
            return qce__fail(call, QC_ERR_SHAPE, "C does not broadcast to [M, N]");
        for (int64_t row = 0; row < m; row++) { /* one row of offsets at a time */
            int64_t ot[n > 0 ? n : 1], oc[n > 0 ? n : 1], *offsets[3] = {ot, oc, NULL};
            qce__broadcast_offsets(&bc, row * n, n, offsets);
            for (int64_t j = 0; j < n; j++) y[row * n + j] = ((const float *)c->data)[oc[j]];
        }
    }
    qce__sgemm(call->threads, ta, tb, m, n, k, alpha, a->data, a->dims[1], b->data, b->dims[1], has_c ? beta : 0.0f, y, n);
    return QC_OK;
}

const qce_op qce__linear_ops[] = {
    {"MatMul", op_matmul},
    {"Gemm", op_gemm},
    {NULL, NULL},
};
