/*
 * qc_ethosu.h: weight and bias packing for Arm Ethos-U55/U65 NPUs, byte for byte as Arm's Vela compiler
 * (ethos-u-vela, its legacy `ethosu.mlw_codec` codec and `weight_compressor`) packs them. Since 1.2.
 * Since 1.4 also Ethos-U85, byte for byte as Vela's Regor backend packs it (its weight order, its own mlw
 * encoder, the fast weight format and the 2:4 sparse layout; see the U85 section below).
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
    QC_ETHOSU_U65_512 = 6,
    /* Since 1.4 (Vela's Regor backend, ethos_u85.cpp). Their ofm_ublock_depth is that of an 8-bit
     * convolution's micro-block (for U85-1024/2048 the deepest of the candidates Regor weighs by OFM
     * shape); ifm_ublock_depth is the 8 input channels read per OFM group. */
    QC_ETHOSU_U85_128 = 7,
    QC_ETHOSU_U85_256 = 8,
    QC_ETHOSU_U85_512 = 9,
    QC_ETHOSU_U85_1024 = 10,
    QC_ETHOSU_U85_2048 = 11
} qc_ethosu_config;

typedef struct qc_ethosu_config_info {
    int32_t macs_per_cycle;    /* all cores together */
    int32_t cores;             /* 2 for U65-512 and U85-512, 4 for U85-1024/2048, else 1 */
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
 * Ethos-U85 weight order and fast weight format (since 1.4), as Vela's Regor backend writes them
 * (ethos_u85_weight_encoder.cpp, ethos_u85.cpp).
 *
 * Order of one core's stream, outermost first: OFM blocks of ofm_block_depth channels; IFM blocks of
 * ifm_block_depth channels, serpentine (forward in even OFM blocks, backward in odd ones, the turning
 * block read twice in a row; one pass for depthwise); sub-kernels of at most 8 / dilation, columns
 * outer, rows inner; IFM micro-blocks (the whole IFM block, 8 channels for 16-bit part-kernel-first, 1
 * for depthwise); OFM micro-blocks of ofm_ublock_depth; for part-kernel-first and depthwise, stride
 * phases y then x (depth-first reads stride 1); kernel rows, each row's columns reversed on odd rows;
 * IFM groups of 8 channels (1 for depthwise) across the micro-block; this core's OFM groups of 4 (core c
 * takes groups c, c + cores, ...); the 4 OFM channels; the IFM group's channels. The kernel elements of
 * a sub-kernel are padded with zero elements to a multiple of 5 (8-bit part-kernel-first) or 10 (16-bit
 * part-kernel-first, depthwise); depthwise also inserts 2 (U85-512, or 16-bit IFM up to 256 MACs) or 6
 * (more than 512 MACs) zero elements after every 10. Positions outside the tensor give 0.
 *
 * Fast weight format (FWD): one stream (the cores' streams interleaved in blocks of ofm_ublock_depth x
 * IFM micro-block x element rounding / cores values); a 256-bit header, LSB first: raw:1, lut2:1, 102
 * zero bits, zero_adjust:8, then 16 LUT entries of 9 bits holding palvals ((|w| << 1) | sign) of the
 * distinct values in order of first appearance; then one index per weight: 2 bits when there are at most
 * 4 distinct values (lut2), 4 bits for at most 16, else (raw) the int8 w + zero_adjust; zeros to a
 * multiple of 32 bytes. Depthwise layers have no FWD form.
 */
typedef enum qc_ethosu85_traversal {
    QC_ETHOSU85_DEPTH_FIRST = 0,
    QC_ETHOSU85_PART_KERNEL = 1,
    QC_ETHOSU85_DEPTHWISE = 2
} qc_ethosu85_traversal;

/* Reads all cores' streams interleaved, as FWD stores them. */
#define QC_ETHOSU85_ALL_CORES (-1)

#define QC_ETHOSU85_REORDER_OPTIONS_VERSION 1

/* Initialise with QC_ETHOSU85_REORDER_OPTIONS_INIT or qc_ethosu85_reorder_options_init; later versions
 * only append fields. */
