/* The pipeline handle: its layers, calibration batches, recipe defaults and reports (qc_model.h). The
 * run itself is in pipeline_run.c. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "pipeline_internal.h"

qc_status qc_pipeline_create(qc_pipeline **out, const qc_model *model, qc_ctx *ctx)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    QCM_CHECK_NOT_NULL(model);
    QCM_CHECK_NOT_NULL(ctx);
    qc_pipeline *p = calloc(1, sizeof *p);
    if (p == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    p->model = model;
    p->ctx = ctx;
    qc_status st = qcp__find_layers(p, __func__);
    if (st != QC_OK) {
        qc_pipeline_free(p);
        return st;
    }
    *out = p;
    return QC_OK;
}

void qcp__batch_free(qcp_batch *b)
{
    for (size_t k = 0; k < b->count; k++) {
        free(b->names ? b->names[k] : NULL);
        free(b->values ? b->values[k].data : NULL);
    }
    free(b->names);
    free(b->values);
}

void qc_pipeline_free(qc_pipeline *p)
{
    if (p == NULL) return;
    qcp__cache_clear(p);
    qcp__rotated_clear(p);
    qcp__free_reasons(p->ethosu_reasons, p->num_layers);
    qcp__free_layers(p);
    for (size_t i = 0; i < p->num_batches; i++) qcp__batch_free(&p->batches[i]);
    free(p->batches);
    free(p->reports);
    free(p);
}

size_t qc_pipeline_layer_count(const qc_pipeline *p)
{
    return p ? p->num_layers : 0;
}

qc_status qc_pipeline_layer(const qc_pipeline *p, size_t i, qc_layer_info *out)
{
    QCM_CHECK_NOT_NULL(p);
    QCM_CHECK_NOT_NULL(out);
    if (i >= p->num_layers)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'i': %zu is not below the layer count %zu", i, p->num_layers);
    const qcp_layer *l = &p->layers[i];
    *out = (qc_layer_info){l->weight, l->node, l->op_type, l->input, l->in, l->out};
    return QC_OK;
}

/* A contiguous owned copy of `v` (any strides). */
static qc_status copy_value(qc_tensor *dst, const qc_tensor *v, const char *function)
{
    int64_t n = qc_tensor_numel(v);
    size_t size = (size_t)(n > 0 ? n : 1) * (size_t)((qc_dtype_bits(v->dtype) + 7) / 8);
    void *data = malloc(size);
    if (data == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a %zu-byte batch value", size);
    qc_status st = qc_tensor_init(dst, data, v->dtype, v->ndim, v->dims, NULL);
    if (st == QC_OK && !qc_tensor_is_contiguous(v))
        st = QCM_FAIL_IN(function, QC_ERR_LAYOUT, "batch values must be C-contiguous");
    if (st == QC_OK && n > 0) memcpy(data, v->data, (size_t)n * (size_t)((qc_dtype_bits(v->dtype) + 7) / 8));
    if (st != QC_OK) free(data);
    return st;
}

qc_status qcp__batch_copy(qcp_batch *b, size_t count, const char *const *names, const qc_tensor *values,
                          const char *function)
{
    *b = (qcp_batch){0};
    if (count == 0) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'count': a batch needs at least one input");
    if (names == NULL || values == NULL)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s' is NULL", names ? "values" : "names");
    for (size_t k = 0; k < count; k++) {
        if (names[k] == NULL) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'names': entry %zu is NULL", k);
        QCM_TRY(qc_tensor_check(&values[k], names[k]));
    }
    b->names = calloc(count, sizeof(char *));
    b->values = calloc(count, sizeof(qc_tensor));
    qc_status st = b->names && b->values ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (; st == QC_OK && b->count < count; b->count++) {
        b->names[b->count] = strdup(names[b->count]);
        st = b->names[b->count] ? copy_value(&b->values[b->count], &values[b->count], function)
                                : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    if (st != QC_OK) qcp__batch_free(b);
    return st;
}

qc_status qc_pipeline_add_batch(qc_pipeline *p, size_t count, const char *const *names, const qc_tensor *values)
{
    QCM_CHECK_NOT_NULL(p);
    qcp_batch *grown = realloc(p->batches, (p->num_batches + 1) * sizeof *grown);
    if (grown == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    p->batches = grown;
    qcp_batch b;
    QCM_TRY(qcp__batch_copy(&b, count, names, values, __func__));
    p->batches[p->num_batches++] = b;
    qcp__cache_clear(p); /* ranges and statistics covered the earlier batches only */
    qcp__rotated_clear(p);
    return QC_OK;
}

qc_status qcp__bind_batch(qc_session *s, const qcp_batch *b)
{
    for (size_t k = 0; k < b->count; k++) QCM_TRY(qc_session_set_input(s, b->names[k], &b->values[k]));
    return QC_OK;
}

size_t qcp__recipe_size(uint32_t version)
{
    return version == 1   ? offsetof(qc_recipe, num_layer_formats)
           : version == 2 ? offsetof(qc_recipe, rotation)
           : version == 3 ? offsetof(qc_recipe, rotate_heads)
           : version == 4 ? offsetof(qc_recipe, num_lq_layers)
                          : sizeof(qc_recipe);
}

size_t qcp__layer_named(const qc_pipeline *p, const char *weight)
{
    size_t i = 0;
    while (i < p->num_layers && (weight == NULL || strcmp(weight, p->layers[i].weight) != 0)) i++;
    return i;
}

size_t qcp__name_index(const char *const *names, size_t n, const char *name)
{
    size_t k = 0;
    while (k < n && (names[k] == NULL || name == NULL || strcmp(names[k], name) != 0)) k++;
    return k;
}

const qc_layer_format *qcp__format_of(const qc_layer_format *formats, size_t n, const char *weight)
{
    for (size_t k = 0; k < n; k++)
        if (formats[k].weight && weight && strcmp(formats[k].weight, weight) == 0) return &formats[k];
    return NULL;
}

qc_status qc_recipe_init(qc_recipe *r, unsigned version)
{
    QCM_CHECK_NOT_NULL(r);
    if (version == 0 || version > QC_RECIPE_VERSION)
        return QCM_FAIL(QC_ERR_VERSION, "argument 'version': %u is not a recipe version this library knows (1..%d)",
                        version, QC_RECIPE_VERSION);
    memset(r, 0, qcp__recipe_size(version));
    r->version = version;
    r->method = QC_METHOD_OPTQ;
    QCM_TRY(qc_quant_options_init(&r->weights, QC_QUANT_OPTIONS_VERSION));
    r->weights.granularity = QC_GRAN_CHANNEL;
    r->weights.axis = 0;
    QCM_TRY(qc_gpxq_options_init(&r->gpxq, QC_GPXQ_OPTIONS_VERSION));
    r->activation_bits = 8;
    r->sequential = 1;
    r->report_rows = 1024;
    if (version >= 2) {
        r->activation_scale = QC_SCALE_MINMAX;
        r->activation_percentile = 99.99;
        r->activation_mse_steps = 200;
        r->activation_mse_min_ratio = 0.01;
    }
    return QC_OK;
}

qc_status qc_pipeline_report(const qc_pipeline *p, size_t i, qc_layer_report *out)
{
    QCM_CHECK_NOT_NULL(p);
    QCM_CHECK_NOT_NULL(out);
    if (out->version == 0 || out->version > QC_LAYER_REPORT_VERSION)
        return QCM_FAIL(QC_ERR_VERSION, "argument 'out': version %u is not a report version this library knows (1..%d)",
                        out->version, QC_LAYER_REPORT_VERSION);
    if (p->reports == NULL) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'pipeline': no run has succeeded yet");
    if (i >= p->num_layers)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'i': %zu is not below the layer count %zu", i, p->num_layers);
    uint32_t version = out->version;
    /* An older caller's struct ends before the rotation and Ethos-U fields (version 1), heads_rotated (2) or
     * lq (3). */
    memcpy(out, &p->reports[i], version == 1   ? offsetof(qc_layer_report, norm_folded)
                                : version == 2 ? offsetof(qc_layer_report, heads_rotated)
                                : version == 3 ? offsetof(qc_layer_report, lq)
                                               : sizeof *out);
    out->version = version;
    return QC_OK;
}
