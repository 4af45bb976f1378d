/* Haar-random orthogonal matrices: the sign-corrected QR of a Gaussian matrix (qc_rotate.h). */
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "linalg/linalg.h"
#include "rotate/rotate.h"

/* Within LAPACK's 32-bit extents, and small enough that n^2 doubles have a byte count. */
static const int64_t MAX_N = (int64_t)1 << 30;

/* G (row-major, from the context's seed) transposed into column-major a[n*n], LAPACK's layout. */
static qc_status gaussian_column_major(double *a, qc_ctx *ctx, int64_t n, uint64_t stream, double *scratch)
{
    qc_tensor g;
    int64_t dims[2] = {n, n};
    QC_TRY(qc_tensor_init(&g, scratch, QC_DT_F64, 2, dims, NULL));
    QC_TRY(qc_random_normal(ctx, &g, stream));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) a[j * n + i] = scratch[i * n + j];
    return QC_OK;
}

/* out[i][j] = Q[i][j] * sign(R[j][j]); q column-major, sign(0) = +1. */
static void store_sign_corrected(qc_tensor *out, const double *q, const double *r_diag, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = r_diag[j] < 0.0 ? -q[j * n + i] : q[j * n + i];
            if (out->dtype == QC_DT_F32)
                ((float *)out->data)[i * n + j] = (float)v;
            else
                ((double *)out->data)[i * n + j] = v;
        }
}

static qc_status haar(qc_ctx *ctx, qc_tensor *out, uint64_t stream, double *a, double *work)
{
    int64_t n = out->dims[0];
    double *tau = work, *r_diag = work + n;
    QC_TRY(gaussian_column_major(a, ctx, n, stream, work));
    int threads = qc__ctx_threads(ctx);
    QC_TRY(qc__qr(threads, a, n, n, n, tau, "qc_random_orthogonal"));
    for (int64_t j = 0; j < n; j++) r_diag[j] = a[j * n + j];
    QC_TRY(qc__qr_form_q(threads, a, n, n, n, tau, "qc_random_orthogonal"));
    store_sign_corrected(out, a, r_diag, n);
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
    /* a holds the matrix LAPACK works on; work first holds G row-major, then tau and diag(R). */
    size_t count = (size_t)(n * n > 2 * n ? n * n : 2 * n);
    double *a = malloc(count * sizeof *a), *work = malloc(count * sizeof *work);
    qc_status st = a && work ? haar(ctx, out, stream, a, work)
                             : QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for two %lldx%lld matrices", (long long)n, (long long)n);
    free(a);
    free(work);
    return st;
}
