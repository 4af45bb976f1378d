/* Golomb-Rice parameter search: a Viterbi pass over the values choosing, per value, the configuration that
 * minimises the bits so far, where changing configuration costs a slice header (40 bits). Ties keep the
 * lowest configuration and the current one, as the reference search does, so that the slices match. */
#include <stdint.h>
#include <stdlib.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ethosu/mlw.h"

const uint8_t mlw_weight_cfg[MLW_N_WEIGHT_CFG] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
                                                  0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x20};

#define SWITCH_BITS 40
#define UNCODABLE 10000

/* Bits to code a weight index under configuration `cfg`. */
static int weight_bits(int value, uint8_t cfg, int raw_bits)
{
    int div = cfg & 15, truncated = cfg >> 4;
    if (truncated == 2) return raw_bits;
    int q = value >> div;
    if ((truncated && q > 2) || q > 31) return UNCODABLE;
    return truncated ? (q + 1 < 2 ? q + 1 : 2) + div : q + 1 + div;
}

/* One step of the search, per value: the predecessor of every configuration is either itself or the
 * previous step's best one, so a step is stored as that best and a mask of the configurations that
 * changed to it (3 bytes instead of one per configuration). */
typedef struct step {
    uint16_t changed;
    uint8_t best;
} step;

/* The forward pass for `ncfg` configurations with per-value costs from `table` (weights) or computed
 * (zero runs); inlined into each caller so that ncfg is a constant there. Counts are kept relative to the
 * previous step's smallest: comparisons are unchanged, and the spread stays below 40 bits plus one
 * value's largest cost (10000 for an uncodable weight, 2^15 + 4 for a zero run), so int32 never overflows
 * whatever the length. The first configuration holding the smallest count is the reference's tie rule.
 * Returns the best final configuration. */
static inline __attribute__((always_inline)) int forward(step *steps, size_t n, const int ncfg, const int *values,
                                                         const int32_t *table, const uint32_t *free_ends,
                                                         size_t n_free)
{
    int32_t bits[MLW_N_WEIGHT_CFG] = {0}, least = 0;
    int best = 0;
    size_t k_free = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t switch_bits = SWITCH_BITS;
        if (k_free < n_free && free_ends[k_free] == i + 1) {
            switch_bits = 0;  /* the weight stream starts a slice here anyway */
            k_free++;
        }
        const int32_t *cost = table ? table + values[i] * MLW_N_WEIGHT_CFG : NULL;
        unsigned changed = 0;
        for (int c = 0; c < ncfg; c++) {
            int32_t keep = bits[c] - least;
            int take = switch_bits < keep;
            changed |= (unsigned)take << c;
            /* zero runs: divisor c */
            bits[c] = (take ? switch_bits : keep) + (cost ? cost[c] : (values[i] >> c) + 1 + c);
        }
        steps[i].changed = (uint16_t)changed;
        steps[i].best = (uint8_t)best;
        /* The next step needs only the smallest count (a reduction the compiler can tree); which
         * configuration holds it first is recorded for the walk back, off that chain. */
        least = bits[0];
        for (int c = 1; c < ncfg; c++) least = bits[c] < least ? bits[c] : least;
        best = 0;
        while (bits[best] != least) best++;
    }
    return best;
}

#if defined(__SSE2__)
#define LANES 16   /* the 13 weight configurations padded to two SSE2 registers of int16 */

/* forward() for the weight configurations in int16 lanes (SSE2 is part of x86-64). Counts relative to
 * the previous smallest stay within 40 + 10000 + 10000 (see forward), so int16 holds them; the padding
 * lanes cost 10000 per value and never hold the smallest, which is at most 40 + the raw width (<= 100)
 * above the previous one. Same decisions, ties and result as forward(). */
