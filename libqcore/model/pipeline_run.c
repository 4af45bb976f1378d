/* qc_pipeline_run: the recipe checked, the float model's input ranges, activation quantization, then
 * the layers in graph order (grouped by the value they read), and the weights written as QDQ. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec_internal.h"
#include "model_internal.h"
#include "pipeline_internal.h"

static int kept(const qc_recipe *rc, const char *weight)
{
    return rc->keep_float && qcp__name_index(rc->keep_float, rc->num_keep_float, weight) < rc->num_keep_float;
}

static qc_status check_activation_scale(const qc_recipe *rc, const char *function)
{
    if (rc->version < 2) return QC_OK;
    if (rc->activation_scale < QC_SCALE_MINMAX || rc->activation_scale > QC_SCALE_MSE)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'activation_scale': %d is not a qc_scale_method",
                           (int)rc->activation_scale);
    if (rc->activation_scale == QC_SCALE_PERCENTILE && !(rc->activation_percentile > 50 && rc->activation_percentile <= 100))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'activation_percentile': %g is not in (50, 100]",
                           rc->activation_percentile);
    if (rc->activation_scale == QC_SCALE_MSE && (rc->activation_mse_steps < 2 || rc->activation_mse_steps > 10000))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'activation_mse_steps': %d is not in 2..10000",
                           (int)rc->activation_mse_steps);
    if (rc->activation_scale == QC_SCALE_MSE && !(rc->activation_mse_min_ratio > 0 && rc->activation_mse_min_ratio < 1))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'activation_mse_min_ratio': %g is not in (0, 1)",
                           rc->activation_mse_min_ratio);
    return QC_OK;
}

static size_t layer_format_count(const qc_recipe *rc)
{
    return rc->version >= 2 ? rc->num_layer_formats : 0;
}

/* Entry k of the recipe list `field` names a layer's weight (`name`, shown as given). */
static qc_status check_known(const qc_pipeline *p, const char *field, size_t k, const char *name, const char *function)
{
    if (qcp__layer_named(p, name) < p->num_layers) return QC_OK;
    return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field '%s': entry %zu ('%s') is no layer's weight", field, k,
                       name ? name : "(NULL)");
}

/* Entry k of the recipe list `field` is the first to name `name` (`earlier`: the first entry that does). */
static qc_status check_once(const char *field, size_t k, const char *name, size_t earlier, const char *function)
{
    if (earlier >= k) return QC_OK;
    return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field '%s': '%s' is named twice (entries %zu and %zu)", field, name,
                       earlier, k);
}

/* A format list (layer_formats, lq_layers): each entry a layer's weight named once, its bits in lo..hi
 * (or 0 when zero_ok), none also in keep_float or in the list `other` (may be NULL). */
typedef struct format_list {
    const char *field;
    const qc_layer_format *formats;
    size_t count;
    int32_t lo, hi, zero_ok;
} format_list;

static qc_status check_format_list(const qc_pipeline *p, const qc_recipe *rc, const format_list *l, const format_list *other,
                                   const char *function)
{
    if (l->count > 0 && l->formats == NULL)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field '%s' is NULL with num_%s = %zu", l->field, l->field, l->count);
    for (size_t k = 0; k < l->count; k++) {
        const qc_layer_format *f = &l->formats[k];
        const char *name = f->weight ? f->weight : "(NULL)";
        QCM_TRY(check_known(p, l->field, k, f->weight, function));
        if (!(l->zero_ok && f->weight_bits == 0) && (f->weight_bits < l->lo || f->weight_bits > l->hi))
            return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field '%s': entry %zu ('%s') has weight_bits %d, %s %d..%d",
                               l->field, k, name, (int)f->weight_bits, l->zero_ok ? "neither 0 (float) nor in" : "not in", (int)l->lo,
                               (int)l->hi);
        const qc_layer_format *first = qcp__format_of(l->formats, k, f->weight);
        QCM_TRY(check_once(l->field, k, name, first ? (size_t)(first - l->formats) : k, function));
        int in_other = other && qcp__format_of(other->formats, other->count, f->weight) != NULL;
        if (kept(rc, f->weight) || in_other)
            return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe: '%s' is both in %s and in %s; name it in one of them", name,
                               kept(rc, f->weight) ? "keep_float" : other->field, l->field);
    }
    return QC_OK;
}

