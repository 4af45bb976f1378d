/* The AVX2 lane kernel of the accumulator simulator: the 16 lanes as four vectors of 4 int64. AVX2 has no
 * 64-bit min, max, abs or unsigned compare, so each is a signed compare and a blend; integer arithmetic
 * throughout, so the results equal the reference kernel's exactly. */
#include <immintrin.h>

#include "kernels/dispatch.h"

enum { VECTORS = QC_ACCUM_LANES / 4 };

typedef struct lane_state {
    __m256i exact, top, wrap, saturate, wrap_events, saturate_events;
} lane_state;

typedef struct range_vectors {
    __m256i lo, hi, mask_biased, mask, one, sign;
} range_vectors;

static inline __m256i max64(__m256i a, __m256i b)
{
    return _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(b, a));
}

static inline __m256i min64(__m256i a, __m256i b)
{
    return _mm256_blendv_epi8(a, b, _mm256_cmpgt_epi64(a, b));
}

static inline __m256i abs64(__m256i a)
{
    __m256i zero = _mm256_setzero_si256();
    return _mm256_blendv_epi8(a, _mm256_sub_epi64(zero, a), _mm256_cmpgt_epi64(zero, a));
}

static inline void add_exact(lane_state *s, __m256i term)
{
    s->exact = _mm256_add_epi64(s->exact, term);
    s->top = max64(s->top, abs64(s->exact));
}

/* Lanes whose offset v - lo exceeds mask as unsigned numbers (both biased by the sign bit, then compared
 * as signed) hold a sum outside [lo, hi]; counting adds 1 where the compare's all-ones mask is -1. */
static inline __m256i outside(__m256i offset, const range_vectors *r)
{
    return _mm256_cmpgt_epi64(_mm256_xor_si256(offset, r->sign), r->mask_biased);
}

/* One term per lane; the wrapped value is the offset's low bits, the span mask + 1 being a power of two. */
static inline void add_terms(lane_state *s, __m256i term, const range_vectors *r)
{
    add_exact(s, term);
    __m256i offset = _mm256_sub_epi64(_mm256_add_epi64(s->wrap, term), r->lo);
    s->wrap_events = _mm256_sub_epi64(s->wrap_events, outside(offset, r));
    s->wrap = _mm256_add_epi64(_mm256_and_si256(offset, r->mask), r->lo);
    __m256i sum = _mm256_add_epi64(s->saturate, term);
    s->saturate_events = _mm256_sub_epi64(s->saturate_events, outside(_mm256_sub_epi64(sum, r->lo), r));
    s->saturate = min64(max64(sum, r->lo), r->hi);
}

/* The terms x[i] q[i][lane] of lanes 4v .. 4v + 3: _mm256_mul_epi32 multiplies the low signed 32 bits of
 * each 64-bit lane, exactly. */
static inline __m256i terms(const int32_t *q, int64_t i, int v, __m256i xi)
{
    const __m128i *row = (const __m128i *)(q + i * QC_ACCUM_LANES) + v;
    return _mm256_mul_epi32(_mm256_cvtepi32_epi64(_mm_loadu_si128(row)), xi);
}

static void store(qc_accum_lanes *out, int v, const lane_state *s)
{
    int at = 4 * v;
    _mm256_storeu_si256((__m256i *)(out->exact + at), s->exact);
    _mm256_storeu_si256((__m256i *)(out->top + at), s->top);
    _mm256_storeu_si256((__m256i *)(out->wrap + at), s->wrap);
    _mm256_storeu_si256((__m256i *)(out->saturate + at), s->saturate);
    _mm256_storeu_si256((__m256i *)(out->wrap_events + at), s->wrap_events);
    _mm256_storeu_si256((__m256i *)(out->saturate_events + at), s->saturate_events);
}

void qc__accum_tile_avx2(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                         int fits)
{
    __m256i sign = _mm256_set1_epi64x(INT64_MIN);
    range_vectors r = {_mm256_set1_epi64x(lo), _mm256_set1_epi64x(hi),
                       _mm256_xor_si256(_mm256_set1_epi64x(hi - lo), sign), _mm256_set1_epi64x(hi - lo),
                       _mm256_set1_epi64x(1), sign};
    lane_state s[VECTORS] = {0};
    for (int64_t i = 0; i < n; i++) {
        __m256i xi = _mm256_set1_epi64x(x[i]);
        for (int v = 0; v < VECTORS; v++) {
            if (fits) add_exact(&s[v], terms(q, i, v, xi));
            else add_terms(&s[v], terms(q, i, v, xi), &r);
        }
    }
    for (int v = 0; v < VECTORS; v++) {
        if (fits) s[v].wrap = s[v].saturate = s[v].exact;
        store(out, v, &s[v]);
    }
}
