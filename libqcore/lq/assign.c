/* Output-aware code assignment (qc_lq_assign_codes): OPTQ's sequential rounding with each row's LQ levels in
 * place of a uniform grid. The target W* = W G^T (H + dI)^-1 turns the layer's output error over the
 * calibration inputs into || (W* - Q) (H + dI)^(1/2) ||^2, which OPTQ minimizes column by column: column j
 * is rounded to the nearest level, and its error, scaled by the upper Cholesky factor U of (H + dI)^-1, is
 * taken out of the columns not yet rounded. Columns go in blocks: inside a block the updates are rank one
 * per row (rows are independent, so threads split the rows); the columns after the block get the whole
 * block's errors in one product (BLAS-3), in fixed tiles so that no result depends on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "linalg/linalg.h"
#include "lq/lq.h"

enum { ASSIGN_BLOCK = 128, DAMPING_RETRIES = 6 };

typedef struct assign_work {
    double *hinv;   /* [n, n] (H + dI)^-1, full */
    double *u;      /* [n, n] its upper Cholesky factor (upper triangle) */
    double *target; /* [O, n] W*, updated as columns are rounded */
    double *product;/* [O, n] W G^T */
    double *err;    /* [O, ASSIGN_BLOCK] scaled errors of the current block */
    double *scratch;/* [n, n] */
    qc_lq_table *tables; /* [O] each row's sorted levels and thresholds */
} assign_work;

static void work_free(assign_work *a)
{
    free(a->hinv);
    free(a->u);
    free(a->target);
    free(a->product);
    free(a->err);
    free(a->scratch);
    free(a->tables);
}

static qc_status work_alloc(assign_work *a, int64_t rows, int64_t n)
{
    size_t nn = (size_t)(n * n), rn = (size_t)(rows * n);
    a->hinv = malloc(sizeof(double) * nn);
    a->u = malloc(sizeof(double) * nn);
    a->scratch = malloc(sizeof(double) * nn);
    a->target = malloc(sizeof(double) * rn);
    a->product = malloc(sizeof(double) * rn);
    a->err = malloc(sizeof(double) * (size_t)(rows * ASSIGN_BLOCK));
    a->tables = malloc(sizeof(qc_lq_table) * (size_t)(rows > 0 ? rows : 1));
    if (a->hinv && a->u && a->scratch && a->target && a->product && a->err && a->tables) return QC_OK;
    work_free(a);
    return QC_FAIL_IN("qc_lq_assign_codes", QC_ERR_OUT_OF_MEMORY, "no memory for a %lld x %lld layer",
                      (long long)rows, (long long)n);
}

static qc_status check_square(const qc_tensor *m, int64_t n, const char *name)
{
    QC_TRY(qc__lq_check_matrix(m, QC_DT_F64, n, n, "qc_lq_assign_codes", name));
    return qc__tensor_check_finite(m, "qc_lq_assign_codes", name);
}

static qc_status check_assign(int *bits, const qc_tensor *codes, const qc_tensor *w, const qc_tensor *basis,
                              const qc_tensor *h, const qc_tensor *g, qc_lq_code code, double damping)
{
    const char *fn = "qc_lq_assign_codes";
    QC_TRY(qc__lq_check_code(code, fn, "code"));
    if (!(damping > 0.0 && damping <= 1.0))
        return QC_FAIL_IN(fn, QC_ERR_INVALID_ARG, "argument 'damping' is %g, expected a value in (0, 1]", damping);
    QC_TRY(qc__lq_check_matrix(w, QC_DT_F32, -1, -1, fn, "w"));
    int64_t rows = w->dims[0], n = w->dims[1];
    if (n < 1) return QC_FAIL_IN(fn, QC_ERR_SHAPE, "argument 'w': rows are empty (n = 0)");
    QC_TRY(qc__tensor_check_finite(w, fn, "w"));
    QC_TRY(qc__lq_check_basis(basis, rows, 0, bits, fn, "basis"));
    QC_TRY(qc__lq_check_matrix(codes, QC_DT_U8, rows, n, fn, "codes"));
    QC_TRY(check_square(h, n, "h"));
    return check_square(g, n, "g");
}

/* hinv = (H + d I)^-1 with d = ratio * mean(diag H), the ratio multiplied by 10 while H + dI is not
 * positive definite (H is only positive semi-definite when inputs are dead or collinear); *used receives
 * the ratio that worked. u receives the upper Cholesky factor of hinv. */