static size_t lq_layer_count(const qc_recipe *rc)
{
    return rc->version >= 5 ? rc->num_lq_layers : 0;
}

/* layer_formats (version 2) and lq_layers (version 5; no AXE with them). */
static qc_status check_format_lists(const qc_pipeline *p, const qc_recipe *rc, const char *function)
{
    format_list formats = {"layer_formats", rc->layer_formats, layer_format_count(rc), 2, 16, 1};
    format_list lq = {"lq_layers", rc->version >= 5 ? rc->lq_layers : NULL, lq_layer_count(rc), 1, QC_LQ_MAX_BITS, 0};
    QCM_TRY(check_format_list(p, rc, &formats, NULL, function));
    QCM_TRY(check_format_list(p, rc, &lq, &formats, function));
    if (lq.count > 0 && rc->gpxq.accumulator_bits)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                           "recipe field 'lq_layers': AXE (gpxq.accumulator_bits = %d) bounds integer dot products, and LQ "
                           "levels are not integers; drop AXE or the LQ layers", (int)rc->gpxq.accumulator_bits);
    return QC_OK;
}

static qc_status check_unrotated(const qc_pipeline *p, const qc_recipe *rc, const char *function)
{
    if (rc->num_unrotated == 0) return QC_OK;
    if (rc->unrotated == NULL)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'unrotated' is NULL with num_unrotated = %zu",
                           rc->num_unrotated);
    if (rc->rotation == QC_ROTATION_NONE)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                           "recipe field 'unrotated': it names layers the rotation skips, and the recipe's rotation is none");
    for (size_t k = 0; k < rc->num_unrotated; k++) {
        QCM_TRY(check_known(p, "unrotated", k, rc->unrotated[k], function));
        QCM_TRY(check_once("unrotated", k, rc->unrotated[k], qcp__name_index(rc->unrotated, k, rc->unrotated[k]), function));
    }
    return QC_OK;
}

qc_status qcp__check_recipe(const qc_pipeline *p, const qc_recipe *rc, const char *function)
{
    if (rc->version == 0 || rc->version > QC_RECIPE_VERSION)
        return QCM_FAIL_IN(function, QC_ERR_VERSION, "argument 'recipe': version %u is not one this library knows (1..%d)",
                           rc->version, QC_RECIPE_VERSION);
    if (rc->method < QC_METHOD_RTN || rc->method > QC_METHOD_GPFQ)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'method': %d is not a qc_layer_method", (int)rc->method);
    if (rc->activation_bits != 0 && (rc->activation_bits < 2 || rc->activation_bits > 16))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'activation_bits': %d is neither 0 nor in 2..16",
                           (int)rc->activation_bits);
    QCM_TRY(check_activation_scale(rc, function));
    if (rc->gpxq.accumulator_bits && rc->activation_bits == 0)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                           "recipe: AXE (gpxq.accumulator_bits = %d) bounds integer dot products and needs activation_bits",
                           (int)rc->gpxq.accumulator_bits);
    if (rc->report_bits != 0 && (rc->report_bits < 2 || rc->report_bits > QC_ACCUM_MAX_SIMULATED_BITS))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'report_bits': %d is neither 0 nor in 2..%d",
                           (int)rc->report_bits, QC_ACCUM_MAX_SIMULATED_BITS);
    if (rc->report_rows < 1 || rc->report_rows > INT32_MAX)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'report_rows': %lld is not in 1..2^31 - 1",
                           (long long)rc->report_rows);
    if (rc->num_keep_float > 0 && rc->keep_float == NULL)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'keep_float' is NULL with num_keep_float = %zu",
                           rc->num_keep_float);
    for (size_t i = 0; rc->weights.granularity == QC_GRAN_GROUP && i < p->num_layers; i++)
        if (p->layers[i].conv && !kept(rc, p->layers[i].weight))
            return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                               "recipe field 'weights': per-group grids are not defined for convolution weights ('%s'); "
                               "keep it in float or use a per-channel grid", p->layers[i].weight);
    for (size_t k = 0; k < rc->num_keep_float; k++)
        if (qcp__layer_named(p, rc->keep_float[k]) == p->num_layers)
            return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'keep_float': entry %zu ('%s') is no layer's weight", k,
                               rc->keep_float[k] ? rc->keep_float[k] : "(NULL)");
    QCM_TRY(check_format_lists(p, rc, function));
    if (rc->version < 3) return QC_OK;
    if (rc->rotation < QC_ROTATION_NONE || rc->rotation > QC_ROTATION_HADAMARD)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'rotation': %d is not a qc_rotation_kind", (int)rc->rotation);
    qc_ethosu_config_info info;
    if (rc->ethosu_config != 0 && qc_ethosu_config_get(&info, (qc_ethosu_config)rc->ethosu_config) != QC_OK)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'ethosu_config': %d is neither 0 nor a qc_ethosu_config",
                           (int)rc->ethosu_config);
    if (rc->version < 4) return QC_OK;
    if (rc->rotate_heads != 0 && rc->rotate_heads != 1)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "recipe field 'rotate_heads': %d is neither 0 nor 1", (int)rc->rotate_heads);
    if (rc->rotate_heads && rc->rotation == QC_ROTATION_NONE)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                           "recipe field 'rotate_heads': head rotations take the recipe's rotation kind, which is none");
    return rc->version < 5 ? QC_OK : check_unrotated(p, rc, function);
}

