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
