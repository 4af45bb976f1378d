/* QEM (qc_lq.h): per row, encode with the current basis, solve the ridge-regularized normal equations of
 * the codes for a new basis, and keep it while the error falls. B B^T and B x depend on the data only
 * through the count and the sum of x for each code, so one pass over the row gathers them and the solve
 * is a K x K system. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "linalg/linalg.h"
#include "lq/lq.h"

qc_status qc_lq_options_init(qc_lq_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_LQ_OPTIONS_VERSION, "qc_lq_options", __func__));
    qc_lq_options defaults = QC_LQ_OPTIONS_INIT;
    *opts = defaults;
    opts->version = version;
    return QC_OK;
}

static qc_status check_options(const qc_lq_options *o, const char *function)
{
    QC_TRY(qc__check_struct_version(o->version, QC_LQ_OPTIONS_VERSION, "qc_lq_options", function));
    if (o->max_iters < 0 || o->max_iters > 10000)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "opts->max_iters is %d, expected 0..10000", (int)o->max_iters);
    if (!(o->ridge >= 0.0 && o->ridge <= 1e6))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "opts->ridge is %g, expected a finite value in 0..1e6", o->ridge);
    if (!(o->tol >= 0.0 && o->tol <= 1.0))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "opts->tol is %g, expected a finite value in 0..1", o->tol);
    return QC_OK;
}

enum { CHUNK = 65536 }; /* values per partial sum: the order of every sum, whatever the thread count */

/* One chunk's squared error, and count[c] and sum[c] (x summed) per code c. */
static double encode_chunk(const float *x, int64_t n, const qc_lq_table *t, double *count, double *sum)
{
    memset(count, 0, sizeof(double) * (size_t)t->count);
    memset(sum, 0, sizeof(double) * (size_t)t->count);
    double error = 0.0;
    for (int64_t k = 0; k < n; k++) {
        double xk = (double)x[k];
        int i = qc__lq_index(t, x[k]);
        double d = xk - t->level[i];
        error += d * d;
        count[t->code[i]] += 1.0;
        sum[t->code[i]] += xk;
    }
    return error;
}

/* Encodes x with v: returns the squared error and gathers count[c] and sum[c] per code c, as sums of
 * CHUNK-value partial sums added in chunk order; the chunks are spread over `threads` (1 when the caller
 * already runs rows in parallel), which leaves every sum's order, hence its bits, unchanged. */
static double encode_stats(const float *x, int64_t n, const float *v, int bits, qc_lq_code code, double *count,
                           double *sum, int threads)
{
    qc_lq_table t;
    qc__lq_table(&t, v, bits, code);
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    double part_error[64], part_count[64][QC_LQ_MAX_LEVELS], part_sum[64][QC_LQ_MAX_LEVELS];
    double error = 0.0;
    memset(count, 0, sizeof(double) * (size_t)t.count);
    memset(sum, 0, sizeof(double) * (size_t)t.count);
    for (int64_t first = 0; first < chunks; first += 64) { /* 64 chunks at a time: bounded scratch */
        int64_t batch = chunks - first < 64 ? chunks - first : 64;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && batch > 1)
        for (int64_t c = 0; c < batch; c++) {
            int64_t start = (first + c) * CHUNK, len = n - start < CHUNK ? n - start : CHUNK;
            part_error[c] = encode_chunk(x + start, len, &t, part_count[c], part_sum[c]);
        }
        for (int64_t c = 0; c < batch; c++) {
            error += part_error[c];
            for (int l = 0; l < t.count; l++) {
                count[l] += part_count[c][l];
                sum[l] += part_sum[c][l];
            }
        }
    }
    return error;
}

/* The closed form v' = (B B^T + delta I)^-1 (B x + delta v), with B B^T = C^T diag(count) C and B x = C^T sum
 * for C [2^K, K] the code bits of every code. 0 when the system is singular or v' is not finite. */
static int closed_form(float *v_new, const float *v, int bits, qc_lq_code code, const double *count, const double *sum,
                       double ridge)
{
    int levels = 1 << bits;
    double c[QC_LQ_MAX_LEVELS * QC_LQ_MAX_BITS], weighted[QC_LQ_MAX_LEVELS * QC_LQ_MAX_BITS];
    double gram[QC_LQ_MAX_BITS * QC_LQ_MAX_BITS], rhs[QC_LQ_MAX_BITS];
    for (int l = 0; l < levels; l++)
        for (int j = 0; j < bits; j++) {
            c[l * bits + j] = (l >> j) & 1 ? 1.0 : (code == QC_LQ_SIGNED ? -1.0 : 0.0);
            weighted[l * bits + j] = count[l] * c[l * bits + j];
        }
    qc__dgemm(1, 1, 0, bits, bits, levels, 1.0, c, bits, weighted, bits, 0.0, gram, bits);
    qc__dgemm(1, 1, 0, bits, 1, levels, 1.0, c, bits, sum, 1, 0.0, rhs, 1);
    for (int j = 0; j < bits; j++) {
        gram[j * bits + j] += ridge;
        rhs[j] += ridge * (double)v[j];
    }
    if (qc__spd_solve(gram, bits, bits, rhs, "qc_lq_fit") != QC_OK) return 0;
    for (int j = 0; j < bits; j++) {
        v_new[j] = (float)rhs[j];
        if (!isfinite(v_new[j])) return 0;
    }
    return 1;
}