/* Layer i's grid: the recipe's at its layer format's width (a width of 0 keeps the weight float), and its
 * LQ bits when it is in lq_layers. */
static void layer_grid(qcp_run *r, size_t i)
{
    const qc_recipe *rc = r->r;
    const char *weight = r->p->layers[i].weight;
    const qc_layer_format *f = qcp__format_of(rc->layer_formats, layer_format_count(rc), weight);
    const qc_layer_format *lq = lq_layer_count(rc) ? qcp__format_of(rc->lq_layers, rc->num_lq_layers, weight) : NULL;
    r->grid[i] = rc->weights;
    if (f) r->float_weight[i] = f->weight_bits == 0;
    if (f && f->weight_bits) r->grid[i].bits = f->weight_bits;
    if (lq) r->lq_bits[i] = lq->weight_bits;
}

#define PER_LAYER(field) ((r->field = calloc(n, sizeof *r->field)) != NULL)

qc_status qcp__run_start(qcp_run *r, qc_pipeline *p, const qc_recipe *rc, const char *function)
{
    size_t n = p->num_layers;
    *r = (qcp_run){.p = p, .r = rc, .function = function};
    if (!(PER_LAYER(keep) && PER_LAYER(float_weight) && PER_LAYER(lq_bits) && PER_LAYER(grid) && PER_LAYER(lo) && PER_LAYER(hi) && PER_LAYER(act_scale) && PER_LAYER(act_signed) &&
          PER_LAYER(qinput) && PER_LAYER(report_x) && PER_LAYER(report_n) && PER_LAYER(levels) && PER_LAYER(scale) &&
          PER_LAYER(zero_point) && PER_LAYER(dequantized) && PER_LAYER(reports)))
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    QCM_TRY(qce__ctx_threads(p->ctx, &r->threads));
    for (size_t i = 0; i < n; i++) {
        r->reports[i] = (qc_layer_report){.version = QC_LAYER_REPORT_VERSION, .weight = p->layers[i].weight};
        r->reports[i].weight_bytes = p->layers[i].in * p->layers[i].out * 4;
        r->keep[i] = kept(rc, p->layers[i].weight);
        layer_grid(r, i);
    }
    return qc_model_clone(&r->qmodel, p->model);
}