typedef struct qc_ethosu85_reorder_options {
    uint32_t version;           /* QC_ETHOSU85_REORDER_OPTIONS_VERSION */
    int32_t macs;               /* 128, 256, 512, 1024 or 2048 (default 256): sets the depthwise padding */
    int32_t cores;              /* 1, 2 or 4 (default 1) */
    int32_t core;               /* the stream: 0..cores - 1, or QC_ETHOSU85_ALL_CORES (default 0) */
    int32_t traversal;          /* a qc_ethosu85_traversal (default QC_ETHOSU85_DEPTH_FIRST) */
    int32_t ifm_bits;           /* 8 or 16 (default 8) */
    int32_t ofm_ublock_depth;   /* a multiple of 4 * cores, 4..64 (default 8) */
    int32_t ofm_block_depth;    /* 1..65536 (default 16) */
    int32_t ifm_block_depth;    /* 8..256, a multiple of 8 (default 64; Regor: 16 part-kernel-first) */
    int32_t stride_x;           /* 1..3 (default 1) */
    int32_t stride_y;           /* 1..3 (default 1) */
    int32_t dilation_x;         /* 1 or 2 (default 1) */
    int32_t dilation_y;         /* 1 or 2 (default 1) */
    int32_t sparse;             /* 0 or 1 (default 0): the 2:4 sparse layout (not depthwise): IFM groups of
                                   16 channels, part-kernel-first elements padded to 10; Regor uses it when
                                   every aligned group of 4 IFM channels holds at most 2 nonzero weights and
                                   its cost model prefers it (IFM blocks: 128 deep depth-first, 8-bit) */
} qc_ethosu85_reorder_options;

#define QC_ETHOSU85_REORDER_OPTIONS_INIT { QC_ETHOSU85_REORDER_OPTIONS_VERSION, 256, 1, 0, \
                                           QC_ETHOSU85_DEPTH_FIRST, 8, 8, 16, 64, 1, 1, 1, 1, 0 }

/* Fills `opts` with the defaults of `version` (1..QC_ETHOSU85_REORDER_OPTIONS_VERSION). */
QC_API qc_status qc_ethosu85_reorder_options_init(qc_ethosu85_reorder_options *opts, unsigned version);

/* Writes the weights `ohwi` (int16 [O, H, W, I], I = 1 for depthwise, C-contiguous, borrowed) in the U85
 * order of one core's stream or of the interleaved FWD stream (see above). `out` receives the values
 * (owned by the caller, qc_ethosu_free), `out_count` their number. Not range checked. QC_ERR_INVALID_ARG
 * for depthwise with QC_ETHOSU85_ALL_CORES and more than one core (no FWD form). */
QC_API qc_status qc_ethosu85_reorder(int16_t **out, size_t *out_count, const int16_t *ohwi, const int64_t shape[4],
                                     const qc_ethosu85_reorder_options *opts);

/* Regor's traversal choice for a convolution (ChooseKernelFirst): 1 (part-kernel-first) when
 * (I / rup(I, 16)) * (K / K') >= I / rup(I, D), K = kernel_h * kernel_w, K' = s * floor(K / s) +
 * max(K mod s, r) with (s, r, D) = (5, 2, 64), or (10, 4, 128) for the sparse layout; else 0. Extents
 * >= 1, sparse 0 or 1. */
QC_API qc_status qc_ethosu85_part_kernel_first(int *out, int64_t ifm_depth, int64_t kernel_h, int64_t kernel_w,
                                               int sparse);

typedef enum qc_ethosu85_weight_format {
    QC_ETHOSU85_FORMAT_DEFAULT = 0,  /* the mlw stream as Regor encodes it (qc_ethosu85_encode), one per core */
    QC_ETHOSU85_FORMAT_FAST = 1,     /* FWD, one stream; not for depthwise */
    QC_ETHOSU85_FORMAT_SMALLER = 2   /* FWD when its stream is smaller than the default streams together
                                        (Regor's choice when optimising for size), else default */
} qc_ethosu85_weight_format;

/* Encodes `n` weights (1 .. 2^31 - 1; borrowed; each in -255..255) into the default-format (mlw) stream
 * as Vela's Regor backend encodes U85 weights: the same syntax as qc_ethosu_encode (its decoder reads it),
 * different choices: a new palette every 131072 weights, zero runs when runs of two or more zeros hold at
 * least half of the zeros and 0 is more than 5 times as common as any other value, a palette when it
 * covers at least half of the weights, a greedy Golomb-Rice parameter search. `out` receives the stream (owned by the caller, qc_ethosu_free), `out_size` its length. */
