/* Cayley SGD (rotate/cayley.c): options and their bounds, a descent on tr(X^T C) that keeps X^T X = I, the
 * state left unchanged by a failed step, and NULL handling. The closed-form optima are tested in pytest. */
#include "test_util.h"

enum { N = 12, P = 3 };

static double orthogonality(const double *x)
{
    double worst = 0.0;
    for (int i = 0; i < P; i++)
        for (int j = 0; j < P; j++) {
            double dot = 0.0;
            for (int r = 0; r < N; r++) dot += x[r * P + i] * x[r * P + j];
            worst = fmax(worst, fabs(dot - (i == j)));
        }
    return worst;
}

Test(rotate_cayley, options_and_bounds)
{
    qc_cayley_options o;
    TU_EXPECT_OK(qc_cayley_options_init(&o, QC_CAYLEY_OPTIONS_VERSION));
    cr_assert(o.iterations == 5 && o.qr_every == 100 && o.momentum == 0.9);
    TU_EXPECT_FAIL(qc_cayley_options_init(&o, 2), QC_ERR_VERSION, "qc_cayley_options_init", "version");
    qc_cayley *opt = NULL;
    o.iterations = 101;
    TU_EXPECT_FAIL(qc_cayley_create(&opt, N, P, &o), QC_ERR_INVALID_ARG, "qc_cayley_create", "opts");
    TU_EXPECT_FAIL(qc_cayley_create(&opt, P, N, NULL), QC_ERR_SHAPE, "qc_cayley_create", "p");
    TU_EXPECT_FAIL(qc_cayley_create(NULL, N, P, NULL), QC_ERR_INVALID_ARG, "qc_cayley_create", "out");
    cr_assert_null(opt);
    qc_cayley_free(NULL);
}

/* Minimizing -tr(X^T C) from the first P columns of the identity: the loss falls and X stays orthonormal. */
Test(rotate_cayley, descent_stays_on_the_manifold)
{
    static double x[N * P], c[N * P], g[N * P];
    for (int i = 0; i < N * P; i++) {
        x[i] = i / P == i % P ? 1.0 : 0.0;
        c[i] = sin(1.7 * i + 0.2);
        g[i] = -c[i];
    }
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    qc_cayley_options o = QC_CAYLEY_OPTIONS_INIT;
    o.lr = 0.05;
    o.qr_every = 7;
    qc_cayley *opt = NULL;
    TU_EXPECT_OK(qc_cayley_create(&opt, N, P, &o));
    int64_t dims[2] = {N, P};
    qc_tensor xt = tu_tensor(x, QC_DT_F64, 2, dims), gt = tu_tensor(g, QC_DT_F64, 2, dims);
    double first = 0.0, last = 0.0, err = 1.0;
    for (int i = 0; i < N * P; i++) first -= x[i] * c[i];
    for (int step = 0; step < 50; step++) {
        TU_EXPECT_OK(qc_cayley_step(ctx, opt, &xt, &gt, &err));
        cr_assert_lt(err, 1e-3, "step %d: X^T X - I reaches %g", step, err);
    }
    for (int i = 0; i < N * P; i++) last -= x[i] * c[i];
    cr_assert_lt(last, first - 1.0, "the loss went from %g to %g", first, last);
    cr_assert_lt(fabs(orthogonality(x) - err), 1e-15, "reported error %g, measured %g", err, orthogonality(x));
    g[4] = INFINITY;
    double before[N * P];
    memcpy(before, x, sizeof before);
    TU_EXPECT_FAIL(qc_cayley_step(ctx, opt, &xt, &gt, NULL), QC_ERR_NUMERIC, "qc_cayley_step", "grad");
    cr_assert(memcmp(before, x, sizeof before) == 0, "a failed step leaves x unchanged");
    TU_EXPECT_FAIL(qc_cayley_step(ctx, NULL, &xt, &gt, NULL), QC_ERR_INVALID_ARG, "qc_cayley_step", "opt");
    qc_cayley_free(opt);
    qc_ctx_free(ctx);
}