void qcp__run_finish(qcp_run *r)
{
    size_t n = r->p->num_layers;
    for (size_t i = 0; r->keep && i < n; i++) {
        free(r->qinput ? r->qinput[i] : NULL), free(r->report_x && !r->rows_lent ? r->report_x[i] : NULL);
        free(r->levels ? r->levels[i] : NULL), free(r->scale ? r->scale[i] : NULL);
        free(r->zero_point ? r->zero_point[i] : NULL), free(r->dequantized ? r->dequantized[i] : NULL);
    }
    free(r->keep), free(r->float_weight), free(r->lq_bits), free(r->grid), free(r->lo), free(r->hi), free(r->act_scale), free(r->act_signed), free(r->qinput);
    free(r->report_x), free(r->report_n), free(r->levels), free(r->scale), free(r->zero_point), free(r->dequantized);
    free(r->reports);
    qc_session_free(r->quantized), qc_session_free(r->fp);
    qc_model_free(r->qmodel);
}

qc_status qcp__node_reading(const qc_model *m, const char *weight, size_t *index, const char *function)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_node; i++)
        if (g->node[i]->n_input > 1 && strcmp(g->node[i]->input[1], weight) == 0) {
            *index = i;
            return QC_OK;
        }
    return QCM_FAIL_IN(function, QC_ERR_FORMAT, "no node reads weight '%s'", weight);
}

/* Per-tensor parameters of layer i's input: unsigned when it was never negative, else signed; zero point 0;
 * the clip by the recipe's activation_scale. */
static void input_grid(const qcp_run *r, size_t i)
{
    int bits = r->r->activation_bits;
    r->act_signed[i] = r->lo[i] < 0;
    double top = qcp__input_clip(r, i) / (r->act_signed[i] ? ldexp(1.0, bits - 1) - 1 : ldexp(1.0, bits) - 1);
    r->act_scale[i] = top > 0 && isfinite(top) ? (float)top : 1.0f;
}