static qc_status damped_inverse(assign_work *a, const double *h, int64_t n, double ratio, double *used, int threads)
{
    double mean = 0.0;
    for (int64_t i = 0; i < n; i++) mean += h[i * n + i];
    mean = mean > 0.0 ? mean / (double)n : 1.0;
    qc_status st = QC_ERR_SINGULAR;
    for (int attempt = 0; attempt <= DAMPING_RETRIES && st == QC_ERR_SINGULAR; attempt++, ratio *= 10.0) {
        memcpy(a->scratch, h, sizeof(double) * (size_t)(n * n));
        for (int64_t i = 0; i < n; i++) a->scratch[i * n + i] += ratio * mean;
        st = qc__cholesky(a->scratch, n, n, NULL, "qc_lq_assign_codes");
        if (st == QC_OK) *used = ratio;
    }
    if (st != QC_OK)
        return QC_FAIL_IN("qc_lq_assign_codes", QC_ERR_SINGULAR,
                          "argument 'h': not positive definite even with damping %g times its mean diagonal",
                          ratio / 10.0);
    /* (L L^T)^-1 = L^-T L^-1 */
    QC_TRY(qc__triangular_inverse(a->scratch, n, n, "qc_lq_assign_codes"));
    qc__dgemm(threads, 1, 0, n, n, n, 1.0, a->scratch, n, a->scratch, n, 0.0, a->hinv, n);
    memcpy(a->u, a->hinv, sizeof(double) * (size_t)(n * n));
    return qc__cholesky_upper(a->u, n, n, NULL, "qc_lq_assign_codes");
}

/* target = W G^T hinv: the float layer's outputs fitted on the quantized inputs. */
static void target_weights(assign_work *a, const float *w, const double *g, int64_t rows, int64_t n, int threads)
{
    for (int64_t i = 0; i < rows * n; i++) a->target[i] = (double)w[i];
    qc__dgemm(threads, 0, 1, rows, n, n, 1.0, a->target, n, g, n, 0.0, a->product, n);
    qc__dgemm(threads, 0, 0, rows, n, n, 1.0, a->product, n, a->hinv, n, 0.0, a->target, n);
}

/* Rounds columns [j0, j1) of row o, each to its nearest level, and spreads each error over the rest of
 * the block. */
static void round_block_row(assign_work *a, uint8_t *codes, const qc_lq_table *t, int64_t o, int64_t n,
                            int64_t j0, int64_t j1)
{
    double *row = a->target + o * n, *err = a->err + o * ASSIGN_BLOCK;
    for (int64_t j = j0; j < j1; j++) {
        int index = 0;
        for (int i = 0; i < t->count - 1; i++) index += row[j] > t->threshold[i]; /* ties down, as qc_lq_encode */
        codes[o * n + j] = t->code[index];
        double e = (row[j] - t->level[index]) / a->u[j * n + j];
        err[j - j0] = e;
        const double *uj = a->u + j * n;
        for (int64_t k = j + 1; k < j1; k++) row[k] -= e * uj[k];
    }
}

static void assign_all(assign_work *a, uint8_t *codes, const float *basis, int bits, qc_lq_code code,
                       int64_t rows, int64_t n, int threads)
{
    for (int64_t o = 0; o < rows; o++) qc__lq_table(&a->tables[o], basis + o * bits, bits, code);
    for (int64_t j0 = 0; j0 < n; j0 += ASSIGN_BLOCK) {
        int64_t j1 = j0 + ASSIGN_BLOCK < n ? j0 + ASSIGN_BLOCK : n;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t o = 0; o < rows; o++) round_block_row(a, codes, &a->tables[o], o, n, j0, j1);
        if (j1 < n)
            qc__dgemm(threads, 0, 0, rows, n - j1, j1 - j0, -1.0, a->err, ASSIGN_BLOCK, a->u + j0 * n + j1, n,
                            1.0, a->target + j1, n);
    }
}

qc_status qc_lq_assign_codes(qc_ctx *ctx, qc_tensor *codes, double *damping_used, const qc_tensor *w,
                             const qc_tensor *basis, const qc_tensor *h, const qc_tensor *g, qc_lq_code code,
                             double damping)
{
    int bits;
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(check_assign(&bits, codes, w, basis, h, g, code, damping));
    int64_t rows = w->dims[0], n = w->dims[1];
    int64_t extents[2] = {rows, n};
    if (!qc__linalg_fits(extents, 2))
        return QC_FAIL(QC_ERR_OVERFLOW, "a %lld x %lld layer exceeds the BLAS integer", (long long)rows, (long long)n);
    assign_work a;
    QC_TRY(work_alloc(&a, rows, n));
    int threads = qc__ctx_threads(ctx);
    double used = damping;
    qc_status st = damped_inverse(&a, h->data, n, damping, &used, threads);
    if (st == QC_OK) {
        target_weights(&a, w->data, g->data, rows, n, threads);
        assign_all(&a, codes->data, basis->data, bits, code, rows, n, threads);
        if (damping_used) *damping_used = used;
    }
    work_free(&a);
    return st;
}
