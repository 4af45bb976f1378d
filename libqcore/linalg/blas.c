/* Level-3 BLAS through CBLAS (row-major). */
#include <cblas.h>

#include "linalg/threads.h"

void qc__dgemm(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double *a,
               int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc)
{
    if (m == 0 || n == 0) return;
    int saved = qc__blas_threads_enter(threads);
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
    qc__blas_threads_leave(saved);
}

void qc__dsyrk_lower(int threads, int64_t n, int64_t k, double alpha, const double *a, int64_t lda, double beta, double *c,
                     int64_t ldc)
{
    if (n == 0) return;
    int saved = qc__blas_threads_enter(threads);
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (blasint)n, (blasint)k, alpha, a, (blasint)lda, beta, c,
                (blasint)ldc);
    qc__blas_threads_leave(saved);
}
