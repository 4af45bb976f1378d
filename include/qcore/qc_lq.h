/*
 * qc_lq.h: learned non-uniform quantization (LQ-Nets, Zhang et al. 2018) fitted after training by
 * quantization error minimization (QEM), and the bit-planes the bit-serial kernels of qc_kernels.h read.
 * Since 1.2.
 *
 * A basis v = (v_0 .. v_{K-1}) of K = 1..4 floats defines 2^K levels: the code c (an integer 0 .. 2^K - 1,
 * bit j of c is the code bit of basis entry j) stands for
 *     level(c) = sum_j v_j b_j(c),   b_j(c) = bit_j(c) ? +1 : -1   (QC_LQ_SIGNED: weights, signed inputs)
 *                                    b_j(c) = bit_j(c) ?  1 :  0   (QC_LQ_UNSIGNED: inputs after a ReLU)
 * computed in double. A value x is encoded as the code of its nearest level: the levels are sorted
 * (equal levels by code), the thresholds are the midpoints of neighbouring levels, and x takes the level
 * whose interval holds it, i.e. the one at index #{thresholds t : t < x} (a value exactly on a threshold
 * takes the lower level).
 *
 * QEM fits one basis per row of a 2-D array X [G, n]: a weight W [out, in] gives one basis per output
 * channel; activations give one basis per layer (X viewed as [1, samples * features]) or per channel
 * (X transposed to [features, samples]). For each row x, with B the K x n matrix of code bits b_j of the
 * current codes:
 *   0. v = the initial basis: v_j = r 2^(j + 1 - K), r = sqrt(mean(x^2)) (uniform levels reaching
 *      +-2 r (1 - 2^-K) for signed codes, 0 .. 2 r (1 - 2^-K) for unsigned ones);
 *   1. encode x with v; E = |x - level(codes)|^2 (in double);
 *   2. v' = (B B^T + delta I)^-1 (B x + delta v)   (the closed form; delta = opts->ridge), solved through
 *      LAPACK (B B^T and B x are formed from the count and the sum of x for each code);
 *   3. encode x with v' and compute its error E'; if E' < E and E - E' > tol E, accept v = v', E = E' and
 *      go back to 2, at most opts->max_iters times; otherwise stop with v.
 * So the error never rises from one iteration to the next. When B B^T + delta I is singular (delta = 0 and
 * a code bit constant over the row) the row stops with its current basis.
 *
 * Bit-planes: `planes` is i64 [rows, K, W] holding unsigned 64-bit words, W = qc_lq_plane_words(n) (n rounded
 * up to 512 bits, so that every kernel reads whole vectors): element k of a row's plane j is bit (k & 63) of
 * word k >> 6, set when bit j of the element's code is set; the padding bits are 0.
 *
 * Errors: QC_ERR_INVALID_ARG (NULL, K outside 1..4, an unknown code, options out of range), QC_ERR_VERSION,
 * QC_ERR_DTYPE, QC_ERR_LAYOUT (not C-contiguous), QC_ERR_SHAPE (each message names the argument and the
 * shapes), QC_ERR_NUMERIC (NaN or Inf in x or a basis; the message names the element),
 * QC_ERR_OUT_OF_MEMORY. Outputs are written only when the call succeeds.
 * Threads: rows are spread over ctx's threads; qc_lq_fit, given fewer rows than threads (a layer's
 * activations as one row), spreads each row's values instead, in fixed chunks of 65536 whose partial sums
 * are added in order. Every sum has one order, so the results do not depend on the thread count.
 */
#ifndef QC_LQ_H
#define QC_LQ_H

#include "qcore/qc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Code sets. Values are part of the ABI. */
typedef enum qc_lq_code {
    QC_LQ_SIGNED = 1,   /* code bits mean -1 / +1 */
    QC_LQ_UNSIGNED = 2  /* code bits mean 0 / 1 */
} qc_lq_code;

#define QC_LQ_MAX_BITS 4