static int forward_weights_sse2(step *steps, size_t n, const int *values, const int16_t *table)
{
    const __m128i switch_bits = _mm_set1_epi16(SWITCH_BITS);
    __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128(), least = _mm_setzero_si128();
    int best = 0;
    for (size_t i = 0; i < n; i++) {
        const int16_t *cost = table + values[i] * LANES;
        __m128i keep_lo = _mm_sub_epi16(lo, least), keep_hi = _mm_sub_epi16(hi, least);
        __m128i take = _mm_packs_epi16(_mm_cmpgt_epi16(keep_lo, switch_bits), _mm_cmpgt_epi16(keep_hi, switch_bits));
        lo = _mm_add_epi16(_mm_min_epi16(keep_lo, switch_bits), _mm_load_si128((const __m128i *)cost));
        hi = _mm_add_epi16(_mm_min_epi16(keep_hi, switch_bits), _mm_load_si128((const __m128i *)(cost + 8)));
        steps[i].changed = (uint16_t)(_mm_movemask_epi8(take) & ((1 << MLW_N_WEIGHT_CFG) - 1));
        steps[i].best = (uint8_t)best;
        /* The smallest count in every lane (a butterfly, so that it need not be broadcast again: it is
         * the loop's critical path), then the first lane holding it, off that path. */
        __m128i m = _mm_min_epi16(lo, hi);
        m = _mm_min_epi16(m, _mm_shuffle_epi32(m, 0x4E));
        m = _mm_min_epi16(m, _mm_shuffle_epi32(m, 0xB1));
        least = _mm_min_epi16(m, _mm_shufflehi_epi16(_mm_shufflelo_epi16(m, 0xB1), 0xB1));
        unsigned eq = (unsigned)_mm_movemask_epi8(_mm_packs_epi16(_mm_cmpeq_epi16(lo, least),
                                                                  _mm_cmpeq_epi16(hi, least)));
        best = __builtin_ctz(eq);
    }
    return best;
}
#endif

size_t mlw_grc_search(uint8_t *cfg_out, uint32_t *end_out, const int *values, size_t n, int zero_runs, int raw_bits,
                      const uint32_t *free_ends, size_t n_free)
{
    step *steps = malloc((n ? n : 1) * sizeof *steps);
    if (steps == NULL) return 0;
    int cfg;
    if (zero_runs) {
        cfg = forward(steps, n, MLW_N_ZRUN_CFG, values, NULL, free_ends, n_free);
    } else {
        /* Costs of the indices that occur only: sections can be short, and a full table per section
         * would cost more than the search. */
        int top = 0;
        for (size_t i = 0; i < n; i++) top = values[i] > top ? values[i] : top;
#if defined(__SSE2__)
        _Alignas(16) int16_t table[MLW_NPALVAL * LANES];
        for (int v = 0; v <= top; v++)
            for (int c = 0; c < LANES; c++)
                table[v * LANES + c] = (int16_t)(c < MLW_N_WEIGHT_CFG ? weight_bits(v, mlw_weight_cfg[c], raw_bits)
                                                                      : UNCODABLE);
        cfg = forward_weights_sse2(steps, n, values, table);
#else
        int32_t table[MLW_NPALVAL * MLW_N_WEIGHT_CFG];
        for (int v = 0; v <= top; v++)
            for (int c = 0; c < MLW_N_WEIGHT_CFG; c++)
                table[v * MLW_N_WEIGHT_CFG + c] = weight_bits(v, mlw_weight_cfg[c], raw_bits);
        cfg = forward(steps, n, MLW_N_WEIGHT_CFG, values, table, NULL, 0);
#endif
    }

    /* Walk back from the best final configuration: a run starts where its configuration changed into
     * it (its predecessor differs) or at the first value. Count the runs, then fill them from the last;
     * each run's end is exclusive. */
    size_t runs = 0;
    for (int c = cfg, i = (int)n - 1; i >= 0; i--) {
        int prev = (steps[i].changed >> c & 1) ? steps[i].best : c;
        if (prev != c || i == 0) runs++;
        c = prev;
    }
    size_t r = runs, end = n;
    for (ptrdiff_t i = (ptrdiff_t)n - 1; i >= 0; i--) {
        int prev = (steps[i].changed >> cfg & 1) ? steps[i].best : cfg;
        if (prev != cfg || i == 0) {
            r--;
            cfg_out[r] = (uint8_t)cfg;
            end_out[r] = (uint32_t)end;
            end = (size_t)i;
        }
        cfg = prev;
    }
    free(steps);
    return runs;
}
