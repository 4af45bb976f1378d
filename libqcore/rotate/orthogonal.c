/* Haar-random orthogonal matrices: the sign-corrected QR of a Gaussian matrix (qc_rotate.h). */
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "linalg/linalg.h"
#include "rotate/rotate.h"

/* Within LAPACK's 32-bit extents, and small enough that n^2 doubles have a byte count. */
static const int64_t MAX_N = (int64_t)1 << 30;

qc_status qc__sign_corrected_qr(double *a, int64_t n, int64_t p, double *work, double *q,
                                const char *function)
{
    double *tau = work, *r_diag = work + p;
    QC_TRY(qc__qr(a, n, p, n, tau, function));
    for (int64_t j = 0; j < p; j++) r_diag[j] = a[j * n + j];
    QC_TRY(qc__qr_form_q(a, n, p, n, tau, function));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < p; j++) q[i * p + j] = r_diag[j] < 0.0 ? -a[j * n + i] : a[j * n + i];
    return QC_OK;
}

/* G (row-major, from the context's seed) into g, and transposed into column-major a, LAPACK's layout. */
static qc_status gaussian(double *a, double *g, qc_ctx *ctx, int64_t n, uint64_t stream)
{
    qc_tensor t;
    int64_t dims[2] = {n, n};
    QC_TRY(qc_tensor_init(&t, g, QC_DT_F64, 2, dims, NULL));
    QC_TRY(qc_random_normal(ctx, &t, stream));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) a[j * n + i] = g[i * n + j];
    return QC_OK;
}

/* a: n^2 + 2n doubles (the matrix LAPACK works on, then tau and diag R); q: n^2 (G, then the result). */
static qc_status haar(qc_ctx *ctx, qc_tensor *out, uint64_t stream, double *a, double *q)
{
    int64_t n = out->dims[0];
    QC_TRY(gaussian(a, q, ctx, n, stream));
    QC_TRY(qc__sign_corrected_qr(a, n, n, a + n * n, q, "qc_random_orthogonal"));
    for (int64_t i = 0; i < n * n; i++) {
        if (out->dtype == QC_DT_F32)
            ((float *)out->data)[i] = (float)q[i];
        else
            ((double *)out->data)[i] = q[i];
    }
    return QC_OK;
}

qc_status qc_random_orthogonal(qc_ctx *ctx, qc_tensor *out, uint64_t stream)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(qc__square_output(out, __func__));
    int64_t n = out->dims[0];
    if (n > MAX_N)
        return QC_FAIL(QC_ERR_OVERFLOW, "argument 'out': n = %lld exceeds 2^30 (n^2 doubles overflow memory sizes)",
                       (long long)n);
    double *a = malloc((size_t)(n * n + 2 * n) * sizeof *a), *q = malloc((size_t)(n * n) * sizeof *q);
    qc_status st = a && q ? haar(ctx, out, stream, a, q)
                          : QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for two %lldx%lld matrices", (long long)n,
                                    (long long)n);
    free(a);
    free(q);
    return st;
}
