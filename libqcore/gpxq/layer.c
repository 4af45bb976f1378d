/* The layer OPTQ and GPFQ quantize: argument checks, the grid parameters (chosen with qc_quant's scale
 * selection, never a copy of it) and the outputs. */
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "gpxq/gpxq.h"
#include "kernels/ref/quant_ref.h"
#include "linalg/linalg.h"
#include "quant/params_check.h"
#include "quant/scale_search.h"

static qc_status check_weight(const qc_tensor *w, const char *function)
{
    QC_TRY(qc__tensor_expect(w, function, "w", QC_DT_F32));
    if (w->ndim != 2 || w->dims[0] < 1 || w->dims[1] < 1)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'w': expected a non-empty [out, in] matrix, got rank %d%s",
                          (int)w->ndim, w->ndim == 2 ? " with an empty axis" : "");
    if (!qc__linalg_fits(w->dims, 2))
        return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "argument 'w': extents [%lld, %lld] exceed 2^31 - 1",
                          (long long)w->dims[0], (long long)w->dims[1]);
    int64_t bad = qc__first_nonfinite(w->data, qc_tensor_numel(w));
    if (bad >= 0)
        return QC_FAIL_IN(function, QC_ERR_NUMERIC, "argument 'w': element [%lld, %lld] is %g; weights must be finite",
                          (long long)(bad / w->dims[1]), (long long)(bad % w->dims[1]), (double)((const float *)w->data)[bad]);
    return QC_OK;
}

/* Per channel the channels are W's rows; per group the groups run along its inputs. */
static qc_status check_axis(const qc_quant_options *grid, const char *function)
{
    int axis = qc__quant_axis(grid, 2);
    if (grid->granularity == QC_GRAN_CHANNEL && axis != 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "argument 'grid': per-channel parameters need axis 0 (the output channels of w), got %d",
                          (int)grid->axis);
    if (grid->granularity == QC_GRAN_GROUP && axis != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "argument 'grid': per-group parameters need axis 1 (the inputs of w), got %d", (int)grid->axis);
    return QC_OK;
}

static qc_status check_outputs(const qc_gpxq_outputs *out, const qc_tensor *w, const qc_quant_options *grid,
                               const char *function)
{
    QC_TRY(qc__tensor_expect(out->q, function, "q", QC_DT_I32));
    QC_TRY(qc__tensor_same_shape(out->q, w, function, "q", "w"));
    QC_TRY(qc__tensor_expect(out->scale, function, "scale", QC_DT_F32));
    QC_TRY(qc__quant_check_param_shape(out->scale, "scale", w, grid, function));
    if (out->zero_point != NULL) {
        QC_TRY(qc__tensor_expect(out->zero_point, function, "zero_point", QC_DT_I32));
        QC_TRY(qc__quant_check_param_shape(out->zero_point, "zero_point", w, grid, function));
    } else if (!grid->symmetric) {
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'zero_point' is NULL but the grid is asymmetric");
    }
    if (out->dequantized != NULL) {
        QC_TRY(qc__tensor_expect(out->dequantized, function, "dequantized", QC_DT_F32));
        QC_TRY(qc__tensor_same_shape(out->dequantized, w, function, "dequantized", "w"));
    }
    return QC_OK;
}

static void layer_shape(qc_gpxq_layer *layer, const qc_quant_options *grid)
{
    layer->groups = 1;
    layer->group_size = layer->cols;
    layer->row_stride = 1;
    if (grid->granularity == QC_GRAN_TENSOR) layer->row_stride = 0;
    if (grid->granularity == QC_GRAN_GROUP) {
        layer->group_size = grid->group_size < layer->cols ? grid->group_size : layer->cols;
        layer->groups = (layer->cols + layer->group_size - 1) / layer->group_size;
        layer->row_stride = layer->groups;
    }
}

