/* Internal: the executor's one entry to BLAS, with the call's thread count. */
#ifndef QC_OPS_BLAS_H
#define QC_OPS_BLAS_H

#include <stdint.h>

/* C[m,n] = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* is set; lda/ldb/ldc are
 * the row strides of A, B and C as stored. Fixed blocks of C, single-threaded OpenBLAS calls spread over
 * `threads`: the result does not depend on `threads`. */
void qce__sgemm(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
