/* A layer's stream as Vela's weight_compressor assembles it: bricks of OFM channels, a sub-stream per core
 * ([bias entries][zeros to 16][weights]) and the range table (see qc_ethosu.h). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ethosu/mlw.h"

#define ENTRY_BYTES 10
#define OPTIONS_SIZE_V1 offsetof(qc_ethosu_layer_options, weight_format)

qc_status qc_ethosu_layer_options_init(qc_ethosu_layer_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_ETHOSU_LAYER_OPTIONS_VERSION, "qc_ethosu_layer_options", __func__));
    qc_ethosu_layer_options defaults = QC_ETHOSU_LAYER_OPTIONS_INIT;
    defaults.version = version;
    memcpy(opts, &defaults, version == 1 ? OPTIONS_SIZE_V1 : sizeof defaults);
    return QC_OK;
}

static qc_status check_layer_options(const qc_ethosu_layer_options *o, const char *function)
{
    if (o->version == 0 || o->version > QC_ETHOSU_LAYER_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION, "qc_ethosu_layer_options has version %u; this library knows 1..%d",
                          o->version, QC_ETHOSU_LAYER_OPTIONS_VERSION);
    if (o->traversal < QC_ETHOSU_TRAVERSAL_AUTO || o->traversal > QC_ETHOSU_PART_KERNEL_FIRST)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'traversal' is %d, not a qc_ethosu_traversal",
                          o->traversal);
    if (o->dilation_x < 1 || o->dilation_x > 2 || o->dilation_y < 1 || o->dilation_y > 2)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "options 'dilation_x', 'dilation_y' are %d, %d; each must be "
                          "1 or 2", o->dilation_x, o->dilation_y);
    if (o->ofm_block_depth < 1 || o->ofm_block_depth > 65536)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ofm_block_depth' is %d, outside 1..65536",
                          o->ofm_block_depth);
    if (o->depthwise != 0 && o->depthwise != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'depthwise' is %d; expected 0 or 1", o->depthwise);
    if (o->ifm_bits != 8 && o->ifm_bits != 16)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ifm_bits' is %d; expected 8 or 16", o->ifm_bits);
    if (o->ofm_depth_step < 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ofm_depth_step' is %d; expected >= 0 (0: one brick)",
                          o->ofm_depth_step);
    if (o->version < 2) return QC_OK;
    if (o->weight_format < QC_ETHOSU85_FORMAT_DEFAULT || o->weight_format > QC_ETHOSU85_FORMAT_SMALLER)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'weight_format' is %d, not a qc_ethosu85_weight_format",
                          o->weight_format);
    if (o->ofm_ublock_depth < 0 || o->ofm_ublock_depth > 64)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ofm_ublock_depth' is %d, outside 0..64 (0: the "
                          "configuration's)", o->ofm_ublock_depth);
    if (o->stride_x < 1 || o->stride_x > 3 || o->stride_y < 1 || o->stride_y > 3)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "options 'stride_x', 'stride_y' are %d, %d; each must be "
                          "1..3", o->stride_x, o->stride_y);
    return QC_OK;
}

static qc_status check_channels(const int64_t *bias, const int64_t *scale, const int32_t *shift, int64_t n,
                                const char *function)
{
    for (int64_t c = 0; c < n; c++) {
        if (bias != NULL && (bias[c] < -((int64_t)1 << 39) || bias[c] >= ((int64_t)1 << 39)))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'bias': channel %lld is %lld, outside the "
                              "signed 40-bit range", (long long)c, (long long)bias[c]);
        if (scale[c] < 0 || scale[c] >= ((int64_t)1 << 32))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'scale': channel %lld is %lld, outside "
                              "0..2^32 - 1", (long long)c, (long long)scale[c]);
        if (shift[c] < 0 || shift[c] > 63)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'shift': channel %lld is %d, outside 0..63",
                              (long long)c, shift[c]);
    }
    return QC_OK;
}

int qc__ethosu_layer_append(qc_ethosu_layer *l, const uint8_t *bytes, size_t n)
{
    if (l->size + n > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->size + n) cap *= 2;
        uint8_t *grown = realloc(l->data, cap);
        if (grown == NULL) return -1;
        l->data = grown;
        l->cap = cap;
    }
    if (bytes) memcpy(l->data + l->size, bytes, n);
    else memset(l->data + l->size, 0, n);
    l->size += n;
    return 0;
}

/* The sub-stream of one core in one brick: channels first, first + step, ... below end. */
typedef struct substream {
    int64_t first, end, step, block_depth, core, brick;
} substream;

