/*
 * qc_ethosu.h: weight and bias packing for Arm Ethos-U55/U65 NPUs, byte for byte as Arm's Vela compiler
 * (ethos-u-vela, its legacy `ethosu.mlw_codec` codec and `weight_compressor`) packs them. Since 1.2.
 *
 * Weight stream ("mlw" format). Input: weights in -255..255 with the zero point already subtracted. Each
 * maps to palval = (|w| << 1) | sign (0..511). The stream is a sequence of sections, each with its own
 * palette, cut into slices; bits are written LSB first. A slice header is ZDIV:3 SLICELEN:15 (= n - 1)
 * WDIV:3 WTRUNC:1 NEWPAL:1 and, when NEWPAL, DIROFS:5 PALSIZE:5 (= size - 1, 0 for none) PALBITS:3
 * (= bits - 2) and the palette. Weights are coded as indices (palette entry, or palval - DIROFS + size
 * outside it) with Golomb-Rice codes (divisor WDIV 0..5, truncated with WTRUNC, or raw with WDIV = 7);
 * with ZDIV 0..3 zeros are coded apart as run lengths (ZDIV 6: none). The stream ends with ZDIV = 7, one
 * bits to a byte boundary, and 0xFF bytes to a multiple of 16 bytes. The encoder's choices (palette
 * restarts, zero runs, palette contents, Golomb-Rice parameters searched over the whole section) are
 * those of Vela's mlw_encode, so that the bytes are identical; any valid stream, from the legacy or the
 * newer (Regor) encoder, decodes.
 *
 * Weight order (U55/U65). A convolution's weights [O, H, W, I] (OHWI, int16, C-contiguous) are traversed
 * as the NPU reads them: OFM blocks of ofm_block_depth channels; IFM blocks of 32 channels (16 for
 * part-kernel-first or 16-bit IFM; one for depthwise); sub-kernels of at most decomp_h x decomp_w
 * (8 / dilation); then (part-kernel-first) IFM micro-blocks; OFM micro-blocks; kernel elements (padded to
 * a multiple of 4 for depthwise and 8-bit part-kernel-first, 2 for 16-bit part-kernel-first); (depth-first)
 * IFM micro-blocks over the whole IFM block; OFM micro-block channels; IFM micro-block channels (one for
 * depthwise, which reads input channel 0). Positions outside the tensor give 0.
 *
 * Bias and scale entries (U55/U65): 10 bytes little-endian per output channel: bias as signed 40 bits,
 * scale as unsigned 32 bits, shift in the low 6 bits of the last byte. U85 entries, also 10 bytes: for a
 * 32-bit accumulator, bias int32 (bytes 0-3), scale 31 bits (4-7), shift (8); for a 48-bit accumulator,
 * bias int48 (0-5), scale 15 bits (6-7), shift (8); byte 9 is 0.
 *
 * Errors (each message names the argument): QC_ERR_INVALID_ARG (NULL, a weight outside -255..255 (the
 * message gives its index and value), options out of range, an empty input), QC_ERR_VERSION,
 * QC_ERR_SHAPE, QC_ERR_NUMERIC (NaN or Inf scale), QC_ERR_FORMAT (a malformed stream: the message gives the
 * bit position and what was wrong), QC_ERR_OVERFLOW (more than 2^31 - 1 values), QC_ERR_OUT_OF_MEMORY.
 * Outputs are written only when a call succeeds. Buffers the library returns are freed with
 * qc_ethosu_free.
 */
#ifndef QC_ETHOSU_H
#define QC_ETHOSU_H

#include "qcore/qc_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest weight magnitude the format codes (9-bit sign and magnitude). */
#define QC_ETHOSU_MAX_WEIGHT 255

/* ---------------------------------------------------------------------------------------------
 * Weight-stream codec.
 */

/* Encodes `n` weights (1 .. 2^31 - 1; borrowed; each in -255..255) into a stream byte-identical to Vela's
 * mlw_codec.encode. `out` receives the stream (owned by the caller, qc_ethosu_free), `out_size` its length,
 * a multiple of 16. An empty input is rejected: Vela writes a stream with SLICELEN = -1 for it, which no
 * decoder reads back. */