/* v_j = r 2^(j + 1 - K), r the root mean square of x. */
static void initial_basis(float *v, const float *x, int64_t n, int bits)
{
    double squares = 0.0;
    for (int64_t k = 0; k < n; k++) squares += (double)x[k] * (double)x[k];
    double rms = sqrt(squares / (double)n);
    for (int j = 0; j < bits; j++) v[j] = (float)ldexp(rms, j + 1 - bits);
}

/* Fits one row, its encodings spread over `threads`; history[0..max_iters] (may be NULL) receives its error
 * after each step. Returns the accepted steps. */
static int fit_row(float *v, double *history, const float *x, int64_t n, int bits, qc_lq_code code,
                   const qc_lq_options *o, int threads)
{
    double count[QC_LQ_MAX_LEVELS], sum[QC_LQ_MAX_LEVELS], count_new[QC_LQ_MAX_LEVELS], sum_new[QC_LQ_MAX_LEVELS];
    initial_basis(v, x, n, bits);
    double error = encode_stats(x, n, v, bits, code, count, sum, threads);
    if (history) history[0] = error;
    int steps = 0;
    while (steps < o->max_iters) {
        float v_new[QC_LQ_MAX_BITS];
        if (!closed_form(v_new, v, bits, code, count, sum, o->ridge)) break;
        double error_new = encode_stats(x, n, v_new, bits, code, count_new, sum_new, threads);
        if (!(error_new < error && error - error_new > o->tol * error)) break;
        memcpy(v, v_new, sizeof(float) * (size_t)bits);
        memcpy(count, count_new, sizeof count);
        memcpy(sum, sum_new, sizeof sum);
        error = error_new;
        steps++;
        if (history) history[steps] = error;
    }
    if (history)
        for (int i = steps + 1; i <= o->max_iters; i++) history[i] = error;
    return steps;
}

qc_status qc_lq_fit(qc_ctx *ctx, qc_tensor *basis, qc_lq_fit_result *result, qc_tensor *history, const qc_tensor *x,
                    qc_lq_code code, const qc_lq_options *opts)
{
    qc_lq_options o = QC_LQ_OPTIONS_INIT;
    QC_CHECK_NOT_NULL(ctx);
    if (opts) {
        QC_TRY(check_options(opts, __func__));
        o = *opts;
    }
    if (result) QC_TRY(qc__check_struct_version(result->version, QC_LQ_FIT_RESULT_VERSION, "qc_lq_fit_result", __func__));
    QC_TRY(qc__lq_check_code(code, __func__, "code"));
    QC_TRY(qc__lq_check_matrix(x, QC_DT_F32, -1, -1, __func__, "x"));
    QC_TRY(qc__lq_check_matrix(basis, QC_DT_F32, x->dims[0], -1, __func__, "basis"));
    if (basis->dims[1] < 1 || basis->dims[1] > QC_LQ_MAX_BITS)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'basis': K = dims[1] = %lld, expected 1..%d",
                       (long long)basis->dims[1], QC_LQ_MAX_BITS);
    if (x->dims[1] < 1) return QC_FAIL(QC_ERR_SHAPE, "argument 'x': rows are empty (n = 0)");
    if (history) QC_TRY(qc__tensor_expect(history, __func__, "history", QC_DT_F64));
    if (history && (history->ndim != 1 || history->dims[0] != (int64_t)o.max_iters + 1))
        return QC_FAIL(QC_ERR_SHAPE, "argument 'history': expected [%d] (max_iters + 1)", (int)o.max_iters + 1);
    QC_TRY(qc__tensor_check_finite(x, __func__, "x"));

    int bits = (int)basis->dims[1];
    int64_t rows = x->dims[0], n = x->dims[1], span = (int64_t)o.max_iters + 1;
    double *row_history = malloc(sizeof(double) * (size_t)(rows * span + 1));
    int *steps = malloc(sizeof(int) * (size_t)(rows + 1));
    if (!row_history || !steps) {
        free(row_history);
        free(steps);
        return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld rows of history", (long long)rows);
    }
    /* Many rows (weights): one thread per row. Few long rows (a layer's activations): the threads share
     * each row's chunks. Either way every sum has the same order. */
    int threads = qc__ctx_threads(ctx), row_threads = rows >= threads ? 1 : threads;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (row_threads == 1)
    for (int64_t r = 0; r < rows; r++)
        steps[r] = fit_row((float *)basis->data + r * bits, row_history + r * span, (const float *)x->data + r * n, n,
                           bits, code, &o, row_threads);

    qc_lq_fit_result res = QC_LQ_FIT_RESULT_INIT;
    for (int64_t i = 0; i < span; i++) {
        double total = 0.0;
        for (int64_t r = 0; r < rows; r++) total += row_history[r * span + i];
        if (history) ((double *)history->data)[i] = total;
        if (i == 0) res.error_initial = total;
        if (i == span - 1) res.error_final = total;
    }
    for (int64_t r = 0; r < rows; r++)
        if (steps[r] > res.iterations) res.iterations = steps[r];
    if (result) *result = res;
    free(row_history);
    free(steps);
    return QC_OK;
}
