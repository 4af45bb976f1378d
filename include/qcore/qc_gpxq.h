/*
 * qc_gpxq.h: layer-wise post-training quantization that corrects each weight's rounding error with the
 * weights not yet quantized: OPTQ (GPTQ, Frantar et al. 2023) and GPFQ (Lybrand & Saab 2021) in its
 * memory-efficient lower-triangular form (Zhang, Colbert et al., arXiv 2409.17092), and AXE's
 * accumulator-aware constraints on them and on plain round-to-nearest (qc_rtn). Since 1.2.
 *
 * A linear layer has weight W [out, in] (f32, row-major, DESIGN.md §5) and sees inputs X [n, in] (a
 * convolution: W viewed as [out, in*kh*kw] against im2col rows). Both algorithms need only d x d statistics
 * (d = in), accumulated in double batch by batch, so memory does not grow with the number of samples:
 *   OPTQ:  H = (2/n) sum_s x_s x_s^T                        (x_s a row of X, n rows in all)
 *   GPFQ:  H = sum_s xq_s xq_s^T,   G = sum_s xq_s x_s^T    (xq_s the same input as seen by the partly
 *          quantized model, x_s as seen by the float model; G[t][j] = <Xq column t, X column j>)
 * qc_gpxq_stats accumulates them; qc_optq and qc_gpfq take the matrices themselves, so statistics computed
 * elsewhere can be used too. Precision of the statistics: the sums are double; a batch is added in chunks
 * of 256 consecutive rows (the last one shorter), each chunk's products sum_s x_s x_s^T computed in double
 * and added into the sums, except for OPTQ statistics of a float32 batch: there a chunk's products are
 * summed in float32 (sgemm, in its own order, as OPTQ's reference implementation multiplies its batches;
 * twice the speed of double) and then added into the double sums, unless the chunk's largest |x| has
 * 256 |x|^2 >= 2^120 (a float32 sum could overflow), then in double. So each entry of a chunk's float32
 * products is within gamma_k = k u / (1 - k u) (u = 2^-24, k the chunk's rows) of sum |x_si| |x_sj|
 * of its exact value, and chunks and batches are accumulated in double.
 *
 * The grid is any uniform grid of qc_quant.h (bits 2..16, signed or unsigned, symmetric or asymmetric), per
 * tensor, per output channel (granularity QC_GRAN_CHANNEL with axis 0) or per group of `group_size`
 * consecutive inputs of each output channel (QC_GRAN_GROUP with axis 1, or -1). Scales and zero points are
 * chosen by qc_quant's rules (opts->scale_method) and have the shapes qc_quant_param_shape gives for W, so
 * qc_dequantize(q, scale, zero_point, grid) reproduces the dequantized weights these functions return.
 * One weight w is quantized as
 *     q = clamp(round_half_to_even(w / scale) + zero_point, qmin, qmax),   w' = (q - zero_point) * scale
 * in double (w is the algorithm's running value, float32 in OPTQ and double in GPFQ; scale the chosen
 * float32).
 *
 * Shared steps, in this order:
 *  - dead inputs: an input whose diagonal entry of H is 0 never varies in the calibration data. OPTQ sets
 *    that weight column to 0 (and H's diagonal entry to 1); GPFQ quantizes it as 0. Counted in the result.
 *  - act-order (opts->act_order): inputs are processed by decreasing diagonal of H (ties by index); the
 *    outputs are always in the original input order.
 *  - damping: delta = damp_ratio * mean(diag H) is added to H's diagonal.
 *
 * OPTQ, with U the upper-triangular Cholesky factor of H^-1 (H^-1 = U^T U), for each input i in order:
 *     q_i = Q(w_i),   e_i = (w_i - w'_i) / U_ii,   w_j -= e_i U_ij for every later input j,
 * applied to all rows at once, with the updates of a block of `block_size` inputs to later blocks deferred
 * and applied as one matrix product (BLAS-3).
 * Precision: H's damping, its Cholesky factorization and U are computed in double; the weights and their
 * updates, O(out in^2) work, are float32, as in OPTQ's reference implementation: the running weights are
 * float32 (W's values to start with), q_i and e_i are computed from w_i in double, e_i and U_ij are then
 * rounded to float32, and within a sub-block of 16 inputs each update w_j -= e_i U_ij is a float32 product
 * and difference, one input at a time; the updates to the rest of the block and to later blocks are summed
 * by float32 matrix products (sgemm, in its own order) and subtracted once. So two correct implementations
 * of this rule agree up to float32 rounding: a weight within a few float32 ulps of a rounding tie may round
 * the other way.
 * Per tensor and per channel, the updates take an equivalent form that needs no inverse: with R = U^-1
 * (upper triangular, H + delta I = R R^T, read off the factorization), the rule gives W - W' = E U, hence
 * E = (W - W') R, and the weight input j is quantized from is
 *     w_j = W_j + sum_{i<j} (W_i - w'_i) R_ij / R_jj     (W: the given weights, dead columns 0),
 * applied as above with d_i = W_i - w'_i (in double, then float32) and R_ij / R_jj (float32) in place of
 * e_i and -U_ij. Part way, the running weights of inputs not yet reached differ between the two forms;
 * per group, whose parameters are chosen from those, the U form above is used.
 * If H + delta I is not positive definite (Cholesky fails), damp_ratio is multiplied by 10 (from 1e-4 when
 * it is 0) and the factorization retried, at most
 * `max_retries` times; then QC_ERR_SINGULAR names the failing pivot and the last damping. The damping used
 * is reported in qc_gpxq_result: a layer is never skipped.
 * Scales: per tensor and per channel, chosen from W (with dead columns zeroed) before the loop; per group,
 * chosen when the algorithm reaches the group's first input (in processing order), from the group's current,
 * already-updated weights, as OPTQ's reference implementation does.
 *
 * GPFQ, for each input t in order (j < t runs over the inputs processed before t, w' dequantized):
 *     q_t = Q( (sum_{j<=t} G_tj w_j - sum_{j<t} H_tj w'_j) / (H_tt + delta) ),
 * which is the original GPFQ step  q_t = Q(<Xq_t, u + w_t X_t> / |Xq_t|^2),  u = sum_{j<t} (w_j X_j - w'_j
 * Xq_j),  with every inner product read from G and H (exactly when delta = 0). Later inputs' sums are
 * updated a block at a time, as in OPTQ. Scales are chosen from W before the loop (GPFQ does not change W).
 * GPFQ needs no factorization; delta only regularizes the divisions (default as for OPTQ).
 *
 * AXE (Colbert et al., arXiv 2409.17092), on when opts->accumulator_bits = P > 0, makes every produced row
 * fit a P-bit accumulator for every input in the integer range of N-bit inputs [x_min, x_max]
 * (qc_accum_input_range). The levels it bounds are the centred levels c = q - zero_point, in tiles of T
 * inputs by original input index (tile b = floor(i / T), whatever the processing order), each tile a
 * separate inner P-bit accumulator (qc_accum.h). Per (row, tile) it keeps the running sums p (of positive
 * c) and n (of negative c) of the levels chosen so far, and each weight's argument v (OPTQ: the running
 * weight; GPFQ: the argument above; qc_rtn: the weight) is quantized as
 *   1. soft global constraint (when opts->soft_threshold): v <- sign(v) max(|v| - lambda, 0), with
 *      lambda = s theta, theta the Duchi et al. threshold projecting u = w/s - mean(w/s) (the tile's
 *      weights over their scale s) onto the L1 ball of radius Z = (2^P - 2) / (x_max - x_min):
 *      a = sort(|u|) decreasing, rho = max{j : a_j > (a_1 + .. + a_j - Z) / j},
 *      theta = (a_1 + .. + a_rho - Z) / rho, or 0 when |u|_1 <= Z. lambda is computed when the tile's
 *      scale is chosen, from the same values (W with dead inputs zeroed; per group in OPTQ, the group's
 *      running weights);
 *   2. strict local constraint: with A = 2^(P-1) - 1, the levels c that keep x_max p' + x_min n' <= A and
 *      x_min p' + x_max n' >= -A after adding c form an interval [lo, hi] containing 0 (qc_accum.h), solved
 *      exactly in integers (floor and ceiling of the limits):
 *      c = clamp(clamp(round_half_even(v / s), qmin - z, qmax - z), lo, hi),  q = c + z;
 *   3. p += max(c, 0), n += min(c, 0).
 * OPTQ's error feedback and GPFQ's running sums use the dequantized weight of this q, so later weights
 * compensate for both constraints. Guarantee: qc_accum_verify passes on q - zero_point for P, the tile
 * size and the input range, i.e. no partial sum of any tile leaves [-A, A] for any input (by induction
 * over the steps), and the tiles' sum fits P + ceil(log2(ceil(K/T))) bits. The bias is not included.
 *
 * Errors: QC_ERR_INVALID_ARG (NULL, options out of range, an axis other than the above; for AXE, P outside
 * 2..64, N outside 1..32, T outside 0..K or a tile that would span two weight groups), QC_ERR_VERSION,
 * QC_ERR_DTYPE, QC_ERR_LAYOUT (not C-contiguous), QC_ERR_SHAPE (each message names the argument and the
 * shapes), QC_ERR_NUMERIC (NaN or Inf in W, H, G or a batch; the message names the element),
 * QC_ERR_SINGULAR (OPTQ only, see above), QC_ERR_OVERFLOW (an extent beyond 2^31 - 1, the BLAS limit),
 * QC_ERR_OUT_OF_MEMORY, QC_ERR_CANCELLED (the progress callback stopped the call; outputs are untouched).
 * Outputs are written only when the call succeeds.
 *
 * Threads: ctx's count sizes both qcore's loops and OpenBLAS's team (Debian's OpenMP build); the integers
 * do not depend on it.
 */