QC_API qc_status qc_ethosu_encode(uint8_t **out, size_t *out_size, const int16_t *weights, size_t n);

/* Decodes a stream of `size` bytes (borrowed). `out` receives the weights (owned by the caller,
 * qc_ethosu_free; NULL when the stream holds none), `out_count` their number. Streams may be
 * concatenated (each end marker restarts the palette). QC_ERR_FORMAT for a truncated or malformed stream:
 * a reserved ZDIV or WDIV, a first slice without a palette, a zero-run mode changed without a new
 * palette, a weight index beyond palval 511, or missing end marker. */
QC_API qc_status qc_ethosu_decode(int16_t **out, size_t *out_count, const uint8_t *stream, size_t size);

/* Frees a buffer returned by this header's functions; NULL is accepted. */
QC_API void qc_ethosu_free(void *buffer);

/* ---------------------------------------------------------------------------------------------
 * NPU configurations.
 */
typedef enum qc_ethosu_config {
    QC_ETHOSU_U55_32 = 1,
    QC_ETHOSU_U55_64 = 2,
    QC_ETHOSU_U55_128 = 3,
    QC_ETHOSU_U55_256 = 4,
    QC_ETHOSU_U65_256 = 5,
    QC_ETHOSU_U65_512 = 6
} qc_ethosu_config;

typedef struct qc_ethosu_config_info {
    int32_t macs_per_cycle;    /* all cores together */
    int32_t cores;             /* 2 for U65-512, else 1 */
    int32_t ofm_ublock_depth;  /* output channels of a micro-block: 8 (4 on U55-32) */
    int32_t ifm_ublock_depth;  /* input channels of a micro-block: 8 */
} qc_ethosu_config_info;

/* The figures of `config` (Vela's architecture_features). QC_ERR_INVALID_ARG for an unknown value. */
QC_API qc_status qc_ethosu_config_get(qc_ethosu_config_info *out, qc_ethosu_config config);

/* "ethos-u55-128" etc. (Vela's --accelerator-config names); "unknown" otherwise. Static. */
QC_API const char *qc_ethosu_config_string(qc_ethosu_config config);

/* ---------------------------------------------------------------------------------------------
 * Weight order.
 */
#define QC_ETHOSU_REORDER_OPTIONS_VERSION 1

/* The parameters of Vela's mlw_codec.reorder_encode. Initialise with QC_ETHOSU_REORDER_OPTIONS_INIT or
 * qc_ethosu_reorder_options_init; later versions only append fields. */
typedef struct qc_ethosu_reorder_options {
    uint32_t version;           /* QC_ETHOSU_REORDER_OPTIONS_VERSION */
    int32_t ifm_ublock_depth;   /* 1..64 (default 8) */
    int32_t ofm_ublock_depth;   /* 1..64 (default 8) */
    int32_t ofm_block_depth;    /* 1..65536 (default 16) */
    int32_t depthwise;          /* 0 or 1 (default 0) */
    int32_t part_kernel;        /* 0 depth-first, 1 part-kernel-first; not with depthwise (default 0) */
    int32_t ifm_bits;           /* 8 or 16 (default 8) */
    int32_t decomp_h;           /* sub-kernel height, 1..64: 8 / dilation_y on Ethos-U (default 8) */
    int32_t decomp_w;           /* sub-kernel width, 1..64: 8 / dilation_x (default 8) */
} qc_ethosu_reorder_options;

#define QC_ETHOSU_REORDER_OPTIONS_INIT { QC_ETHOSU_REORDER_OPTIONS_VERSION, 8, 8, 16, 0, 0, 8, 8, 8 }

/* Fills `opts` with the defaults of `version` (1..QC_ETHOSU_REORDER_OPTIONS_VERSION). */
QC_API qc_status qc_ethosu_reorder_options_init(qc_ethosu_reorder_options *opts, unsigned version);

