/* OPTQ (GPTQ): each input's rounding error is spread over the inputs not yet quantized. Every update has
 * the form w_j += v_i c_ij, in one of two equivalent forms (qc_gpxq.h):
 *  - U form (the published one): v_i = (w_i - w'_i) / U_ii and c_ij = -U_ij, with U the upper Cholesky
 *    factor of H^-1 (H^-1 = U^T U);
 *  - R form: v_i = W_i - w'_i (the given weight) and c_ij = R_ij / R_jj, with R = U^-1 (upper triangular,
 *    H = R R^T). The rule gives W - W' = E U for the scaled errors E, so E = (W - W') R, and the weight
 *    that input j is quantized from is the same; the factor of H itself drives the updates, no inverse.
 * The R form saves the triangular inverse (a third of the O(in^3) work), but the running weights of inputs
 * not yet reached differ between the forms part way, and per-group grids choose their parameters from
 * those: per group the U form is used. Updates within a block are applied one input at a time, row by row
 * (each row of W is independent), and those to later blocks as one matrix product. The factor is computed
 * in double; the updates, O(out in^2) multiply-adds against O(in^3), run in float32, as in OPTQ's reference
 * implementation: half the memory traffic and twice the SIMD width of double. */
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
    qc_gpxq_work w;             /* diag: H's, dead inputs set to 1 (as OPTQ's reference does); square (qc_optq
                                   only): the factor's storage; running_f32: the weights, each replaced by its
                                   int32 level (in processing order) once its sub-block is done, so the layer's
                                   own levels buffer is never touched; block_values_f32: the current block's v_i */
    const double *h;            /* H / h_scale: its strict lower triangle is read (row-major) */
    double h_scale;
    const char *h_name;         /* the argument H came from, for messages */
    double *factor;             /* [d, d]: the upper triangle (diagonal included) receives the damped H in
                                   reversed processing order, then its Cholesky factor F (U form: F^-1); the
                                   strict lower triangle is never written, so `h` may live there */
    int u_form;                 /* 1: the U form (per-group grids), 0: the R form */
    int64_t *reversed;          /* reversed processing order */
    int64_t *param_of;          /* per processing position: its input's parameter within a row */
    float *c_later;             /* [d - i2, block]: c_ij for the block's i (column i - i1) and j >= i2 (row
                                   j - i2): the B operand of the updates to later blocks */
    float *c_block;             /* [block, block]: c_ij at (i - i1, j - i1) for i < j in the block */
    float *given;               /* R form under act-order: [rows, d] the given weights in processing order (dead
                                   inputs 0); else NULL and they are read from W */
    unsigned char *group_ready; /* per group: its parameters are chosen */
} optq;

static void optq_free_work(optq *s)
{
    qc__gpxq_work_free(&s->w);
    free(s->reversed);
    free(s->param_of);
    free(s->c_later);
    free(s->c_block);
    free(s->given);
    free(s->group_ready);
    s->reversed = NULL;
    s->param_of = NULL;
    s->c_later = NULL;
    s->c_block = NULL;
    s->given = NULL;
    s->group_ready = NULL;
}

static void optq_free(optq *s)
{
    qc__gpxq_layer_free(&s->layer);
    optq_free_work(s);
}

/* `own_factor`: the factor needs its own [d, d] storage (else it shares the statistics'). */
static qc_status optq_alloc(optq *s, int own_factor)
{
    QC_TRY(qc__gpxq_work_alloc(&s->w, &s->layer, s->opts.block_size, 1, own_factor));
    int64_t d = s->w.d, block = s->w.block;
    if (own_factor) s->factor = s->w.square;
    s->reversed = malloc((size_t)d * sizeof *s->reversed);
    s->param_of = malloc((size_t)d * sizeof *s->param_of);
    s->c_later = malloc((size_t)(d * block) * sizeof *s->c_later);
    s->c_block = malloc((size_t)(block * block) * sizeof *s->c_block);
    s->group_ready = calloc((size_t)s->layer.groups, 1);
    if (!s->reversed || !s->param_of || !s->c_later || !s->c_block || !s->group_ready)
        return QC_FAIL_IN(s->layer.function, QC_ERR_OUT_OF_MEMORY, "no memory for the blocks and groups");
    return QC_OK;
}

