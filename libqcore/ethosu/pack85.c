/* A U85 layer's stream as Vela's Regor backend lays it out: per brick of OFM channels one scale stream
 * (U85 entries, zero entries to a multiple of 16), then the weights: one mlw stream per core (Regor's
 * encoder, qc_ethosu85_encode), or one FWD stream (see qc_ethosu.h). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ethosu/mlw.h"

#define ENTRY_BYTES 10
#define ENTRY_GRANULE 16   /* scale entries come in multiples of 16 (of the micro-block depth rounded to 16) */

qc_status qc__ethosu85_check_channels(const int64_t *bias, const int64_t *scale, const int32_t *shift, int64_t n,
                                      int ifm_bits, const char *function)
{
    /* 8-bit IFM accumulates in 32 bits, 16-bit IFM in 48 (Regor's Acc32/Acc48 choice). */
    int acc = ifm_bits == 16 ? 48 : 32;
    int64_t bias_limit = (int64_t)1 << (acc - 1), scale_limit = (int64_t)1 << (acc == 32 ? 31 : 15);
    for (int64_t c = 0; c < n; c++) {
        if (bias != NULL && (bias[c] < -bias_limit || bias[c] >= bias_limit))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'bias': channel %lld is %lld, outside the "
                              "signed %d-bit range of the U85 accumulator", (long long)c, (long long)bias[c], acc);
        if (scale[c] < 0 || scale[c] >= scale_limit)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'scale': channel %lld is %lld, outside 0..%lld "
                              "(U85 %d-bit accumulator entries)", (long long)c, (long long)scale[c],
                              (long long)(scale_limit - 1), acc);
        if (shift[c] < 0 || shift[c] > 63)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'shift': channel %lld is %d, outside 0..63",
                              (long long)c, shift[c]);
    }
    return QC_OK;
}

/* The U85 reorder parameters of the layer: Regor's traversal, micro-block and IFM block depth. */
static qc_status reorder_options(qc_ethosu85_reorder_options *ro, const qc_ethosu_layer_options *o,
                                 const int64_t s[4], const char *function)
{
    qc_ethosu_config_info info;
    qc_ethosu_config_get(&info, (qc_ethosu_config)o->config);
    *ro = (qc_ethosu85_reorder_options)QC_ETHOSU85_REORDER_OPTIONS_INIT;
    ro->macs = info.macs_per_cycle;
    ro->cores = info.cores;
    ro->ifm_bits = o->ifm_bits;
    ro->ofm_block_depth = o->ofm_block_depth;
    ro->stride_x = o->stride_x, ro->stride_y = o->stride_y;
    ro->dilation_x = o->dilation_x, ro->dilation_y = o->dilation_y;
    int pk = o->traversal == QC_ETHOSU_PART_KERNEL_FIRST;
    if (o->depthwise && pk)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "options 'depthwise' and 'traversal' part-kernel-first: a "
                          "depthwise kernel has no part-kernel-first order");
    if (o->traversal == QC_ETHOSU_TRAVERSAL_AUTO && !o->depthwise)
        QC_TRY(qc_ethosu85_part_kernel_first(&pk, s[3], s[1], s[2], 0));
    ro->traversal = o->depthwise ? QC_ETHOSU85_DEPTHWISE : pk ? QC_ETHOSU85_PART_KERNEL : QC_ETHOSU85_DEPTH_FIRST;
    /* Depthwise micro-blocks are 16 deep on every U85; convolutions take the configuration's. */
    ro->ofm_ublock_depth = o->ofm_ublock_depth ? o->ofm_ublock_depth : o->depthwise ? 16 : info.ofm_ublock_depth;
    int small = info.macs_per_cycle <= 256 && ro->ofm_ublock_depth == 16;
    ro->ifm_block_depth = pk ? 16 : small ? 32 : 64;
    return qc__ethosu85_check_options(ro, function);
}

/* The brick's channels [first, first + len) of the OHWI weights, copied contiguous. */
static int16_t *brick_weights(const int16_t *ohwi, const int64_t s[4], int64_t first, int64_t len)
{
    size_t per_channel = (size_t)(s[1] * s[2] * s[3]);
    int16_t *w = malloc((size_t)len * per_channel * sizeof *w);
    if (w != NULL) memcpy(w, ohwi + (size_t)first * per_channel, (size_t)len * per_channel * sizeof *w);
    return w;
}

/* Encoded streams of one brick: `n` of them (cores, or 1 for FWD). */
typedef struct encoded {
    uint8_t *data[4];
    size_t size[4];
    int n;
} encoded;

static void encoded_free(encoded *e)
{
    for (int i = 0; i < e->n; i++) free(e->data[i]);
    e->n = 0;
}

