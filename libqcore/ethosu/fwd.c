/* The Ethos-U85 fast weight format (FWD, see qc_ethosu.h): header, LUT of first-seen values, 2-, 4- or
 * 8-bit payload, zeros to 32 bytes. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ethosu/mlw.h"

#define FWD_HEADER_BYTES 32
#define FWD_LUT_ENTRIES 16
#define FWD_LUT_BIT 112          /* the LUT follows raw:1 lut2:1, 102 reserved bits and zero_adjust:8 */
#define FWD_ZERO_ADJUST_BYTE 13  /* bits 104..111 */
#define FWD_ALIGN 32

/* The distinct values in order of first appearance (up to FWD_LUT_ENTRIES kept in `lut`), their total
 * number capped at FWD_LUT_ENTRIES + 1, and each value's index (weight + 255 -> index, -1 unseen). */
typedef struct fwd_lut {
    int16_t lut[FWD_LUT_ENTRIES];
    int16_t index_of[511];
    int distinct;
    int lo, hi;
} fwd_lut;

static void fwd_lut_make(fwd_lut *t, const int16_t *w, size_t n)
{
    memset(t->lut, 0, sizeof t->lut);
    memset(t->index_of, 0xff, sizeof t->index_of);
    t->distinct = 0;
    t->lo = w[0], t->hi = w[0];
    for (size_t i = 0; i < n; i++) {
        int v = w[i];
        if (v < t->lo) t->lo = v;
        if (v > t->hi) t->hi = v;
        if (t->index_of[v + 255] >= 0 || t->distinct > FWD_LUT_ENTRIES) continue;
        if (t->distinct < FWD_LUT_ENTRIES) t->lut[t->distinct] = (int16_t)v;
        t->index_of[v + 255] = (int16_t)t->distinct++;
    }
}

/* Index width in bits: 2 (lut2), 4, or 8 (raw). */
static int fwd_bits(int distinct)
{
    return distinct <= 4 ? 2 : distinct <= FWD_LUT_ENTRIES ? 4 : 8;
}

static void put_bits(uint8_t *buf, size_t bit, int len, unsigned value)
{
    for (int i = 0; i < len; i++, bit++)
        if ((value >> i) & 1u) buf[bit >> 3] |= (uint8_t)(1u << (bit & 7));
}

static unsigned get_bits(const uint8_t *buf, size_t bit, int len)
{
    unsigned v = 0;
    for (int i = 0; i < len; i++, bit++) v |= (unsigned)((buf[bit >> 3] >> (bit & 7)) & 1u) << i;
    return v;
}

qc_status qc__ethosu85_fwd_encode_checked(uint8_t **out, size_t *out_size, const int16_t *w, size_t n,
                                          const char *function)
{
    QC_TRY(qc__ethosu_check_weights(w, n, "weights", function));
    fwd_lut t;
    fwd_lut_make(&t, w, n);
    int bits = fwd_bits(t.distinct);
    /* Raw bytes are int8 values, w + zero_adjust (zero_adjust read as int8 too): 0 when the weights fit
     * int8, else the adjustment that puts the smallest at -128 (uint8 weights: the zero point - 128), kept
     * an int8 itself: weights all above 0 that overflow int8 (e.g. 29..172) take -128, which still fits them
     * since they span at most 256 values and stay within 255. */
    int zero_adjust = 0;
    if (bits == 8 && (t.lo < -128 || t.hi > 127)) {
        if (t.hi - t.lo > 255)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'weights': %d distinct values spanning %d..%d; "
                              "the raw FWD form holds at most 256 consecutive values", t.distinct, t.lo, t.hi);
        zero_adjust = t.lo > 0 ? -128 : -128 - t.lo;
    }
    size_t payload = (n * (size_t)bits + 7) / 8;
    size_t size = (FWD_HEADER_BYTES + payload + FWD_ALIGN - 1) / FWD_ALIGN * FWD_ALIGN;
    uint8_t *buf = calloc(size, 1);
    if (buf == NULL)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate an FWD stream of %zu bytes", size);
    buf[0] = (uint8_t)((bits == 8) | (bits == 2) << 1);
    buf[FWD_ZERO_ADJUST_BYTE] = (uint8_t)(zero_adjust & 0xff);
    for (int i = 0; i < FWD_LUT_ENTRIES && i < t.distinct; i++)
        put_bits(buf, FWD_LUT_BIT + 9 * (size_t)i, 9, (unsigned)mlw_palval(t.lut[i]));
    uint8_t *p = buf + FWD_HEADER_BYTES;
    if (bits == 8) {
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((w[i] + zero_adjust) & 0xff);
    } else {
        int per_byte = 8 / bits;
        for (size_t i = 0; i < n; i++)
            p[i / (size_t)per_byte] |= (uint8_t)(t.index_of[w[i] + 255] << (bits * (int)(i % (size_t)per_byte)));
    }
    *out = buf;
    *out_size = size;
    return QC_OK;
}