/* Every quantized layer's input gets its quantizer (pipeline_qdq.c); then each layer's input name. */
qc_status qcp__quantize_inputs(qcp_run *r)
{
    const qc_pipeline *p = r->p;
    for (size_t i = 0; i < p->num_layers; i++) {
        if (r->keep[i] || r->r->activation_bits == 0) continue;
        input_grid(r, i);
        size_t j = 0;
        while (j < i && (r->keep[j] || strcmp(p->layers[j].input, p->layers[i].input) != 0)) j++;
        if (j == i) QCM_TRY(qcp__quantize_input(r, i)); /* else the value has its quantizer */
    }
    if (r->r->activation_bits) QCM_TRY(qc_model_sort(r->qmodel));
    const Onnx__GraphProto *g = r->qmodel->proto->graph;
    for (size_t i = 0; i < p->num_layers; i++) {
        size_t node = 0;
        QCM_TRY(qcp__node_reading(r->qmodel, p->layers[i].weight, &node, r->function));
        r->qinput[i] = strdup(g->node[node]->input[0]);
        if (r->qinput[i] == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    return QC_OK;
}

static qc_status progress(const qcp_run *r, size_t done)
{
    return qc_ctx_report_progress(r->p->ctx, "quantizing layers", done, r->p->num_layers);
}

/* Layers [first, end), with their statistics stats[i - first]. */
static qc_status quantize_with(qcp_run *r, size_t first, size_t end, qc_gpxq_stats **stats, size_t *done)
{
    for (size_t i = first; i < end; i++) {
        if (r->float_weight[i]) QCM_TRY(qcp__report_float_weight(r, i));
        else if (r->lq_bits[i]) QCM_TRY(qcp__quantize_lq_layer(r, i));
        else if (!r->keep[i]) QCM_TRY(qcp__quantize_layer(r, i, stats[i - first]));
        QCM_TRY(progress(r, ++*done));
    }
    return QC_OK;
}

/* Layers [first, end): statistics from a pass over the batches, then each one quantized. */
static qc_status quantize_group(qcp_run *r, size_t first, size_t end, size_t *done)
{
    size_t count = end - first;
    qc_gpxq_stats **stats = calloc(count, sizeof *stats);
    if (stats == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    qc_status st = qcp__collect(r, first, end, stats);
    if (st == QC_OK) st = quantize_with(r, first, end, stats, done);
    qcp__free_stats(stats, count);
    free(stats);
    return st;
}

qc_status qcp__one_pass_stats(qcp_run *r, qc_gpxq_stats ***stats)
{
    size_t n = r->p->num_layers;
    if (qcp__cache_lend(r, stats)) return QC_OK;
    *stats = calloc(n, sizeof **stats);
    if (*stats == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    qc_status st = qcp__collect(r, 0, n, *stats);
    if (st == QC_OK) st = qcp__cache_store(r, *stats);
    if (st != QC_OK) {
        qcp__free_stats(*stats, n);
        free(*stats);
        *stats = NULL;
    }
    return st;
}

/* Every layer from one pass, whose statistics the pipeline keeps for the next such run. */
static qc_status quantize_one_pass(qcp_run *r)
{
    size_t done = 0;
    qc_gpxq_stats **stats = NULL;
    QCM_TRY(qcp__one_pass_stats(r, &stats));
    return quantize_with(r, 0, r->p->num_layers, stats, &done);
}

/* Sequentially, layers reading the same value are one group; they follow each other in graph order
 * in the models the pipeline targets (Q, K, V), and a group ends where the value changes. */
static qc_status quantize_layers(qcp_run *r)
{
    size_t n = r->p->num_layers, done = 0;
    if (!r->r->sequential) return quantize_one_pass(r);
    for (size_t first = 0; first < n;) {
        size_t end = first + 1;
        while (end < n && strcmp(r->qinput[end], r->qinput[first]) == 0) end++;
        QCM_TRY(quantize_group(r, first, end, &done));
        first = end;
    }
    return QC_OK;
}

/* The run proper on the pipeline's own model: `reports` (p->num_layers) receives the layers' reports. */
static qc_status run_layers(qc_pipeline *p, const qc_recipe *rc, qc_model **out, qc_layer_report *reports,
                            const char *function)
{
    qcp_run r;
    qc_status st = qcp__run_start(&r, p, rc, function);
    if (st == QC_OK) st = qcp__input_ranges(&r);
    if (st == QC_OK) st = qcp__quantize_inputs(&r);
    if (st == QC_OK) st = quantize_layers(&r);
    qc_session_free(r.quantized); /* it reads qmodel, which the export edits */
    r.quantized = NULL;
    if (st == QC_OK) st = qcp__export_weights(&r);
    if (st == QC_OK) {
        memcpy(reports, r.reports, p->num_layers * sizeof *reports);
        *out = r.qmodel, r.qmodel = NULL;
    }
    qcp__run_finish(&r);
    return st;
}

qc_status qc_pipeline_run(qc_pipeline *p, const qc_recipe *recipe, qc_model **out)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    QCM_CHECK_NOT_NULL(p);
    qc_recipe defaults;
    if (recipe == NULL) QCM_TRY(qc_recipe_init(&defaults, QC_RECIPE_VERSION));
    const qc_recipe *rc = recipe ? recipe : &defaults;
    QCM_TRY(qcp__check_recipe(p, rc, __func__));
    if (p->num_batches == 0) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'pipeline': no calibration batch was added");
    qc_layer_report *reports = calloc(p->num_layers, sizeof *reports);
    char **reasons = calloc(p->num_layers, sizeof *reasons);
    qc_model *model = NULL;
    qc_status st = reports && reasons ? QC_OK : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    int rotating = rc->version >= 3 && rc->rotation != QC_ROTATION_NONE;
    if (st == QC_OK) st = rotating ? qcp__run_rotated(p, rc, &model, reports, __func__) : run_layers(p, rc, &model, reports, __func__);
    if (st == QC_OK && rc->version >= 3 && rc->ethosu_config) st = qcp__ethosu_reports(p, rc, model, reports, reasons, __func__);
    if (st == QC_OK) {
        free(p->reports);
        qcp__free_reasons(p->ethosu_reasons, p->num_layers);
        p->reports = reports, reports = NULL;
        p->ethosu_reasons = reasons, reasons = NULL;
        *out = model, model = NULL;
    }
    free(reports);
    qcp__free_reasons(reasons, p->num_layers);
    qc_model_free(model);
    return st;
}
