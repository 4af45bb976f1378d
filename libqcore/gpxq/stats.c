/* Streaming statistics of a layer's inputs: sums of outer products in double, added batch by batch in
 * chunks of rows, so memory is O(dim^2) whatever the sample count. A chunk's products are computed in
 * double, or for OPTQ from float32 rows in float32 (qc_gpxq.h: twice the speed of double, the precision of
 * OPTQ's reference implementation) and then added into the double sums. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "gpxq/gpxq.h"
#include "linalg/linalg.h"

/* Rows per BLAS call: large enough for level-3 speed, small beside dim^2. STRIPE: rows of X^T X computed
 * in float32 at a time, so that they are still in cache when added into the double sums. */
enum { CHUNK_ROWS = 256, MIRROR_TILE = 64, STRIPE = 256 };

/* float32 products of a chunk overflow when some sum of CHUNK_ROWS squares may exceed FLT_MAX (2^128):
 * such chunks are multiplied in double. */
static const double FLOAT_PRODUCTS_BOUND = 0x1p120;

struct qc_gpxq_stats {
    qc_gpxq_method method;
    int64_t dim, count;
    double *h;      /* lower triangle of sum xq xq^T (x x^T for OPTQ); the strict upper triangle is
                       qc_optq_from_stats' workspace */
    double *g;      /* GPFQ: sum xq x^T */
    double *chunk;  /* [CHUNK_ROWS, dim] for x, then as much for xq; OPTQ's float32 products: [STRIPE, dim]
                       float32 */
};

qc_status qc_gpxq_stats_create(qc_gpxq_stats **out, qc_gpxq_method method, int64_t dim)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    if (method != QC_GPXQ_OPTQ && method != QC_GPXQ_GPFQ)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'method': %d is not QC_GPXQ_OPTQ or QC_GPXQ_GPFQ", (int)method);
    if (dim < 1 || !qc__linalg_fits(&dim, 1))
        return QC_FAIL(dim < 1 ? QC_ERR_INVALID_ARG : QC_ERR_OVERFLOW, "argument 'dim': %lld is outside 1..2^31 - 1",
                       (long long)dim);
    qc_gpxq_stats *s = calloc(1, sizeof *s);
    int gpfq = method == QC_GPXQ_GPFQ;
    if (s != NULL) {
        *s = (qc_gpxq_stats){.method = method, .dim = dim};
        s->h = calloc((size_t)(dim * dim), sizeof *s->h);
        s->g = gpfq ? calloc((size_t)(dim * dim), sizeof *s->g) : NULL;
        s->chunk = malloc((size_t)((gpfq ? 2 : 1) * CHUNK_ROWS * dim) * sizeof *s->chunk);
    }
    if (s == NULL || s->h == NULL || (gpfq && s->g == NULL) || s->chunk == NULL) {
        qc_gpxq_stats_free(s);
        return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld x %lld statistics", (long long)dim, (long long)dim);
    }
    *out = s;
    return QC_OK;
}

void qc_gpxq_stats_free(qc_gpxq_stats *stats)
{
    if (stats == NULL) return;
    free(stats->h);
    free(stats->g);
    free(stats->chunk);
    free(stats);
}

static qc_status check_batch(const qc_gpxq_stats *s, const qc_tensor *x, const char *name, const char *function)
{
    QC_TRY(qc__tensor_expect_float(x, function, name));
    if (x->ndim != 2 || x->dims[1] != s->dim) {
        char got[160];
        qc__shape_string(got, sizeof got, x->ndim, x->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': shape %s, expected [batch, %lld]", name, got,
                          (long long)s->dim);
    }
    return qc__tensor_check_finite(x, function, name);
}

static qc_status check_pair(const qc_gpxq_stats *s, const qc_tensor *x, const qc_tensor *x_quant, const char *function)
{
    QC_TRY(check_batch(s, x, "x", function));
    if (s->method == QC_GPXQ_OPTQ) {
        if (x_quant != NULL)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'x_quant' must be NULL for OPTQ statistics");
        return QC_OK;
    }
    if (x_quant == NULL)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'x_quant' is NULL; GPFQ statistics need both inputs");
    QC_TRY(check_batch(s, x_quant, "x_quant", function));
    return qc__tensor_same_shape(x, x_quant, function, "x", "x_quant");
}

static void to_double(double *out, const qc_tensor *x, int64_t first, int64_t count)
{
    int64_t offset = first * x->dims[1], n = count * x->dims[1];
    for (int64_t i = 0; i < n; i++) out[i] = qc__tensor_float_at(x, offset + i);
}

/* 1 when the float32 sums of products of these rows cannot overflow (see FLOAT_PRODUCTS_BOUND). */
static int float_products_fit(const float *x, int64_t n)
{
    float top = 0.0f;
    for (int64_t i = 0; i < n; i++) top = fabsf(x[i]) > top ? fabsf(x[i]) : top;
    return (double)top * (double)top * CHUNK_ROWS < FLOAT_PRODUCTS_BOUND;
}

/* OPTQ: the lower triangle of X^T X for the float32 rows x [n, dim], in float32 (sgemm, in its own order),
 * added into the double sums a stripe of STRIPE rows at a time (its diagonal block computed whole). */
