/* OPTQ (GPTQ): each input's rounding error is spread over the inputs not yet quantized through the
 * Cholesky factor of H^-1; updates within a block are applied one input at a time, row by row (each row of
 * W is independent given U), and those to later blocks as one matrix product. U is computed in double; the
 * updates, O(out in^2) multiply-adds against O(in^3) for U, run in float32 (qc_gpxq.h states the rule), as in
 * OPTQ's reference implementation: half the memory traffic and twice the SIMD width of double. */
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "gpxq/gpxq.h"
#include "linalg/linalg.h"

/* The damping a failed factorization moves to when none was asked for. */
static const double FIRST_RETRY_RATIO = 1e-4;

typedef struct optq {
    qc_gpxq_layer layer;
    qc_gpxq_options opts;
    qc_gpxq_work w;             /* diag: H's, dead inputs set to 1 (as OPTQ's reference does); square: U in
                                   processing order, H^-1 = U^T U; running_f32: the weights;
                                   block_values_f32: the current block's scaled errors */
    float *u_block;             /* [block, d]: the current block's rows of U in float32, row i - i1 holding
                                   U[i][j] at column j for the j > i the updates read */
    unsigned char *group_ready; /* per group: its parameters are chosen */
} optq;

static void optq_free_work(optq *s)
{
    qc__gpxq_work_free(&s->w);
    free(s->u_block);
    free(s->group_ready);
    s->u_block = NULL;
    s->group_ready = NULL;
}

static void optq_free(optq *s)
{
    qc__gpxq_layer_free(&s->layer);
    optq_free_work(s);
}

static qc_status optq_alloc(optq *s)
{
    QC_TRY(qc__gpxq_work_alloc(&s->w, &s->layer, s->opts.block_size, 1));
    s->u_block = malloc((size_t)(s->w.block * s->w.d) * sizeof *s->u_block);
    s->group_ready = calloc((size_t)s->layer.groups, 1);
    if (s->u_block == NULL || s->group_ready == NULL)
        return QC_FAIL_IN(s->layer.function, QC_ERR_OUT_OF_MEMORY, "no memory for the blocks and groups");
    return QC_OK;
}

/* H + delta I in reversed processing order, lower triangle: its Cholesky factor L gives U = J L^-1 J (J the
 * reversal), since H = (J L J)(J L J)^T with J L J upper triangular. That is one factorization and one
 * triangular inverse, where the textbook route (factor H, invert, factor H^-1) needs two factorizations,
 * the second of an ill-conditioned inverse. */
static void damped_reversed(optq *s, const double *h, int64_t *reversed, double damp)
{
    int64_t d = s->w.d;
    for (int64_t i = 0; i < d; i++) reversed[i] = s->w.order[d - 1 - i];
    qc__gpxq_gather_lower(s->w.square, h, d, reversed, 1, s->layer.threads);
    for (int64_t i = 0; i < d; i++) s->w.square[i * d + i] = s->w.diag[reversed[i]] + damp;
}

/* U[i][j] = L^-1[d-1-i][d-1-j]: a half turn of the whole matrix, in place. */
static void half_turn(double *m, int64_t d)
{
    for (int64_t k = 0, n = d * d; k < n / 2; k++) {
        double t = m[k];
        m[k] = m[n - 1 - k];
        m[n - 1 - k] = t;
    }
}

static double mean_diagonal(const optq *s)
{
    double sum = 0.0;
    for (int64_t i = 0; i < s->w.d; i++) sum += s->w.diag[i];
    return sum / (double)s->w.d;
}

