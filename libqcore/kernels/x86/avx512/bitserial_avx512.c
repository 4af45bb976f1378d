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
 * and a test per plane yields the plane's 16 bits directly; values whose exponent bits are all
 * ones (Inf, NaN) are noted on the way. */
int qc__encode_planes_avx512(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e)
{
    for (int64_t i = 0; i < words * e->bits; i++) planes[i] = 0;
    const __m512i table = _mm512_loadu_si512((const void *)e->code), one = _mm512_set1_epi32(1);
    const __m512i exponent = _mm512_set1_epi32(0x7f800000); /* all ones: Inf or NaN (VFPCLASSPS needs DQ) */
    __mmask16 bad = 0;
    for (int64_t k = 0; k < n; k += 16) {
        __mmask16 live = n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(live, x + k);
        bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), exponent), exponent);
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
    return bad == 0;
}

/* Elements 0, kw, 2 kw, .. 7 kw of the up to 8 kw (<= 32) int32 or float elements from p of which `left`
 * may be read: two masked loads (nothing past `left` is touched) and one two-source permute, much cheaper
 * than a gather; for kw = 1 (a constant where inlined) one masked load. */
static inline __attribute__((always_inline)) __m256i strided8(const void *p, int64_t left, __m512i index, int kw)
{
    if (kw == 1) /* contiguous: one masked load */
        return _mm256_maskz_loadu_epi32(left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1), p);
    __mmask16 m0 = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    __mmask16 m1 = left >= 32 ? (__mmask16)0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
    __m512i lo = _mm512_maskz_loadu_epi32(m0, p), hi = _mm512_maskz_loadu_epi32(m1, (const int32_t *)p + 16);
    return _mm512_castsi512_si256(_mm512_permutex2var_epi32(lo, index, hi));
}

/* One block of up to eight outputs of lq_scale: all Kw Ka terms summed in one register, D in 32-bit lanes,
 * widened to double, then the same multiplies and adds as the reference in the same order (c11 keeps them
 * unfused), and the reference's double-to-float conversion and bias add. Always inlined with constant kw
 * and ka, and for whole blocks with constant `left` (8 kw) and `live`, so that the loops unroll and the load
 * masks fold. */
static inline __attribute__((always_inline)) void scale_block(float *y, const int32_t *count, int64_t ldc,
                                                              const float *wb, const int32_t *w_pop, int kw, int ka,
                                                              const __m256i *vbase, const __m512d *vx, int negate,
                                                              int doubled, const float *bias, int64_t left,
                                                              __mmask8 live, __m512i index)
{
    __m512d sum = _mm512_setzero_pd();
#pragma GCC unroll 4
    for (int i = 0; i < kw; i++) {
        __m512d w = _mm512_cvtps_pd(_mm256_castsi256_ps(strided8(wb + i, left, index, kw)));
        __m256i pop = w_pop ? strided8(w_pop + i, left, index, kw) : _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < ka; j++) {
            __m256i c = strided8(count + j * ldc + i, left, index, kw);
            __m256i d = doubled ? _mm256_slli_epi32(c, 1) : c;
            d = negate ? _mm256_sub_epi32(vbase[j], d) : _mm256_add_epi32(vbase[j], d);
            d = _mm256_sub_epi32(d, pop);
            sum = _mm512_add_pd(sum, _mm512_mul_pd(_mm512_mul_pd(w, vx[j]), _mm512_cvtepi32_pd(d)));
        }
    }
    __m256 out = _mm512_cvtpd_ps(sum);
    if (bias) out = _mm256_add_ps(out, _mm256_maskz_loadu_ps(live, bias));
    _mm256_mask_storeu_ps(y, live, out);
}

static inline __attribute__((always_inline)) void scale_blocks(float *y, const int32_t *count, int64_t ldc,
                                                               const float *wb, const int32_t *w_pop, int kw, int ka,
                                                               const __m256i *vbase, const __m512d *vx, int64_t scale,
                                                               const float *bias, int64_t outputs)
{
    const __m512i index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0),
                                             _mm512_set1_epi32(kw));
    int negate = scale < 0, doubled = scale != 1;
    int64_t o = 0;
    for (; o + 8 <= outputs; o += 8)
        scale_block(y + o, count + o * kw, ldc, wb + o * kw, w_pop ? w_pop + o * kw : NULL, kw, ka, vbase, vx, negate,
                    doubled, bias ? bias + o : NULL, 8 * kw, (__mmask8)0xFF, index);
    if (o < outputs) /* reads up to the last output's element only */
        scale_block(y + o, count + o * kw, ldc, wb + o * kw, w_pop ? w_pop + o * kw : NULL, kw, ka, vbase, vx, negate,
                    doubled, bias ? bias + o : NULL, (outputs - o - 1) * kw + 1,
                    (__mmask8)((1u << (outputs - o)) - 1), index);
}

