/* The single-tensor output-error proxy: the relative output error a quantized weight alone causes,
 * tr(E H E^T) / tr(W H W^T) with E = W - Wq and H the input second moment (identity when absent). */
#include <math.h>
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "linalg/linalg.h"
#include "search/search.h"

static qc_status check_finite_f32(const float *x, size_t n, const char *name, const char *function)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return QC_FAIL_IN(function, QC_ERR_NUMERIC, "argument '%s': element %zu is %g", name, i, x[i]);
    return QC_OK;
}

/* sum_ij (A H)_ij A_ij for A [rows, cols] (double), through one matrix product. */
static double quadratic_trace(int threads, const double *a, const double *h, double *ah, size_t rows, size_t cols)
{
    qc__dgemm(threads, 0, 0, (int64_t)rows, (int64_t)cols, (int64_t)cols, 1.0, a, (int64_t)cols, h, (int64_t)cols, 0.0,
              ah, (int64_t)cols);
    double sum = 0;
    for (size_t i = 0; i < rows * cols; i++) sum += ah[i] * a[i];
    return sum;
}

static qc_status output_error(double *loss, int threads, const float *w, const float *wq, size_t rows, size_t cols,
                              const double *h, const char *function)
{
    size_t n = rows * cols;
    double *e = malloc(n * sizeof *e), *wd = malloc(n * sizeof *wd), *work = h ? malloc(n * sizeof *work) : NULL;
    qc_status st = QC_OK;
    if (!e || !wd || (h && !work)) st = QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate %zu x %zu", rows, cols);
    double num = 0, den = 0;
    for (size_t i = 0; st == QC_OK && i < n; i++) {
        wd[i] = w[i], e[i] = (double)w[i] - (double)wq[i];
        num += e[i] * e[i], den += wd[i] * wd[i];
    }
    if (st == QC_OK && h) {
        num = quadratic_trace(threads, e, h, work, rows, cols);
        den = quadratic_trace(threads, wd, h, work, rows, cols);
    }
    if (st == QC_OK && !(den > 0))
        st = QC_FAIL_IN(function, QC_ERR_NUMERIC, "the output energy tr(W H W^T) = %g is not positive", den);
    if (st == QC_OK) *loss = fmax(num, 0.0) / den;
    free(e), free(wd), free(work);
    return st;
}

qc_status qc_search_proxy_output_error(double *loss, qc_ctx *ctx, const float *w, const float *wq, size_t rows,
                                       size_t cols, const double *h)
{
    QC_CHECK_NOT_NULL(loss);
    QC_CHECK_NOT_NULL(w);
    QC_CHECK_NOT_NULL(wq);
    if (rows == 0 || cols == 0 || rows > (size_t)INT32_MAX || cols > (size_t)INT32_MAX)
        return QC_FAIL(QC_ERR_SHAPE, "the weight is %zu x %zu: both must be in [1, 2^31)", rows, cols);
    QC_TRY(check_finite_f32(w, rows * cols, "w", __func__));
    QC_TRY(check_finite_f32(wq, rows * cols, "wq", __func__));
    for (size_t i = 0; h && i < cols * cols; i++)
        if (!isfinite(h[i])) return QC_FAIL(QC_ERR_NUMERIC, "argument 'h': element %zu is %g", i, h[i]);
    return output_error(loss, ctx ? qc__ctx_threads(ctx) : 1, w, wq, rows, cols, h, __func__);
}