/* Factors H + delta I, multiplying the damping by 10 after each failure (at most max_retries times). */
static qc_status inverse_factor(optq *s, const double *h, qc_gpxq_result *res)
{
    const char *function = s->layer.function;
    int64_t *reversed = malloc((size_t)s->w.d * sizeof *reversed), pivot = 0;
    if (reversed == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for the input order");
    double mean = mean_diagonal(s), ratio = s->opts.damp_ratio;
    qc_status st = QC_ERR_SINGULAR;
    for (int32_t attempt = 0; attempt <= s->opts.max_retries; attempt++) {
        if (attempt > 0) ratio = ratio > 0.0 ? 10.0 * ratio : FIRST_RETRY_RATIO;
        res->damp_ratio = ratio;
        res->damp = ratio * mean;
        res->retries = attempt;
        damped_reversed(s, h, reversed, res->damp);
        st = qc__cholesky(s->layer.threads, s->w.square, s->w.d, s->w.d, &pivot, function);
        if (st != QC_ERR_SINGULAR) break;
        qc__log(s->layer.ctx, QC_LOG_WARNING, "%s: H + %g I is not positive definite (damp_ratio %g); retrying with 10x",
                function, res->damp, ratio);
    }
    free(reversed);
    if (st == QC_ERR_SINGULAR) {
        int64_t position = s->w.d - pivot;
        return QC_FAIL_IN(function, QC_ERR_SINGULAR,
                          "argument 'h': H + delta I is not positive definite with damp_ratio %g (delta = %g) after %d "
                          "retries: Cholesky fails at input %lld (processing position %lld)",
                          ratio, ratio * mean, (int)s->opts.max_retries, (long long)s->w.order[position],
                          (long long)position);
    }
    QC_TRY(st);
    QC_TRY(qc__triangular_inverse(s->layer.threads, s->w.square, s->w.d, s->w.d, function));
    half_turn(s->w.square, s->w.d);
    return QC_OK;
}

/* Rows [i1, i2) of U, right of the diagonal, in float32. */
static void convert_block_rows(optq *s, int64_t i1, int64_t i2)
{
    int64_t d = s->w.d;
#pragma omp parallel for num_threads(s->layer.threads) schedule(static)
    for (int64_t i = i1; i < i2; i++) {
        const double *u = s->w.square + i * d;
        float *out = s->u_block + (i - i1) * d;
        for (int64_t j = i + 1; j < d; j++) out[j] = (float)u[j];
    }
}

/* Inputs [i1, i2) of row r: quantize each, record its scaled error, and update the rest of the block. The
 * level and the error come from the float32 weight in double; the update is float32 (qc_gpxq.h). */
static void quantize_row_block(optq *s, int64_t r, int64_t i1, int64_t i2)
{
    int64_t d = s->w.d;
    float *w = s->w.running_f32 + r * d, *e = s->w.block_values_f32 + r * s->w.block;
    for (int64_t i = i1; i < i2; i++) {
        int64_t c = s->w.order[i];
        int32_t q = qc__gpxq_level(&s->layer, r, c, (double)w[i]);
        s->layer.levels[r * d + i] = q; /* in processing order until levels_to_input_order */
        double error = (double)w[i] - qc__gpxq_dequantize(q, qc__gpxq_param(&s->layer, r, c));
        float ei = (float)(error / s->w.square[i * d + i]);
        const float *ui = s->u_block + (i - i1) * d;
        e[i - i1] = ei;
#pragma omp simd
        for (int64_t j = i + 1; j < i2; j++) w[j] -= ei * ui[j];
    }
}

/* Per group, a block ends before the first input whose group has no parameters yet: at a block's start
 * every later weight has received every update, so a group's parameters come from its current weights. */
static qc_status start_block(optq *s, int64_t i1, int64_t *i2)
{
    qc_gpxq_layer *l = &s->layer;
    *i2 = i1 + s->w.block < s->w.d ? i1 + s->w.block : s->w.d;
    if (l->grid_opts->granularity != QC_GRAN_GROUP) return QC_OK;
    int64_t g = qc__gpxq_group_of(l, s->w.order[i1]);
    if (!s->group_ready[g]) {
        QC_TRY(qc__gpxq_choose_group(l, g, s->w.running_f32, s->w.position));
        s->group_ready[g] = 1;
    }
    for (int64_t j = i1 + 1; j < *i2; j++)
        if (!s->group_ready[qc__gpxq_group_of(l, s->w.order[j])]) *i2 = j;
    return QC_OK;
}

static qc_status run_blocks(optq *s)
{
    int64_t d = s->w.d, rows = s->layer.rows;
    for (int64_t i1 = 0, i2; i1 < d; i1 = i2) {
        QC_TRY(start_block(s, i1, &i2));
        convert_block_rows(s, i1, i2);
#pragma omp parallel for num_threads(s->layer.threads) schedule(static)
        for (int64_t r = 0; r < rows; r++) quantize_row_block(s, r, i1, i2);
        qc__sgemm(s->layer.threads, 0, 0, rows, d - i2, i2 - i1, -1.0f, s->w.block_values_f32, s->w.block,
                  s->u_block + i2, d, 1.0f, s->w.running_f32 + i2, d);
        QC_TRY(qc__gpxq_progress(&s->layer, i2));
    }
    return QC_OK;
}

/* The loop writes each row's levels in processing order, sequentially (act-order's scattered writes would
 * miss cache on nearly every level of a large layer); this puts them in input order, a row at a time. */
static qc_status levels_to_input_order(optq *s)
{
    if (!s->opts.act_order) return QC_OK; /* the processing order is the input order */
    int64_t d = s->w.d;
    int failed = 0;
#pragma omp parallel num_threads(s->layer.threads) reduction(| : failed)
    {
        int32_t *row_copy = malloc((size_t)d * sizeof *row_copy);
        failed = row_copy == NULL;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < s->layer.rows; r++) {
            if (row_copy == NULL) continue;
            int32_t *row = s->layer.levels + r * d;
            memcpy(row_copy, row, (size_t)d * sizeof *row);
            for (int64_t i = 0; i < d; i++) row[s->w.order[i]] = row_copy[i];
        }
        free(row_copy);
    }
    if (failed) return QC_FAIL_IN(s->layer.function, QC_ERR_OUT_OF_MEMORY, "no memory to reorder a row of levels");
    return QC_OK;
}

