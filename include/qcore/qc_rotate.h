/*
 * qc_rotate.h: orthogonal rotations that spread outliers before quantization, and the metrics that show
 * their effect. Since 1.2.
 *
 * A rotation R [n, n] acts on the rows of a matrix: X [rows, n] becomes X·R (for a linear layer's weight
 * W [out, in] that sees inputs X [batch, in], W·R on the input side pairs with X·R, since
 * (X·R)(W·R)^T = X W^T when R is orthogonal).
 *
 * Haar-random orthogonal matrices: G [n, n] is the f64 matrix qc_random_normal(ctx, G, stream) fills
 * (row-major), G = Q R its Householder QR (LAPACK geqrf/orgqr), and the result is Q·diag(sign(diag R)),
 * with sign(0) taken as +1. The sign correction makes the factorization unique, and the result exactly
 * Haar-distributed (Mezzadri 2007): numpy.linalg.qr(G) followed by the same column signs gives it too.
 *
 * Hadamard matrices: H_n [n, n] has entries +-1 and H_n H_n^T = n I. qcore builds them for
 * n = K * 2^k, as the Kronecker product H_n = H_{2^k} (x) H_K (entry (a K + b, a' K + b') is
 * H_{2^k}[a][a'] * H_K[b][b']), where
 *   - H_{2^k} is Sylvester's: H_1 = [1], H_{2m} = [[H_m, H_m], [H_m, -H_m]] (symmetric);
 *   - K is the least order K = m * 2^j (m the odd part of n, j >= 0, K <= QC_HADAMARD_MAX_K, K | n) that one
 *     of these constructions gives, tried in this order:
 *       Paley I   K = q + 1, q a prime power = 3 mod 4:  H = I + [[0, 1^T], [-1, Q]];
 *       Paley II  K = 2 (q + 1), q a prime power = 1 mod 4: H = C (x) [[1, -1], [-1, -1]] + I (x) [[1, 1], [1, -1]]
 *                 with C = [[0, 1^T], [1, Q]];
 *       Kronecker K = a * b with a, b constructed orders that are not powers of 2: H_a (x) H_b;
 *     where Q[i][j] = chi(x_j - x_i) is the Jacobsthal matrix of GF(q) (chi the quadratic character: 0 at 0,
 *     +1 on non-zero squares, -1 otherwise; x_i the element whose base-p digits are those of i, the field
 *     built as GF(p)[t]/(f) for the first monic f without roots (f = t when q = p)). Prime powers q = p^e
 *     with e <= 3 are used. So H_K is computed, never read from a table.
 * Orders reached up to 128: every power of 2, and 12, 20, 24, 28, 36, 40, 44, 48, 52, 56, 60, 68, 72, 76,
 * 80, 84, 88, 96, 100, 104, 108, 112, 120, 124 (not 92 or 116, which need Williamson's construction).
 * H_K is not symmetric in general (Paley I gives skew-Hadamard matrices), so H_n^T != H_n.
 *
 * Fast Walsh-Hadamard transform (FWHT): x <- x·H_n/sqrt(n) for every row x of a f32 [rows, n] matrix, in
 * place: the Sylvester part by log2(2^k) butterfly stages on blocks of K, the H_K part by a dense K x K
 * product, so O(n (log2(n/K) + K)) work per row instead of O(n^2). Rows are spread over the context's
 * threads; each row is computed alone, in a fixed order, so the result does not depend on the thread count.
 * With `transpose`, x <- x·H_n^T/sqrt(n), the inverse.
 *
 * Randomized Hadamard: R = H_n·D/sqrt(n), D = diag(d), d_j = -1 when the top bit of word j of `stream`
 * under the context's seed (qc_random_bits) is set, else +1. R is orthogonal.
 *
 * Errors (each message names the argument): QC_ERR_INVALID_ARG (NULL), QC_ERR_UNSUPPORTED (n not of the
 * form K * 2^k above; the message gives n's odd part), QC_ERR_DTYPE, QC_ERR_LAYOUT (not C-contiguous),
 * QC_ERR_SHAPE (not square, no elements where some are needed), QC_ERR_NUMERIC (NaN or Inf in an input;
 * the transforms then leave x unchanged), QC_ERR_OVERFLOW (n > 2^31 - 1), QC_ERR_OUT_OF_MEMORY.
 */
#ifndef QC_ROTATE_H
#define QC_ROTATE_H

#include "qcore/qc_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest non-power-of-2 factor K of a Hadamard order the transforms accept. */
#define QC_HADAMARD_MAX_K 256

