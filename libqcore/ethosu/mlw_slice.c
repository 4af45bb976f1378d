/* Writing one section: weights to indices and zero runs, the Golomb-Rice search over each, and the
 * slices, whose chunks interleave the weight and zero-run streams. */
#include <stdlib.h>

#include "ethosu/mlw.h"

#define CHUNK 12   /* unary positions per chunk */

/* One stream's state across chunks: a symbol may spill over into the next chunk, and the remainders of
 * a chunk are written after the next chunk's unary parts. */
typedef struct stream_state {
    size_t pos;        /* symbols completed */
    int q, r;          /* the symbol in progress: unary part left, remainder (-1: padding symbol) */
    int nrem, rem[CHUNK];
    int prev_on, prev_nrem, prev_rem[CHUNK];
} stream_state;

/* Starts the next symbol: quotient and remainder of values[pos], or once the values are used up, a
 * padding symbol (a single 0 position, no remainder) that fills the chunk. */
static void next_symbol(stream_state *s, const int *values, size_t count, int div)
{
    if (s->pos < count) {
        s->q = values[s->pos] >> div;
        s->r = values[s->pos] & ((1 << div) - 1);
    } else {
        s->q = 0;
        s->r = -1;
    }
}

/* Fills a weight chunk: unary0 bit j says "more", unary1 (one bit per set unary0 bit) "two more". */
static void weight_chunk(stream_state *s, const slice *sl, uint32_t *unary0, uint32_t *unary1, int *unary1_len)
{
    int max = sl->wraw && sl->wdiv > 5 ? 8 : CHUNK;
    int step = sl->wtrunc ? 3 : 2;
    uint32_t u0 = 0, u1 = 0;
    int u1_len = 0;
    s->nrem = 0;
    for (int j = 0; j < max;) {
        if (s->q < 0) next_symbol(s, sl->wv, sl->n, sl->wdiv);
        /* A whole untruncated symbol at once: q / 2 + 1 positions, "more" set on all but the last (set
         * there too when q is odd), and q / 2 "two more" bits, all set. */
        int positions = s->q / 2 + 1;
        if (!sl->wtrunc && j + positions <= max) {
            int ones = positions - 1 + (s->q & 1);
            u0 |= ((1u << ones) - 1u) << j;
            u1 |= ((1u << (s->q / 2)) - 1u) << u1_len;
            u1_len += ones;
            j += positions;
            s->q = -1;
        }
        for (; s->q >= 0 && j < max; j++, s->q -= step) {
            if (s->q > 0) {
                u0 |= 1u << j;
                u1 |= (uint32_t)(s->q > 1) << u1_len++;
            }
        }
        if (s->q < 0 && s->r >= 0) {
            s->rem[s->nrem++] = s->r;
            s->pos++;
        }
    }
    *unary0 = u0;
    *unary1 = u1;
    *unary1_len = u1_len;
}

/* Fills a zero-run chunk: q ones then a zero per run. */
static void zrun_chunk(stream_state *s, const slice *sl, int len, uint32_t *unary)
{
    *unary = 0;
    s->nrem = 0;
    for (int j = 0; j < len;) {
        if (s->q < 0) next_symbol(s, sl->zv, sl->nz, sl->zdiv);
        /* A whole run's ones and its zero at once, or ones to the end of the chunk (q >= room: every
         * position left has more to come). */
        int room = len - j;
        if (s->q < room) {
            *unary |= ((1u << s->q) - 1u) << j;
            j += s->q + 1;
            s->q = -1;
        } else {
            *unary |= ((1u << room) - 1u) << j;
            s->q -= room;
            j = len;
        }
        if (s->q < 0 && s->r >= 0) {
            s->rem[s->nrem++] = s->r;
            s->pos++;
        }
    }
}

static void put_remainders(mlw_writer *out, stream_state *s, int div)
{
    if (s->prev_on)
        for (int i = 0; i < s->prev_nrem; i++) mlw_put(out, div, (uint32_t)s->prev_rem[i]);
}

static void end_chunk(stream_state *s, int on)
{
    s->prev_on = on;
    s->prev_nrem = on ? s->nrem : 0;
    for (int i = 0; i < s->prev_nrem; i++) s->prev_rem[i] = s->rem[i];
}

static void write_header(mlw_writer *out, const slice *sl, const mlw_palette *p)
{
    mlw_put(out, 3, (uint32_t)(p->zero_runs ? sl->zdiv : MLW_ZDIV_NONE));
    mlw_put(out, 15, (uint32_t)(sl->n - 1));
    mlw_put(out, 3, (uint32_t)(sl->wraw ? MLW_WDIV_RAW : sl->wdiv));
    mlw_put(out, 1, (uint32_t)sl->wtrunc);
    mlw_put(out, 1, (uint32_t)sl->new_palette);
    if (!sl->new_palette) return;
    mlw_put(out, 5, (uint32_t)p->direct_offset);
    mlw_put(out, 5, (uint32_t)(p->size > 0 ? p->size - 1 : 0));
    mlw_put(out, 3, (uint32_t)(p->bits - 2));
    for (int i = 0; i < p->size; i++) mlw_put(out, p->bits, (uint32_t)p->lut[i]);
}

