/* The Cayley SGD driver (qc_rotate.h): repeated qc_cayley_step calls around a loss-and-gradient callback,
 * with the loss history, progress reports and a restored start on failure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "rotate/rotate.h"

/* A failure of `fn` or of a step, reported on behalf of the driver with its own message kept. */
static qc_status step_failure(qc_status st, int64_t step, const char *what)
{
    char message[512];
    strncpy(message, qc_last_error(), sizeof message - 1);
    message[sizeof message - 1] = '\0';
    return QC_FAIL_IN("qc_cayley_minimize", st, "%s at step %lld: %s", what, (long long)step, message);
}

/* Calls the loss callback at x; *stop is set when it asks to end the run. */
static qc_status evaluate(qc_ctx *ctx, qc_loss_grad_fn fn, void *user, const qc_tensor *x, qc_tensor *grad,
                          double *loss, int64_t step, int *stop)
{
    memset(grad->data, 0, (size_t)qc_tensor_numel(grad) * sizeof(double));
    *loss = NAN;
    qc_status st = fn(user, ctx, x, loss, grad);
    *stop = st == QC_ERR_CANCELLED;
    if (st != QC_OK && !*stop) return step_failure(st, step, "the loss callback failed");
    if (!isfinite(*loss))
        return QC_FAIL_IN("qc_cayley_minimize", QC_ERR_NUMERIC, "the loss callback returned loss = %g at step %lld",
                          *loss, (long long)step);
    return QC_OK;
}

typedef struct run_outputs {
    double *losses;
    int64_t steps_done;
    double orth_error;
} run_outputs;

/* The steps themselves; on failure the caller restores x. */
static qc_status run(qc_ctx *ctx, qc_cayley *opt, qc_tensor *x, qc_tensor *grad, int64_t steps, qc_loss_grad_fn fn,
                     void *user, run_outputs *out)
{
    int threads = qc__ctx_threads(ctx);
    out->orth_error = qc__cayley_orthogonality_error(opt, x->data, threads);
    for (int64_t i = 0;; i++) {
        int stop;
        QC_TRY(evaluate(ctx, fn, user, x, grad, &out->losses[i], i, &stop));
        out->steps_done = i;
        if (stop || i == steps) return QC_OK;
        qc_status st = qc_cayley_step(ctx, opt, x, grad, &out->orth_error);
        if (st != QC_OK) return step_failure(st, i, "the Cayley step failed");
        QC_TRY(qc__progress(ctx, "qc_cayley_minimize", "cayley", (uint64_t)(i + 1), (uint64_t)steps));
    }
}

static qc_status check_arguments(const qc_tensor *x, int64_t steps)
{
    if (steps < 0 || steps > (int64_t)1 << 40)
        return QC_FAIL_IN("qc_cayley_minimize", QC_ERR_INVALID_ARG, "argument 'steps' = %lld is outside 0..2^40",
                          (long long)steps);
    QC_TRY(qc__tensor_expect(x, "qc_cayley_minimize", "x", QC_DT_F64));
    if (x->ndim != 2) return QC_FAIL_IN("qc_cayley_minimize", QC_ERR_SHAPE, "argument 'x' must be 2-D [n, p], got %d-D", (int)x->ndim);
    return qc__tensor_check_finite(x, "qc_cayley_minimize", "x");
}

qc_status qc_cayley_minimize(qc_ctx *ctx, qc_tensor *x, int64_t steps, const qc_cayley_options *opts, qc_loss_grad_fn fn,
                             void *user, double *losses, int64_t *steps_done, double *orth_error)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(fn);
    QC_TRY(check_arguments(x, steps));
    qc_cayley *opt = NULL;
    qc_status st = qc_cayley_create(&opt, x->dims[0], x->dims[1], opts);
    if (st != QC_OK) return step_failure(st, 0, "the optimizer could not be made");
    size_t count = (size_t)qc_tensor_numel(x);
    double *start = malloc(count * sizeof *start), *gradient = malloc(count * sizeof *gradient);
    run_outputs out = {malloc((size_t)(steps + 1) * sizeof(double)), 0, 0.0};
    qc_tensor grad;
    if (!start || !gradient || !out.losses)
        st = QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld steps of a %lldx%lld problem", (long long)steps,
                     (long long)x->dims[0], (long long)x->dims[1]);
    else st = qc_tensor_init(&grad, gradient, QC_DT_F64, 2, x->dims, NULL);
    if (st == QC_OK) {
        memcpy(start, x->data, count * sizeof *start);
        st = run(ctx, opt, x, &grad, steps, fn, user, &out);
        if (st != QC_OK) memcpy(x->data, start, count * sizeof *start);
    }
    if (st == QC_OK) {
        if (losses) memcpy(losses, out.losses, (size_t)(out.steps_done + 1) * sizeof *losses);
        if (steps_done) *steps_done = out.steps_done;
        if (orth_error) *orth_error = out.orth_error;
    }
    free(start), free(gradient), free(out.losses);
    qc_cayley_free(opt);
    return st;
}