/* Writes a Haar-random orthogonal matrix into `out` (f32 or f64 [n, n], n >= 1, C-contiguous, borrowed),
 * computed in double from stream `stream` under the context's seed (see above). */
QC_API qc_status qc_random_orthogonal(qc_ctx *ctx, qc_tensor *out, uint64_t stream);

/* The factor K of a Hadamard order: *k = K when n = K * 2^k is supported (1 for a power of 2), else
 * QC_ERR_UNSUPPORTED naming n. n >= 1. */
QC_API qc_status qc_hadamard_factor(int64_t *k, int64_t n);

/* Writes H_n (entries +-1, not normalized) into `out` (f32 or f64 [n, n], C-contiguous, borrowed). */
QC_API qc_status qc_hadamard_matrix(qc_tensor *out);

/* In place FWHT of every row of `x` (f32, C-contiguous, ndim >= 1, borrowed): the last axis has length n,
 * the others are rows. x <- x·H_n/sqrt(n), or x·H_n^T/sqrt(n) when `transpose` is 1. */
QC_API qc_status qc_fwht(qc_ctx *ctx, qc_tensor *x, int transpose);

/* In place randomized Hadamard rotation of every row of `x` (as qc_fwht): x <- x·H_n·D/sqrt(n), or with
 * `transpose` x <- x·D·H_n^T/sqrt(n), the inverse. D comes from `stream` under the context's seed. */
QC_API qc_status qc_random_hadamard(qc_ctx *ctx, qc_tensor *x, uint64_t stream, int transpose);

/* Writes R = H_n·D/sqrt(n) (the matrix qc_random_hadamard multiplies by) into `out` (f32 or f64 [n, n],
 * C-contiguous, borrowed). */
QC_API qc_status qc_random_hadamard_matrix(qc_ctx *ctx, qc_tensor *out, uint64_t stream);

/* ---------------------------------------------------------------------------------------------
 * Outlier metrics of one tensor, to compare X with X·R. */
#define QC_OUTLIER_METRICS_VERSION 1

/* The caller sets `version` (QC_OUTLIER_METRICS_INIT); the library fills the fields that version has. */
typedef struct qc_outlier_metrics {
    uint32_t version;     /* QC_OUTLIER_METRICS_VERSION */
    double kurtosis;      /* Pearson's (3 for a Gaussian, not the excess): qc_stat_kurtosis */
    double max_over_rms;  /* max |x| / sqrt(mean x^2): qc_stat_max_over_rms */
    double sqnr_db;       /* SQNR of fake_quantize(x) under the grid (qc_stat_sqnr_db); NaN without a grid */
} qc_outlier_metrics;

#define QC_OUTLIER_METRICS_INIT { QC_OUTLIER_METRICS_VERSION, 0.0, 0.0, 0.0 }

/* Fills `out` for `x` (f32, C-contiguous, at least one element, finite, not constant: borrowed). The
 * SQNR quantizes x with qc_quant_choose_params and qc_fake_quantize under `grid` (borrowed; NULL skips
 * it). `out` is written only on success. */
QC_API qc_status qc_outlier_metrics_compute(qc_ctx *ctx, qc_outlier_metrics *out, const qc_tensor *x,
                                            const qc_quant_options *grid);

/* ---------------------------------------------------------------------------------------------
 * Cayley SGD on the Stiefel manifold (Li, Fuxin & Todorovic, ICLR 2020, Algorithm 1): minimizes a loss
 * over matrices X [n, p] (p <= n) with orthonormal columns, X^T X = I (p = n: rotations). One step, with
 * the gradient G [n, p] of the loss at X and the momentum M (zero at first):
 *     M <- beta M - G
 *     W^ = M X^T - 1/2 X (X^T M X^T),   W = W^ - W^T   (skew-symmetric, n x n),   M <- W X
 *     alpha = min(lr, 2 step_bound / (||W||_1 + 1e-8))  (||.||_1: the largest absolute column sum)
 *     Y = X + alpha M, then `iterations` times Y <- X + alpha/2 W (X + Y),   X <- Y
 * which approximates the Cayley transform X <- (I - alpha/2 W)^-1 (I + alpha/2 W) X without an inverse;
 * every `qr_every` steps X is re-orthonormalized by its sign-corrected QR (as qc_random_orthogonal). In
 * double, through BLAS (dgemm) with the context's threads; the result does not depend on their number.
 * Each step leaves X off the manifold by about (alpha ||W|| / 2)^(iterations + 1), and these errors add up:
 * on a 16 x 16 Procrustes problem, 400 steps end 6e-2 from orthogonal with 2 iterations (the paper's
 * default), 1e-4 with 5 (SpinQuant's) and 2e-7 with 10; hence the defaults of 5 iterations and a QR every
 * 100 steps (SpinQuant: with probability 1/101 per step). A Cayley step is a rotation of X, so for p = n
 * the sign of det X never changes: start in the component of O(n) the optimum lies in.
 */