#ifndef QC_GPXQ_H
#define QC_GPXQ_H

#include "qcore/qc_accum.h"
#include "qcore/qc_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Streaming statistics.
 */
typedef enum qc_gpxq_method {
    QC_GPXQ_OPTQ = 1, /* H = (2/n) sum x x^T */
    QC_GPXQ_GPFQ = 2  /* H = sum xq xq^T and G = sum xq x^T */
} qc_gpxq_method;

/* Accumulated statistics of one layer's inputs: O(dim^2) doubles whatever the number of samples. */
typedef struct qc_gpxq_stats qc_gpxq_stats;

/* Creates empty statistics for inputs of `dim` features (1 .. 2^31 - 1). `out` receives a handle owned by
 * the caller (qc_gpxq_stats_free). */
QC_API qc_status qc_gpxq_stats_create(qc_gpxq_stats **out, qc_gpxq_method method, int64_t dim);

/* Frees statistics; NULL is accepted. */
QC_API void qc_gpxq_stats_free(qc_gpxq_stats *stats);

/* Adds a batch of b samples (b >= 0): `x` [b, dim] (f32 or f64) holds the float model's inputs; for GPFQ,
 * `x_quant` (same shape, f32 or f64) holds the quantized model's inputs for the same samples, and must be
 * NULL for OPTQ. Both are borrowed. NaN or Inf anywhere leaves the statistics unchanged. Precision: see
 * above (OPTQ multiplies float32 batches in float32, chunk by chunk). */
