/* Level-3 BLAS through CBLAS (row-major), in fixed tiles of C's rows: OpenBLAS splits a multi-threaded
 * product differently for different team sizes (a team of 3 rounds differently from 1 or 2), and qcore's
 * results must not depend on the thread count. Each tile is one single-threaded call, the tiles spread
 * over the context's threads, so the same tiles are computed the same way whatever the count. */
#include <cblas.h>

#include "linalg/linalg.h"
#include "linalg/threads.h"

enum { TILE_ROWS = 32 };

static int64_t tile_count(int64_t m)
{
    return (m + TILE_ROWS - 1) / TILE_ROWS;
}

static int64_t tile_rows(int64_t m, int64_t first)
{
    return m - first < TILE_ROWS ? m - first : TILE_ROWS;
}

/* The threads worth starting for `tiles` tiles: none beyond one per tile, 1 meaning no OpenMP region. */
static int team_for(int threads, int64_t tiles)
{
    return threads < tiles ? (threads > 0 ? threads : 1) : (int)tiles;
}

/* qc__dgemm and qc__sgemm: one body, the element type and the CBLAS routine apart. */
#define QC_GEMM_TILE(cblas_gemm, t)                                                                                \
    do {                                                                                                           \
        int64_t first = (t) * TILE_ROWS;                                                                           \
        int saved = qc__blas_threads_enter(1);                                                                     \
        cblas_gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,       \
                   (blasint)tile_rows(m, first), (blasint)n, (blasint)k, alpha,                                    \
                   trans_a ? a + first : a + first * lda, (blasint)lda, b, (blasint)ldb, beta, c + first * ldc,   \
                   (blasint)ldc);                                                                                  \
        qc__blas_threads_leave(saved);                                                                             \
    } while (0)

#define QC_GEMM_WRAPPER(name, type, cblas_gemm)                                                                   \
    void name(int threads, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, type alpha, const type *a,    \
              int64_t lda, const type *b, int64_t ldb, type beta, type *c, int64_t ldc)                              \
    {                                                                                                                \
        if (m == 0 || n == 0) return;                                                                                \
        int64_t tiles = tile_count(m);                                                                               \
        int team = team_for(threads, tiles);                                                                         \
        if (team == 1) {                                                                                             \
            for (int64_t t = 0; t < tiles; t++) QC_GEMM_TILE(cblas_gemm, t);                                         \
            return;                                                                                                  \
        }                                                                                                            \
        _Pragma("omp parallel for num_threads(team) schedule(static, 1)")                                           \
        for (int64_t t = 0; t < tiles; t++) QC_GEMM_TILE(cblas_gemm, t);                                             \
    }

QC_GEMM_WRAPPER(qc__dgemm, double, cblas_dgemm)
QC_GEMM_WRAPPER(qc__sgemm, float, cblas_sgemm)

/* Row tile [first, first + rows): the block left of the diagonal by dgemm, the diagonal block by dsyrk. */
static void syrk_tile(int64_t first, int64_t rows, int64_t k, double alpha, const double *a, int64_t lda, double beta,
                      double *c, int64_t ldc)
{
    int saved = qc__blas_threads_enter(1);
    double *row = c + first * ldc;
    if (first > 0)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)rows, (blasint)first, (blasint)k, alpha, a + first,
                    (blasint)lda, a, (blasint)lda, beta, row, (blasint)ldc);
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (blasint)rows, (blasint)k, alpha, a + first, (blasint)lda, beta,
                row + first, (blasint)ldc);
    qc__blas_threads_leave(saved);
}

void qc__dsyrk_lower(int threads, int64_t n, int64_t k, double alpha, const double *a, int64_t lda, double beta, double *c,
                     int64_t ldc)
{
    if (n == 0) return;
    int64_t tiles = tile_count(n);
    int team = team_for(threads, tiles);
    if (team == 1) {
        for (int64_t t = 0; t < tiles; t++) syrk_tile(t * TILE_ROWS, tile_rows(n, t * TILE_ROWS), k, alpha, a, lda, beta, c, ldc);
        return;
    }
#pragma omp parallel for num_threads(team) schedule(dynamic)
    for (int64_t t = tiles - 1; t >= 0; t--) /* the longest rows first, the short ones fill in */
        syrk_tile(t * TILE_ROWS, tile_rows(n, t * TILE_ROWS), k, alpha, a, lda, beta, c, ldc);
}