#define QC_CAYLEY_OPTIONS_VERSION 1

typedef struct qc_cayley_options {
    uint32_t version;     /* QC_CAYLEY_OPTIONS_VERSION */
    double lr;            /* the largest step, > 0 and finite (default 0.1) */
    double momentum;      /* beta, in [0, 1) (default 0.9) */
    int32_t iterations;   /* fixed-point iterations, 1..100 (default 5) */
    double step_bound;    /* q > 0 and finite (default 0.5) */
    int64_t qr_every;     /* >= 0; 0 never re-orthonormalizes (default 100) */
} qc_cayley_options;

#define QC_CAYLEY_OPTIONS_INIT { QC_CAYLEY_OPTIONS_VERSION, 0.1, 0.9, 5, 0.5, 100 }

/* Fills `opts` with the defaults of `version` (QC_ERR_VERSION for 0 or a version newer than the library's). */
QC_API qc_status qc_cayley_options_init(qc_cayley_options *opts, unsigned version);

/* The optimizer's state: the momentum, the step count and the scratch of one step, O(n^2 + n p) doubles. */
typedef struct qc_cayley qc_cayley;

/* Creates an optimizer for X [n, p], 1 <= p <= n <= 2^31 - 1, with `opts` (borrowed, copied; NULL for the
 * defaults). `out` receives a handle owned by the caller (qc_cayley_free). */
QC_API qc_status qc_cayley_create(qc_cayley **out, int64_t n, int64_t p, const qc_cayley_options *opts);

/* Frees an optimizer; NULL is accepted. */
QC_API void qc_cayley_free(qc_cayley *opt);

/* One step: `x` (f64 [n, p], C-contiguous, borrowed) is updated in place from `grad` (f64 [n, p], finite,
 * borrowed). `orth_error` (may be NULL) receives max |X^T X - I| after the step. On failure x and the
 * optimizer are unchanged. */
QC_API qc_status qc_cayley_step(qc_ctx *ctx, qc_cayley *opt, qc_tensor *x, const qc_tensor *grad, double *orth_error);

/* ---------------------------------------------------------------------------------------------
 * A Cayley SGD driver: minimizes a loss given by a callback over X [n, p] with orthonormal columns.
 *
 * The callback evaluates the loss at `x` (f64 [n, p], borrowed for the call) into *loss and its gradient
 * into `grad` (f64 [n, p], zeroed before each call, borrowed), and returns QC_OK to go on. It may stop the
 * run: QC_ERR_CANCELLED ends it at the current point (the loss it wrote ends the history, and the driver
 * returns QC_OK); any other status is a failure, which the driver returns with x restored to its start.
 * `ctx` is the driver's context, so that the callback can use its threads. `user` is the driver's `user`.
 */
typedef qc_status (*qc_loss_grad_fn)(void *user, qc_ctx *ctx, const qc_tensor *x, double *loss, qc_tensor *grad);

/* Runs up to `steps` (>= 0) Cayley SGD steps (qc_cayley_step with `opts`, borrowed; NULL for the
 * defaults) on `x` (f64 [n, p], 1 <= p <= n, C-contiguous, finite, updated in place), from zero momentum.
 * The loss is evaluated before every step and once after the last, so `losses` (may be NULL; else
 * steps + 1 doubles, caller-owned) receives the loss at X_0 .. X_k, k = *steps_done (may be NULL) the
 * steps taken (= steps unless the callback stopped the run). `orth_error` (may be NULL) receives
 * max |X^T X - I| at the end. After each step the context's progress callback hears ("cayley", i, steps);
 * if it asks to stop, the run returns QC_ERR_CANCELLED with x restored. Errors: QC_ERR_INVALID_ARG (NULL
 * ctx, x or fn; steps < 0), those of qc_cayley_create and qc_cayley_step, QC_ERR_NUMERIC for a non-finite
 * loss or gradient (naming the step), the callback's own failures (its message kept); on any failure x,
 * `losses`, *steps_done and *orth_error are left as they were. */
