/* popcount_gemm with AVX2, which has no vector popcount: bytes are counted by looking up each nibble in a
 * 16-entry table (VPSHUFB), and VPSADBW sums the byte counts into 64-bit lanes. A 2 x 4 tile keeps the
 * accumulators, the table and the mask within the 16 YMM registers.
 * int8_gemm on the same tile: bytes widened to 16 bits (VPMOVZXBW for the unsigned side, VPMOVSXBW for the
 * signed one) and multiplied by VPMADDWD into 32-bit pairs, exactly (VPMADDUBSW would saturate
 * 255 x 127 + 255 x 127 at 16 bits). */
#include <immintrin.h>
#include <string.h>

#include "kernels/dispatch.h"

#define QC_TILE_MR 2
#define QC_TILE_NR 4

static inline __attribute__((always_inline)) __m256i popcount_lanes(__m256i v, __m256i table, __m256i low)
{
    __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low));
    __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
}

static inline __attribute__((always_inline)) void tile_int8(int32_t *c, int64_t ldc, const uint64_t *a,
                                                            const uint64_t *b, int64_t words, int mr, int nr)
{
    __m256i acc[QC_TILE_MR][QC_TILE_NR];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) acc[i][j] = _mm256_setzero_si256();
    for (int64_t w = 0; w < words; w += 2) { /* 16 bytes of each row */
        __m256i va[QC_TILE_MR];
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) va[i] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i * words + w)));
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            __m256i vb = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + j * words + w)));
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(va[i], vb));
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[i][j]), _mm256_extracti128_si256(acc[i][j], 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
            c[i * ldc + j] = _mm_cvtsi128_si32(s);
        }
}

static inline __attribute__((always_inline)) void tile(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b,
                                                       int64_t words, int mr, int nr, int op)
{
    if (op == QC_INT8_DOT) {
        tile_int8(c, ldc, a, b, words, mr, nr);
        return;
    }
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                                           2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i acc[QC_TILE_MR][QC_TILE_NR];
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) acc[i][j] = _mm256_setzero_si256();
    for (int64_t w = 0; w < words; w += 4) {
        __m256i va[QC_TILE_MR];
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++) va[i] = _mm256_loadu_si256((const __m256i *)(a + i * words + w));
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            __m256i vb = _mm256_loadu_si256((const __m256i *)(b + j * words + w));
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++) {
                __m256i v = op == QC_POPCOUNT_XOR ? _mm256_xor_si256(va[i], vb) : _mm256_and_si256(va[i], vb);
                acc[i][j] = _mm256_add_epi64(acc[i][j], popcount_lanes(v, table, low));
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            __m128i s = _mm_add_epi64(_mm256_castsi256_si128(acc[i][j]), _mm256_extracti128_si256(acc[i][j], 1));
            c[i * ldc + j] = (int32_t)(_mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1));
        }
}

#include "kernels/row_tiles.h"

void qc__int8_gemm_avx2(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                        int64_t words, int op)
{
    (void)op;
    row_tiles(c, ldc, a, np, b, nq, words, QC_INT8_DOT);
}

void qc__popcount_gemm_avx2(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                            int64_t words, int op)
{
    row_tiles(c, ldc, a, np, b, nq, words, op);
}

/* 8 values at a time: each threshold's compare mask (all ones = -1) is subtracted from the level index,
 * two VPERMD lookups blended on index >= 8 give the codes, and a compare and VMOVMSKPS per plane give the
 * plane's 8 bits; values whose exponent bits are all ones (Inf, NaN) are noted on the way. */
int qc__encode_planes_avx2(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e)
{
    for (int64_t i = 0; i < words * e->bits; i++) planes[i] = 0;
    const __m256i exponent = _mm256_set1_epi32(0x7f800000); /* all ones: Inf or NaN */
    __m256i bad = _mm256_setzero_si256();
    const __m256i low = _mm256_loadu_si256((const __m256i *)e->code);
    const __m256i high = _mm256_loadu_si256((const __m256i *)(e->code + 8));
    const __m256i seven = _mm256_set1_epi32(7);
    for (int64_t k = 0; k < n; k += 8) {
        float chunk[8] = {0};
        int64_t len = n - k < 8 ? n - k : 8;
        memcpy(chunk, x + k, sizeof(float) * (size_t)len);
        __m256 v = _mm256_loadu_ps(chunk);
        bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), exponent), exponent));
        __m256i index = _mm256_setzero_si256();
        for (int t = 0; t < e->count - 1; t++)
            index = _mm256_sub_epi32(index, _mm256_castps_si256(_mm256_cmp_ps(v, _mm256_set1_ps(e->lower[t]), _CMP_GE_OQ)));
        __m256i upper = _mm256_cmpgt_epi32(index, seven);
        __m256i codes = _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(low, index),
                                           _mm256_permutevar8x32_epi32(high, index), upper);
        unsigned live = (1u << len) - 1u;
        for (int j = 0; j < e->bits; j++) {
            __m256i bit = _mm256_set1_epi32(1 << j);
            __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(codes, bit), bit);
            ((unsigned char *)(planes + (int64_t)j * words))[k / 8] =
                (unsigned char)((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(set)) & live);
        }
    }
    return _mm256_testz_si256(bad, bad);
}