static qc_status add_substream(qc_ethosu_layer *l, const substream *ss, const int16_t *ohwi, const int64_t s[4],
                               const int64_t *bias, const int64_t *scale, const int32_t *shift,
                               qc_ethosu_reorder_options ro, const char *function)
{
    int64_t per_channel = s[1] * s[2] * s[3], channels = (ss->end - ss->first + ss->step - 1) / ss->step;
    qc_ethosu_range *r = &l->ranges[l->nranges];
    r->depth_offset = ss->brick;
    r->core = ss->core;
    r->offset = (int64_t)l->size;
    r->scale_bytes = channels * ENTRY_BYTES;
    for (int64_t c = ss->first; c < ss->end; c += ss->step) {
        uint8_t e[ENTRY_BYTES];
        qc_ethosu_pack_bias(e, bias ? bias[c] : 0, scale[c], shift[c]);  /* ranges checked before */
        if (qc__ethosu_layer_append(l, e, ENTRY_BYTES) != 0) goto oom;
    }
    if (qc__ethosu_layer_append(l, NULL, (16 - l->size % 16) % 16) != 0) goto oom;

    int16_t *w = malloc((size_t)(channels * per_channel) * sizeof *w);
    if (w == NULL) goto oom;
    for (int64_t k = 0; k < channels; k++)
        memcpy(w + k * per_channel, ohwi + (ss->first + k * ss->step) * per_channel, (size_t)per_channel * sizeof *w);
    int64_t core_shape[4] = {channels, s[1], s[2], s[3]};
    ro.ofm_block_depth = (int32_t)ss->block_depth;
    uint8_t *enc = NULL;
    size_t enc_size = 0;
    qc_status st = qc__ethosu_reorder_encode_checked(&enc, &enc_size, NULL, w, core_shape, &ro, function);
    free(w);
    QC_TRY(st);
    r->weight_offset = (int64_t)l->size - r->offset;
    r->weight_bytes = (int64_t)enc_size;
    int failed = qc__ethosu_layer_append(l, enc, enc_size);
    free(enc);
    if (failed) goto oom;
    l->nranges++;
    return QC_OK;
oom:
    return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot grow the layer's stream beyond %zu bytes", l->size);
}

/* The reorder parameters of the layer's configuration and traversal. */
static qc_status reorder_options(qc_ethosu_reorder_options *ro, const qc_ethosu_layer_options *o,
                                 const int64_t s[4], const char *function)
{
    qc_ethosu_config_info info;
    if (qc_ethosu_config_get(&info, (qc_ethosu_config)o->config) != QC_OK)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'config' is %d, not a qc_ethosu_config", o->config);
    *ro = (qc_ethosu_reorder_options)QC_ETHOSU_REORDER_OPTIONS_INIT;
    ro->ifm_ublock_depth = info.ifm_ublock_depth;
    ro->ofm_ublock_depth = info.ofm_ublock_depth;
    ro->ofm_block_depth = o->ofm_block_depth;
    ro->depthwise = o->depthwise;
    ro->ifm_bits = o->ifm_bits;
    ro->decomp_h = 8 / o->dilation_y;
    ro->decomp_w = 8 / o->dilation_x;
    int pk = o->traversal == QC_ETHOSU_PART_KERNEL_FIRST;
    if (o->traversal == QC_ETHOSU_TRAVERSAL_AUTO && !o->depthwise)
        qc_ethosu_part_kernel_first(&pk, s[3], s[1], s[2], o->ifm_bits);
    ro->part_kernel = pk;
    return QC_OK;
}

