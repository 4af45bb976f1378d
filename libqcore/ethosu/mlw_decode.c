/* qc_ethosu_decode: reads any stream of the format, checking every field, so that malformed input gives
 * QC_ERR_FORMAT with the bit position, never a read past the end or an unbounded allocation (the output
 * grows with the stream: at most 8 zeros per bit of zero-run code). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ethosu/mlw.h"

#define CHUNK 12
/* A unary part longer than this cannot come from a weight below 512 or from a realistic zero run. */
#define MAX_UNARY (1 << 24)

typedef struct reader {
    const uint8_t *buf;
    size_t size;      /* bytes */
    size_t pos;       /* bit position */
    int overrun;
} reader;

static uint32_t get(reader *r, int len)
{
    uint32_t v = 0;
    if (len <= 0) return 0;
    if (r->pos + (size_t)len > r->size * 8) {
        r->overrun = 1;
        r->pos = r->size * 8;
        return 0;
    }
    for (int i = 0; i < len;) {
        size_t byte = r->pos >> 3;
        int bit = (int)(r->pos & 7), take = 8 - bit < len - i ? 8 - bit : len - i;
        v |= (uint32_t)((r->buf[byte] >> bit) & ((1u << take) - 1u)) << i;
        i += take;
        r->pos += (size_t)take;
    }
    return v;
}

/* Decoder state that outlives a slice: the palette and the zero-run mode. */
typedef struct section {
    int have;              /* a palette has been defined since the last end marker */
    int zero_runs;
    int direct_offset, size, bits;
    uint16_t lut[MLW_PALETTE_MAX];
} section;

typedef struct output {
    int16_t *v;
    size_t n, cap;
} output;

static int push(output *o, int16_t value, size_t count)
{
    if (o->n + count > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->n + count) cap *= 2;
        int16_t *grown = realloc(o->v, cap * sizeof *grown);
        if (grown == NULL) return -1;
        o->v = grown;
        o->cap = cap;
    }
    for (size_t i = 0; i < count; i++) o->v[o->n++] = value;
    return 0;
}

typedef struct slice_hdr {
    int zdiv, wdiv, wtrunc, wraw, new_palette;
    size_t n;
} slice_hdr;

/* Format errors name the stream argument, then where in it. */
#define FAIL_AT(r, format, ...) \
    QC_FAIL_IN("qc_ethosu_decode", QC_ERR_FORMAT, "argument 'stream': " format, __VA_ARGS__)

static qc_status read_header(slice_hdr *h, section *sec, reader *r, int zdiv, size_t at)
{
    if (zdiv > 3 && zdiv != MLW_ZDIV_NONE)
        return FAIL_AT(r, "bit %zu: reserved ZDIV value %d in a slice header", at, zdiv);
    h->zdiv = zdiv;
    h->n = (size_t)get(r, 15) + 1;
    h->wdiv = (int)get(r, 3);
    h->wtrunc = (int)get(r, 1);
    h->new_palette = (int)get(r, 1);
    if (r->overrun) return FAIL_AT(r, "the stream ends inside the slice header at bit %zu", at);
    int zero_runs = zdiv != MLW_ZDIV_NONE;
    if (!h->new_palette && !sec->have)
        return FAIL_AT(r, "bit %zu: the slice uses a palette, but none was defined since the stream started", at);
    if (!h->new_palette && zero_runs != sec->zero_runs)
        return FAIL_AT(r, "bit %zu: the slice changes the zero-run mode without a new palette", at);
    if (h->new_palette) {
        sec->have = 1;
        sec->zero_runs = zero_runs;
        sec->direct_offset = (int)get(r, 5);
        sec->size = (int)get(r, 5);
        if (sec->size > 0) sec->size++;
        sec->bits = (int)get(r, 3) + 2;
        for (int i = 0; i < sec->size; i++) sec->lut[i] = (uint16_t)get(r, sec->bits);
    }
    h->wraw = h->wdiv == MLW_WDIV_RAW;
    if (h->wraw) {
        int bits = 0;
        if (sec->size > 0)
            while ((1 << bits) < sec->size) bits++;
        else
            bits = sec->bits;
        h->wdiv = bits;
    } else if (h->wdiv > 5) {
        return FAIL_AT(r, "bit %zu: reserved WDIV value %d in a slice header", at, h->wdiv);
    }
    if (r->overrun) return FAIL_AT(r, "the stream ends inside the slice header at bit %zu", at);
    return QC_OK;
}

