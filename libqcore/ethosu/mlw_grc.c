/* Golomb-Rice parameter search: a Viterbi pass over the values choosing, per value, the configuration that
 * minimises the bits so far, where changing configuration costs a slice header (40 bits). Ties keep the
 * lowest configuration and the current one, as the reference search does, so that the slices match. */
#include <stdlib.h>

#include "ethosu/mlw.h"

const uint8_t mlw_weight_cfg[MLW_N_WEIGHT_CFG] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
                                                  0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x20};

#define SWITCH_BITS 40
#define UNCODABLE 10000

/* Bits to code `value` under configuration `cfg`. */
static int value_bits(int value, uint8_t cfg, int zero_runs, int raw_bits)
{
    int div = cfg & 15, truncated = cfg >> 4;
    if (truncated == 2) return raw_bits;
    int q = value >> div;
    if (!zero_runs && ((truncated && q > 2) || q > 31)) return UNCODABLE;
    return truncated ? (q + 1 < 2 ? q + 1 : 2) + div : q + 1 + div;
}

size_t mlw_grc_search(uint8_t *cfg_out, size_t *end_out, const int *values, size_t n, int zero_runs, int raw_bits,
                      const size_t *free_ends, size_t n_free)
{
    const int ncfg = zero_runs ? MLW_N_ZRUN_CFG : MLW_N_WEIGHT_CFG;
    /* from[i * ncfg + c]: the configuration before value i-1 on the cheapest path that codes value i-1
     * with c. Only one step of bit counts is kept; the predecessors are all needed for the walk back. */
    uint8_t *from = malloc((n + 1) * (size_t)ncfg);
    if (from == NULL) return 0;
    int64_t bits[MLW_N_WEIGHT_CFG] = {0}, next[MLW_N_WEIGHT_CFG];
    for (int c = 0; c < ncfg; c++) from[c] = (uint8_t)c;

    size_t k_free = 0;
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        for (int c = 1; c < ncfg; c++)
            if (bits[c] < bits[best]) best = c;
        int64_t switch_bits = SWITCH_BITS;
        if (k_free < n_free && free_ends[k_free] == i + 1) {
            switch_bits = 0;  /* the weight stream starts a slice here anyway */
            k_free++;
        }
        uint8_t *row = from + (i + 1) * (size_t)ncfg;
        for (int c = 0; c < ncfg; c++) {
            uint8_t gc = zero_runs ? (uint8_t)c : mlw_weight_cfg[c];
            int b = value_bits(values[i], gc, zero_runs, raw_bits);
            if (bits[best] + switch_bits < bits[c]) {
                row[c] = (uint8_t)best;
                next[c] = bits[best] + switch_bits + b;
            } else {
                row[c] = (uint8_t)c;
                next[c] = bits[c] + b;
            }
        }
        for (int c = 0; c < ncfg; c++) bits[c] = next[c];
    }
    int cfg = 0;
    for (int c = 1; c < ncfg; c++)
        if (bits[c] < bits[cfg]) cfg = c;

    /* Walk back: count the runs, then fill them from the last. */
    size_t runs = 0;
    for (ptrdiff_t c = cfg, i = (ptrdiff_t)n; i >= 0; i--) {
        uint8_t prev = from[(size_t)i * (size_t)ncfg + (size_t)c];
        if (prev != c || i == 0) {
            runs++;
            c = prev;
        }
    }
    size_t r = runs, end = n;
    for (ptrdiff_t i = (ptrdiff_t)n; i >= 0; i--) {
        uint8_t prev = from[(size_t)i * (size_t)ncfg + (size_t)cfg];
        if (prev != cfg || i == 0) {
            r--;
            cfg_out[r] = (uint8_t)cfg;
            end_out[r] = end;
            cfg = prev;
            end = (size_t)(i - 1);
        }
    }
    free(from);
    return runs;
}
