/* Internal: the only dense linear algebra in libqcore, as thin wrappers over CBLAS and LAPACKE (DESIGN.md §1,
 * layer 2). Matrices are double (but for qc__sgemm's float32), row-major, with a row stride `ld*` in elements. Every wrapper runs OpenBLAS
 * (Debian's OpenMP build) with the caller's `threads`, so that the context's thread count, not a process-wide
 * setting, sizes the team. Dimensions must fit a 32-bit int (qc__linalg_fits checks them first). */
#ifndef QC_LINALG_H
#define QC_LINALG_H

#include <stdint.h>

#include "qcore/qc_core.h"

/* 1 when every one of the n extents fits the BLAS integer, else 0. */
int qc__linalg_fits(const int64_t *extents, int n);

/* C[m,n] = alpha op(A) op(B) + beta C, op = transpose when trans_* is set; computed in fixed tiles of C's
 * rows, each by one thread, so that the result does not depend on `threads` (blas.c). */
void qc__dgemm(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
               int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc);

/* qc__dgemm in float32 (OPTQ's lazy block updates, which need no more precision than float32 weights). */
void qc__sgemm(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
               int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* The lower triangle of C[n,n] = alpha A^T A + beta C for A[k,n] (the upper triangle is not touched); tiled
 * as qc__dgemm. */
void qc__dsyrk_lower(int threads, int64_t n, int64_t k, double alpha, const double *a, int64_t lda, double beta, double *c,
                     int64_t ldc);

/* The LAPACK wrappers below run single-threaded: LAPACK's blocked algorithms split their updates by the
 * team's size, which would make results depend on the thread count. */

/* Cholesky factor A = L L^T of a symmetric positive definite A[n,n], in place: reads the lower triangle,
 * writes L there and zeroes the strict upper triangle. On failure returns QC_ERR_SINGULAR, with *pivot (may
 * be NULL) the 1-based order of the first leading minor that is not positive definite and a message on
 * behalf of `function`; A is then partly overwritten. */
qc_status qc__cholesky(double *a, int64_t n, int64_t lda, int64_t *pivot, const char *function);

/* Cholesky factor A = R^T R (R upper triangular) read from and written to the upper triangle of A[n,n]
 * (diagonal included); the strict lower triangle is neither read nor written, so it may hold other data.
 * Failures as for qc__cholesky. */
qc_status qc__cholesky_upper(double *a, int64_t n, int64_t lda, int64_t *pivot, const char *function);

/* Solves A x = b for a symmetric positive definite A[n,n] (lower triangle read) by Cholesky (LAPACK posv):
 * b[n] receives x and A its factor. QC_ERR_SINGULAR (on behalf of `function`) when A is not positive
 * definite; b is then unspecified. */
qc_status qc__spd_solve(double *a, int64_t n, int64_t lda, double *b, const char *function);

/* The inverse of a lower-triangular L[n,n] with a non-zero diagonal, in place (strict upper triangle kept
 * zero). QC_ERR_SINGULAR names the first zero diagonal entry. */
qc_status qc__triangular_inverse(double *l, int64_t n, int64_t ldl, const char *function);

/* The inverse of an upper-triangular R[n,n] with a non-zero diagonal, in place in the upper triangle; the
 * strict lower triangle is neither read nor written. QC_ERR_SINGULAR names the first zero diagonal entry. */
qc_status qc__triangular_inverse_upper(double *r, int64_t n, int64_t ldr, const char *function);

/* QR factorization A = Q R of A[m,n] (m >= n) in place, by Householder reflections (LAPACK geqrf). Unlike the
 * wrappers above, A is column-major with column stride lda (LAPACK's own layout, so that no transposed copy
 * is made): R ends in the upper triangle, the reflectors below it, and their scalars in tau[n]. */
qc_status qc__qr(double *a, int64_t m, int64_t n, int64_t lda, double *tau, const char *function);

/* Overwrites qc__qr's output A[m,n] (column-major) with the n orthonormal columns of Q (LAPACK orgqr). */
qc_status qc__qr_form_q(double *a, int64_t m, int64_t n, int64_t lda, const double *tau,
                        const char *function);

#endif