QC_API qc_status qc_gpxq_stats_add(qc_ctx *ctx, qc_gpxq_stats *stats, const qc_tensor *x, const qc_tensor *x_quant);

/* The number of samples added so far. */
QC_API qc_status qc_gpxq_stats_count(int64_t *out, const qc_gpxq_stats *stats);

/* Writes H (f64 [dim, dim], full and symmetric) into `h` (borrowed): (2/n) sum x x^T for OPTQ, sum xq xq^T
 * for GPFQ. QC_ERR_INVALID_ARG when no sample has been added. */
QC_API qc_status qc_gpxq_stats_hessian(qc_tensor *h, const qc_gpxq_stats *stats);

/* Writes G = sum xq x^T (f64 [dim, dim]) into `g` (borrowed). GPFQ statistics only. */
QC_API qc_status qc_gpxq_stats_cross(qc_tensor *g, const qc_gpxq_stats *stats);

/* ---------------------------------------------------------------------------------------------
 * Options and result.
 */
#define QC_GPXQ_OPTIONS_VERSION 2

/* How OPTQ, GPFQ and qc_rtn run. Initialise with QC_GPXQ_OPTIONS_INIT or qc_gpxq_options_init; later
 * versions only append fields. A version-1 struct (the first five fields) is read with AXE off. */