/* Writes the weights `ohwi` (int16 [O, H, W, I], shape[i] >= 1, C-contiguous, borrowed) in the NPU's
 * order (see the top of this header), zero-padded as the hardware reads them. `out` receives the
 * values (owned by the caller, qc_ethosu_free), `out_count` their number. The weights are not range
 * checked here (the encoder does). */
QC_API qc_status qc_ethosu_reorder(int16_t **out, size_t *out_count, const int16_t *ohwi, const int64_t shape[4],
                                   const qc_ethosu_reorder_options *opts);

/* qc_ethosu_reorder followed by qc_ethosu_encode: byte-identical to Vela's mlw_codec.reorder_encode, whose
 * second result is `reordered_count` (may be NULL). */
QC_API qc_status qc_ethosu_reorder_encode(uint8_t **out, size_t *out_size, size_t *reordered_count,
                                          const int16_t *ohwi, const int64_t shape[4],
                                          const qc_ethosu_reorder_options *opts);

/* Vela's block traversal choice for a convolution (not depthwise): 1 (part-kernel-first) when
 * ifm_depth <= 8 or (I / rup(I, 8)) * (K / rup(K, k)) >= I / rup(I, d), with K = kernel_h * kernel_w,
 * k = 4 and d = 32 for 8-bit IFM, k = 2 and d = 16 for 16-bit; else 0 (depth-first). Extents >= 1. */
QC_API qc_status qc_ethosu_part_kernel_first(int *out, int64_t ifm_depth, int64_t kernel_h, int64_t kernel_w,
                                             int ifm_bits);

/* ---------------------------------------------------------------------------------------------
 * Scales and bias entries.
 */

/* Vela's quantise_scale: m, e = frexp(s); scale = round half away from zero (m * 2^31); shift = 31 - e;
 * a shift outside 0..63 gives (0, 16). `s` finite (negative values give a negative scale, as in Vela). */
QC_API qc_status qc_ethosu_quantise_scale(int64_t *scale, int32_t *shift, double s);

/* Vela's reduced_quantise_scale (16-bit IFM with a 64-bit bias): from quantise_scale's (scale, shift),
 * floor((scale + 2^15) / 2^16), or 32767 once scale >= 32767 * 2^16, and shift - 16. As in Vela, the
 * shift may be negative (for s >= 2^15), and an out-of-range s, (0, 16) above, gives (0, 0). */
QC_API qc_status qc_ethosu_reduced_quantise_scale(int64_t *scale, int32_t *shift, double s);

/* The U55/U65 entry of one output channel (Vela's encode_bias): `bias` in -2^39 .. 2^39 - 1, `scale` in
 * 0 .. 2^32 - 1, `shift` in 0..63. `out` (borrowed) receives 10 bytes. */
QC_API qc_status qc_ethosu_pack_bias(uint8_t out[10], int64_t bias, int64_t scale, int32_t shift);

/* The U85 entry of one output channel, for accumulator_bits 32 (bias int32, scale 0 .. 2^31 - 1) or 48
 * (bias -2^47 .. 2^47 - 1, scale 0 .. 2^15 - 1); shift 0..63. `out` (borrowed) receives 10 bytes. */
QC_API qc_status qc_ethosu85_pack_bias(uint8_t out[10], int64_t bias, int64_t scale, int32_t shift,
                                       int accumulator_bits);

/* ---------------------------------------------------------------------------------------------
 * Layer streams: what Vela's weight_compressor writes for one layer. The OFM channels are cut into
 * bricks of ofm_depth_step channels; in each brick, core c (of the configuration's cores) takes channels
 * c, c + cores, ... and gets one sub-stream: its channels' 10-byte bias entries, zeros to a multiple of 16
 * bytes, then its weights (reordered with micro-blocks of the configuration, OFM block depth
 * ceil-shared between cores as (ofm_block_depth + cores - 1 - c) / cores, encoded). Sub-streams follow
 * each other brick by brick, core by core; the range table says where each is.
 */
