/* Output-aware refit of weight bases (qc_lq_refit_output): per row o, the K x K system
 * (B_o H B_o^T + ridge I) v = B_o G w_o + ridge v_old. With P the code values of all rows ([O K, n]), the
 * products P H and W G^T are two large BLAS calls; each row then needs K x K and K x 1 products of its own
 * slices, made by one thread each. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "linalg/linalg.h"
#include "lq/lq.h"

typedef struct refit_work {
    double *p;   /* [O K, n] code values */
    double *ph;  /* [O K, n] P H */
    double *wd;  /* [O, n] W in double */
    double *gw;  /* [O, n] W G^T: row o is G w_o */
} refit_work;

static void work_free(refit_work *r)
{
    free(r->p);
    free(r->ph);
    free(r->wd);
    free(r->gw);
}

static qc_status work_alloc(refit_work *r, int64_t rows, int bits, int64_t n)
{
    size_t pn = (size_t)(rows * bits * n), wn = (size_t)(rows * n);
    r->p = malloc(sizeof(double) * pn);
    r->ph = malloc(sizeof(double) * pn);
    r->wd = malloc(sizeof(double) * wn);
    r->gw = malloc(sizeof(double) * wn);
    if (r->p && r->ph && r->wd && r->gw) return QC_OK;
    work_free(r);
    return QC_FAIL_IN("qc_lq_refit_output", QC_ERR_OUT_OF_MEMORY, "no memory for %lld x %lld code values",
                      (long long)(rows * bits), (long long)n);
}

static qc_status check_square(const qc_tensor *m, int64_t n, const char *name)
{
    QC_TRY(qc__lq_check_matrix(m, QC_DT_F64, n, n, "qc_lq_refit_output", name));
    return qc__tensor_check_finite(m, "qc_lq_refit_output", name);
}

static qc_status check_refit(int *bits, const qc_tensor *basis, const qc_tensor *codes, const qc_tensor *basis_old,
                             const qc_tensor *w, const qc_tensor *h, const qc_tensor *g, qc_lq_code code, double ridge)
{
    const char *fn = "qc_lq_refit_output";
    QC_TRY(qc__lq_check_code(code, fn, "code"));
    if (!(ridge >= 0.0 && ridge <= 1e6))
        return QC_FAIL_IN(fn, QC_ERR_INVALID_ARG, "argument 'ridge' is %g, expected a finite value in 0..1e6", ridge);
    QC_TRY(qc__lq_check_matrix(w, QC_DT_F32, -1, -1, fn, "w"));
    int64_t rows = w->dims[0], n = w->dims[1];
    if (n < 1) return QC_FAIL_IN(fn, QC_ERR_SHAPE, "argument 'w': rows are empty (n = 0)");
    QC_TRY(qc__lq_check_matrix(codes, QC_DT_U8, rows, n, fn, "codes"));
    QC_TRY(qc__lq_check_basis(basis_old, rows, 0, bits, fn, "basis_old"));
    QC_TRY(qc__lq_check_matrix(basis, QC_DT_F32, rows, *bits, fn, "basis"));
    QC_TRY(check_square(h, n, "h"));
    QC_TRY(check_square(g, n, "g"));
    QC_TRY(qc__tensor_check_finite(w, fn, "w"));
    const uint8_t *c = codes->data;
    for (int64_t i = 0; i < rows * n; i++)
        if (c[i] >> *bits)
            return QC_FAIL_IN(fn, QC_ERR_INVALID_ARG, "argument 'codes': element %lld is %u, not below 2^%d",
                              (long long)i, (unsigned)c[i], *bits);
    return QC_OK;
}

/* Solves row o's system into v (K floats); keeps v_old when it is not positive definite. */
static void solve_row(float *v, const refit_work *r, int64_t o, int bits, int64_t n, const float *v_old, double ridge)
{
    double a[QC_LQ_MAX_BITS * QC_LQ_MAX_BITS], rhs[QC_LQ_MAX_BITS];
    const double *po = r->p + o * bits * n;
    qc__dgemm(1, 0, 1, bits, bits, n, 1.0, r->ph + o * bits * n, n, po, n, 0.0, a, bits);
    qc__dgemm(1, 0, 0, bits, 1, n, 1.0, po, n, r->gw + o * n, 1, 0.0, rhs, 1);
    for (int j = 0; j < bits; j++) {
        a[j * bits + j] += ridge;
        rhs[j] += ridge * (double)v_old[j];
    }
    int ok = qc__spd_solve(a, bits, bits, rhs, "qc_lq_refit_output") == QC_OK;
    for (int j = 0; j < bits && ok; j++) ok = isfinite((float)rhs[j]);
    for (int j = 0; j < bits; j++) v[j] = ok ? (float)rhs[j] : v_old[j];
}

qc_status qc_lq_refit_output(qc_ctx *ctx, qc_tensor *basis, const qc_tensor *codes, const qc_tensor *basis_old,
                             const qc_tensor *w, const qc_tensor *h, const qc_tensor *g, qc_lq_code code, double ridge)
{
    int bits;
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(check_refit(&bits, basis, codes, basis_old, w, h, g, code, ridge));
    int64_t rows = w->dims[0], n = w->dims[1];
    int64_t extents[3] = {rows * bits, n, rows};
    if (!qc__linalg_fits(extents, 3))
        return QC_FAIL(QC_ERR_OVERFLOW, "%lld x %lld code values exceed the BLAS integer", (long long)(rows * bits),
                       (long long)n);
    refit_work r;
    QC_TRY(work_alloc(&r, rows, bits, n));
    int threads = qc__ctx_threads(ctx);
    const uint8_t *c = codes->data;
    const float *wf = w->data;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t o = 0; o < rows; o++)
        for (int64_t k = 0; k < n; k++) {
            r.wd[o * n + k] = (double)wf[o * n + k];
            for (int j = 0; j < bits; j++)
                r.p[(o * bits + j) * n + k] = (c[o * n + k] >> j) & 1 ? 1.0 : (code == QC_LQ_SIGNED ? -1.0 : 0.0);
        }
    qc__dgemm(threads, 0, 0, rows * bits, n, n, 1.0, r.p, n, h->data, n, 0.0, r.ph, n);
    qc__dgemm(threads, 0, 1, rows, n, n, 1.0, r.wd, n, g->data, n, 0.0, r.gw, n);
    /* basis may alias basis_old: each row reads its own old basis before writing it. */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t o = 0; o < rows; o++) {
        float v_old[QC_LQ_MAX_BITS];
        memcpy(v_old, (const float *)basis_old->data + o * bits, sizeof(float) * (size_t)bits);
        solve_row((float *)basis->data + o * bits, &r, o, bits, n, v_old, ridge);
    }
    work_free(&r);
    return QC_OK;
}