typedef struct qc_gpxq_options {
    uint32_t version;     /* QC_GPXQ_OPTIONS_VERSION */
    double damp_ratio;    /* delta = damp_ratio * mean(diag H); finite, 0..1e6 (default 0.01) */
    int32_t act_order;    /* 1: process inputs by decreasing diag H (default 0) */
    int32_t max_retries;  /* OPTQ: factorizations retried with 10x the damping, 0..20 (default 6) */
    int64_t block_size;   /* inputs per lazy block update, >= 1 (default 128) */
    /* Since version 2: AXE, the accumulator-aware constraints (see below). */
    int32_t accumulator_bits; /* P, the target accumulator width: 0 (AXE off, the default) or 2..64 */
    int32_t input_bits;       /* N, the bits of the layer's integer inputs, 1..32 (default 8) */
    int32_t input_signed;     /* 1: inputs in [-2^(N-1), 2^(N-1) - 1]; 0: [0, 2^N - 1] (default 0) */
    int32_t soft_threshold;   /* 1: apply the soft global constraint too; 0: only the strict one (default 1) */
    int64_t tile_size;        /* T, inputs per inner accumulator: 0 for K (default), else 1..K; per-group
                                 grids need T to divide the group size unless a row is one group */
} qc_gpxq_options;

#define QC_GPXQ_OPTIONS_INIT { QC_GPXQ_OPTIONS_VERSION, 0.01, 0, 6, 128, 0, 8, 0, 1, 0 }

/* Fills `opts` with the defaults of `version` (QC_ERR_VERSION for 0 or a version newer than the library's). */
QC_API qc_status qc_gpxq_options_init(qc_gpxq_options *opts, unsigned version);

#define QC_GPXQ_RESULT_VERSION 2

/* What a call did, for the record. The caller sets `version` (QC_GPXQ_RESULT_INIT); the library fills the
 * fields that version has (a version-1 struct ends at dead_inputs) and leaves the rest of the caller's
 * memory alone.
 *
 * Since version 2, how hard AXE had to work on the layer, so that a user can tell a P that costs nothing
 * from one that reshapes the layer. All are 0 when AXE is off. A "slot" is one (row, tile) pair, one
 * inner accumulator; "argument" is v of step 1 above and "level" a centred level c. The counts describe
 * the arguments the algorithm actually met, which under OPTQ and GPFQ already carry the error feedback of
 * earlier constrained weights; they count events, not the difference to the unconstrained algorithm.
 * Sums over slots are taken in slot order, so every field is the same for any thread count. */
typedef struct qc_gpxq_result {
    uint32_t version;     /* QC_GPXQ_RESULT_VERSION */
    double damp_ratio;    /* the ratio finally used (larger than requested after retries) */
    double damp;          /* delta, the value added to H's diagonal */
    int32_t retries;      /* failed factorizations before the one used (OPTQ) */
    int64_t dead_inputs;  /* inputs whose diagonal of H is 0 */
    /* Since version 2: AXE's statistics. */
    int64_t axe_slots;          /* slots constrained: rows x tiles per row (0: AXE off) */
    int64_t axe_soft_slots;     /* slots whose soft threshold lambda is > 0, i.e. whose |u|_1 (step 1: the
                                   weights in levels minus their mean) exceeded the radius Z (0 when
                                   soft_threshold is 0) */
    int64_t axe_soft_changed;   /* weights whose level soft thresholding changed: the grid-clamped
                                   round(v / s) differs from that of the thresholded argument */
    double axe_soft_removed;    /* the L1 mass soft thresholding removed, in levels: the sum over weights
                                   of min(|v|, lambda) / s (>= 0) */
    int64_t axe_clamped;        /* weights whose level the strict constraint's limits [lo, hi] changed
                                   from the grid-clamped rounding of the (thresholded) argument */
    int64_t axe_clamped_slots;  /* slots with at least one such weight */
    int64_t axe_min_slack;      /* the smallest room left in any slot when the layer is done:
                                   min over slots of A - max(x_max p + x_min n, -(x_min p + x_max n)),
                                   A = 2^(P-1) - 1, in accumulator units (0..A; 0: a worst-case input hits
                                   the bound exactly) */
    int32_t axe_bits_needed;    /* the width the worst slot's final levels need for every input of the
                                   range (qc_accum_verify's figure; at most P) */
} qc_gpxq_result;

