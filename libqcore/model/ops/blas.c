/* BLAS through CBLAS. Debian's OpenMP build of OpenBLAS sizes its team from the calling thread's
 * OpenMP setting, so the session's thread count is applied around each call and then restored; products
 * with few rows are split across the threads by columns here instead. */
#include <cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/blas.h"

static void sgemm_once(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
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

/* OpenBLAS threads a product by its rows; with few rows (an MLP's batch, one sequence's tokens) the
 * second core mostly waits. Such products are split here by output columns instead: one
 * single-threaded call per block of columns, each packing its own slice of B. */
enum { FEW_ROWS = 256, MIN_SPLIT_WORK = 1 << 20, COLUMN_ALIGN = 16 };

static int split_by_columns(int threads, int64_t m, int64_t n, int64_t k)
{
    return threads > 1 && m < FEW_ROWS && n >= (int64_t)threads * 4 * COLUMN_ALIGN && m * n * k >= MIN_SPLIT_WORK;
}

void qce__sgemm(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m == 0 || n == 0) return;
    if (!split_by_columns(threads, m, n, k)) {
        sgemm_once(threads, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        int64_t first = n * t / threads / COLUMN_ALIGN * COLUMN_ALIGN;
        int64_t last = t + 1 == threads ? n : n * (t + 1) / threads / COLUMN_ALIGN * COLUMN_ALIGN;
        const float *block = trans_b ? b + first * ldb : b + first;
        sgemm_once(1, trans_a, trans_b, m, last - first, k, alpha, a, lda, block, ldb, beta, c + first, ldc);
    }
}
