/* The AVX-512 lane kernel of the accumulator simulator: the 16 lanes as two vectors of 8 int64, whose
 * independent dependency chains (each partial sum needs the previous one) overlap. Integer arithmetic, so
 * the results equal the reference kernel's exactly. */
#include <immintrin.h>

#include "kernels/dispatch.h"

typedef struct lane_state {
    __m512i exact, top, wrap, saturate, wrap_events, saturate_events;
} lane_state;

typedef struct range_vectors {
    __m512i lo, hi, mask, one;
} range_vectors;

static inline void add_exact(lane_state *s, __m512i term)
{
    s->exact = _mm512_add_epi64(s->exact, term);
    s->top = _mm512_max_epi64(s->top, _mm512_abs_epi64(s->exact));
}

/* The lanes' terms x[i] q[i][lane], exact: _mm512_mul_epi32 multiplies the low signed 32 bits of each
 * 64-bit lane. */
static inline __m512i terms(const int32_t *q, int64_t i, int half, __m512i xi)
{
    const __m256i *row = (const __m256i *)(q + i * QC_ACCUM_LANES) + half;
    return _mm512_mul_epi32(_mm512_cvtepi32_epi64(_mm256_loadu_si256(row)), xi);
}

/* One term per lane. An offset v - lo above mask (unsigned) is a sum outside [lo, hi]; its low bits are
 * the wrapped value, since the span mask + 1 is a power of two. */
static inline void add_terms(lane_state *s, __m512i term, const range_vectors *r)
{
    add_exact(s, term);
    __m512i offset = _mm512_sub_epi64(_mm512_add_epi64(s->wrap, term), r->lo);
    __mmask8 outside = _mm512_cmpgt_epu64_mask(offset, r->mask);
    s->wrap_events = _mm512_mask_add_epi64(s->wrap_events, outside, s->wrap_events, r->one);
    s->wrap = _mm512_add_epi64(_mm512_and_si512(offset, r->mask), r->lo);
    __m512i sum = _mm512_add_epi64(s->saturate, term);
    outside = _mm512_cmpgt_epu64_mask(_mm512_sub_epi64(sum, r->lo), r->mask);
    s->saturate_events = _mm512_mask_add_epi64(s->saturate_events, outside, s->saturate_events, r->one);
    s->saturate = _mm512_min_epi64(_mm512_max_epi64(sum, r->lo), r->hi);
}

static void store(qc_accum_lanes *out, int half, const lane_state *s)
{
    int at = 8 * half;
    _mm512_storeu_si512(out->exact + at, s->exact);
    _mm512_storeu_si512(out->top + at, s->top);
    _mm512_storeu_si512(out->wrap + at, s->wrap);
    _mm512_storeu_si512(out->saturate + at, s->saturate);
    _mm512_storeu_si512(out->wrap_events + at, s->wrap_events);
    _mm512_storeu_si512(out->saturate_events + at, s->saturate_events);
}

void qc__accum_tile_avx512(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                           int fits)
{
    range_vectors r = {_mm512_set1_epi64(lo), _mm512_set1_epi64(hi), _mm512_set1_epi64(hi - lo), _mm512_set1_epi64(1)};
    lane_state a = {0}, b = {0};
    if (fits) {
        for (int64_t i = 0; i < n; i++) {
            __m512i xi = _mm512_set1_epi64(x[i]);
            add_exact(&a, terms(q, i, 0, xi));
            add_exact(&b, terms(q, i, 1, xi));
        }
        a.wrap = a.saturate = a.exact;
        b.wrap = b.saturate = b.exact;
    } else {
        for (int64_t i = 0; i < n; i++) {
            __m512i xi = _mm512_set1_epi64(x[i]);
            add_terms(&a, terms(q, i, 0, xi), &r);
            add_terms(&b, terms(q, i, 1, xi), &r);
        }
    }
    store(out, 0, &a);
    store(out, 1, &b);
}
