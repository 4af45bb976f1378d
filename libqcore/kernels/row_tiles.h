/* Internal: the loop over register tiles that the vector row-by-row products share (popcount_gemm and
 * int8_gemm): c[p][q] = a reduction of row p of a with row q of b, rows of `words` 64-bit words (a
 * multiple of 8) one after another. Include it after defining QC_TILE_MR and QC_TILE_NR (the full tile,
 * each at most 4) and
 *     static inline void tile(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b, int64_t words,
 *                             int mr, int nr, int op);
 * which computes an mr x nr block of counts and is always inlined: the switches below call it with constant
 * shapes and operations only, so each becomes its own fully unrolled loop with its accumulators in
 * registers. */
#ifndef QC_KERNELS_ROW_TILES_H
#define QC_KERNELS_ROW_TILES_H

/* mr x nr for a constant mr: nr is switched to constants 1 .. QC_TILE_NR. */
static inline __attribute__((always_inline)) void tile_row(int32_t *c, int64_t ldc, const uint64_t *a,
                                                           const uint64_t *b, int64_t words, int mr, int nr, int op)
{
    switch (nr) {
    case 1: tile(c, ldc, a, b, words, mr, 1, op); break;
#if QC_TILE_NR > 2
    case 2: tile(c, ldc, a, b, words, mr, 2, op); break;
#endif
#if QC_TILE_NR > 3
    case 3: tile(c, ldc, a, b, words, mr, 3, op); break;
#endif
    default: tile(c, ldc, a, b, words, mr, QC_TILE_NR, op); break;
    }
}

/* Any shape up to QC_TILE_MR x QC_TILE_NR, with constant mr, nr and op in every call of tile. */
static inline __attribute__((always_inline)) void tile_shape(int32_t *c, int64_t ldc, const uint64_t *a,
                                                             const uint64_t *b, int64_t words, int mr, int nr, int op)
{
    switch (mr) {
    case 1: tile_row(c, ldc, a, b, words, 1, nr, op); break;
#if QC_TILE_MR > 2
    case 2: tile_row(c, ldc, a, b, words, 2, nr, op); break;
#endif
#if QC_TILE_MR > 3
    case 3: tile_row(c, ldc, a, b, words, 3, nr, op); break;
#endif
    default: tile_row(c, ldc, a, b, words, QC_TILE_MR, nr, op); break;
    }
}

static void tile_any(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b, int64_t words, int mr, int nr,
                     int op)
{
    if (op == QC_POPCOUNT_XOR)
        tile_shape(c, ldc, a, b, words, mr, nr, QC_POPCOUNT_XOR);
    else if (op == QC_POPCOUNT_AND)
        tile_shape(c, ldc, a, b, words, mr, nr, QC_POPCOUNT_AND);
    else
        tile_shape(c, ldc, a, b, words, mr, nr, QC_INT8_DOT);
}

/* Tiles of b's rows outside, a's inside: a's block stays in the L1 cache while each tile of b streams in
 * once. */
static void row_tiles(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                           int64_t words, int op)
{
    for (int64_t q = 0; q < nq; q += QC_TILE_NR) {
        int nr = (int)(nq - q < QC_TILE_NR ? nq - q : QC_TILE_NR);
        for (int64_t p = 0; p < np; p += QC_TILE_MR) {
            int mr = (int)(np - p < QC_TILE_MR ? np - p : QC_TILE_MR);
            tile_any(c + p * ldc + q, ldc, a + p * words, b + q * words, words, mr, nr, op);
        }
    }
}

#endif