static qc_status optq_run(optq *s, const qc_tensor *h, qc_gpxq_result *res)
{
    const double *hd = h->data;
    QC_TRY(optq_alloc(s));
    res->dead_inputs = qc__gpxq_dead_inputs(s->w.dead, hd, s->w.d);
    for (int64_t i = 0; i < s->w.d; i++) s->w.diag[i] = s->w.dead[i] ? 1.0 : hd[i * s->w.d + i];
    QC_TRY(qc__gpxq_order(s->w.order, s->w.position, s->w.diag, s->w.d, s->opts.act_order, s->layer.function));
    if (s->layer.grid_opts->granularity != QC_GRAN_GROUP) QC_TRY(qc__gpxq_choose_from_w(&s->layer, s->w.dead));
    QC_TRY(inverse_factor(s, hd, res));
    qc__gpxq_gather_weights(NULL, s->w.running_f32, &s->layer, s->w.order, s->w.dead);
    QC_TRY(run_blocks(s));
    return levels_to_input_order(s);
}

qc_status qc_optq(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                  qc_gpxq_result *result, const qc_tensor *w, const qc_tensor *h, const qc_quant_options *grid,
                  const qc_gpxq_options *opts)
{
    optq s = {0};
    qc_gpxq_outputs out = {q, scale, zero_point, dequantized};
    QC_TRY(qc__gpxq_begin(&s.layer, &s.opts, ctx, &out, result, w, grid, opts, __func__));
    qc_gpxq_result res = {0};
    qc_status st = qc__gpxq_check_square(&s.layer, h, "h");
    if (st == QC_OK) st = optq_run(&s, h, &res);
    if (st == QC_OK) {
        optq_free_work(&s); /* before the outputs are written: the call's peak memory is then the loop's */
        qc__gpxq_finish(&s.layer, &out, result, &res);
    }
    optq_free(&s);
    return st;
}