#define QC_LQ_OPTIONS_VERSION 1

/* How QEM runs. Initialise with QC_LQ_OPTIONS_INIT or qc_lq_options_init; later versions only append
 * fields. */
typedef struct qc_lq_options {
    uint32_t version;    /* QC_LQ_OPTIONS_VERSION */
    int32_t max_iters;   /* closed-form steps at most, 0..10000 (default 100; 0 keeps the initial basis) */
    double ridge;        /* delta, finite, 0..1e6 (default 1e-4, LQ-Nets' value) */
    double tol;          /* stop when an iteration lowers the error by no more than tol times it; finite,
                            0..1 (default 0: stop when the error stops falling) */
} qc_lq_options;

#define QC_LQ_OPTIONS_INIT { QC_LQ_OPTIONS_VERSION, 100, 1e-4, 0.0 }

/* Fills `opts` with the defaults of `version` (QC_ERR_VERSION for 0 or a version newer than the library's). */
QC_API qc_status qc_lq_options_init(qc_lq_options *opts, unsigned version);

#define QC_LQ_FIT_RESULT_VERSION 1

/* What a fit did. The caller sets `version` (QC_LQ_FIT_RESULT_INIT). Errors are sums over all rows of
 * squared differences between x and its levels. */
typedef struct qc_lq_fit_result {
    uint32_t version;      /* QC_LQ_FIT_RESULT_VERSION */
    int32_t iterations;    /* accepted closed-form steps of the row that took the most */
    double error_initial;  /* with the initial bases */
    double error_final;    /* with the fitted bases */
} qc_lq_fit_result;

#define QC_LQ_FIT_RESULT_INIT { QC_LQ_FIT_RESULT_VERSION, 0, 0.0, 0.0 }

/* Fits one basis per row of x (QEM, above). Arguments, all borrowed:
 *   basis    out: f32 [G, K], K = dims[1] in 1..4;
 *   result   out: may be NULL;
 *   history  out: f64 [max_iters + 1] or NULL: entry i is the total error after i steps (entry 0 with the
 *            initial bases; a row that stopped contributes its final error to later entries);
 *   x        f32 [G, n], n >= 1, finite;
 *   code     the code set of every row;
 *   opts     NULL for the defaults. */
QC_API qc_status qc_lq_fit(qc_ctx *ctx, qc_tensor *basis, qc_lq_fit_result *result, qc_tensor *history,
                           const qc_tensor *x, qc_lq_code code, const qc_lq_options *opts);

/* The sorted levels of each basis (f64 [G, 2^K]), and optionally their codes (u8 [G, 2^K]) and the
 * thresholds between them (f64 [G, 2^K - 1]); `codes` and `thresholds` may be NULL. `basis` f32 [G, K],
 * finite. All borrowed. */
QC_API qc_status qc_lq_levels(qc_tensor *levels, qc_tensor *codes, qc_tensor *thresholds, const qc_tensor *basis,
                              qc_lq_code code);

/* Encodes x (f32 [R, n], finite) into codes (out: u8 [R, n]) with `basis` f32 [R, K] (one per row) or
 * [1, K] (one for all rows). All borrowed. */
QC_API qc_status qc_lq_encode(qc_ctx *ctx, qc_tensor *codes, const qc_tensor *x, const qc_tensor *basis,
                              qc_lq_code code);

/* The levels of codes (u8 [R, n], each below 2^K) as f32 (out: [R, n]), with `basis` as for qc_lq_encode;
 * each level is computed in double and rounded once. All borrowed. */
QC_API qc_status qc_lq_decode(qc_ctx *ctx, qc_tensor *values, const qc_tensor *codes, const qc_tensor *basis,
                              qc_lq_code code);

