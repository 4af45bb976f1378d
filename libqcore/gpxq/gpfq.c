/* GPFQ in its lower-triangular form: with A = W tril(G)^T computed once, the argument of input t is
 *     v_t = (A[t] - sum_{j<t} H_tj w'_j) / (H_tt + delta),
 * the running sums of later inputs being updated a block at a time with one matrix product. */
#include <stdlib.h>

#include "core/error.h"
#include "gpxq/gpxq.h"
#include "linalg/linalg.h"

typedef struct gpfq {
    qc_gpxq_layer layer;
    qc_gpxq_options opts;
    qc_gpxq_work w;       /* square: tril(H) in processing order; running: the arguments' sums A;
                             block_values: the current block's dequantized weights */
    double *denominator;  /* per processing position: H_tt + delta */
} gpfq;

static void gpfq_free(gpfq *s)
{
    qc__gpxq_layer_free(&s->layer);
    qc__gpxq_work_free(&s->w);
    free(s->denominator);
}

static qc_status gpfq_alloc(gpfq *s)
{
    QC_TRY(qc__gpxq_work_alloc(&s->w, &s->layer, s->opts.block_size, 0, 1));
    s->denominator = malloc((size_t)s->w.d * sizeof *s->denominator);
    if (s->denominator == NULL) return QC_FAIL_IN(s->layer.function, QC_ERR_OUT_OF_MEMORY, "no memory for H's diagonal");
    return QC_OK;
}

/* The diagonal (a Gram matrix has no negative entry there) and the damped denominators. */
static qc_status denominators(gpfq *s, const double *h, qc_gpxq_result *res)
{
    double sum = 0.0;
    for (int64_t i = 0; i < s->w.d; i++) {
        s->w.diag[i] = h[i * s->w.d + i];
        if (s->w.diag[i] < 0.0)
            return QC_FAIL_IN(s->layer.function, QC_ERR_NUMERIC,
                              "argument 'h': diagonal entry %lld is %g; H = sum xq xq^T has no negative diagonal",
                              (long long)i, s->w.diag[i]);
        sum += s->w.diag[i];
    }
    res->damp_ratio = s->opts.damp_ratio;
    res->damp = s->opts.damp_ratio * sum / (double)s->w.d;
    for (int64_t t = 0; t < s->w.d; t++) s->denominator[t] = s->w.diag[s->w.order[t]] + res->damp;
    return QC_OK;
}

/* A = W tril(G)^T in processing order: A[r][t] = sum_{j<=t} G_tj w_rj. */
static qc_status initial_sums(gpfq *s, const double *g)
{
    int64_t d = s->w.d, rows = s->layer.rows;
    double *gl = malloc((size_t)(d * d) * sizeof *gl), *work = malloc((size_t)(rows * d) * sizeof *work);
    if (gl == NULL || work == NULL) {
        free(gl);
        free(work);
        return QC_FAIL_IN(s->layer.function, QC_ERR_OUT_OF_MEMORY, "no memory for G in processing order");
    }
    qc__gpxq_gather_lower(gl, g, d, s->w.order, 0, s->layer.threads);
    /* Dead inputs keep their weights here: X_j may vary on the float path although Xq_j does not. */
    qc__gpxq_gather_weights(work, NULL, &s->layer, s->w.order, NULL);
    qc__dgemm(s->layer.threads, 0, 1, rows, d, d, 1.0, work, d, gl, d, 0.0, s->w.running, d);
    free(gl);
    free(work);
    return QC_OK;
}

static void quantize_row_block(gpfq *s, int64_t r, int64_t t1, int64_t t2)
{
    int64_t d = s->w.d;
    const double *a = s->w.running + r * d;
    double *deq = s->w.block_values + r * s->w.block;
    for (int64_t t = t1; t < t2; t++) {
        int64_t c = s->w.order[t];
        const double *ht = s->w.square + t * d;
        double v = a[t];
        for (int64_t j = t1; j < t; j++) v -= ht[j] * deq[j - t1];
        /* A dead input's argument is 0 (its row of G and H is 0); the test also spares 0 / 0 when delta = 0. */
        v = s->w.dead[c] ? 0.0 : v / s->denominator[t];
        int32_t q = qc__gpxq_level(&s->layer, r, c, v);
        s->layer.levels[r * d + c] = q;
        deq[t - t1] = qc__gpxq_dequantize(q, qc__gpxq_param(&s->layer, r, c));
    }
}

static qc_status run_blocks(gpfq *s)
{
    int64_t d = s->w.d, rows = s->layer.rows;
    for (int64_t t1 = 0; t1 < d; t1 += s->w.block) {
        int64_t t2 = t1 + s->w.block < d ? t1 + s->w.block : d;
#pragma omp parallel for num_threads(s->layer.threads) schedule(static)
        for (int64_t r = 0; r < rows; r++) quantize_row_block(s, r, t1, t2);
        qc__dgemm(s->layer.threads, 0, 1, rows, d - t2, t2 - t1, -1.0, s->w.block_values, s->w.block, s->w.square + t2 * d + t1, d, 1.0,
                  s->w.running + t2, d);
        QC_TRY(qc__gpxq_progress(&s->layer, t2));
    }
    return QC_OK;
}

static qc_status gpfq_run(gpfq *s, const qc_tensor *h, const qc_tensor *g, qc_gpxq_result *res)
{
    const double *hd = h->data;
    QC_TRY(gpfq_alloc(s));
    res->dead_inputs = qc__gpxq_dead_inputs(s->w.dead, hd, s->w.d);
    for (int64_t i = 0; i < s->w.d; i++) s->w.diag[i] = hd[i * s->w.d + i];
    QC_TRY(qc__gpxq_order(s->w.order, s->w.position, s->w.diag, s->w.d, s->opts.act_order, s->layer.function));
    QC_TRY(denominators(s, hd, res));
    QC_TRY(qc__gpxq_choose_from_w(&s->layer, s->w.dead));
    QC_TRY(initial_sums(s, g->data));
    qc__gpxq_gather_lower(s->w.square, hd, s->w.d, s->w.order, 1, s->layer.threads);
    return run_blocks(s);
}

qc_status qc_gpfq(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                  qc_gpxq_result *result, const qc_tensor *w, const qc_tensor *h, const qc_tensor *g,
                  const qc_quant_options *grid, const qc_gpxq_options *opts)
{
    gpfq s = {0};
    qc_gpxq_outputs out = {q, scale, zero_point, dequantized};
    QC_TRY(qc__gpxq_begin(&s.layer, &s.opts, ctx, &out, result, w, grid, opts, __func__));
    qc_gpxq_result res = {0};
    qc_status st = qc__gpxq_check_square(&s.layer, h, "h");
    if (st == QC_OK) st = qc__gpxq_check_square(&s.layer, g, "g");
    if (st == QC_OK) st = gpfq_run(&s, h, g, &res);
    if (st == QC_OK) qc__gpxq_finish(&s.layer, &out, result, &res);
    gpfq_free(&s);
    return st;
}