/* The driver's loss callback: -tr(X^T C); fails with `fail_at` calls (0: never), stops at `stop_at`. */
typedef struct linear_loss {
    const double *c;
    int calls, fail_at, stop_at;
} linear_loss;

static qc_status linear_callback(void *user, qc_ctx *ctx, const qc_tensor *x, double *loss, qc_tensor *grad)
{
    (void)ctx;
    linear_loss *l = user;
    const double *xd = x->data;
    double *g = grad->data;
    *loss = 0.0;
    for (int i = 0; i < N * P; i++) *loss -= xd[i] * l->c[i], g[i] = -l->c[i];
    l->calls++;
    if (l->calls == l->fail_at) return qc_error_set(QC_ERR_SHAPE, "test callback: made-up failure");
    return l->calls == l->stop_at ? QC_ERR_CANCELLED : QC_OK;
}

/* qc_cayley_minimize takes exactly qc_cayley_step's steps, stops when the callback says so, and leaves x
 * as it found it when the callback fails. */
Test(rotate_cayley, driver_matches_steps_and_handles_the_callbacks_status)
{
    static double x[N * P], y[N * P], c[N * P], g[N * P], losses[11];
    for (int i = 0; i < N * P; i++) x[i] = y[i] = i / P == i % P ? 1.0 : 0.0, c[i] = cos(0.9 * i), g[i] = -c[i];
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    int64_t dims[2] = {N, P}, done = -1;
    qc_tensor xt = tu_tensor(x, QC_DT_F64, 2, dims), yt = tu_tensor(y, QC_DT_F64, 2, dims), gt = tu_tensor(g, QC_DT_F64, 2, dims);
    qc_cayley *opt = NULL;
    TU_EXPECT_OK(qc_cayley_create(&opt, N, P, NULL));
    for (int step = 0; step < 10; step++) TU_EXPECT_OK(qc_cayley_step(ctx, opt, &yt, &gt, NULL));
    linear_loss l = {c, 0, 0, 0};
    double err = -1.0;
    TU_EXPECT_OK(qc_cayley_minimize(ctx, &xt, 10, NULL, linear_callback, &l, losses, &done, &err));
    cr_assert(memcmp(x, y, sizeof x) == 0 && done == 10 && l.calls == 11);
    cr_assert_lt(losses[10], losses[0] - 1.0);
    cr_assert_lt(fabs(orthogonality(x) - err), 1e-15);
    double before[N * P];
    memcpy(before, x, sizeof before);
    l = (linear_loss){c, 0, 0, 4};
    TU_EXPECT_OK(qc_cayley_minimize(ctx, &xt, 10, NULL, linear_callback, &l, losses, &done, NULL));
    cr_assert(done == 3 && l.calls == 4);
    memcpy(x, before, sizeof x);
    l = (linear_loss){c, 0, 5, 0};
    losses[0] = 42.0;
    TU_EXPECT_FAIL(qc_cayley_minimize(ctx, &xt, 10, NULL, linear_callback, &l, losses, &done, NULL), QC_ERR_SHAPE,
                   "qc_cayley_minimize", NULL);
    cr_assert(strstr(qc_last_error(), "step 4: test callback: made-up failure") != NULL, "%s", qc_last_error());
    cr_assert(memcmp(before, x, sizeof before) == 0 && losses[0] == 42.0 && done == 3);
    TU_EXPECT_FAIL(qc_cayley_minimize(ctx, &xt, -1, NULL, linear_callback, &l, NULL, NULL, NULL), QC_ERR_INVALID_ARG,
                   "qc_cayley_minimize", "steps");
    TU_EXPECT_FAIL(qc_cayley_minimize(ctx, &xt, 1, NULL, NULL, &l, NULL, NULL, NULL), QC_ERR_INVALID_ARG,
                   "qc_cayley_minimize", "fn");
    qc_cayley_free(opt);
    qc_ctx_free(ctx);
}