#define QC_GPXQ_RESULT_INIT { QC_GPXQ_RESULT_VERSION, 0.0, 0.0, 0, 0, 0, 0, 0, 0.0, 0, 0, 0, 0 }

/* ---------------------------------------------------------------------------------------------
 * The algorithms. Arguments, all borrowed:
 *   q            out: i32 [out, in], the integer levels (zero point included, as qc_quantize stores them);
 *   scale        out: f32 with qc_quant_param_shape(w, grid);
 *   zero_point   out: i32, same shape; may be NULL when the grid is symmetric (its zero point is fixed);
 *   dequantized  out: f32 [out, in], (q - zero_point) * scale; may be NULL;
 *   result       out: may be NULL;
 *   w            f32 [out, in], finite;
 *   h, g         f64 [in, in], finite; H symmetric (only its lower triangle is read);
 *   grid         the uniform grid and how its parameters are chosen (see above for the axes);
 *   opts         NULL for the defaults.
 */
/* OPTQ (see the top of this file) from H; the errors are listed at the top of this file. */
QC_API qc_status qc_optq(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                         qc_gpxq_result *result, const qc_tensor *w, const qc_tensor *h, const qc_quant_options *grid,
                         const qc_gpxq_options *opts);

/* GPFQ (see the top of this file) from H and G; arguments and errors as for qc_optq. */
QC_API qc_status qc_gpfq(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                         qc_gpxq_result *result, const qc_tensor *w, const qc_tensor *h, const qc_tensor *g,
                         const qc_quant_options *grid, const qc_gpxq_options *opts);

/* qc_optq with H = (2/n) sum x x^T taken from OPTQ statistics `stats` (qc_gpxq_stats_create with
 * QC_GPXQ_OPTQ, `in` inputs, at least one sample) instead of a tensor: the same integers as
 * qc_optq(..., h = qc_gpxq_stats_hessian(stats), ...), without H's [in, in] copy. The statistics' storage
 * is the factorization's workspace, so they need no second [in, in] buffer: peak memory is the statistics,
 * the float32 running weights and the int32 levels (each [out, in]) and O(block x in), plus under
 * act-order with a per-tensor or per-channel grid a float32 copy of W in processing order ([out, in], read
 * a block at a time instead of W's scattered columns). `stats` is
 * borrowed and written during the call (not thread-safe against other use of it), and holds the same
 * statistics afterwards, whatever the outcome: samples may still be added. Errors as for qc_optq;
 * QC_ERR_INVALID_ARG for NULL, GPFQ or empty statistics, QC_ERR_SHAPE when `in` differs. */
QC_API qc_status qc_optq_from_stats(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point,
                                    qc_tensor *dequantized, qc_gpxq_result *result, const qc_tensor *w,
                                    qc_gpxq_stats *stats, const qc_quant_options *grid, const qc_gpxq_options *opts);

/* Round-to-nearest of W with the grid's parameters chosen from W (qc_quant_choose_params' rule), input by
 * input in index order, by the rule q = ... above (w / scale in double; qc_quantize divides in float32, so
 * a weight within float32 rounding of a half level may round the other way there); with AXE on
 * (opts->accumulator_bits > 0), the constrained rounding above (RTN+AXE). Needs no statistics; damp_ratio, act_order, max_retries and
 * block_size are not used. Arguments as for qc_optq. */
QC_API qc_status qc_rtn(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                        qc_gpxq_result *result, const qc_tensor *w, const qc_quant_options *grid,
                        const qc_gpxq_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* QC_GPXQ_H */
