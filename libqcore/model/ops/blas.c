/* BLAS through CBLAS, in fixed blocks of C: OpenBLAS rounds an element differently depending on how a
 * product is split (by its team size, and by where a column falls in the block a call computes), and
 * results must not depend on the thread count. Each block is one single-threaded call (Debian's OpenMP
 * build of OpenBLAS sizes its team from the calling thread's OpenMP setting, so it is set to 1 around the
 * call and then restored); the blocks are spread over the session's threads. */
#include <cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/blas.h"

static void sgemm_once(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                       int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

/* Products with few rows (an MLP's batch, one sequence's tokens) are blocked by output columns, each block
 * packing its own slice of B; others by rows, each block packing all of B, which a block of BLOCK_ROWS rows
 * repays. */
enum { FEW_ROWS = 256, BLOCK_COLUMNS = 128, BLOCK_ROWS = 64 };

/* Block `index` of C: by columns when `by_columns`, else by rows. */
static void sgemm_block(int64_t index, int by_columns, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                        float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                        int64_t ldc)
{
    if (by_columns) {
        int64_t first = index * BLOCK_COLUMNS, width = n - first < BLOCK_COLUMNS ? n - first : BLOCK_COLUMNS;
        sgemm_once(trans_a, trans_b, m, width, k, alpha, a, lda, trans_b ? b + first * ldb : b + first, ldb, beta,
                   c + first, ldc);
        return;
    }
    int64_t first = index * BLOCK_ROWS, rows = m - first < BLOCK_ROWS ? m - first : BLOCK_ROWS;
    sgemm_once(trans_a, trans_b, rows, n, k, alpha, trans_a ? a + first : a + first * lda, lda, b, ldb, beta,
               c + first * ldc, ldc);
}

void qce__sgemm(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m == 0 || n == 0) return;
    int by_columns = m < FEW_ROWS;
    int64_t blocks = by_columns ? (n + BLOCK_COLUMNS - 1) / BLOCK_COLUMNS : (m + BLOCK_ROWS - 1) / BLOCK_ROWS;
    int team = threads < blocks ? threads : (int)blocks;
    if (team <= 1) { /* no OpenMP region for one block or one thread: the same blocks, in order */
        for (int64_t i = 0; i < blocks; i++) sgemm_block(i, by_columns, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#pragma omp parallel for num_threads(team) schedule(dynamic)
    for (int64_t i = 0; i < blocks; i++)
        sgemm_block(i, by_columns, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
