/* popcount_gemm with AVX-512 VPOPCNTDQ: a 4 x 4 tile of 64-bit lane accumulators, each 512-bit word pair
 * costing one XOR or AND, one VPOPCNTQ and one add (the three vector operations the roofline counts).
 * int8_gemm on the same tile with VNNI: VPDPBUSD multiplies 64 unsigned by 64 signed bytes and adds each
 * group of four products into a 32-bit lane, exactly (no intermediate saturation). */
#include <immintrin.h>
#include <string.h>

#include "kernels/dispatch.h"

#define QC_TILE_MR 4
#define QC_TILE_NR 4

/* Stores the lane sums of four accumulators as four int32: a shuffle-and-add tree shared by the four,
 * half the operations of four separate reductions (which cost a tenth of a 4 x 4 tile at n = 4096). */
static inline __attribute__((always_inline)) void store_sums4(int32_t *c, __m512i a0, __m512i a1, __m512i a2,
                                                              __m512i a3)
{
    __m512i t0 = _mm512_add_epi64(_mm512_unpacklo_epi64(a0, a1), _mm512_unpackhi_epi64(a0, a1));
    __m512i t1 = _mm512_add_epi64(_mm512_unpacklo_epi64(a2, a3), _mm512_unpackhi_epi64(a2, a3));
    /* 128-bit lanes: t0's 0+1, t0's 2+3, t1's 0+1, t1's 2+3 */
    __m512i u = _mm512_add_epi64(_mm512_shuffle_i64x2(t0, t1, 0x88), _mm512_shuffle_i64x2(t0, t1, 0xDD));
    /* lanes 0 and 2 plus lanes 1 and 3: (a0, a1, a2, a3) in the low 256 bits */
    __m512i v = _mm512_add_epi64(_mm512_shuffle_i64x2(u, u, 0x08), _mm512_shuffle_i64x2(u, u, 0x0D));
    _mm_storeu_si128((__m128i *)c, _mm256_cvtepi64_epi32(_mm512_castsi512_si256(v)));
}

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
                if (op == QC_INT8_DOT) {
                    acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], va[i], vb[j]);
                    continue;
                }
                __m512i v = op == QC_POPCOUNT_XOR ? _mm512_xor_si512(va[i], vb[j]) : _mm512_and_si512(va[i], vb[j]);
                acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(v));
            }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++) {
        if (op == QC_INT8_DOT) {
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++) c[i * ldc + j] = _mm512_reduce_add_epi32(acc[i][j]);
            continue;
        }
        if (nr == 4) {
            store_sums4(c + i * ldc, acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
            continue;
        }
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) c[i * ldc + j] = (int32_t)_mm512_reduce_add_epi64(acc[i][j]);
    }
}

#include "kernels/row_tiles.h"

void qc__int8_gemm_avx512(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                          int64_t words, int op)
{
    (void)op;
    row_tiles(c, ldc, a, np, b, nq, words, QC_INT8_DOT);
}

void qc__popcount_gemm_avx512(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                              int64_t words, int op)
{
    row_tiles(c, ldc, a, np, b, nq, words, op);
}

/* 16 values at a time: one compare mask per threshold counts the level index, VPERMD looks up the codes,
 * and a test per plane yields the plane's 16 bits directly. */
void qc__encode_planes_avx512(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e)
{
    for (int64_t i = 0; i < words * e->bits; i++) planes[i] = 0;
    const __m512i table = _mm512_loadu_si512((const void *)e->code), one = _mm512_set1_epi32(1);
    for (int64_t k = 0; k < n; k += 16) {
        __mmask16 live = n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(live, x + k);
        __m512i index = _mm512_setzero_si512();
        for (int t = 0; t < e->count - 1; t++)
            index = _mm512_mask_add_epi32(index, _mm512_cmp_ps_mask(v, _mm512_set1_ps(e->lower[t]), _CMP_GE_OQ), index,
                                          one);
        __m512i codes = _mm512_permutexvar_epi32(index, table);
        for (int j = 0; j < e->bits; j++) {
            uint16_t bits = (uint16_t)_mm512_mask_test_epi32_mask(live, codes, _mm512_set1_epi32(1 << j));
            memcpy((unsigned char *)(planes + (int64_t)j * words) + k / 8, &bits, sizeof bits); /* little-endian */
        }
    }
}

/* Elements 0, kw, 2 kw, .. 7 kw of the up to 8 kw (<= 32) int32 or float elements from p of which `left`
 * may be read: two masked loads (nothing past `left` is touched) and one two-source permute, much cheaper
 * than a gather. */
static inline __m256i strided8(const void *p, int64_t left, __m512i index)
{
    __mmask16 m0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    __mmask16 m1 = left >= 32 ? (__mmask16)0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
    __m512i lo = _mm512_maskz_loadu_epi32(m0, p), hi = _mm512_maskz_loadu_epi32(m1, (const int32_t *)p + 16);
    return _mm512_castsi512_si256(_mm512_permutex2var_epi32(lo, index, hi));
}

/* lq_terms eight outputs at a time: D in 32-bit lanes, widened to double, then the same multiplies and add
 * as the reference in the same order (c11 keeps them unfused). The lanes are exact only for rows of
 * n < 2^30 (|D| <= n, 2 count <= 2 n): bitserial.c takes the reference loop for longer rows. */
