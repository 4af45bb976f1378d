/*
 * qc_quant.h: the uniform quantizer that every other part of qcore uses.
 *
 * A grid has 2^bits integer levels q in [qmin, qmax] and maps a real value x to
 *     q = clamp(round_half_to_even(x / scale) + zero_point, qmin, qmax),    x' = (q - zero_point) * scale,
 * computed in float32 exactly as ONNX QuantizeLinear / DequantizeLinear do.
 *
 * Ranges (qmin, qmax):  signed    [-2^(b-1), 2^(b-1)-1],  narrow range [-2^(b-1)+1, 2^(b-1)-1];
 *                       unsigned  [0, 2^b-1],             narrow range [1, 2^b-1].
 *
 * Granularity, with the ONNX layout of the parameter tensors (scale f32, zero point i32):
 *   QC_GRAN_TENSOR   one (scale, zero point); parameters have ndim 0 (any one-element shape is accepted).
 *   QC_GRAN_CHANNEL  one per index along `axis`; parameters have shape [dims[axis]].
 *   QC_GRAN_GROUP    one per block of `group_size` consecutive indices along `axis` (the reduction axis,
 *                    1 for a [out, in] weight), per index of every other axis; parameters have the shape
 *                    of x with dims[axis] replaced by ceil(dims[axis] / group_size).
 *
 * Scale selection (per parameter group, over the group's values):
 *   QC_SCALE_MINMAX      the range [min, max] of the values (symmetric: [-absmax, absmax]);
 *   QC_SCALE_PERCENTILE  the range between the (100-p)th and pth percentiles (symmetric: the pth
 *                        percentile of |x|), linear interpolation as numpy.percentile;
 *   QC_SCALE_MSE         the range alpha * minmax range for the alpha in
 *                        {mse_min_ratio + (1 - mse_min_ratio) * i / (mse_steps - 1), i = 0..mse_steps-1}
 *                        that gives the least squared error of fake quantization; ties go to the larger
 *                        alpha.
 * From a range [lo, hi] (always widened to include 0, so that 0 is exact):
 *   symmetric signed:    scale = max(|lo|, |hi|) / qmax,  zero point 0;
 *   symmetric unsigned:  zero point z = (qmin + qmax + 1) / 2, scale = max(|lo|, |hi|) / (qmax - z);
 *   asymmetric:          scale = (hi - lo) / (qmax - qmin), z = clamp(round_half_to_even(qmin - lo / scale));
 *   a range of width 0 gives scale 1 (every value is then exactly the zero point).
 * Scales are computed in double and stored as float32; the asymmetric zero point is computed (in double)
 * from that stored float32 scale.
 *
 * Inputs must be finite (QC_ERR_NUMERIC names the first NaN or Inf found) and C-contiguous.
 */
#ifndef QC_QUANT_H
#define QC_QUANT_H

#include "qcore/qc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qc_granularity {
    QC_GRAN_TENSOR = 0,
    QC_GRAN_CHANNEL = 1,
    QC_GRAN_GROUP = 2
} qc_granularity;

typedef enum qc_scale_method {
    QC_SCALE_MINMAX = 0,
    QC_SCALE_PERCENTILE = 1,
    QC_SCALE_MSE = 2
} qc_scale_method;

#define QC_QUANT_OPTIONS_VERSION 1

/* A grid and how to choose its parameters. Initialise with QC_QUANT_OPTIONS_INIT or
 * qc_quant_options_init; later versions only append fields. */
typedef struct qc_quant_options {
    uint32_t version;               /* QC_QUANT_OPTIONS_VERSION */
    int32_t bits;                   /* 2..16 (default 8) */
    int32_t is_signed;              /* 1: signed levels, 0: unsigned (default 1) */
    int32_t symmetric;              /* 1: zero point fixed (0 or mid-range), 0: fitted (default 1) */
    int32_t narrow_range;           /* 1: drop the most negative signed level, or 0 when unsigned (default 0) */
    qc_granularity granularity;     /* default QC_GRAN_TENSOR */
    int32_t axis;                   /* channel axis, or the axis the groups run along; negative counts
                                       from the end (default 0) */
    int64_t group_size;             /* QC_GRAN_GROUP only: >= 1 (default 128) */
    qc_scale_method scale_method;   /* default QC_SCALE_MINMAX */
    double percentile;              /* QC_SCALE_PERCENTILE: in (50, 100] (default 99.99) */
    int32_t mse_steps;              /* QC_SCALE_MSE: candidates, 2..10000 (default 100) */
    double mse_min_ratio;           /* QC_SCALE_MSE: smallest alpha, in (0, 1) (default 0.2) */
} qc_quant_options;

#define QC_QUANT_OPTIONS_INIT \
    { QC_QUANT_OPTIONS_VERSION, 8, 1, 1, 0, QC_GRAN_TENSOR, 0, 128, QC_SCALE_MINMAX, 99.99, 100, 0.2 }