/* H + delta I in reversed processing order, into the factor's upper triangle. Its Cholesky factor F (that
 * matrix = F^T F) gives R = J F^T J (J the reversal), upper triangular with H = R R^T, and U = R^-1 =
 * J F^-T J: one factorization (and one triangular inverse for U), where the textbook route (factor H,
 * invert, factor H^-1) needs two, the second of an ill-conditioned inverse. Only H's strict lower
 * triangle is read and only the factor's upper triangle written, so the two may share storage.
 * In input order (no act-order), row a of the factor is row d-1-a of H read backwards. Under act-order, a
 * group of ROW_GROUP inputs at a time (one cache line of H's columns), in input order: their whole rows of
 * H are first read into buffers (the parts left of the diagonal are contiguous, the parts below it a cache
 * line per later input), and the factor's rows then gathered from there: under act-order, reading each
 * entry where the permutation puts it would miss cache nearly every time, and reading one column at a time
 * would too (its 2^k stride maps every line to the same few cache sets). */
enum { ROW_GROUP = 8 };

static void read_rows(double *full, const optq *s, int64_t i0, int64_t n)
{
    int64_t d = s->w.d;
    for (int64_t g = 0; g < n; g++) /* left of i0 + g, and the diagonal (unused) */
        for (int64_t j = 0; j <= i0 + g; j++) full[g * d + j] = s->h_scale * s->h[(i0 + g) * d + j];
    for (int64_t j = i0 + 1; j < i0 + n; j++) /* below the diagonal, within the group */
        for (int64_t g = 0; g < j - i0; g++) full[g * d + j] = s->h_scale * s->h[j * d + i0 + g];
    for (int64_t j = i0 + n; j < d; j++)
        for (int64_t g = 0; g < n; g++) full[g * d + j] = s->h_scale * s->h[j * d + i0 + g];
}

static void damped_reversed_in_order(optq *s, double damp)
{
    int64_t d = s->w.d;
#pragma omp parallel for num_threads(s->layer.threads) schedule(dynamic, 64)
    for (int64_t a = 0; a < d; a++) {
        double *row = s->factor + a * d;
        const double *h_row = s->h + (d - 1 - a) * d;
        row[a] = s->w.diag[d - 1 - a] + damp;
        for (int64_t c = a + 1; c < d; c++) row[c] = s->h_scale * h_row[d - 1 - c];
    }
}

static qc_status damped_reversed(optq *s, double damp)
{
    int64_t d = s->w.d;
    int failed = 0;
    if (!s->opts.act_order) {
        damped_reversed_in_order(s, damp);
        return QC_OK;
    }
#pragma omp parallel num_threads(s->layer.threads) reduction(| : failed)
    {
        double *full = malloc((size_t)(ROW_GROUP * d) * sizeof *full);
        failed = full == NULL;
#pragma omp for schedule(static)
        for (int64_t i0 = 0; i0 < d; i0 += ROW_GROUP) {
            if (full == NULL) continue;
            int64_t n = d - i0 < ROW_GROUP ? d - i0 : ROW_GROUP;
            read_rows(full, s, i0, n);
            for (int64_t g = 0; g < n; g++) {
                int64_t a = d - 1 - s->w.position[i0 + g];
                double *row = s->factor + a * d;
                row[a] = s->w.diag[i0 + g] + damp;
                for (int64_t c = a + 1; c < d; c++) row[c] = full[g * d + s->reversed[c]];
            }
        }
        free(full);
    }
    if (failed) return QC_FAIL_IN(s->layer.function, QC_ERR_OUT_OF_MEMORY, "no memory for rows of H");
    return QC_OK;
}

/* R_ij (i <= j, processing positions) = F[d-1-j][d-1-i]: column j of R, read upwards from its diagonal,
 * is row d-1-j of F, read rightwards from its diagonal; likewise U_ij = F^-1[d-1-j][d-1-i] once the factor
 * is inverted. */
static inline const double *r_column(const optq *s, int64_t j)
{
    return s->factor + (s->w.d - 1 - j) * s->w.d + (s->w.d - 1 - j);
}