QC_API qc_status qc_cayley_minimize(qc_ctx *ctx, qc_tensor *x, int64_t steps, const qc_cayley_options *opts,
                                    qc_loss_grad_fn fn, void *user, double *losses, int64_t *steps_done,
                                    double *orth_error);

/* ---------------------------------------------------------------------------------------------
 * A built-in objective for learned rotations: the output error of one linear layer under weight and
 * activation quantization with the rotation R [in, in] on its input side,
 *     L(R) = || X W^T - Q_a(X R) Q_w(W R)^T ||_F^2 / n
 * for calibration inputs X [n, in] and the weight W [out, in] (qcore's layout). X R and W R are computed
 * in double, rounded to f32, and fake-quantized (qc_quant_choose_params then qc_fake_quantize, so the
 * parameters follow R) under `act` (a grid for [n, in]: per tensor, per token with QC_GRAN_CHANNEL and
 * axis 0, or groups along axis 1) and `weight` (a grid for [out, in], usually per channel, axis 0); a NULL
 * grid leaves its side unquantized. The gradient is straight-through in the rounding, as SpinQuant's
 * quantizers are: with E = X W^T - A' B'^T, A' = Q_a(X R), B' = Q_w(W R),
 *     dL/dR = X^T D_a(-2/n E B') + W^T D_w(-2/n E^T A'),
 * where D maps dL/dQ(V) to dL/dV for V = X R or W R by the chain rule through Q(v) = (q - z) s,
 * q = clamp(round(v / s) + z, qmin, qmax), with round counted as the identity, the zero point z as a
 * constant, and the scale s as the min-max function of its group's extremes (so the gradient also pulls
 * the largest values in, which is what spreads outliers). That holds for QC_SCALE_MINMAX grids per tensor
 * or per row (QC_GRAN_CHANNEL, axis 0), and for QC_SCALE_MSE grids there, whose s is the chosen alpha
 * (held constant) times that function (since 1.6; before, they counted as the identity); any other grid
 * is counted as the identity in the backward pass.
 * (Counting every quantizer as the identity gives a gradient that fits the quantization error instead of
 * shrinking it: on a 64-wide layer with three 30x input channels, W4A4 from a randomized Hadamard, 200
 * steps (lr 0.001..0.01, no momentum) raised the quantized error from 33 to 35..38; with this gradient,
 * 200 steps at lr 0.01 lower it to 13, against 55 for the identity.)
 * With both grids NULL and R orthogonal, L(R) = 0 up to rounding.
 */
typedef struct qc_linear_rotation_loss qc_linear_rotation_loss;

/* Creates the objective for `x` (f32 [n, in], n >= 1) and `w` (f32 [out, in], out >= 1), both finite and
 * C-contiguous (borrowed; copied into double, with X W^T computed once), and the grids `act` and `weight`
 * (borrowed, copied; either may be NULL), checked against [n, in] and [out, in]. `out` receives a handle
 * owned by the caller (qc_linear_rotation_loss_free). Memory: about 8 (2 n in + n out + 2 out in) bytes.
 * Errors: QC_ERR_INVALID_ARG (NULL, a grid out of its bounds or whose axis does not fit), QC_ERR_DTYPE,
 * QC_ERR_LAYOUT, QC_ERR_SHAPE (not 2-D, no rows, in differs), QC_ERR_NUMERIC, QC_ERR_OUT_OF_MEMORY. */
QC_API qc_status qc_linear_rotation_loss_create(qc_linear_rotation_loss **out, const qc_tensor *x, const qc_tensor *w,
                                                const qc_quant_options *act, const qc_quant_options *weight);

/* Frees the objective; NULL is accepted. */
QC_API void qc_linear_rotation_loss_free(qc_linear_rotation_loss *objective);

/* Evaluates the objective (a qc_linear_rotation_loss *, passed as void * so that this function is a
 * qc_loss_grad_fn for qc_cayley_minimize) at `r` (f64 [in, in], finite, borrowed): *loss receives L(R)
 * and `grad` (f64 [in, in], borrowed; may be NULL for the loss alone) the straight-through gradient. Uses
 * the context's threads; the result does not depend on their number. The objective's scratch is reused,
 * so one objective must not be evaluated from two threads at once. */
QC_API qc_status qc_linear_rotation_loss_eval(void *objective, qc_ctx *ctx, const qc_tensor *r, double *loss,
                                              qc_tensor *grad);

#ifdef __cplusplus
}
#endif

#endif /* QC_ROTATE_H */