/* Output-aware refit of weight bases: with each row's codes fixed (c_o, from qc_lq_encode), its basis is
 * replaced by the one minimizing the layer's output error over calibration inputs rather than the
 * weights' own error,
 *     v_o = argmin_v sum_s (<x_s, w_o> - <xq_s, B_o^T v>)^2 + ridge |v - v_old|^2
 *         = (B_o H B_o^T + ridge I)^-1 (B_o G w_o + ridge v_old),
 * with x_s the float model's inputs, xq_s the quantized model's (so errors of earlier layers are corrected
 * too), H = sum_s xq_s xq_s^T and G = sum_s xq_s x_s^T: exactly qc_gpxq_stats with QC_GPXQ_GPFQ
 * (qc_gpxq_stats_hessian, qc_gpxq_stats_cross). With ridge 0 and H positive definite, the output error
 * never exceeds that of basis_old with the same codes. A row whose system is not positive definite keeps
 * basis_old. Arguments, all borrowed:
 *   basis      out: f32 [O, K] (may be basis_old itself);
 *   codes      u8 [O, n], each below 2^K;   basis_old f32 [O, K], finite, K in 1..4;
 *   w          f32 [O, n], finite;          h, g      f64 [n, n], finite (h full and symmetric);
 *   ridge      finite, 0..1e6.
 * Dense products go through OpenBLAS with ctx's threads. */
QC_API qc_status qc_lq_refit_output(qc_ctx *ctx, qc_tensor *basis, const qc_tensor *codes, const qc_tensor *basis_old,
                                    const qc_tensor *w, const qc_tensor *h, const qc_tensor *g, qc_lq_code code,
                                    double ridge);

/* Output-aware weight codes for fixed bases: each row's codes chosen column by column by OPTQ's sequential
 * rounding (Frantar et al. 2023) on the row's 2^K levels instead of a uniform grid, each column's rounding
 * error carried into the columns not yet rounded, so that the layer's output error over calibration inputs
 * is what falls, not the weights' own. With H and G as for qc_lq_refit_output (GPFQ statistics: x the float
 * model's inputs, xq the quantized model's) and d = damping * mean(diag H) (damping alone when that mean
 * is not positive):
 *     target   W* = W G^T (H + d I)^-1    (W itself when the inputs are not quantized, G = H),
 *     U        the upper Cholesky factor of (H + d I)^-1,
 *     column j of row o: c = the nearest level of W*_oj (ties to the lower level, as qc_lq_encode), then
 *              W*_ok -= (W*_oj - level(c)) U_jk / U_jj for k > j.
 * Alternating it with qc_lq_refit_output lowers the output error further; at one weight bit it is what
 * makes post-training LQ usable (README's LQ table). When H + d I is not positive definite the damping is
 * multiplied by 10 and the factorization retried (up to 6 times); QC_ERR_SINGULAR after that. Arguments:
 *   codes          out: u8 [O, n];
 *   damping_used   out (may be NULL): the damping ratio that worked;
 *   w              f32 [O, n], finite;          basis f32 [O, K], finite, K in 1..4;
 *   h, g           f64 [n, n], finite (h full and symmetric);
 *   damping        in (0, 1]; 0.01 is OPTQ's usual ratio.
 * All borrowed. Dense products go through OpenBLAS with ctx's threads, in fixed tiles: the codes do not
 * depend on the thread count. */
QC_API qc_status qc_lq_assign_codes(qc_ctx *ctx, qc_tensor *codes, double *damping_used, const qc_tensor *w,
                                    const qc_tensor *basis, const qc_tensor *h, const qc_tensor *g, qc_lq_code code,
                                    double damping);

/* Words per bit-plane row of n elements: ceil(n / 512) * 8; 0 for n <= 0. */
QC_API int64_t qc_lq_plane_words(int64_t n);

/* Packs codes (u8 [R, n], each below 2^K) into bit-planes (out: i64 [R, K, qc_lq_plane_words(n)]), K = 1..4
 * taken from planes' dims[1]. All borrowed. */
QC_API qc_status qc_lq_pack(qc_ctx *ctx, qc_tensor *planes, const qc_tensor *codes);

#ifdef __cplusplus
}
#endif

#endif /* QC_LQ_H */