static double mean_diagonal(const optq *s)
{
    double sum = 0.0;
    for (int64_t i = 0; i < s->w.d; i++) sum += s->w.diag[i];
    return sum / (double)s->w.d;
}

/* Factors H + delta I, multiplying the damping by 10 after each failure (at most max_retries times). */
static qc_status factor(optq *s, qc_gpxq_result *res)
{
    const char *function = s->layer.function;
    int64_t d = s->w.d, pivot = 0;
    for (int64_t i = 0; i < d; i++) s->reversed[i] = s->w.order[d - 1 - i];
    double mean = mean_diagonal(s), ratio = s->opts.damp_ratio;
    qc_status st = QC_ERR_SINGULAR;
    for (int32_t attempt = 0; attempt <= s->opts.max_retries; attempt++) {
        if (attempt > 0) ratio = ratio > 0.0 ? 10.0 * ratio : FIRST_RETRY_RATIO;
        res->damp_ratio = ratio;
        res->damp = ratio * mean;
        res->retries = attempt;
        QC_TRY(damped_reversed(s, res->damp));
        st = qc__cholesky_upper(s->factor, d, d, &pivot, function);
        if (st != QC_ERR_SINGULAR) break;
        qc__log(s->layer.ctx, QC_LOG_WARNING, "%s: H + %g I is not positive definite (damp_ratio %g); retrying with 10x",
                function, res->damp, ratio);
    }
    if (st == QC_ERR_SINGULAR) {
        int64_t position = d - pivot;
        return QC_FAIL_IN(function, QC_ERR_SINGULAR,
                          "argument '%s': H + delta I is not positive definite with damp_ratio %g (delta = %g) "
                          "after %d retries: Cholesky fails at input %lld (processing position %lld)",
                          s->h_name, ratio, ratio * mean, (int)s->opts.max_retries, (long long)s->w.order[position],
                          (long long)position);
    }
    QC_TRY(st);
    if (s->u_form) return qc__triangular_inverse_upper(s->factor, d, d, function);
    return QC_OK;
}

/* c_ij for i in [i1, i2) and j > i, in float32: within the block into c_block, beyond it into c_later.
 * Each column of R (or U) is read contiguously from the factor. */
static void convert_block_rows(optq *s, int64_t i1, int64_t i2)
{
    int64_t d = s->w.d, b = i2 - i1;
#pragma omp parallel for num_threads(s->layer.threads) schedule(static)
    for (int64_t j = i1 + 1; j < d; j++) {
        const double *column = r_column(s, j); /* column[k] = R[j - k][j] (U form: U[j - k][j]) */
        double divisor = s->u_form ? -1.0 : column[0];
        if (j >= i2) {
            /* out[i - i1] for i = i2 - 1 - m is src[m]: a loop over m the compiler vectorizes */
            float *out = s->c_later + (j - i2) * b;
            const double *src = column + (j - i2 + 1);
            for (int64_t m = 0; m < b; m++) out[b - 1 - m] = (float)(src[m] / divisor);
        } else {
            for (int64_t i = i1; i < j; i++) s->c_block[(i - i1) * b + (j - i1)] = (float)(column[j - i] / divisor);
        }
    }
}

/* Rows quantized together, as one tile held transposed (input-major) in local arrays: each row's inputs
 * form one dependency chain (an input's level waits for the updates of the one before), but the rows are
 * independent, so every step runs on all the tile's rows at once as a loop the compiler vectorizes. */
enum { ROW_TILE = 32 };

/* Inputs per sub-block: within a block, updates within a sub-block are applied one input at a time and
 * those to the rest of the block as one matrix product, so that most of the block's work is BLAS-3 too
 * (one input at a time, an update is a short vector operation per row). */
enum { SUB_BLOCK = 16 };

/* A sub-block of rows [r0, r0 + n) and inputs [k1, k1 + m), transposed: weight[t][r] is row r0 + r's
 * running weight of input k1 + t, value[t][r] its given weight (R form) and then its v_i. */
typedef struct row_tile {
    float weight[SUB_BLOCK][ROW_TILE];
    float value[SUB_BLOCK][ROW_TILE];
    int32_t level[SUB_BLOCK][ROW_TILE];
    double scale[ROW_TILE], zero_point[ROW_TILE], qmin[ROW_TILE], qmax[ROW_TILE];
} row_tile;