qc_status qc__gpxq_begin(qc_gpxq_layer *layer, qc_gpxq_options *opts_out, const qc_ctx *ctx, const qc_gpxq_outputs *out,
                         const qc_gpxq_result *result, const qc_tensor *w, const qc_quant_options *grid,
                         const qc_gpxq_options *opts, const char *function)
{
    memset(layer, 0, sizeof *layer);
    QC_TRY(qc__gpxq_options(opts_out, opts, function));
    QC_TRY(qc__gpxq_result_check(result, function));
    if (ctx == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'ctx' is NULL");
    QC_TRY(check_weight(w, function));
    QC_TRY(qc__quant_grid(&layer->grid, grid, w, function));
    QC_TRY(check_axis(grid, function));
    QC_TRY(check_outputs(out, w, grid, function));
    *layer = (qc_gpxq_layer){.ctx = ctx, .function = function, .grid_opts = grid, .grid = layer->grid,
                             .rows = w->dims[0], .cols = w->dims[1], .threads = qc__ctx_threads(ctx), .w = w->data};
    layer_shape(layer, grid);
    int64_t params = layer->row_stride == 0 ? 1 : layer->rows * layer->groups;
    layer->params = malloc((size_t)params * sizeof *layer->params);
    layer->levels = malloc((size_t)(layer->rows * layer->cols) * sizeof *layer->levels);
    qc_status st = QC_OK;
    if (layer->params == NULL || layer->levels == NULL)
        st = QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for the levels of a [%lld, %lld] weight",
                        (long long)w->dims[0], (long long)w->dims[1]);
    if (st == QC_OK) st = qc__axe_begin(layer, opts_out);
    if (st != QC_OK) qc__gpxq_layer_free(layer);
    return st;
}

void qc__gpxq_layer_free(qc_gpxq_layer *layer)
{
    free(layer->params);
    free(layer->levels);
    layer->params = NULL;
    layer->levels = NULL;
    qc__axe_free(&layer->axe);
}

qc_status qc__gpxq_work_alloc(qc_gpxq_work *work, const qc_gpxq_layer *layer, int64_t block_size, int single,
                              int square)
{
    int64_t d = layer->cols, rows = layer->rows;
    *work = (qc_gpxq_work){.d = d, .block = block_size < d ? block_size : d};
    work->dead = malloc((size_t)d);
    work->diag = malloc((size_t)d * sizeof *work->diag);
    work->order = malloc((size_t)d * sizeof *work->order);
    work->position = malloc((size_t)d * sizeof *work->position);
    work->square = square ? malloc((size_t)(d * d) * sizeof *work->square) : NULL;
    size_t values = (size_t)(rows * d), block_values = (size_t)(rows * work->block);
    if (single) {
        work->running_f32 = malloc(values * sizeof *work->running_f32);
        work->block_values_f32 = malloc(block_values * sizeof *work->block_values_f32);
    } else {
        work->running = malloc(values * sizeof *work->running);
        work->block_values = malloc(block_values * sizeof *work->block_values);
    }
    int have_values = single ? work->running_f32 && work->block_values_f32 : work->running && work->block_values;
    if (!work->dead || !work->diag || !work->order || !work->position || (square && !work->square) || !have_values)
        return QC_FAIL_IN(layer->function, QC_ERR_OUT_OF_MEMORY, "no memory to work on a [%lld, %lld] layer",
                          (long long)rows, (long long)d);
    return QC_OK;
}

void qc__gpxq_work_free(qc_gpxq_work *work)
{
    free(work->dead);
    free(work->diag);
    free(work->order);
    free(work->position);
    free(work->square);
    free(work->running);
    free(work->block_values);
    free(work->running_f32);
    free(work->block_values_f32);
    *work = (qc_gpxq_work){0};
}

qc_status qc__gpxq_check_square(const qc_gpxq_layer *layer, const qc_tensor *m, const char *name)
{
    QC_TRY(qc__tensor_expect(m, layer->function, name, QC_DT_F64));
    if (m->ndim != 2 || m->dims[0] != layer->cols || m->dims[1] != layer->cols) {
        char got[160];
        qc__shape_string(got, sizeof got, m->ndim, m->dims);
        return QC_FAIL_IN(layer->function, QC_ERR_SHAPE, "argument '%s': shape %s, expected [%lld, %lld] (in x in of w)",
                          name, got, (long long)layer->cols, (long long)layer->cols);
    }
    int64_t n = layer->cols * layer->cols;
    const double *v = m->data;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return QC_FAIL_IN(layer->function, QC_ERR_NUMERIC, "argument '%s': element [%lld, %lld] is %g; must be finite",
                              name, (long long)(i / layer->cols), (long long)(i % layer->cols), v[i]);
    return QC_OK;
}

/* Chooses parameters p in [0, count) over the team; values_of(p) fills `buf` with p's values and returns
 * their count. Returns QC_ERR_OUT_OF_MEMORY when a thread lacks its buffers. */
typedef int64_t (*values_fn)(const void *state, int64_t p, float *buf);

static qc_status choose_params(qc_gpxq_layer *layer, int64_t first, int64_t count, int64_t step, int64_t max_values,
                               values_fn values_of, const void *state)
{
    int failed = 0;
#pragma omp parallel num_threads(layer->threads) reduction(| : failed)
    {
        float *buf = malloc(2 * (size_t)max_values * sizeof *buf);
        failed = buf == NULL;
#pragma omp for schedule(dynamic, 16)
        for (int64_t k = 0; k < count; k++) {
            if (buf == NULL) continue;
            int64_t p = first + k * step;
            int64_t n = values_of(state, p, buf);
            layer->params[p] = qc__choose_group_params(buf, n, buf + max_values, &layer->grid, layer->grid_opts,
                                                       layer->ctx->kernels);
        }
        free(buf);
    }
    if (failed) return QC_FAIL_IN(layer->function, QC_ERR_OUT_OF_MEMORY, "no memory for the scale search buffers");
    return QC_OK;
}

