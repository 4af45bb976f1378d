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

#endif
