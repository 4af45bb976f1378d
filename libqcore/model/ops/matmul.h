/* Internal: numpy matmul shapes, shared by MatMul and the quantized matmuls. */
#ifndef QC_OPS_MATMUL_H
#define QC_OPS_MATMUL_H

#include "ops/broadcast.h"

/* A batched product A B: 1-D operands promoted ([k] -> [1, k] on the left, [k] -> [k, 1] on the right),
 * batch dimensions broadcast. Matrices are counted in units of m*k (A), k*n (B) and m*n (output). */
typedef struct qce_matmul {
    qc_tensor a, b;                  /* the operands, promoted to rank 2 or more */
    int64_t m, k, n;
    int64_t count;                   /* matrices in the output */
    qce_broadcast batch;             /* over the batch dimensions of a and b */
    int ndim;                        /* the output's shape */
    int64_t dims[QC_MAX_DIMS + 2];
} qce_matmul;

/* Shapes the product of the call's inputs ia and ib, or fails naming the node. */
qc_status qce__matmul_init(qce_matmul *mm, const qce_call *call, size_t ia, size_t ib);

/* The A and B matrices that output matrix i multiplies. */
void qce__matmul_operands(const qce_matmul *mm, int64_t i, int64_t *a_matrix, int64_t *b_matrix);

/* c [rows, n] = a [rows, k] b [k, n] (centred levels) through the session's simulated P-bit register
 * (acc->bits > 0), counted into acc->stats: MatMulInteger's accumulation (ops/quant_int.c), shared with
 * the fused integer layers (ops/qdq_linear.c). */
void qce__register_product(const int16_t *a, const int16_t *b, int64_t rows, int64_t k, int64_t n, int32_t *c, int threads,
                           qce_accumulator *acc);

/* y [m, n] = C broadcast (Gemm's bias), or QC_ERR_SHAPE naming the call's node. */
qc_status qce__gemm_fill_bias(const qce_call *call, const qc_tensor *c, float *y, int64_t m, int64_t n);

#endif