typedef struct weight_values {
    const qc_gpxq_layer *layer;
    const unsigned char *dead;
} weight_values;

/* The values of parameter p (a whole row per channel, a slice per group, everything per tensor). */
static int64_t values_from_w(const void *state, int64_t p, float *buf)
{
    const weight_values *s = state;
    const qc_gpxq_layer *l = s->layer;
    int64_t row0 = l->row_stride == 0 ? 0 : p / l->groups, rows = l->row_stride == 0 ? l->rows : 1;
    int64_t col0 = (p % l->groups) * l->group_size;
    int64_t cols = l->cols - col0 < l->group_size ? l->cols - col0 : l->group_size, n = 0;
    for (int64_t r = row0; r < row0 + rows; r++)
        for (int64_t c = col0; c < col0 + cols; c++) buf[n++] = s->dead != NULL && s->dead[c] ? 0.0f : l->w[r * l->cols + c];
    return n;
}

qc_status qc__gpxq_choose_from_w(qc_gpxq_layer *layer, const unsigned char *dead)
{
    weight_values s = {layer, dead};
    int64_t count = layer->row_stride == 0 ? 1 : layer->rows * layer->groups;
    int64_t max_values = layer->row_stride == 0 ? layer->rows * layer->cols : layer->group_size;
    QC_TRY(choose_params(layer, 0, count, 1, max_values, values_from_w, &s));
    return qc__axe_thresholds(layer, 0, layer->cols, NULL, NULL, dead);
}

typedef struct running_values {
    const qc_gpxq_layer *layer;
    const float *work;
    const int64_t *position;
} running_values;

static int64_t values_running(const void *state, int64_t p, float *buf)
{
    const running_values *s = state;
    const qc_gpxq_layer *l = s->layer;
    int64_t row = p / l->groups, col0 = (p % l->groups) * l->group_size;
    int64_t cols = l->cols - col0 < l->group_size ? l->cols - col0 : l->group_size;
    const float *w = s->work + row * l->cols;
    for (int64_t c = 0; c < cols; c++) buf[c] = w[s->position[col0 + c]];
    return cols;
}

qc_status qc__gpxq_choose_group(qc_gpxq_layer *layer, int64_t group, const float *work, const int64_t *position)
{
    running_values s = {layer, work, position};
    QC_TRY(choose_params(layer, group, layer->rows, layer->groups, layer->group_size, values_running, &s));
    int64_t col0 = group * layer->group_size, col1 = col0 + layer->group_size;
    return qc__axe_thresholds(layer, col0, col1 < layer->cols ? col1 : layer->cols, work, position, NULL);
}

void qc__gpxq_finish(qc_gpxq_layer *layer, const qc_gpxq_outputs *out, qc_gpxq_result *result,
                     const qc_gpxq_result *values)
{
    qc_gpxq_result all = *values;
    qc__axe_summarize(&all, layer);
    qc__gpxq_result_store(result, &all);
    int64_t n = layer->rows * layer->cols, params = layer->row_stride == 0 ? 1 : layer->rows * layer->groups;
    memcpy(out->q->data, layer->levels, (size_t)n * sizeof *layer->levels);
    free(layer->levels); /* before the dequantized weights are written, so the two are never alive at once */
    layer->levels = NULL;
    const int32_t *q = out->q->data;
    for (int64_t p = 0; p < params; p++) {
        ((float *)out->scale->data)[p] = layer->params[p].scale;
        if (out->zero_point) ((int32_t *)out->zero_point->data)[p] = layer->params[p].zero_point;
    }
    if (out->dequantized == NULL) return;
    float *deq = out->dequantized->data;
#pragma omp parallel for num_threads(layer->threads) schedule(static)
    for (int64_t r = 0; r < layer->rows; r++)
        for (int64_t c0 = 0; c0 < layer->cols; c0 += layer->group_size) { /* a parameter at a time */
            qc_grid_run g = qc__gpxq_param(layer, r, c0);
            int64_t c1 = c0 + layer->group_size < layer->cols ? c0 + layer->group_size : layer->cols;
            for (int64_t c = c0; c < c1; c++) deq[r * layer->cols + c] = qc__dequantize_one(q[r * layer->cols + c], g);
        }
}