/* lq_scale eight outputs at a time (scale_block). The lanes are exact only for rows of n < 2^30 (|D| <= n,
 * 2 count <= 2 n): bitserial.c takes the reference for longer rows. */
void qc__lq_scale_avx512(float *y, const int32_t *count, int64_t ldc, const float *wb, const int32_t *w_pop, int kw,
                         int ka, const int64_t *base, int64_t scale, const float *xb, const float *bias,
                         int64_t outputs)
{
    if ((scale != 1 && scale != 2 && scale != -2) || kw < 1 || kw > 4 || ka < 1 || ka > 4) {
        qc__lq_scale_ref(y, count, ldc, wb, w_pop, kw, ka, base, scale, xb, bias, outputs);
        return;
    }
    __m256i vbase[4];
    __m512d vx[4];
    for (int j = 0; j < ka; j++) {
        vbase[j] = _mm256_set1_epi32((int32_t)base[j]);
        vx[j] = _mm512_set1_pd((double)xb[j]);
    }
#define SCALE_CASE(KW, KA)                                                                                             \
    case KW * 8 + KA: scale_blocks(y, count, ldc, wb, w_pop, KW, KA, vbase, vx, scale, bias, outputs); break;
#define SCALE_ROW(KW) SCALE_CASE(KW, 1) SCALE_CASE(KW, 2) SCALE_CASE(KW, 3) SCALE_CASE(KW, 4)
    switch (kw * 8 + ka) {
        SCALE_ROW(1)
        SCALE_ROW(2)
        SCALE_ROW(3)
        SCALE_ROW(4)
    }
#undef SCALE_ROW
#undef SCALE_CASE
}

/* Register tiles of the interleaved product: pr rows of a (up to IL_ROWS) by il_groups(pr) groups of b, at
 * most 24 accumulators, so that with a broadcast and the vectors of b they fit the 32 registers; the fewer
 * the rows, the more groups, so that a GEMV's Ka planes still keep enough independent popcounts in flight.
 * Each vector of b loaded serves all pr rows. */
enum { IL_ROWS = 8, IL_MAX_GROUPS = 8 };

static inline __attribute__((always_inline)) int il_groups(int pr)
{
    return pr <= 2 ? 8 : pr <= 4 ? 6 : 3;
}

/* Rows 0 .. pr - 1 of a against groups 0 .. gr - 1 of b: pr x gr lane accumulators, each word of a broadcast
 * once and each vector of b loaded once per step; words `live` .. `words` - 1 (zero padding in both) are
 * skipped. Always inlined with constant pr, gr, op. */
static inline __attribute__((always_inline)) void il_tile(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b,
                                                          int64_t nq, int64_t words, int64_t live, int pr, int gr,
                                                          int op)
{
    __m512i acc[IL_ROWS][IL_MAX_GROUPS];
#pragma GCC unroll 8
    for (int p = 0; p < pr; p++)
#pragma GCC unroll 8
        for (int g = 0; g < gr; g++) acc[p][g] = _mm512_setzero_si512();
    for (int64_t w = 0; w < live; w++) {
        __m512i vb[IL_MAX_GROUPS];
#pragma GCC unroll 8
        for (int g = 0; g < gr; g++) vb[g] = _mm512_loadu_si512((const void *)(b + ((int64_t)g * words + w) * 8));
#pragma GCC unroll 8
        for (int p = 0; p < pr; p++) {
            __m512i va = _mm512_set1_epi64((long long)a[p * words + w]);
#pragma GCC unroll 8
            for (int g = 0; g < gr; g++) {
                __m512i v = op == QC_POPCOUNT_XOR ? _mm512_xor_si512(va, vb[g]) : _mm512_and_si512(va, vb[g]);
                acc[p][g] = _mm512_add_epi64(acc[p][g], _mm512_popcnt_epi64(v));
            }
        }
    }
#pragma GCC unroll 8
    for (int g = 0; g < gr; g++) {
        int64_t left = nq - (int64_t)g * 8;
        __mmask8 lanes = left >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << left) - 1);
