/* popcount_gemm with AVX-512 VPOPCNTDQ: a 4 x 4 tile of 64-bit lane accumulators, each 512-bit word pair
 * costing one XOR or AND, one VPOPCNTQ and one add (the three vector operations the roofline counts). */
#include <immintrin.h>

#include "kernels/dispatch.h"

#define QC_TILE_MR 4
#define QC_TILE_NR 4

static inline __attribute__((always_inline)) void tile(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b,
                                                       int64_t words, int mr, int nr, int op)
{
    __m512i acc[QC_TILE_MR][QC_TILE_NR];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) acc[i][j] = _mm512_setzero_si512();
    for (int64_t w = 0; w < words; w += 8) {
        __m512i va[QC_TILE_MR], vb[QC_TILE_NR];
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) va[i] = _mm512_loadu_si512((const void *)(a + i * words + w));
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) vb[j] = _mm512_loadu_si512((const void *)(b + j * words + w));
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++) {
                __m512i v = op == QC_POPCOUNT_XOR ? _mm512_xor_si512(va[i], vb[j]) : _mm512_and_si512(va[i], vb[j]);
                acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(v));
            }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) c[i * ldc + j] = (int32_t)_mm512_reduce_add_epi64(acc[i][j]);
}

#include "kernels/popcount_tiles.h"

void qc__popcount_gemm_avx512(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                              int64_t words, int op)
{
    popcount_tiles(c, ldc, a, np, b, nq, words, op);
}
