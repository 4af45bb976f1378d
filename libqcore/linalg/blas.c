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

/* The rows of C in fixed tiles, each one single-threaded dgemm: OpenBLAS splits a multi-threaded product
 * differently for different team sizes (3 threads round differently from 1 or 2), a fixed tiling does not. */
enum { TILE_ROWS = 32 };

void qc__dgemm_tiled(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                     const double *a, int64_t lda, const double *b, int64_t ldb, double beta, double *c, int64_t ldc)
{
    int64_t tiles = (m + TILE_ROWS - 1) / TILE_ROWS;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t first = t * TILE_ROWS, rows = m - first < TILE_ROWS ? m - first : TILE_ROWS;
        const double *a_tile = trans_a ? a + first : a + first * lda;
        qc__dgemm(1, trans_a, trans_b, rows, n, k, alpha, a_tile, lda, b, ldb, beta, c + first * ldc, ldc);
    }
}