/* The grid of input i for every row of the tile, as doubles (the quantization's precision). */
static void load_grids(row_tile *t, const optq *s, int64_t r0, int64_t n, int64_t i)
{
    const qc_gpxq_layer *l = &s->layer;
    for (int64_t r = 0; r < n; r++) {
        qc_grid_run g = l->params[(r0 + r) * l->row_stride + s->param_of[i]];
        t->scale[r] = (double)g.scale;
        t->zero_point[r] = (double)g.zero_point;
        t->qmin[r] = (double)g.qmin;
        t->qmax[r] = (double)g.qmax;
    }
}

/* GCC does not turn comparisons that may raise floating-point exceptions into vector selects under its
 * default -ftrapping-math; the values are the same without it, and qcore never reads the exception flags.
 * Clang's default already allows it. */
#if defined(__GNUC__) && !defined(__clang__)
#define SELECTS_VECTORIZE __attribute__((optimize("no-trapping-math")))
#else
#define SELECTS_VECTORIZE
#endif

/* qc__gpxq_quantize for the tile's rows, vectorized: an argument clamped to +-2^51 first rounds to the same
 * level after the grid's clamp (any |v| >= 2^51 lies beyond every grid), and below that the magic-number
 * rounding is nearbyint's (qc__gpxq_round_even). */
SELECTS_VECTORIZE static void quantize_tile_input(row_tile *t, int64_t n, int64_t a)
{
    const double magic = 0x1.8p52, big = 0x1p51;
#pragma omp simd
    for (int64_t r = 0; r < n; r++) {
        double v = (double)t->weight[a][r] / t->scale[r];
        v = v < -big ? -big : v;
        v = v > big ? big : v;
        v = ((v + magic) - magic) + t->zero_point[r];
        v = v < t->qmin[r] ? t->qmin[r] : v;
        v = v > t->qmax[r] ? t->qmax[r] : v;
        t->level[a][r] = (int32_t)v;
    }
}

/* Input a of the tile: its levels (AXE's when on, one row at a time: its budgets are per row), v_i from
 * the float32 weight (R form: from the given weight in value[a]) in double, and the float32 updates of the
 * sub-block's later inputs; row by row the same operations in the same order as one row alone. */
static void step_tile(row_tile *t, optq *s, int64_t r0, int64_t n, int64_t m, int64_t a, int64_t i, const float *ci)
{
    qc_gpxq_layer *l = &s->layer;
    if (l->axe.bits == 0) {
        quantize_tile_input(t, n, a);
    } else {
        for (int64_t r = 0; r < n; r++) {
            qc_grid_run g = l->params[(r0 + r) * l->row_stride + s->param_of[i]];
            t->level[a][r] = qc__axe_level(&l->axe, r0 + r, s->w.order[i], (double)t->weight[a][r], g);
        }
    }
    double u_ii = s->u_form ? *r_column(s, i) : 1.0; /* the R form's v_i is not scaled */
#pragma omp simd
    for (int64_t r = 0; r < n; r++) {
        double deq = ((double)t->level[a][r] - t->zero_point[r]) * t->scale[r];
        double given = s->u_form ? (double)t->weight[a][r] : (double)t->value[a][r];
        t->value[a][r] = (float)((given - deq) / u_ii);
    }
    for (int64_t b = a + 1; b < m; b++) {
        float c = ci[b];
#pragma omp simd
        for (int64_t r = 0; r < n; r++) t->weight[b][r] += t->value[a][r] * c;
    }
}

/* Inputs [k1, k2) of rows [r0, r1), a sub-block of the block [i1, i1 + b): quantize each, record v_i in
 * block_values (R form: where the given weight was) and update the rest of the sub-block. The levels then
 * take the sub-block's place in the running weights (copied as bytes: the running weights are floats). */