void qc__lq_terms_avx512(double *sum, const int32_t *count, const float *wb, const int32_t *w_pop, int64_t kw,
                         int64_t base, int64_t scale, double xj, int64_t outputs)
{
    if ((scale != 1 && scale != 2 && scale != -2) || kw < 1 || kw > 4) {
        qc__lq_terms_ref(sum, count, wb, w_pop, kw, base, scale, xj, outputs);
        return;
    }
    const __m512i index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0),
                                             _mm512_set1_epi32((int)kw));
    const __m256i vbase = _mm256_set1_epi32((int32_t)base);
    const __m512d vx = _mm512_set1_pd(xj);
    for (int64_t o = 0; o < outputs; o += 8) {
        int64_t left = (outputs - o - 1) * kw + 1; /* up to the last output's element: no reading past it */
        __mmask8 live = outputs - o >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (outputs - o)) - 1);
        __m256i c = strided8(count + o * kw, left, index);
        __m256 w = _mm256_castsi256_ps(strided8(wb + o * kw, left, index));
        __m256i d = scale == 1 ? c : _mm256_slli_epi32(c, 1);
        d = scale < 0 ? _mm256_sub_epi32(vbase, d) : _mm256_add_epi32(vbase, d);
        if (w_pop) d = _mm256_sub_epi32(d, strided8(w_pop + o * kw, left, index));
        __m512d term = _mm512_mul_pd(_mm512_mul_pd(_mm512_cvtps_pd(w), vx), _mm512_cvtepi32_pd(d));
        __m512d s = _mm512_maskz_loadu_pd(live, sum + o);
        _mm512_mask_storeu_pd(sum + o, live, _mm512_add_pd(s, term));
    }
}

enum { IL_GROUPS = 4, IL_ROWS = 4 };

/* Rows p0 .. p0 + pr - 1 of a against groups g0 .. g0 + gr - 1 of b: pr x gr lane accumulators, each word
 * of a broadcast once and each vector of b loaded once per step. Always inlined with constant pr, gr, op. */
static inline __attribute__((always_inline)) void il_tile(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b,
                                                          int64_t nq, int64_t words, int pr, int gr, int op)
{
    __m512i acc[IL_ROWS][IL_GROUPS];
#pragma GCC unroll 4
    for (int p = 0; p < pr; p++)
#pragma GCC unroll 4
        for (int g = 0; g < gr; g++) acc[p][g] = _mm512_setzero_si512();
    for (int64_t w = 0; w < words; w++) {
        __m512i vb[IL_GROUPS];
#pragma GCC unroll 4
        for (int g = 0; g < gr; g++) vb[g] = _mm512_loadu_si512((const void *)(b + ((int64_t)g * words + w) * 8));
#pragma GCC unroll 4
        for (int p = 0; p < pr; p++) {
            __m512i va = _mm512_set1_epi64((long long)a[p * words + w]);
#pragma GCC unroll 4
            for (int g = 0; g < gr; g++) {
                __m512i v = op == QC_POPCOUNT_XOR ? _mm512_xor_si512(va, vb[g]) : _mm512_and_si512(va, vb[g]);
                acc[p][g] = _mm512_add_epi64(acc[p][g], _mm512_popcnt_epi64(v));
            }
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < gr; g++) {
        int64_t left = nq - (int64_t)g * 8;
        __mmask8 live = left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1);
#pragma GCC unroll 4
        for (int p = 0; p < pr; p++) _mm512_mask_cvtepi64_storeu_epi32(c + p * ldc + g * 8, live, acc[p][g]);
    }
}

/* pr (1 .. IL_ROWS) switched to constants for a constant gr and op. */
static inline __attribute__((always_inline)) void il_rows(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b,
                                                          int64_t nq, int64_t words, int pr, int gr, int op)
{
    switch (pr) {
    case 1: il_tile(c, ldc, a, b, nq, words, 1, gr, op); break;
    case 2: il_tile(c, ldc, a, b, nq, words, 2, gr, op); break;
    case 3: il_tile(c, ldc, a, b, nq, words, 3, gr, op); break;
    default: il_tile(c, ldc, a, b, nq, words, IL_ROWS, gr, op); break;
    }
}

static void il_shape(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b, int64_t nq, int64_t words, int pr,
                     int gr, int op)
{
    if (op == QC_POPCOUNT_XOR) {
        if (gr == IL_GROUPS) il_rows(c, ldc, a, b, nq, words, pr, IL_GROUPS, QC_POPCOUNT_XOR);
        else il_rows(c, ldc, a, b, nq, words, pr, 1, QC_POPCOUNT_XOR);
    } else {
        if (gr == IL_GROUPS) il_rows(c, ldc, a, b, nq, words, pr, IL_GROUPS, QC_POPCOUNT_AND);
        else il_rows(c, ldc, a, b, nq, words, pr, 1, QC_POPCOUNT_AND);
    }
}

/* Groups of eight b rows four at a time (then one at a time), a's rows four at a time inside, so that a
 * GEMV's few rows of a stay in registers' reach while b streams past once. */
void qc__popcount_gemv_il_avx512(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                                 int64_t words, int op)
{
    int64_t groups = (nq + 7) / 8;
    for (int64_t g = 0; g < groups;) {
        int gr = groups - g >= IL_GROUPS ? IL_GROUPS : 1;
        for (int64_t p = 0; p < np; p += IL_ROWS) {
            int pr = (int)(np - p < IL_ROWS ? np - p : IL_ROWS);
            il_shape(c + p * ldc + g * 8, ldc, a + p * words, b + g * words * 8, nq - g * 8, words, pr, gr, op);
        }
        g += gr;
    }
}
