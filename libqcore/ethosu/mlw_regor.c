/* The mlw stream as Vela's Regor backend encodes U85 default-format weights (its own encoder, same bit
 * syntax, different choices): palettes restarting every REGOR_CHUNK weights, zero runs when the runs of
 * two or more zeros hold at least half of the zeros and 0 is more than 5 times as common as any other
 * value, a palette when it covers at least half of the weights, and a greedy Golomb-Rice parameter
 * search. (The Regor source read caps zero runs at 32767; Vela 5.2.0's output does not, nor does this.) */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ethosu/mlw.h"

#define REGOR_CHUNK 131072      /* weights per section: the encoder's input buffering */
#define ZERO_RUN_FACTOR 5
#define SWITCH_BITS 40
#define MLW_ZRUN_CFG_COUNT 4

/* Regor's zero-run rule over the section's frequencies and zero runs. */
static int want_zero_runs(const int16_t *w, size_t n, const int32_t freq[511])
{
    int64_t zeros = 0, in_runs = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] == 0) {
            zeros++;
            run++;
            continue;
        }
        if (run >= 2) in_runs += run;
        run = 0;
    }
    if (run >= 2) in_runs += run;
    int32_t common = 0;
    for (int v = 0; v < 511; v++)
        if (v != 255 && freq[v] > common) common = freq[v];
    return in_runs >= zeros / 2 && zeros > (int64_t)ZERO_RUN_FACTOR * common;
}

/* One GRC run: configuration index and exclusive end. */
typedef struct grc_run {
    int cfg;
    size_t end;
} grc_run;

/* Regor's greedy forward search: follows the cheapest configuration, switching when the best beats the
 * active one by more than a slice header, or when the active one cannot code a value; a switch whose new
 * configuration was cheaper since before the active one started replaces it instead of ending a run.
 * `runs` must hold n entries. Returns the number of runs. */
static size_t greedy_search(grc_run *runs, const int *values, size_t n, int zero_runs, int raw_bits)
{
    int ncfg = zero_runs ? MLW_ZRUN_CFG_COUNT : MLW_N_WEIGHT_CFG;
    int64_t bits[MLW_N_WEIGHT_CFG] = {0};
    size_t reset[MLW_N_WEIGHT_CFG] = {0};
    int coded[MLW_N_WEIGHT_CFG] = {0};
    int64_t active_bits = 0;
    int active = -1;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        int value = values[i];
        int64_t best_bits = INT64_MAX;
        int best = 0;
        for (int j = 0; j < ncfg; j++) {
            int cfg = zero_runs ? j : mlw_weight_cfg[j];
            int div = cfg & 15, trunc = cfg >> 4, q = value >> div;
            int cost = trunc ? (q + 1 < 2 ? q + 1 : 2) + div : q + 1 + div;
            int can = zero_runs || !((trunc && q > 2) || q > 31);
            if (trunc == 2) {
                cost = raw_bits;
                can = 1;
            }
            if (can) {
                if (!coded[j]) bits[j] = active_bits;   /* a configuration that could not code restarts */
                bits[j] += cost;
                if (bits[j] < best_bits) {
                    best_bits = bits[j];
                    best = j;
                }
            } else {
                reset[j] = i + 1;
                bits[j] += SWITCH_BITS;
            }
            coded[j] = can;
        }
        int must = active == -1 || !coded[active];
        if (must || (best != active && best_bits + SWITCH_BITS < active_bits)) {
            if (active != -1) {
                /* Range elision: the best was better all along, so it takes over the active run. */
                if (!(bits[best] < bits[active] && reset[best] <= reset[active])) {
                    runs[count].cfg = active;
                    runs[count++].end = i;
                }
            }
            active = best;
        }
        active_bits = bits[active];
    }
    if (count == 0 || runs[count - 1].cfg != active) runs[count++].cfg = active;
    runs[count - 1].end = n;
    return count;
}