static qc_status pack(qc_ethosu_layer *l, const int16_t *ohwi, const int64_t s[4], const int64_t *bias,
                      const int64_t *scale, const int32_t *shift, const qc_ethosu_layer_options *o,
                      const char *function)
{
    qc_ethosu_reorder_options ro;
    QC_TRY(reorder_options(&ro, o, s, function));
    qc_ethosu_config_info info;
    qc_ethosu_config_get(&info, (qc_ethosu_config)o->config);
    int64_t step = o->ofm_depth_step > 0 ? o->ofm_depth_step : s[0];
    int64_t bricks = (s[0] + step - 1) / step;
    l->ranges = calloc((size_t)(bricks * info.cores), sizeof *l->ranges);
    if (l->ranges == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the range table");
    for (int64_t d = 0; d < s[0]; d += step) {
        int64_t len = s[0] - d < step ? s[0] - d : step;
        for (int64_t core = 0; core < info.cores && core < len; core++) {
            int64_t block = (o->ofm_block_depth + info.cores - 1 - core) / info.cores;
            if (block == 0) continue;
            substream ss = {d + core, d + len, info.cores, block, core, d};
            QC_TRY(add_substream(l, &ss, ohwi, s, bias, scale, shift, ro, function));
        }
    }
    return QC_OK;
}

qc_status qc_ethosu_pack_layer(qc_ethosu_layer **out, const int16_t *ohwi, const int64_t shape[4],
                               const int64_t *bias, const int64_t *scale, const int32_t *shift,
                               const qc_ethosu_layer_options *opts)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(ohwi);
    QC_CHECK_NOT_NULL(shape);
    QC_CHECK_NOT_NULL(scale);
    QC_CHECK_NOT_NULL(shift);
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(check_layer_options(opts, __func__));
    QC_TRY(qc__ethosu_check_shape(shape, __func__));
    QC_TRY(qc__ethosu_check_weights(ohwi, (size_t)(shape[0] * shape[1] * shape[2] * shape[3]), "ohwi", __func__));
    /* Version 1 options end before the U85 fields: those take their defaults. */
    qc_ethosu_layer_options o = QC_ETHOSU_LAYER_OPTIONS_INIT;
    memcpy(&o, opts, opts->version == 1 ? OPTIONS_SIZE_V1 : sizeof o);
    int u85 = qc__ethosu_is_u85((qc_ethosu_config)o.config);
    if (u85) QC_TRY(qc__ethosu85_check_channels(bias, scale, shift, shape[0], o.ifm_bits, __func__));
    else QC_TRY(check_channels(bias, scale, shift, shape[0], __func__));
    qc_ethosu_layer *l = calloc(1, sizeof *l);
    if (l == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot allocate a layer");
    qc_status st = u85 ? qc__ethosu85_pack(l, ohwi, shape, bias, scale, shift, &o, __func__)
                       : pack(l, ohwi, shape, bias, scale, shift, &o, __func__);
    if (st != QC_OK) {
        qc_ethosu_layer_free(l);
        return st;
    }
    *out = l;
    return QC_OK;
}

qc_status qc_ethosu_layer_stream(const uint8_t **data, size_t *size, const qc_ethosu_layer *layer)
{
    QC_CHECK_NOT_NULL(data);
    QC_CHECK_NOT_NULL(size);
    QC_CHECK_NOT_NULL(layer);
    *data = layer->data;
    *size = layer->size;
    return QC_OK;
}

qc_status qc_ethosu_layer_ranges(const qc_ethosu_range **ranges, size_t *count, const qc_ethosu_layer *layer)
{
    QC_CHECK_NOT_NULL(ranges);
    QC_CHECK_NOT_NULL(count);
    QC_CHECK_NOT_NULL(layer);
    *ranges = layer->ranges;
    *count = layer->nranges;
    return QC_OK;
}

void qc_ethosu_layer_free(qc_ethosu_layer *layer)
{
    if (layer == NULL) return;
    free(layer->data);
    free(layer->ranges);
    free(layer);
}
