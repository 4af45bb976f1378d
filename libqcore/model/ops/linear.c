/* MatMul (numpy semantics: batched, broadcast batch dimensions, 1-D operands promoted) and Gemm, on BLAS. */
#include <string.h>

#include "ops/blas.h"
#include "ops/broadcast.h"
#include "ops/matmul.h"
#include "ops/ops.h"

qc_status qce__matmul_init(qce_matmul *mm, const qce_call *call, size_t ia, size_t ib)
{
    qc_tensor *a = &mm->a, *b = &mm->b;
    *a = call->inputs[ia]->tensor, *b = call->inputs[ib]->tensor;
    if (a->ndim == 0 || b->ndim == 0) return qce__fail(call, QC_ERR_SHAPE, "matrix products need inputs of rank 1 or more");
    int a_vector = a->ndim == 1, b_vector = b->ndim == 1; /* promoted, and dropped again from the output */
    if (a_vector) a->dims[1] = a->dims[0], a->dims[0] = 1, a->ndim = 2;
    if (b_vector) b->dims[1] = 1, b->ndim = 2;
    mm->m = a->dims[a->ndim - 2], mm->k = a->dims[a->ndim - 1], mm->n = b->dims[b->ndim - 1];
    if (b->dims[b->ndim - 2] != mm->k)
        return qce__fail(call, QC_ERR_SHAPE, "inner dimensions differ: %lld and %lld", (long long)mm->k,
                         (long long)b->dims[b->ndim - 2]);
    qc_tensor batch_a = *a, batch_b = *b; /* the batch dimensions alone */
    batch_a.ndim -= 2, batch_b.ndim -= 2;
    const qc_tensor *batches[2] = {&batch_a, &batch_b};
    QCE_TRY(qce__broadcast_init(&mm->batch, call, batches, 2));
    mm->ndim = 0;
    mm->count = 1;
    for (int d = 0; d < mm->batch.ndim; d++) mm->dims[mm->ndim++] = mm->batch.dims[d], mm->count *= mm->batch.dims[d];
    if (!a_vector) mm->dims[mm->ndim++] = mm->m;
    if (!b_vector) mm->dims[mm->ndim++] = mm->n;
    return QC_OK;
}

void qce__matmul_operands(const qce_matmul *mm, int64_t i, int64_t *a_matrix, int64_t *b_matrix)
{
    int64_t *offsets[3] = {a_matrix, b_matrix, NULL};
    qce__broadcast_offsets(&mm->batch, i, 1, offsets);
}

static qc_status op_matmul(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_F32)));
    qce_matmul mm;
    QCE_TRY(qce__matmul_init(&mm, call, 0, 1));
    QCE_TRY(qce__output(call, 0, QC_DT_F32, mm.ndim, mm.dims));
    int64_t m = mm.m, n = mm.n, k = mm.k;
    float *y = call->outputs[0]->tensor.data;
    /* Many small products (attention heads): one single-threaded GEMM per batch entry, the entries
     * spread over the threads; few large ones: BLAS threads each. */
    int threads = call->threads > 0 ? call->threads : 1, across = mm.count >= threads && mm.count > 1;
#pragma omp parallel for num_threads(threads) schedule(static) if (across)
    for (int64_t i = 0; i < mm.count; i++) {
        int64_t oa, ob;
        qce__matmul_operands(&mm, i, &oa, &ob);
        qce__sgemm(across ? 1 : call->threads, 0, 0, m, n, k, 1.0f, (const float *)mm.a.data + oa * m * k, k,
                   (const float *)mm.b.data + ob * k * n, n, 0.0f, y + i * m * n, n);
    }
    return QC_OK;
}

/* y[M, N] = C broadcast: row copies for the usual bias shapes ([N], [1, N], [M, N]), the general
 * broadcast otherwise. */
qc_status qce__gemm_fill_bias(const qce_call *call, const qc_tensor *c, float *y, int64_t m, int64_t n)
{
    const float *bias = c->data;
    int one_row = c->ndim >= 1 && c->ndim <= 2 && c->dims[c->ndim - 1] == n && qce__numel(c) == n;
    int full = c->ndim == 2 && c->dims[0] == m && c->dims[1] == n;
    if (one_row || full) {
        for (int64_t row = 0; row < m; row++) memcpy(y + row * n, full ? bias + row * n : bias, (size_t)n * sizeof *y);
        return QC_OK;
    }
    qce_broadcast bc;
    qc_tensor target = {.dtype = QC_DT_F32, .ndim = 2, .dims = {m, n}};
    const qc_tensor *pair[2] = {&target, c};
    QCE_TRY(qce__broadcast_init(&bc, call, pair, 2));
    if (bc.ndim != 2 || bc.dims[0] != m || bc.dims[1] != n)
        return qce__fail(call, QC_ERR_SHAPE, "C does not broadcast to [M, N]");
    int64_t sc = bc.strides[1][1];
    for (int64_t row = 0; row < m; row++) {
        int64_t offsets[3];
        qce__broadcast_row(&bc, row, offsets);
        for (int64_t j = 0; j < n; j++) y[row * n + j] = bias[offsets[1] + j * sc];
    }
    return QC_OK;
}

/* A constant B [N, K] used transposed (transB = 1, as PyTorch exports Linear) is transposed once into
 * [K, N] and kept with the node: OpenBLAS runs the plain product 10-15% faster at small batches. */
static qc_status untransposed_constant(const qce_call *call, const float **b, int *tb, int64_t *ldb, int64_t n, int64_t k)
{
    const size_t source = 1;
    int fresh;
    float *kept = qce__derived(call, sizeof(float) * (size_t)(n * k), &source, 1, &fresh);
    if (fresh < 0) return QC_ERR_OUT_OF_MEMORY;
    if (kept == NULL) return QC_OK; /* B changes from run to run: BLAS transposes it on the fly */
    if (fresh)
        for (int64_t row = 0; row < n; row++)
            for (int64_t col = 0; col < k; col++) kept[col * n + row] = (*b)[row * *ldb + col];
    *b = kept, *tb = 0, *ldb = n;
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
        QCE_TRY(qce__gemm_fill_bias(call, &call->inputs[2]->tensor, y, m, n));
    }
    const float *weights = b->data;
    int64_t ldb = b->dims[1];
    if (tb) QCE_TRY(untransposed_constant(call, &weights, &tb, &ldb, n, k));
    qce__sgemm(call->threads, ta, tb, m, n, k, alpha, a->data, a->dims[1], weights, ldb, has_c ? beta : 0.0f, y, n);
    return QC_OK;
}

const qce_op qce__linear_ops[] = {
    {"MatMul", op_matmul},
    {"Gemm", op_gemm},
    {NULL, NULL},
};