typedef enum qc_ethosu_traversal {
    QC_ETHOSU_TRAVERSAL_AUTO = 0,         /* Vela's choice for a convolution (qc_ethosu_part_kernel_first);
                                             depth-first for depthwise */
    QC_ETHOSU_DEPTH_FIRST = 1,            /* what Vela uses for fully connected layers */
    QC_ETHOSU_PART_KERNEL_FIRST = 2
} qc_ethosu_traversal;

#define QC_ETHOSU_LAYER_OPTIONS_VERSION 1

/* Initialise with QC_ETHOSU_LAYER_OPTIONS_INIT or qc_ethosu_layer_options_init; later versions only
 * append fields. */
typedef struct qc_ethosu_layer_options {
    uint32_t version;          /* QC_ETHOSU_LAYER_OPTIONS_VERSION */
    int32_t config;            /* a qc_ethosu_config (default QC_ETHOSU_U55_128) */
    int32_t ofm_block_depth;   /* 1..65536 (default 16): the block configuration's OFM depth */
    int32_t depthwise;         /* 0 or 1 (default 0); weights are then [O, H, W, 1] */
    int32_t traversal;         /* a qc_ethosu_traversal (default AUTO); part-kernel-first not with depthwise */
    int32_t ifm_bits;          /* 8 or 16 (default 8) */
    int32_t dilation_x;        /* 1 or 2 (default 1): sub-kernels are 8 / dilation wide */
    int32_t dilation_y;        /* 1 or 2 (default 1) */
    int32_t ofm_depth_step;    /* OFM channels per brick, 0 = all in one brick (default 0) */
} qc_ethosu_layer_options;

#define QC_ETHOSU_LAYER_OPTIONS_INIT { QC_ETHOSU_LAYER_OPTIONS_VERSION, QC_ETHOSU_U55_128, 16, 0, 0, 8, 1, 1, 0 }

/* Fills `opts` with the defaults of `version` (1..QC_ETHOSU_LAYER_OPTIONS_VERSION). */
QC_API qc_status qc_ethosu_layer_options_init(qc_ethosu_layer_options *opts, unsigned version);

/* One core's sub-stream of one brick (Vela's WeightRange). Offsets are in bytes. */
typedef struct qc_ethosu_range {
    int64_t depth_offset;   /* first OFM channel of the brick */
    int64_t core;
    int64_t offset;         /* start of the sub-stream in the layer's stream (a multiple of 16) */
    int64_t scale_bytes;    /* 10 per channel of this core in the brick */
    int64_t weight_offset;  /* start of the weights, from `offset` (scale_bytes rounded up to 16) */
    int64_t weight_bytes;   /* the encoded weights (a multiple of 16) */
} qc_ethosu_range;

/* A packed layer: its stream and range table. */
typedef struct qc_ethosu_layer qc_ethosu_layer;

/* Packs one layer: `ohwi` (int16 [O, H, W, I], zero point already subtracted, each in -255..255,
 * C-contiguous, borrowed); per OFM channel `bias` (O values, or NULL for zeros), `scale` (O values,
 * 0 .. 2^32 - 1) and `shift` (O values, 0..63), all borrowed. `out` receives a layer owned by the caller
 * (qc_ethosu_layer_free). QC_ERR_INVALID_ARG names the first bad channel or weight. */
QC_API qc_status qc_ethosu_pack_layer(qc_ethosu_layer **out, const int16_t *ohwi, const int64_t shape[4],
                                      const int64_t *bias, const int64_t *scale, const int32_t *shift,
                                      const qc_ethosu_layer_options *opts);

/* The layer's stream: `data` (owned by the layer) and its `size` in bytes. */
QC_API qc_status qc_ethosu_layer_stream(const uint8_t **data, size_t *size, const qc_ethosu_layer *layer);

/* The range table: `ranges` (owned by the layer) and `count`, brick by brick, core by core. */
QC_API qc_status qc_ethosu_layer_ranges(const qc_ethosu_range **ranges, size_t *count, const qc_ethosu_layer *layer);

/* Frees a layer; NULL is accepted. */
QC_API void qc_ethosu_layer_free(qc_ethosu_layer *layer);

#ifdef __cplusplus
}
#endif

#endif