static void quantize_rows_block(optq *s, int64_t r0, int64_t r1, int64_t i1, int64_t b, int64_t k1, int64_t k2)
{
    row_tile t;
    int64_t n = r1 - r0, m = k2 - k1, d = s->w.d, block = s->w.block, grids = -1;
    for (int64_t r = 0; r < n; r++) {
        const float *w = s->w.running_f32 + (r0 + r) * d + k1, *v = s->w.block_values_f32 + (r0 + r) * block + (k1 - i1);
        for (int64_t a = 0; a < m; a++) {
            t.weight[a][r] = w[a];
            t.value[a][r] = s->u_form ? 0.0f : v[a];
        }
    }
    for (int64_t i = k1; i < k2; i++) {
        if (s->param_of[i] != grids) load_grids(&t, s, r0, n, i); /* per group: when the group changes */
        grids = s->param_of[i];
        step_tile(&t, s, r0, n, m, i - k1, i, s->c_block + (i - i1) * b + (k1 - i1));
    }
    for (int64_t r = 0; r < n; r++) {
        float *w = s->w.running_f32 + (r0 + r) * d + k1, *v = s->w.block_values_f32 + (r0 + r) * block + (k1 - i1);
        for (int64_t a = 0; a < m; a++) {
            v[a] = t.value[a][r];
            memcpy(w + a, &t.level[a][r], sizeof t.level[a][r]);
        }
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

/* R form: the given weights of the block [i1, i2) (dead inputs 0) into block_values, where v_i will
 * replace them. A separate loop of independent loads, not inside the quantization's dependent chain; under
 * act-order they are read from the copy in processing order (at random columns of W, each would be a
 * cache miss, and a cache line of W would be read again by nearly every block). */
static void gather_given(optq *s, int64_t i1, int64_t i2)
{
    const qc_gpxq_layer *l = &s->layer;
#pragma omp parallel for num_threads(l->threads) schedule(static)
    for (int64_t r = 0; r < l->rows; r++) {
        float *out = s->w.block_values_f32 + r * s->w.block;
        if (s->given != NULL) {
            memcpy(out, s->given + r * s->w.d + i1, (size_t)(i2 - i1) * sizeof *out);
            continue;
        }
        if (!s->opts.act_order) { /* the processing order is the input order */
            const float *w = l->w + r * l->cols;
            for (int64_t i = i1; i < i2; i++) {
                float value = w[i];
                out[i - i1] = s->w.dead[i] ? 0.0f : value;
            }
            continue;
        }
        for (int64_t i = i1; i < i2; i++) {
            int64_t c = s->w.order[i];
            out[i - i1] = s->w.dead[c] ? 0.0f : l->w[r * l->cols + c];
        }
    }
}

/* The block [i1, i2), a sub-block at a time. */
static void quantize_block(optq *s, int64_t i1, int64_t i2)
{
    int64_t rows = s->layer.rows, b = i2 - i1;
    for (int64_t k1 = i1, k2; k1 < i2; k1 = k2) {
        k2 = k1 + SUB_BLOCK < i2 ? k1 + SUB_BLOCK : i2;
#pragma omp parallel for num_threads(s->layer.threads) schedule(static)
        for (int64_t r0 = 0; r0 < rows; r0 += ROW_TILE)
            quantize_rows_block(s, r0, r0 + ROW_TILE < rows ? r0 + ROW_TILE : rows, i1, b, k1, k2);
        qc__sgemm(s->layer.threads, 0, 0, rows, i2 - k2, k2 - k1, 1.0f, s->w.block_values_f32 + (k1 - i1),
                  s->w.block, s->c_block + (k1 - i1) * b + (k2 - i1), b, 1.0f, s->w.running_f32 + k2, s->w.d);
    }
}

static qc_status run_blocks(optq *s)
{
    int64_t d = s->w.d, rows = s->layer.rows;
    for (int64_t i1 = 0, i2; i1 < d; i1 = i2) {
        QC_TRY(start_block(s, i1, &i2));
        convert_block_rows(s, i1, i2);
        if (!s->u_form) gather_given(s, i1, i2);
        quantize_block(s, i1, i2);
        qc__sgemm(s->layer.threads, 0, 1, rows, d - i2, i2 - i1, 1.0f, s->w.block_values_f32, s->w.block,
                  s->c_later, i2 - i1, 1.0f, s->w.running_f32 + i2, d);
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

static qc_status optq_run(optq *s, int own_factor, qc_gpxq_result *res)
{
    QC_TRY(optq_alloc(s, own_factor));
    int64_t d = s->w.d;
    res->dead_inputs = qc__gpxq_dead_inputs(s->w.dead, s->h, d);
    for (int64_t i = 0; i < d; i++) s->w.diag[i] = s->w.dead[i] ? 1.0 : s->h_scale * s->h[i * d + i];
    QC_TRY(qc__gpxq_order(s->w.order, s->w.position, s->w.diag, d, s->opts.act_order, s->layer.function));
    for (int64_t i = 0; i < d; i++) s->param_of[i] = qc__gpxq_group_of(&s->layer, s->w.order[i]);
    if (s->layer.grid_opts->granularity != QC_GRAN_GROUP) QC_TRY(qc__gpxq_choose_from_w(&s->layer, s->w.dead));
    s->u_form = s->layer.grid_opts->granularity == QC_GRAN_GROUP;
    QC_TRY(factor(s, res));
    qc__gpxq_gather_weights(NULL, s->w.running_f32, &s->layer, s->w.order, s->w.dead);
    if (s->opts.act_order && !s->u_form) {
        size_t bytes = (size_t)(s->layer.rows * d) * sizeof *s->given;
        if ((s->given = malloc(bytes)) == NULL)
            return QC_FAIL_IN(s->layer.function, QC_ERR_OUT_OF_MEMORY, "no memory for the given weights in act-order");
        memcpy(s->given, s->w.running_f32, bytes);
    }
    QC_TRY(run_blocks(s));
    free(s->layer.levels); /* never touched: the running weights hold the levels now */
    s->layer.levels = (int32_t *)(void *)s->w.running_f32;
    s->w.running_f32 = NULL;
    return levels_to_input_order(s);
}

/* Runs OPTQ on s->h once the layer is begun, and writes the outputs on success. */
static qc_status optq_finish_run(optq *s, const qc_gpxq_outputs *out, qc_gpxq_result *result, int own_factor)
{
    qc_gpxq_result res = {0};
    qc_status st = optq_run(s, own_factor, &res);
    if (st == QC_OK) {
        optq_free_work(s); /* before the outputs are written: the call's peak memory is then the loop's */
        qc__gpxq_finish(&s->layer, out, result, &res);
    }
    optq_free(s);
    return st;
}

qc_status qc_optq(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                  qc_gpxq_result *result, const qc_tensor *w, const qc_tensor *h, const qc_quant_options *grid,
                  const qc_gpxq_options *opts)
{
    optq s = {0};
    qc_gpxq_outputs out = {q, scale, zero_point, dequantized};
    QC_TRY(qc__gpxq_begin(&s.layer, &s.opts, ctx, &out, result, w, grid, opts, __func__));
    qc_status st = qc__gpxq_check_square(&s.layer, h, "h");
    if (st != QC_OK) {
        optq_free(&s);
        return st;
    }
    s.h = h->data;
    s.h_scale = 1.0;
    s.h_name = "h";
    return optq_finish_run(&s, &out, result, 1);
}

qc_status qc_optq_from_stats(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                             qc_gpxq_result *result, const qc_tensor *w, qc_gpxq_stats *stats,
                             const qc_quant_options *grid, const qc_gpxq_options *opts)
{
    optq s = {0};
    qc_gpxq_outputs out = {q, scale, zero_point, dequantized};
    QC_TRY(qc__gpxq_begin(&s.layer, &s.opts, ctx, &out, result, w, grid, opts, __func__));
    double *sums = NULL, *saved = NULL;
    qc_status st = qc__gpxq_stats_sums(&sums, &s.h_scale, stats, s.layer.cols, __func__);
    if (st == QC_OK && (saved = qc__gpxq_stats_save_diagonal(stats)) == NULL)
        st = QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for the diagonal of %lld x %lld statistics",
                     (long long)s.layer.cols, (long long)s.layer.cols);
    if (st != QC_OK) {
        optq_free(&s);
        return st;
    }
    s.h = s.factor = sums; /* the factor lives in the statistics' unused upper triangle */
    s.h_name = "stats";
    st = optq_finish_run(&s, &out, result, 0);
    qc__gpxq_stats_restore_diagonal(stats, saved);
    return st;
}
