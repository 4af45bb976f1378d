/* Cayley SGD on the Stiefel manifold (qc_rotate.h): options, the optimizer's state, and one step. Every
 * product is a dgemm over the state's buffers, so a step allocates nothing (but LAPACK's QR workspace). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "linalg/linalg.h"
#include "rotate/rotate.h"

enum { MAX_ITERATIONS = 100 };

struct qc_cayley {
    int64_t n, p, steps;
    qc_cayley_options opts;
    double *momentum;  /* [n, p] */
    double *previous;  /* [n, p]: the momentum before the step, restored if the step fails */
    double *w;         /* [n, n]: W^, then W */
    double *t;         /* [n, p]: scratch (M - X A / 2, then X + Y, then QR's column-major copy) */
    double *y;         /* [n, p]: the next point */
    double *a;         /* [p, p] plus 2p: X^T M, then QR's tau and diag R */
};

qc_status qc_cayley_options_init(qc_cayley_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_CAYLEY_OPTIONS_VERSION, "qc_cayley_options", __func__));
    qc_cayley_options defaults = QC_CAYLEY_OPTIONS_INIT;
    *opts = defaults;
    return QC_OK;
}

static qc_status check_options(const qc_cayley_options *o, const char *function)
{
    if (o->version == 0 || o->version > QC_CAYLEY_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION, "argument 'opts': version = %u is unknown (this library knows "
                          "1..%d; use QC_CAYLEY_OPTIONS_INIT)", (unsigned)o->version, QC_CAYLEY_OPTIONS_VERSION);
    if (!(o->lr > 0.0 && isfinite(o->lr)))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': lr = %g must be > 0 and finite", o->lr);
    if (!(o->momentum >= 0.0 && o->momentum < 1.0))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': momentum = %g is outside [0, 1)", o->momentum);
    if (o->iterations < 1 || o->iterations > MAX_ITERATIONS)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': iterations = %d is outside 1..%d",
                          (int)o->iterations, MAX_ITERATIONS);
    if (!(o->step_bound > 0.0 && isfinite(o->step_bound)))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': step_bound = %g must be > 0 and finite",
                          o->step_bound);
    if (o->qr_every < 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': qr_every = %lld must be >= 0",
                          (long long)o->qr_every);
    return QC_OK;
}

qc_status qc_cayley_create(qc_cayley **out, int64_t n, int64_t p, const qc_cayley_options *opts)
{
    QC_CHECK_NOT_NULL(out);
    qc_cayley_options defaults = QC_CAYLEY_OPTIONS_INIT;
    QC_TRY(check_options(opts ? opts : &defaults, __func__));
    if (n < 1 || p < 1 || p > n)
        return QC_FAIL(QC_ERR_SHAPE, "arguments 'n' = %lld and 'p' = %lld must satisfy 1 <= p <= n", (long long)n,
                       (long long)p);
    if (n > ((int64_t)1 << 30))
        return QC_FAIL(QC_ERR_OVERFLOW, "argument 'n' = %lld exceeds 2^30", (long long)n);
    qc_cayley *c = calloc(1, sizeof *c);
    if (c) {
        c->momentum = calloc((size_t)(n * p), sizeof *c->momentum);
        c->previous = malloc((size_t)(n * p) * sizeof *c->previous);
        c->w = malloc((size_t)(n * n) * sizeof *c->w);
        c->t = malloc((size_t)(n * p) * sizeof *c->t);
        c->y = malloc((size_t)(n * p) * sizeof *c->y);
        c->a = malloc((size_t)(p * p + 2 * p) * sizeof *c->a);
    }
    if (!c || !c->momentum || !c->previous || !c->w || !c->t || !c->y || !c->a) {
        qc_cayley_free(c);
        return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for the state of a %lldx%lld problem", (long long)n, (long long)p);
    }
    c->n = n;
    c->p = p;
    c->opts = opts ? *opts : defaults;
    *out = c;
    return QC_OK;
}

void qc_cayley_free(qc_cayley *opt)
{
    if (opt == NULL) return;
    free(opt->momentum);
    free(opt->previous);
    free(opt->w);
    free(opt->t);
    free(opt->y);
    free(opt->a);
    free(opt);
}

/* W = W^ - W^T for W^ = (M - X (X^T M) / 2) X^T, in c->w; returns ||W||_1. */
static double skew_direction(qc_cayley *c, const double *x, int threads)
{
    int64_t n = c->n, p = c->p;
    qc__dgemm(threads, 1, 0, p, p, n, 1.0, x, p, c->momentum, p, 0.0, c->a, p);
    memcpy(c->t, c->momentum, (size_t)(n * p) * sizeof *c->t);
    qc__dgemm(threads, 0, 0, n, p, p, -0.5, x, p, c->a, p, 1.0, c->t, p);
    qc__dgemm(threads, 0, 1, n, n, p, 1.0, c->t, p, x, p, 0.0, c->w, n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) {
            double v = c->w[i * n + j] - c->w[j * n + i];
            c->w[i * n + j] = v;
            c->w[j * n + i] = -v;
        }
    double norm = 0.0;
    for (int64_t j = 0; j < n; j++) {
        double column = 0.0;
        for (int64_t i = 0; i < n; i++) column += fabs(c->w[i * n + j]);
        norm = fmax(norm, column);
    }
    return norm;
}

