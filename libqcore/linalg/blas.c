/* Level-3 BLAS through CBLAS (row-major). */
#include <cblas.h>

#include "linalg/linalg.h"
#include "linalg/threads.h"

/* qc__dgemm and qc__sgemm: one body, the element type and the CBLAS routine apart. */
#define QC_GEMM_WRAPPER(name, type, cblas_gemm)                                                                   \
    void name(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, type alpha, const type *a,    \
              int64_t lda, const type *b, int64_t ldb, type beta, type *c, int64_t ldc)                              \
    {                                                                                                                \
        if (m == 0 || n == 0) return;                                                                                \
        int saved = qc__blas_threads_enter(threads);                                                                 \
        cblas_gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,         \
                   (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,             \
                   (blasint)ldc);                                                                                    \
        qc__blas_threads_leave(saved);                                                                               \
    }

QC_GEMM_WRAPPER(qc__dgemm, double, cblas_dgemm)
QC_GEMM_WRAPPER(qc__sgemm, float, cblas_sgemm)

void qc__dsyrk_lower(int threads, int64_t n, int64_t k, double alpha, const double *a, int64_t lda, double beta, double *c,
                     int64_t ldc)
{
    if (n == 0) return;
    int saved = qc__blas_threads_enter(threads);
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (blasint)n, (blasint)k, alpha, a, (blasint)lda, beta, c,
                (blasint)ldc);
    qc__blas_threads_leave(saved);
}