void mlw_write_slice(mlw_writer *out, const slice *sl, const mlw_palette *p)
{
    write_header(out, sl, p);
    stream_state ws = {.q = -1}, zs = {.q = -1};
    int zlen = sl->zdiv < 3 ? CHUNK : 8;
    do {
        ptrdiff_t balance = p->zero_runs ? (ptrdiff_t)ws.pos - (ptrdiff_t)zs.pos : 0;
        int w_on = balance < 8 && ws.pos < sl->n;
        int z_on = balance >= 0 && p->zero_runs && zs.pos < sl->nz;
        uint32_t unary0 = 0, unary1 = 0, zunary = 0;
        int unary1_len = 0;
        if (w_on) weight_chunk(&ws, sl, &unary0, &unary1, &unary1_len);
        if (z_on) zrun_chunk(&zs, sl, zlen, &zunary);
        if (w_on && !sl->wraw) mlw_put(out, CHUNK, unary0);
        if (z_on) mlw_put(out, zlen, zunary);
        if (w_on && !sl->wraw) mlw_put(out, unary1_len, unary1);
        put_remainders(out, &ws, sl->wdiv);
        put_remainders(out, &zs, sl->zdiv);
        end_chunk(&ws, w_on);
        end_chunk(&zs, z_on);
    } while (ws.prev_on || zs.prev_on);
}

/* Splits the section into weight indices wv and zero runs zv (zv[k]: the zeros just before weight k,
 * zv[count]: the trailing zeros). Returns the number of weights. An all-zero section codes its
 * first zero as a weight, so that no slice is empty. */
static size_t split(int *wv, int *zv, const int16_t *w, size_t n, const mlw_palette *p)
{
    if (!p->zero_runs) {
        for (size_t i = 0; i < n; i++) wv[i] = p->index_of[w[i] + 255];
        return n;
    }
    size_t i = 0, k = 0;
    if (p->only_zeros) {   /* all zeros: the first is a weight after an empty run */
        zv[0] = 0;
        wv[0] = p->index_of[w[0] + 255];
        i = k = 1;
    }
    /* Branch-free (run lengths are unpredictable): every position writes a candidate weight and the run
     * before it, kept only when the value is not zero. */
    int run = 0;
    for (; i < n; i++) {
        int nonzero = w[i] != 0;
        zv[k] = run;
        wv[k] = p->index_of[w[i] + 255];
        k += (size_t)nonzero;
        run = (run + 1) & (nonzero - 1);
    }
    zv[k] = run;
    return k;
}

int mlw_encode_section(mlw_writer *out, const int16_t *w, size_t n, const mlw_palette *p)
{
    int raw = mlw_palette_raw_width(p);
    int *wv = malloc(n * sizeof *wv), *zv = malloc((n + 1) * sizeof *zv);
    uint8_t *wcfg = malloc(n), *zcfg = malloc(n + 1);
    uint32_t *wend = malloc(n * sizeof *wend), *zend = malloc((n + 1) * sizeof *zend);
    int status = -1;
    if (!wv || !zv || !wcfg || !zcfg || !wend || !zend) goto done;

    size_t nw = split(wv, zv, w, n, p);
    size_t nwcfg = mlw_grc_search(wcfg, wend, wv, nw, 0, raw, NULL, 0);
    size_t nzcfg = 0;
    if (nwcfg == 0) goto done;
    if (p->zero_runs && (nzcfg = mlw_grc_search(zcfg, zend, zv, nw + 1, 1, 0, wend, nwcfg)) == 0) goto done;

    /* Slices end where either stream changes parameters, and every 32767 weights. */
    size_t pos = 0, iw = 0, iz = 0;
    for (int first = 1; pos < nw || first; first = 0) {
        size_t end = pos + MLW_MAX_SLICE;
        if (iw < nwcfg && wend[iw] < end) end = wend[iw];
        if (iz < nzcfg && zend[iz] < end) end = zend[iz];
        if (nw < end) end = nw;
        uint8_t wc = mlw_weight_cfg[wcfg[iw]];
        slice sl = {
            .wv = wv + pos,
            .zv = p->zero_runs ? zv + pos + !first : NULL,
            .n = end - pos,
            .nz = end - pos + (size_t)first,
            .new_palette = first,
            .wtrunc = (wc >> 4) == 1,
            .wraw = (wc >> 4) == 2,
            .zdiv = p->zero_runs ? zcfg[iz] : 0,
        };
        sl.wdiv = sl.wraw ? raw : (wc & 15);
        mlw_write_slice(out, &sl, p);
        if (iw < nwcfg && wend[iw] == end) iw++;
        if (iz < nzcfg && zend[iz] == end) iz++;
        pos = end;
    }
    status = out->failed ? -1 : 0;
done:
    free(wv);
    free(zv);
    free(wcfg);
    free(zcfg);
    free(wend);
    free(zend);
    return status;
}