/* Fills `opts` with the defaults of `version` (QC_ERR_VERSION for 0 or a version newer than the
 * library's). */
QC_API qc_status qc_quant_options_init(qc_quant_options *opts, unsigned version);

/* Checks every field of `opts` against its bounds, and against `x` when it is not NULL (axis within
 * x's rank). `opts` and `x` are borrowed. */
QC_API qc_status qc_quant_options_check(const qc_quant_options *opts, const qc_tensor *x);

/* The integer range of the grid: `qmin`, `qmax` (either may be NULL). */
QC_API qc_status qc_quant_range(int32_t *qmin, int32_t *qmax, const qc_quant_options *opts);

/* The shape the scale and zero-point tensors must have for an input `x` (see the table above):
 * `ndim` receives the rank and `dims` (QC_MAX_DIMS entries) the extents. */
QC_API qc_status qc_quant_param_shape(int32_t *ndim, int64_t *dims, const qc_tensor *x,
                                      const qc_quant_options *opts);

/* Chooses the parameters for `x` (f32): writes `scale` (f32, shape from qc_quant_param_shape, all
 * entries > 0) and `zero_point` (i32, same shape; may be NULL for a symmetric grid, whose zero points
 * are fixed). Parallel over parameter groups with ctx's threads; the result does not depend on them.
 * All tensors are borrowed. */
QC_API qc_status qc_quant_choose_params(qc_ctx *ctx, qc_tensor *scale, qc_tensor *zero_point, const qc_tensor *x,
                                        const qc_quant_options *opts);

/* Quantizes `x` (f32) into `q`, whose dtype must hold [qmin, qmax]: i8/u8/i16/i32, or int4/uint4 for
 * grids of at most 4 bits (packed as ONNX, two per byte, low nibble first). `q` has x's shape.
 * `zero_point` may be NULL only for a symmetric grid (its zero point is then 0, or (qmin + qmax + 1) / 2
 * when unsigned). Each zero point must lie in [qmin, qmax] and each scale must be finite and > 0. */
QC_API qc_status qc_quantize(qc_ctx *ctx, qc_tensor *q, const qc_tensor *x, const qc_tensor *scale,
                             const qc_tensor *zero_point, const qc_quant_options *opts);

/* Dequantizes `q` (any integer dtype qc_quantize writes) into `x` (f32, q's shape). Values of `q`
 * outside [qmin, qmax] give QC_ERR_INVALID_ARG. */
QC_API qc_status qc_dequantize(qc_ctx *ctx, qc_tensor *x, const qc_tensor *q, const qc_tensor *scale,
                               const qc_tensor *zero_point, const qc_quant_options *opts);

/* y = dequantize(quantize(x)) without storing the integers; `y` (f32, x's shape) may alias `x`. */
QC_API qc_status qc_fake_quantize(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *scale,
                                  const qc_tensor *zero_point, const qc_quant_options *opts);

/* Packs `n` 4-bit values (each in [-8, 7] when is_signed, else [0, 15]) into ceil(n/2) bytes, low nibble
 * first; an odd count leaves the last high nibble 0. `out` and `values` are borrowed. */
QC_API qc_status qc_pack_int4(uint8_t *out, const int8_t *values, size_t n, int is_signed);

/* Unpacks `n` 4-bit values (sign-extended when is_signed) from ceil(n/2) bytes. */
QC_API qc_status qc_unpack_int4(int8_t *out, const uint8_t *packed, size_t n, int is_signed);

/* ---------------------------------------------------------------------------------------------
 * Statistics reported across qcore. Inputs are f32 or f64 (C-contiguous) with at least one element
 * (QC_ERR_SHAPE otherwise) and finite (QC_ERR_NUMERIC otherwise); sums are taken in double.
 */

/* SQNR in dB of `approx` against `ref` (same shape): 10 log10(sum ref^2 / sum (ref - approx)^2).
 * +infinity when the two are equal; QC_ERR_NUMERIC when ref is all zero and approx is not. */
QC_API qc_status qc_stat_sqnr_db(double *out, const qc_tensor *ref, const qc_tensor *approx);

/* Relative MSE: sum (ref - approx)^2 / sum ref^2; QC_ERR_NUMERIC when ref is all zero. */
QC_API qc_status qc_stat_relative_mse(double *out, const qc_tensor *ref, const qc_tensor *approx);

/* Pearson kurtosis (not excess; 3 for a Gaussian): n sum (x - mean)^4 / (sum (x - mean)^2)^2.
 * QC_ERR_NUMERIC for a constant tensor. */
QC_API qc_status qc_stat_kurtosis(double *out, const qc_tensor *x);

/* max |x| / sqrt(mean x^2); QC_ERR_NUMERIC for an all-zero tensor. */
QC_API qc_status qc_stat_max_over_rms(double *out, const qc_tensor *x);

#ifdef __cplusplus
}
#endif

#endif /* QC_QUANT_H */
