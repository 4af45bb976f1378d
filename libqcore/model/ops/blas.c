/* BLAS through CBLAS. Debian's OpenMP build of OpenBLAS sizes its team from the calling thread's
 * OpenMP setting, so the session's thread count is applied around each call and then restored. */
#include <cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/blas.h"

void qce__sgemm(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m == 0 || n == 0) return;
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}