static void add_float_products(qc_gpxq_stats *s, int threads, const float *x, int64_t n)
{
    int64_t d = s->dim;
    float *c = (float *)(void *)s->chunk;
    for (int64_t i0 = 0; i0 < d; i0 += STRIPE) {
        int64_t i1 = i0 + STRIPE < d ? i0 + STRIPE : d;
        qc__sgemm(threads, 1, 0, i1 - i0, i1, n, 1.0f, x + i0, d, x, d, 0.0f, c, i1);
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = i0; i < i1; i++) {
            double *row = s->h + i * d;
            const float *products = c + (i - i0) * i1;
            for (int64_t j = 0; j <= i; j++) row[j] += (double)products[j];
        }
    }
}

qc_status qc_gpxq_stats_add(qc_ctx *ctx, qc_gpxq_stats *stats, const qc_tensor *x, const qc_tensor *x_quant)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(stats);
    QC_TRY(check_pair(stats, x, x_quant, __func__));
    int64_t rows = x->dims[0], d = stats->dim;
    int threads = qc__ctx_threads(ctx);
    double *cx = stats->chunk, *cq = stats->chunk + CHUNK_ROWS * d;
    for (int64_t first = 0; first < rows; first += CHUNK_ROWS) {
        int64_t n = rows - first < CHUNK_ROWS ? rows - first : CHUNK_ROWS;
        if (stats->method == QC_GPXQ_OPTQ && x->dtype == QC_DT_F32) {
            const float *chunk = (const float *)x->data + first * d;
            if (float_products_fit(chunk, n * d)) {
                add_float_products(stats, threads, chunk, n);
                continue;
            }
        }
        to_double(cx, x, first, n);
        if (stats->method == QC_GPXQ_OPTQ) {
            qc__dsyrk_lower(threads, d, n, 1.0, cx, d, 1.0, stats->h, d);
            continue;
        }
        to_double(cq, x_quant, first, n);
        qc__dsyrk_lower(threads, d, n, 1.0, cq, d, 1.0, stats->h, d);
        qc__dgemm(threads, 1, 0, d, d, n, 1.0, cq, d, cx, d, 1.0, stats->g, d);
    }
    stats->count += rows;
    return QC_OK;
}

qc_status qc_gpxq_stats_count(int64_t *out, const qc_gpxq_stats *stats)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(stats);
    *out = stats->count;
    return QC_OK;
}

static qc_status check_output(const qc_gpxq_stats *s, const qc_tensor *m, const char *name, const char *function)
{
    QC_TRY(qc__tensor_expect(m, function, name, QC_DT_F64));
    if (m->ndim != 2 || m->dims[0] != s->dim || m->dims[1] != s->dim) {
        char got[160];
        qc__shape_string(got, sizeof got, m->ndim, m->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': shape %s, expected [%lld, %lld]", name, got,
                          (long long)s->dim, (long long)s->dim);
    }
    if (s->count == 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'stats': no sample has been added");
    return QC_OK;
}

qc_status qc_gpxq_stats_hessian(qc_tensor *h, const qc_gpxq_stats *stats)
{
    QC_CHECK_NOT_NULL(stats);
    QC_TRY(check_output(stats, h, "h", __func__));
    int64_t d = stats->dim;
    double scale = stats->method == QC_GPXQ_OPTQ ? 2.0 / (double)stats->count : 1.0, *out = h->data;
    /* Tile by tile, so that the mirrored (column) writes stay in cache: a plain row loop misses on each. */
    for (int64_t i0 = 0; i0 < d; i0 += MIRROR_TILE)
        for (int64_t j0 = 0; j0 <= i0; j0 += MIRROR_TILE)
            for (int64_t i = i0; i < i0 + MIRROR_TILE && i < d; i++)
                for (int64_t j = j0; j < j0 + MIRROR_TILE && j <= i; j++)
                    out[i * d + j] = out[j * d + i] = scale * stats->h[i * d + j];
    return QC_OK;
}

qc_status qc_gpxq_stats_cross(qc_tensor *g, const qc_gpxq_stats *stats)
{
    QC_CHECK_NOT_NULL(stats);
    if (stats->method != QC_GPXQ_GPFQ)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'stats': G exists for GPFQ statistics only");
    QC_TRY(check_output(stats, g, "g", __func__));
    memcpy(g->data, stats->g, (size_t)(stats->dim * stats->dim) * sizeof *stats->g);
    return QC_OK;
}

qc_status qc__gpxq_stats_sums(double **sums, double *scale, qc_gpxq_stats *stats, int64_t dim, const char *function)
{
    if (stats == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'stats' is NULL");
    if (stats->method != QC_GPXQ_OPTQ)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "argument 'stats': GPFQ statistics, OPTQ needs OPTQ statistics");
    if (stats->dim != dim)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'stats': statistics of %lld inputs, but w has %lld inputs",
                          (long long)stats->dim, (long long)dim);
    if (stats->count == 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'stats': no sample has been added");
    *sums = stats->h;
    *scale = 2.0 / (double)stats->count;
    return QC_OK;
}

double *qc__gpxq_stats_save_diagonal(const qc_gpxq_stats *stats)
{
    double *saved = malloc((size_t)stats->dim * sizeof *saved);
    if (saved != NULL)
        for (int64_t i = 0; i < stats->dim; i++) saved[i] = stats->h[i * stats->dim + i];
    return saved;
}

void qc__gpxq_stats_restore_diagonal(qc_gpxq_stats *stats, double *saved)
{
    if (saved == NULL) return;
    for (int64_t i = 0; i < stats->dim; i++) stats->h[i * stats->dim + i] = saved[i];
    free(saved);
}