/* Y = X + alpha M, then Y <- X + alpha/2 W (X + Y) `iterations` times. */
static void cayley_points(qc_cayley *c, const double *x, double alpha, int threads)
{
    int64_t count = c->n * c->p;
    for (int64_t i = 0; i < count; i++) c->y[i] = x[i] + alpha * c->momentum[i];
    for (int32_t it = 0; it < c->opts.iterations; it++) {
        for (int64_t i = 0; i < count; i++) c->t[i] = x[i] + c->y[i];
        memcpy(c->y, x, (size_t)count * sizeof *c->y);
        qc__dgemm(threads, 0, 0, c->n, c->p, c->n, alpha / 2.0, c->w, c->n, c->t, c->p, 1.0, c->y, c->p);
    }
}

/* max |X^T X - I| of the row-major x [n, p], with c->a as scratch. */
static double orthogonality_error(qc_cayley *c, const double *x, int threads)
{
    int64_t p = c->p;
    qc__dgemm(threads, 1, 0, p, p, c->n, 1.0, x, p, x, p, 0.0, c->a, p);
    double worst = 0.0;
    for (int64_t i = 0; i < p; i++)
        for (int64_t j = 0; j < p; j++) worst = fmax(worst, fabs(c->a[i * p + j] - (i == j ? 1.0 : 0.0)));
    return worst;
}

/* y <- its sign-corrected QR, through c->t (column-major copy) and c->a (tau, diag R). */
static qc_status retract(qc_cayley *c)
{
    int64_t n = c->n, p = c->p;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < p; j++) c->t[j * n + i] = c->y[i * p + j];
    return qc__sign_corrected_qr(c->t, n, p, c->a, c->y, "qc_cayley_step");
}

static qc_status check_step(qc_ctx *ctx, const qc_cayley *opt, const qc_tensor *x, const qc_tensor *grad)
{
    const char *function = "qc_cayley_step";
    if (ctx == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'ctx' is NULL");
    if (opt == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opt' is NULL");
    QC_TRY(qc__tensor_expect(x, function, "x", QC_DT_F64));
    QC_TRY(qc__tensor_expect(grad, function, "grad", QC_DT_F64));
    if (x->ndim != 2 || x->dims[0] != opt->n || x->dims[1] != opt->p) {
        char shape[128];
        qc__shape_string(shape, sizeof shape, x->ndim, x->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'x' has shape %s; the optimizer was made for [%lld, %lld]",
                          shape, (long long)opt->n, (long long)opt->p);
    }
    QC_TRY(qc__tensor_same_shape(x, grad, function, "x", "grad"));
    QC_TRY(qc__tensor_check_finite(x, function, "x"));
    return qc__tensor_check_finite(grad, function, "grad");
}

qc_status qc_cayley_step(qc_ctx *ctx, qc_cayley *opt, qc_tensor *x, const qc_tensor *grad, double *orth_error)
{
    QC_TRY(check_step(ctx, opt, x, grad));
    int threads = qc__ctx_threads(ctx);
    int64_t count = opt->n * opt->p;
    double *xd = x->data;
    const double *g = grad->data;
    memcpy(opt->previous, opt->momentum, (size_t)count * sizeof *opt->previous);
    for (int64_t i = 0; i < count; i++) opt->momentum[i] = opt->opts.momentum * opt->momentum[i] - g[i];
    double norm = skew_direction(opt, xd, threads);
    qc__dgemm(threads, 0, 0, opt->n, opt->p, opt->n, 1.0, opt->w, opt->n, xd, opt->p, 0.0, opt->momentum, opt->p);
    double alpha = fmin(opt->opts.lr, 2.0 * opt->opts.step_bound / (norm + 1e-8));
    cayley_points(opt, xd, alpha, threads);
    qc_status st = QC_OK;
    if (opt->opts.qr_every > 0 && (opt->steps + 1) % opt->opts.qr_every == 0) st = retract(opt);
    if (st != QC_OK) { /* only LAPACK's workspace allocation can fail: undo the step */
        memcpy(opt->momentum, opt->previous, (size_t)count * sizeof *opt->momentum);
        return st;
    }
    memcpy(xd, opt->y, (size_t)count * sizeof *xd);
    opt->steps++;
    if (orth_error) *orth_error = orthogonality_error(opt, xd, threads);
    return QC_OK;
}

double qc__cayley_orthogonality_error(qc_cayley *opt, const double *x, int threads)
{
    return orthogonality_error(opt, x, threads);
}