qc_status qc_ethosu85_fwd_encode(uint8_t **out, size_t *out_size, const int16_t *weights, size_t n)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(out_size);
    QC_CHECK_NOT_NULL(weights);
    return qc__ethosu85_fwd_encode_checked(out, out_size, weights, n, __func__);
}

/* The header's mode, width and LUT, checked. */
static qc_status read_header(int *bits, int *zero_adjust, int16_t lut[FWD_LUT_ENTRIES], int *lut_size,
                             const uint8_t *s, const char *function)
{
    int raw = s[0] & 1, lut2 = (s[0] >> 1) & 1;
    if (raw && lut2)
        return QC_FAIL_IN(function, QC_ERR_FORMAT, "argument 'stream': bits 0 and 1 (raw and lut2) are both set");
    for (size_t bit = 2; bit < 104; bit++)
        if (get_bits(s, bit, 1))
            return QC_FAIL_IN(function, QC_ERR_FORMAT, "argument 'stream': reserved header bit %zu is set", bit);
    *bits = raw ? 8 : lut2 ? 2 : 4;
    *zero_adjust = s[FWD_ZERO_ADJUST_BYTE];
    *lut_size = raw ? 0 : lut2 ? 4 : FWD_LUT_ENTRIES;
    /* Every 9-bit palval is a weight: 511 is -255 (and 1 is -0, read as 0). */
    for (int i = 0; i < *lut_size; i++) {
        unsigned pv = get_bits(s, FWD_LUT_BIT + 9 * (size_t)i, 9);
        lut[i] = (int16_t)(pv & 1 ? -(int)(pv >> 1) : (int)(pv >> 1));
    }
    return QC_OK;
}

qc_status qc_ethosu85_fwd_decode(int16_t **out, size_t n, const uint8_t *stream, size_t size)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(stream);
    if (n == 0 || n > INT32_MAX)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'n' is %zu; expected 1..2^31 - 1 weights", n);
    if (size < FWD_HEADER_BYTES)
        return QC_FAIL(QC_ERR_FORMAT, "argument 'stream': %zu bytes, shorter than the 32-byte FWD header", size);
    int bits = 8, zero_adjust = 0, lut_size = 0;
    int16_t lut[FWD_LUT_ENTRIES];
    QC_TRY(read_header(&bits, &zero_adjust, lut, &lut_size, stream, __func__));
    size_t need = FWD_HEADER_BYTES + (n * (size_t)bits + 7) / 8;
    if (size < need)
        return QC_FAIL(QC_ERR_FORMAT, "argument 'stream': %zu bytes, but %zu weights of %d bits need %zu", size, n,
                       bits, need);
    int16_t *w = malloc(n * sizeof *w);
    if (w == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot allocate %zu weights", n);
    const uint8_t *p = stream + FWD_HEADER_BYTES;
    for (size_t i = 0; i < n; i++) {
        if (bits == 8) {
            w[i] = (int16_t)((int)(int8_t)p[i] - (int)(int8_t)zero_adjust);
            continue;
        }
        int per_byte = 8 / bits;
        int idx = (p[i / (size_t)per_byte] >> (bits * (int)(i % (size_t)per_byte))) & ((1 << bits) - 1);
        w[i] = lut[idx];
    }
    *out = w;
    return QC_OK;
}