QC_API qc_status qc_ethosu85_encode(uint8_t **out, size_t *out_size, const int16_t *weights, size_t n);

/* Encodes `n` weights (1 .. 2^31 - 1, borrowed, each in -255..255, and for the raw form spanning at
 * most 256 consecutive values) into an FWD stream (see above); zero_adjust (an int8) is 0 when the values
 * lie in -128..127, else -128 - min, as Regor writes uint8 weights (zero point - 128) when the stored value
 * 0 occurs. `out` receives the stream (owned by the caller,
 * qc_ethosu_free), `out_size` its length, a multiple of 32. */
QC_API qc_status qc_ethosu85_fwd_encode(uint8_t **out, size_t *out_size, const int16_t *weights, size_t n);

/* Decodes the first `n` weights (1 .. 2^31 - 1) of an FWD stream of `size` bytes (borrowed). `out`
 * receives them (owned by the caller, qc_ethosu_free). QC_ERR_FORMAT for a stream shorter than its header
 * and n indices, nonzero reserved header bits, both mode bits set, or a LUT palval above 510. Indices
 * read the LUT as stored (unused entries hold 0); a raw byte b gives int8(b) - int8(zero_adjust). */
QC_API qc_status qc_ethosu85_fwd_decode(int16_t **out, size_t n, const uint8_t *stream, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Layer streams: what Vela's weight_compressor writes for one layer. The OFM channels are cut into
 * bricks of ofm_depth_step channels; in each brick, core c (of the configuration's cores) takes channels
 * c, c + cores, ... and gets one sub-stream: its channels' 10-byte bias entries, zeros to a multiple of 16
 * bytes, then its weights (reordered with micro-blocks of the configuration, OFM block depth
 * ceil-shared between cores as (ofm_block_depth + cores - 1 - c) / cores, encoded). Sub-streams follow
 * each other brick by brick, core by core; the range table says where each is.
 *
 * U85 configurations (options version 2) lay a brick out as Regor does: one scale stream (all the brick's
 * channels, U85 entries for a 32-bit accumulator, or 48-bit with 16-bit IFM; zero entries to a multiple
 * of 16), then one weight stream per core in Regor's mlw encoding (qc_ethosu85_encode) or one FWD stream.
 * The first range of a brick carries the scales; the others have scale_bytes 0. The order follows
 * Regor's rules: traversal qc_ethosu85_part_kernel_first for convolutions (traversal AUTO), IFM blocks of
 * 16 (part-kernel-first), 32 (U85-128/256 with a 16-deep micro-block) or 64, micro-blocks of the
 * configuration (16 for depthwise). The block depths Regor's block search picks are not derived here:
 * ofm_block_depth is the caller's, as for U55/U65. The sparse layout is not chosen by the packer.
 */
typedef enum qc_ethosu_traversal {
    QC_ETHOSU_TRAVERSAL_AUTO = 0,         /* Vela's choice for a convolution (qc_ethosu_part_kernel_first);
                                             depth-first for depthwise */
    QC_ETHOSU_DEPTH_FIRST = 1,            /* what Vela uses for fully connected layers */
    QC_ETHOSU_PART_KERNEL_FIRST = 2
} qc_ethosu_traversal;

#define QC_ETHOSU_LAYER_OPTIONS_VERSION 2

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
    /* Version 2 (since 1.4), read for U85 configurations only: */
    int32_t weight_format;     /* a qc_ethosu85_weight_format (default QC_ETHOSU85_FORMAT_DEFAULT) */
    int32_t ofm_ublock_depth;  /* 0 = the configuration's (qc_ethosu_config_get; 16 for depthwise), or
                                  a multiple of 4 times the cores, 4..64 (default 0) */
    int32_t stride_x;          /* 1..3 (default 1): part-kernel-first and depthwise read stride phases */
    int32_t stride_y;          /* 1..3 (default 1) */
} qc_ethosu_layer_options;

#define QC_ETHOSU_LAYER_OPTIONS_INIT { QC_ETHOSU_LAYER_OPTIONS_VERSION, QC_ETHOSU_U55_128, 16, 0, 0, 8, 1, 1, 0, \
                                       0, 0, 1, 1 }

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
