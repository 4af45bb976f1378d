/* Dense Hadamard matrices H_n and H_n·D/sqrt(n) (qc_rotate.h), entry by entry from the constructed H_K. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "rotate/rotate.h"

qc_status qc__hadamard_order(int64_t *k, int64_t n, const char *function, const char *name)
{
    if (n < 1) return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': n = %lld must be >= 1", name, (long long)n);
    if (n > INT_MAX)
        return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "argument '%s': n = %lld exceeds 2^31 - 1", name, (long long)n);
    *k = qc__hadamard_k(n);
    if (*k == 0) {
        int64_t odd = n;
        while (odd % 2 == 0) odd /= 2;
        return QC_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                          "argument '%s': no Hadamard matrix of order n = %lld is constructed (n must be K * 2^k "
                          "with a Paley or Kronecker order K <= %d; n's odd part %lld has none)",
                          name, (long long)n, QC_HADAMARD_MAX_K, (long long)odd);
    }
    return QC_OK;
}

qc_status qc_hadamard_factor(int64_t *k, int64_t n)
{
    QC_CHECK_NOT_NULL(k);
    int64_t found;
    QC_TRY(qc__hadamard_order(&found, n, __func__, "n"));
    *k = found;
    return QC_OK;
}

/* A C-contiguous f32 or f64 [n, n] output with a supported n; *hk receives H_K (owned by the caller). */
static qc_status square_output(int8_t **hk, int64_t *k, const qc_tensor *out, const char *function)
{
    QC_TRY(qc__square_output(out, function));
    QC_TRY(qc__hadamard_order(k, out->dims[0], function, "out"));
    *hk = malloc((size_t)(*k * *k));
    if (*hk == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for H_%lld", (long long)*k);
    qc__hadamard_build(*hk, *k);
    return QC_OK;
}

/* out[i][j] = H_n[i][j] * column[j] (column NULL: 1). */
static void fill(qc_tensor *out, const int8_t *hk, int64_t k, const float *column, double scale)
{
    int64_t n = out->dims[0];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double v = qc__hadamard_entry(hk, k, i, j) * scale * (column ? column[j] : 1.0f);
            if (out->dtype == QC_DT_F32)
                ((float *)out->data)[i * n + j] = (float)v;
            else
                ((double *)out->data)[i * n + j] = v;
        }
}

qc_status qc_hadamard_matrix(qc_tensor *out)
{
    int8_t *hk;
    int64_t k;
    QC_TRY(square_output(&hk, &k, out, __func__));
    fill(out, hk, k, NULL, 1.0);
    free(hk);
    return QC_OK;
}

qc_status qc_random_hadamard_matrix(qc_ctx *ctx, qc_tensor *out, uint64_t stream)
{
    QC_CHECK_NOT_NULL(ctx);
    int8_t *hk;
    int64_t k;
    QC_TRY(square_output(&hk, &k, out, __func__));
    int64_t n = out->dims[0];
    float *d = malloc((size_t)n * sizeof *d);
    if (d == NULL) {
        free(hk);
        return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld signs", (long long)n);
    }
    qc__random_signs(d, n, ctx->seed, stream);
    fill(out, hk, k, d, 1.0 / sqrt((double)n));
    free(d);
    free(hk);
    return QC_OK;
}