/* Weight indices and zero runs of a section; returns the number of weights. */
static size_t split(int *wv, int *zv, size_t *nz, const int16_t *w, size_t n, const mlw_palette *p)
{
    size_t i = 0, k = 0, z = 0;
    for (;;) {
        if (p->zero_runs) {
            int run = 0;
            if (!p->only_zeros || i > 0)
                for (; i < n && w[i] == 0; i++) run++;
            zv[z++] = run;
        }
        if (i == n) break;
        wv[k++] = p->index_of[w[i++] + 255];
    }
    *nz = z;
    return k;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* One section, sliced as Regor slices it: each slice takes the weights up to the weight run's end and
 * advances by the shorter of the weight and zero-run spans. */
static int encode_section(mlw_writer *out, const int16_t *w, size_t n, const mlw_palette *p)
{
    int raw = mlw_palette_raw_width(p);
    int *wv = malloc((n ? n : 1) * sizeof *wv), *zv = malloc((n + 1) * sizeof *zv);
    grc_run *wr = malloc((n ? n : 1) * sizeof *wr), *zr = malloc((n + 1) * sizeof *zr);
    int status = -1;
    if (!wv || !zv || !wr || !zr) goto done;
    size_t nz = 0, nw = split(wv, zv, &nz, w, n, p);
    size_t nwr = nw ? greedy_search(wr, wv, nw, 0, raw) : 0;
    size_t nzr = p->zero_runs ? greedy_search(zr, zv, nw + 1, 1, 0) : 0;
    size_t pos = 0, iw = 0, iz = 0;
    int first = 1, zero_pass = p->zero_runs;
    while (pos < nw || first || zero_pass) {
        size_t wlen = iw < nwr ? min_size(wr[iw].end - pos, MLW_MAX_SLICE) : 0;
        size_t zlen = iz < nzr ? min_size(zr[iz].end - pos, MLW_MAX_SLICE) : 0;
        uint8_t wc = mlw_weight_cfg[wlen ? wr[iw].cfg : 0];
        slice sl = {
            .wv = wv + pos,
            .zv = p->zero_runs ? zv + pos + !first : NULL,
            .n = wlen,
            .nz = wlen + (size_t)first,
            .new_palette = first,
            .wtrunc = (wc >> 4) == 1,
            .wraw = (wc >> 4) == 2,
            .zdiv = p->zero_runs ? zr[iz < nzr ? iz : nzr - 1].cfg : 0,
        };
        sl.wdiv = sl.wraw ? raw : (wc & 15);
        mlw_write_slice(out, &sl, p);
        pos += zlen == 0 ? wlen : wlen == 0 ? zlen : min_size(wlen, zlen);
        if (iw < nwr && wr[iw].end <= pos) iw++;
        if (iz < nzr && zr[iz].end <= pos) iz++;
        first = 0;
        zero_pass = 0;
    }
    status = out->failed ? -1 : 0;
done:
    free(wv);
    free(zv);
    free(wr);
    free(zr);
    return status;
}

qc_status qc__ethosu_encode_regor_checked(uint8_t **out, size_t *out_size, const int16_t *w, size_t n,
                                          const char *function)
{
    QC_TRY(qc__ethosu_check_weights(w, n, "weights", function));
    mlw_writer wr;
    if (mlw_writer_init(&wr, n + n / 2 + 64) != 0)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the stream of %zu weights", n);
    int failed = 0;
    for (size_t start = 0; start < n && !failed; start += REGOR_CHUNK) {
        size_t len = min_size(REGOR_CHUNK, n - start);
        int32_t freq[511] = {0};
        for (size_t i = 0; i < len; i++) freq[w[start + i] + 255]++;
        mlw_palette p;
        mlw_palette_from(&p, freq, want_zero_runs(w + start, len, freq), 1);
        failed = encode_section(&wr, w + start, len, &p) != 0;
    }
    return mlw_stream_finish(&wr, failed, out, out_size, n, function);
}

qc_status qc_ethosu85_encode(uint8_t **out, size_t *out_size, const int16_t *weights, size_t n)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(out_size);
    QC_CHECK_NOT_NULL(weights);
    return qc__ethosu_encode_regor_checked(out, out_size, weights, n, __func__);
}