/* Reorders and encodes the brick in the default (per-core mlw) or FWD format. */
static qc_status encode_brick(encoded *e, const int16_t *w, const int64_t shape[4], qc_ethosu85_reorder_options ro,
                              int fast, const char *function)
{
    e->n = 0;
    int streams = fast ? 1 : ro.cores;
    for (int c = 0; c < streams; c++) {
        ro.core = fast ? QC_ETHOSU85_ALL_CORES : c;
        int16_t *ordered;
        size_t n;
        qc_status st = qc__ethosu85_reorder_checked(&ordered, &n, w, shape, &ro, function);
        if (st == QC_OK) {
            st = fast ? qc__ethosu85_fwd_encode_checked(&e->data[c], &e->size[c], ordered, n, function)
                      : qc__ethosu_encode_regor_checked(&e->data[c], &e->size[c], ordered, n, function);
            free(ordered);
        }
        if (st != QC_OK) {
            encoded_free(e);
            return st;
        }
        e->n = c + 1;
    }
    return QC_OK;
}

static size_t total(const encoded *e)
{
    size_t t = 0;
    for (int i = 0; i < e->n; i++) t += e->size[i];
    return t;
}

/* The brick in the layer's weight format; FWD_SMALLER keeps whichever is smaller (default on a tie). */
static qc_status encode_format(encoded *e, const int16_t *w, const int64_t shape[4],
                               const qc_ethosu85_reorder_options *ro, int format, const char *function)
{
    int depthwise = ro->traversal == QC_ETHOSU85_DEPTHWISE;
    if (format == QC_ETHOSU85_FORMAT_FAST && depthwise)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'weight_format' is FWD, which depthwise layers "
                          "do not have");
    if (format != QC_ETHOSU85_FORMAT_SMALLER || depthwise)
        return encode_brick(e, w, shape, *ro, format == QC_ETHOSU85_FORMAT_FAST, function);
    QC_TRY(encode_brick(e, w, shape, *ro, 0, function));
    encoded fast;
    qc_status st = encode_brick(&fast, w, shape, *ro, 1, function);
    /* Values spanning more than 256 have no raw FWD form: the default stands. */
    if (st == QC_ERR_INVALID_ARG) return QC_OK;
    if (st != QC_OK) {
        encoded_free(e);
        return st;
    }
    if (total(&fast) < total(e)) {
        encoded_free(e);
        *e = fast;
    } else {
        encoded_free(&fast);
    }
    return QC_OK;
}

/* One brick: the scale stream and the weight streams, one range per stream (the first carries the scales). */
static qc_status add_brick(qc_ethosu_layer *l, const int16_t *ohwi, const int64_t s[4], int64_t first, int64_t len,
                           const int64_t *bias, const int64_t *scale, const int32_t *shift,
                           const qc_ethosu85_reorder_options *ro, const qc_ethosu_layer_options *o,
                           const char *function)
{
    int16_t *w = brick_weights(ohwi, s, first, len);
    if (w == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a brick of weights");
    int64_t shape[4] = {len, s[1], s[2], s[3]};
    encoded e;
    qc_status st = encode_format(&e, w, shape, ro, o->weight_format, function);
    free(w);
    QC_TRY(st);
    size_t start = l->size;
    int64_t granule = (ro->ofm_ublock_depth + ENTRY_GRANULE - 1) / ENTRY_GRANULE * ENTRY_GRANULE;
    int64_t entries = (len + granule - 1) / granule * granule;
    int failed = 0;
    for (int64_t c = 0; c < entries && !failed; c++) {
        uint8_t entry[ENTRY_BYTES] = {0};
        if (c < len)   /* ranges checked before */
            qc_ethosu85_pack_bias(entry, bias ? bias[first + c] : 0, scale[first + c], shift[first + c],
                                  o->ifm_bits == 16 ? 48 : 32);
        failed = qc__ethosu_layer_append(l, entry, ENTRY_BYTES) != 0;
    }
    for (int i = 0; i < e.n && !failed; i++) {
        qc_ethosu_range *r = &l->ranges[l->nranges++];
        r->depth_offset = first;
        r->core = e.n == 1 ? 0 : i;
        r->offset = i == 0 ? (int64_t)start : (int64_t)l->size;
        r->scale_bytes = i == 0 ? entries * ENTRY_BYTES : 0;
        r->weight_offset = (int64_t)l->size - r->offset;
        r->weight_bytes = (int64_t)e.size[i];
        failed = qc__ethosu_layer_append(l, e.data[i], e.size[i]) != 0;
    }
    encoded_free(&e);
    if (failed)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot grow the layer's stream beyond %zu bytes", l->size);
    return QC_OK;
}

qc_status qc__ethosu85_pack(qc_ethosu_layer *l, const int16_t *ohwi, const int64_t s[4], const int64_t *bias,
                            const int64_t *scale, const int32_t *shift, const qc_ethosu_layer_options *o,
                            const char *function)
{
    qc_ethosu85_reorder_options ro;
    QC_TRY(reorder_options(&ro, o, s, function));
    int64_t step = o->ofm_depth_step > 0 ? o->ofm_depth_step : s[0];
    int64_t bricks = (s[0] + step - 1) / step;
    l->ranges = calloc((size_t)(bricks * ro.cores), sizeof *l->ranges);
    if (l->ranges == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the range table");
    for (int64_t d = 0; d < s[0]; d += step)
        QC_TRY(add_brick(l, ohwi, s, d, s[0] - d < step ? s[0] - d : step, bias, scale, shift, &ro, o, function));
    return QC_OK;
}