/* Reads the chunks of a slice into weight values wv[n] and zero runs zv[nz]. */
static qc_status read_chunks(const slice_hdr *h, const section *sec, reader *r, int *wv, int *zv, size_t nz,
                             size_t at)
{
    size_t wpos = 0, zpos = 0, wprev_pos = 0, zprev_pos = 0;
    int wq[CHUNK], zq[CHUNK], wprev_q[CHUNK], zprev_q[CHUNK];
    int wn = 0, zn = 0, wprev_n = 0, zprev_n = 0, wprev_on = 0, zprev_on = 0;
    int64_t wcarry = 0, zcarry = 0;
    int zlen = h->zdiv < 3 ? CHUNK : 8, zdiv = sec->zero_runs ? h->zdiv : 0;
    do {
        ptrdiff_t balance = sec->zero_runs ? (ptrdiff_t)wpos - (ptrdiff_t)zpos : 0;
        int w_on = balance < 8 && wpos < h->n;
        int z_on = balance >= 0 && sec->zero_runs && zpos < nz;
        uint32_t unary0 = 0;
        if (w_on && !h->wraw) unary0 = get(r, CHUNK);
        if (z_on) {
            uint32_t unary = get(r, zlen);
            zn = 0;
            for (int i = 0; i < zlen; i++) {
                if (unary & (1u << i)) {
                    zcarry++;
                } else {
                    zq[zn++] = (int)zcarry;
                    zcarry = 0;
                }
            }
            if (zcarry > MAX_UNARY) return FAIL_AT(r, "bit %zu: a zero run longer than 2^24", r->pos);
            zpos += (size_t)zn;
        }
        if (w_on) {
            int max = h->wraw && h->wdiv > 5 ? 8 : CHUNK;
            int ones = __builtin_popcount(unary0 & ((1u << max) - 1u));
            uint32_t unary1 = get(r, ones);
            wn = 0;
            for (int i = 0; i < max; i++) {
                int code = 0;
                if (unary0 & (1u << i)) {
                    code = 1 + (int)(unary1 & 1u);
                    unary1 >>= 1;
                }
                wcarry += code;
                if (code < 2 || h->wtrunc) {
                    wq[wn++] = (int)wcarry;
                    wcarry = 0;
                }
            }
            if (wcarry > 512) return FAIL_AT(r, "bit %zu: a weight index above 511", r->pos);
            wpos += (size_t)wn;
        }
        for (int i = 0; wprev_on && i < wprev_n && wprev_pos < h->n; i++, wprev_pos++)
            wv[wprev_pos] = (wprev_q[i] << h->wdiv) + (int)get(r, h->wdiv);
        for (int i = 0; zprev_on && i < zprev_n && zprev_pos < nz; i++, zprev_pos++)
            zv[zprev_pos] = (zprev_q[i] << zdiv) + (int)get(r, zdiv);
        if (r->overrun) return FAIL_AT(r, "the stream ends inside the slice that starts at bit %zu", at);
        wprev_on = w_on;
        wprev_n = wn;
        memcpy(wprev_q, wq, sizeof wq);
        zprev_on = z_on;
        zprev_n = zn;
        memcpy(zprev_q, zq, sizeof zq);
    } while (wprev_on || zprev_on);
    return QC_OK;
}

/* The weight of a decoded index. */
static int weight_of(const section *sec, int index, int *ok)
{
    int palval = index < sec->size ? sec->lut[index] : index - sec->size + sec->direct_offset;
    *ok = palval >= 0 && palval < MLW_NPALVAL;
    int mag = palval >> 1;
    return (palval & 1) ? -mag : mag;
}

static qc_status emit(output *o, const slice_hdr *h, const section *sec, const int *wv, const int *zv, size_t at)
{
    if (h->new_palette && sec->zero_runs && push(o, 0, (size_t)zv[0]) != 0) goto oom;
    for (size_t i = 0; i < h->n; i++) {
        int ok;
        int w = weight_of(sec, wv[i], &ok);
        if (!ok) return FAIL_AT(NULL, "slice at bit %zu: weight %zu has index %d, beyond palval 511", at, i, wv[i]);
        if (push(o, (int16_t)w, 1) != 0) goto oom;
        if (sec->zero_runs && push(o, 0, (size_t)zv[i + (size_t)h->new_palette]) != 0) goto oom;
    }
    return QC_OK;
oom:
    return QC_FAIL_IN("qc_ethosu_decode", QC_ERR_OUT_OF_MEMORY, "cannot grow the output to %zu weights", o->n);
}

static qc_status decode_slice(output *o, section *sec, reader *r, int zdiv, size_t at)
{
    slice_hdr h = {0};
    QC_TRY(read_header(&h, sec, r, zdiv, at));
    size_t nz = h.n + (size_t)h.new_palette;
    int *wv = calloc(h.n, sizeof *wv), *zv = calloc(nz, sizeof *zv);
    qc_status st = QC_OK;
    if (wv == NULL || zv == NULL)
        st = QC_FAIL_IN("qc_ethosu_decode", QC_ERR_OUT_OF_MEMORY, "cannot allocate a slice of %zu weights", h.n);
    if (st == QC_OK) st = read_chunks(&h, sec, r, wv, zv, nz, at);
    if (st == QC_OK) st = emit(o, &h, sec, wv, zv, at);
    free(wv);
    free(zv);
    return st;
}

qc_status qc_ethosu_decode(int16_t **out, size_t *out_count, const uint8_t *stream, size_t size)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(out_count);
    QC_CHECK_NOT_NULL(stream);
    if (size == 0) return QC_FAIL(QC_ERR_FORMAT, "argument 'size' is 0: a stream holds at least its end marker");
    reader r = {stream, size, 0, 0};
    section sec = {0};
    output o = {0};
    qc_status st = QC_OK;
    for (;;) {
        size_t at = r.pos;
        int zdiv = (int)get(&r, 3);
        if (r.overrun) {
            st = FAIL_AT(&r, "the stream ends at bit %zu without its end marker (ZDIV = 7)", at);
            break;
        }
        if (zdiv == MLW_ZDIV_EOS) {
            /* Byte-align; what follows (0xFF padding reads as further end markers, or another stream) starts
             * afresh, with a new palette. */
            get(&r, (int)((8 - (r.pos & 7)) & 7));
            sec.have = 0;
            if (r.pos >= size * 8) break;
            continue;
        }
        if ((st = decode_slice(&o, &sec, &r, zdiv, at)) != QC_OK) break;
    }
    if (st != QC_OK) {
        free(o.v);
        return st;
    }
    *out = o.v;
    *out_count = o.n;
    return QC_OK;
}