#pragma GCC unroll 8
        for (int p = 0; p < pr; p++) _mm512_mask_cvtepi64_storeu_epi32(c + p * ldc + g * 8, lanes, acc[p][g]);
    }
}

/* Groups g0 .. g1 - 1 for a constant pr and op: whole tiles, then one group at a time; the loop is inside
 * the specialised code so that a GEMV's short rows pay the dispatch once per span, not once per tile. */
static inline __attribute__((always_inline)) void il_span(int32_t *c, int64_t ldc, const uint64_t *a,
                                                          const uint64_t *b, int64_t nq, int64_t words, int64_t live,
                                                          int64_t g0, int64_t g1, int pr, int op)
{
    const int gr = il_groups(pr);
    int64_t g = g0;
    for (; g + gr <= g1; g += gr) il_tile(c + g * 8, ldc, a, b + g * words * 8, nq - g * 8, words, live, pr, gr, op);
    for (; g < g1; g++) il_tile(c + g * 8, ldc, a, b + g * words * 8, nq - g * 8, words, live, pr, 1, op);
}

/* pr (1 .. IL_ROWS) switched to constants for a constant op. */
static inline __attribute__((always_inline)) void il_rows(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b,
                                                          int64_t nq, int64_t words, int64_t live, int64_t g0,
                                                          int64_t g1, int pr, int op)
{
    switch (pr) {
    case 1: il_span(c, ldc, a, b, nq, words, live, g0, g1, 1, op); break;
    case 2: il_span(c, ldc, a, b, nq, words, live, g0, g1, 2, op); break;
    case 3: il_span(c, ldc, a, b, nq, words, live, g0, g1, 3, op); break;
    case 4: il_span(c, ldc, a, b, nq, words, live, g0, g1, 4, op); break;
    case 5: il_span(c, ldc, a, b, nq, words, live, g0, g1, 5, op); break;
    case 6: il_span(c, ldc, a, b, nq, words, live, g0, g1, 6, op); break;
    case 7: il_span(c, ldc, a, b, nq, words, live, g0, g1, 7, op); break;
    default: il_span(c, ldc, a, b, nq, words, live, g0, g1, IL_ROWS, op); break;
    }
}

static void il_shape(int32_t *c, int64_t ldc, const uint64_t *a, const uint64_t *b, int64_t nq, int64_t words,
                     int64_t live, int64_t g0, int64_t g1, int pr, int op)
{
    if (op == QC_POPCOUNT_XOR) il_rows(c, ldc, a, b, nq, words, live, g0, g1, pr, QC_POPCOUNT_XOR);
    else il_rows(c, ldc, a, b, nq, words, live, g0, g1, pr, QC_POPCOUNT_AND);
}

/* Bytes of b a chunk of groups may span: every block of a's rows reads the chunk, so it should stay in the
 * L1 cache (with a's rows) while they do. */
enum { IL_CHUNK_BYTES = 24576 };

/* Chunks of groups outside, blocks of up to IL_ROWS rows of a inside. With one block (a GEMV's Ka planes, a
 * batch of up to 8) b streams past once, in one chunk; with more, chunks of a multiple of the 8-row tile's
 * 3 groups. */
void qc__popcount_gemv_il_avx512(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                                 int64_t words, int64_t live, int op)
{
    int64_t groups = (nq + 7) / 8, group_bytes = (live > 0 ? live : 1) * 64;
    int64_t fit = IL_CHUNK_BYTES / group_bytes, chunk = np <= IL_ROWS ? groups : (fit + 2) / 3 * 3;
    if (chunk == 0) chunk = 3; /* groups larger than the chunk */
    for (int64_t g0 = 0; g0 < groups; g0 += chunk) {
        int64_t g1 = groups - g0 < chunk ? groups : g0 + chunk;
        for (int64_t p = 0; p < np; p += IL_ROWS) {
            int pr = (int)(np - p < IL_ROWS ? np - p : IL_ROWS);
            il_shape(c + p * ldc, ldc, a + p * words, b, nq, words, live, g0, g1, pr, op);
        }
    }
}
