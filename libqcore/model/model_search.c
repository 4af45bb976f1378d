/* The model search handle (qc_model.h): options, candidates and the recipe of a configuration. Evaluation
 * is in model_search_eval.c. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "model_search_internal.h"

static const int32_t DEFAULT_WIDTHS[] = {0, 8, 6, 4, 3, 2};

qc_status qc_model_search_options_init(qc_model_search_options *o, unsigned version)
{
    QCM_CHECK_NOT_NULL(o);
    if (version == 0 || version > QC_MODEL_SEARCH_OPTIONS_VERSION)
        return QCM_FAIL(QC_ERR_VERSION, "argument 'version': %u is not a model search options version this library knows (1..%d)",
                        version, QC_MODEL_SEARCH_OPTIONS_VERSION);
    qc_model_search_options d = {.version = version, .num_widths = sizeof DEFAULT_WIDTHS / sizeof *DEFAULT_WIDTHS,
                                 .widths = DEFAULT_WIDTHS, .proxy = QC_MODEL_PROXY_MODEL_SCALED};
    /* An older caller's struct ends before the later versions' fields. */
    memcpy(o, &d, version == 1   ? offsetof(qc_model_search_options, proxy)
                  : version == 2 ? offsetof(qc_model_search_options, num_lq_bits)
                                 : sizeof *o);
    return QC_OK;
}

static qc_status check_widths(const qc_model_search_options *o, const char *function)
{
    if (o->num_widths == 0 || o->widths == NULL)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'widths': give at least one candidate width");
    for (size_t k = 0; k < o->num_widths; k++) {
        int32_t w = o->widths[k];
        if (w != 0 && (w < 2 || w > 16))
            return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'widths': entry %zu is %d, neither 0 (float) nor in 2..16", k,
                               (int)w);
        for (size_t j = 0; j < k; j++)
            if (o->widths[j] == w)
                return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'widths': %d is given twice", (int)w);
    }
    return QC_OK;
}

/* The options' LQ candidates (version 3; none before) into f, checked: K in 1..4, distinct, no AXE. */
static qc_status check_lq_bits(const qc_model_search_options *o, qcp_formats *f, const char *function)
{
    *f = (qcp_formats){o->num_widths, o->widths, o->version >= 3 ? o->num_lq_bits : 0, o->version >= 3 ? o->lq_bits : NULL};
    if (f->num_lq > 0 && f->lq_bits == NULL)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'lq_bits' is NULL with num_lq_bits = %zu", f->num_lq);
    for (size_t k = 0; k < f->num_lq; k++) {
        int32_t b = f->lq_bits[k];
        if (b < 1 || b > QC_LQ_MAX_BITS)
            return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'lq_bits': entry %zu is %d, not in 1..%d", k, (int)b, QC_LQ_MAX_BITS);
        for (size_t j = 0; j < k; j++)
            if (f->lq_bits[j] == b) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'lq_bits': %d is given twice", (int)b);
    }
    if (f->num_lq > 0 && o->recipe && o->recipe->gpxq.accumulator_bits)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                           "option 'lq_bits': the recipe's AXE (gpxq.accumulator_bits = %d) bounds integer dot products, "
                           "and LQ levels are not integers", (int)o->recipe->gpxq.accumulator_bits);
    return QC_OK;
}

/* The options' proxy (version 1 knows only the layer's). */
static qc_status check_proxy(const qc_model_search_options *o, int32_t *proxy, const char *function)
{
    *proxy = o->version >= 2 ? o->proxy : QC_MODEL_PROXY_LAYER;
    if (*proxy < QC_MODEL_PROXY_LAYER || *proxy > QC_MODEL_PROXY_MODEL_SCALED)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'proxy': %d is not a qc_model_proxy", (int)*proxy);
    if (o->version >= 2 && *proxy == QC_MODEL_PROXY_LAYER && o->proxy_batches != 0)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'proxy_batches': %zu is for the model proxy; the layer proxy runs no batch",
                           o->proxy_batches);
    return QC_OK;
}

/* Owned copies of n names (NULL entries stay NULL). */
static qc_status copy_names(char ***owned, const char *const *names, size_t n, const char *function)
{
    if (n == 0 || names == NULL) return QC_OK;
    if ((*owned = calloc(n, sizeof **owned)) == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t k = 0; k < n; k++)
        if (names[k] && ((*owned)[k] = strdup(names[k])) == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    return QC_OK;
}

static void free_names(char **names, size_t n)
{
    for (size_t k = 0; names && k < n; k++) free(names[k]);
    free(names);
}

/* The base recipe (every field of the caller's version; layer formats dropped), owning copies of its
 * keep_float and unrotated names. */
static qc_status copy_recipe(qc_model_search *s, const qc_recipe *recipe, const char *function)
{
    if (recipe == NULL) return qc_recipe_init(&s->recipe, QC_RECIPE_VERSION);
    if (recipe->version == 0 || recipe->version > QC_RECIPE_VERSION)
        return QCM_FAIL_IN(function, QC_ERR_VERSION, "option 'recipe': version %u is not one this library knows (1..%d)",
                           recipe->version, QC_RECIPE_VERSION);
    QCM_TRY(qc_recipe_init(&s->recipe, QC_RECIPE_VERSION));
    memcpy(&s->recipe, recipe, qcp__recipe_size(recipe->version));
    s->recipe.version = QC_RECIPE_VERSION;
    s->recipe.num_layer_formats = 0, s->recipe.layer_formats = NULL;
    s->recipe.num_lq_layers = 0, s->recipe.lq_layers = NULL;
    QCM_TRY(copy_names(&s->keep, recipe->keep_float, recipe->num_keep_float, function));
    s->recipe.keep_float = (const char *const *)s->keep;
    QCM_TRY(copy_names(&s->unrotated, s->recipe.unrotated, s->recipe.num_unrotated, function));
    s->recipe.unrotated = (const char *const *)s->unrotated;
    return QC_OK;
}

/* The candidates, on the pipeline itself or, when the recipe rotates, on a rotated copy of its model made
 * once (qc_pipeline_run's, so that the recipe of a configuration reproduces its weights). */
static qc_status candidates(qc_model_search *s, const qc_model_search_options *o, const qcp_formats *f, const char *function)
{
    s->work = s->p;
    if (s->recipe.rotation == QC_ROTATION_NONE) return qcp__candidates(s->p, &s->recipe, f, o->ethosu_config, &s->cand, function);
    QCM_TRY(qcp__check_recipe(s->p, &s->recipe, function));
    if (s->p->num_batches == 0) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'pipeline': no calibration batch was added");
    QCM_TRY(qcp__rotated_build(s->p, &s->recipe, &s->rotated, function));
    s->work = s->rotated.inner;
    qc_recipe inner;
    const char **keep = NULL;
    qc_status st = qcp__rotated_recipe(&s->rotated, &s->recipe, &inner, &keep, function);
    if (st == QC_OK) st = qcp__candidates(s->work, &inner, f, o->ethosu_config, &s->cand, function);
    free(keep);
    return st;
}

/* The graph output named `name` (NULL: the first), by the model's own string. */
static qc_status find_output(qc_model_search *s, const char *name, const char *function)
{
    qc_value_info info;
    for (size_t k = 0; qc_model_output(s->p->model, k, &info) == QC_OK; k++)
        if (name == NULL || strcmp(info.name, name) == 0) {
            s->output = info.name;
            return QC_OK;
        }
    if (name == NULL) return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "the model has no graph output to evaluate");
    return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'output': the model has no graph output '%s'", name);
}

qc_status qc_model_search_create(qc_model_search **out, qc_pipeline *p, const qc_model_search_options *opts)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    QCM_CHECK_NOT_NULL(p);
    qc_model_search_options defaults;
    if (opts == NULL) QCM_TRY(qc_model_search_options_init(&defaults, QC_MODEL_SEARCH_OPTIONS_VERSION));
    const qc_model_search_options *o = opts ? opts : &defaults;
    if (o->version == 0 || o->version > QC_MODEL_SEARCH_OPTIONS_VERSION)
        return QCM_FAIL(QC_ERR_VERSION, "argument 'opts': version %u is not one this library knows (1..%d)", o->version,
                        QC_MODEL_SEARCH_OPTIONS_VERSION);
    QCM_TRY(check_widths(o, __func__));
    qcp_formats formats;
    QCM_TRY(check_lq_bits(o, &formats, __func__));
    int32_t proxy;
    QCM_TRY(check_proxy(o, &proxy, __func__));
    qc_model_search *s = calloc(1, sizeof *s);
    if (s == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    s->p = p;
    qc_status st = copy_recipe(s, o->recipe, __func__);
    if (st == QC_OK) st = find_output(s, o->output, __func__);
    qc_ethosu_config_info npu;
    if (st == QC_OK && o->ethosu_config != 0 && qc_ethosu_config_get(&npu, o->ethosu_config) != QC_OK)
        st = QCM_FAIL(QC_ERR_INVALID_ARG, "option 'ethosu_config': %d is not a qc_ethosu_config", (int)o->ethosu_config);
    int twins = o->version >= 3 && o->rotation_choice;
    if (st == QC_OK && twins) st = qcms__check_twins(s, __func__);
    if (st == QC_OK) st = candidates(s, o, &formats, __func__);
    if (st == QC_OK && s->cand.num_layers == 0)
        st = QCM_FAIL(QC_ERR_INVALID_ARG, "option 'recipe': every layer is in keep_float; nothing is left to search");
    if (st == QC_OK && twins) st = qcms__twins(s, o, &formats, __func__);
    if (st == QC_OK) st = qc_session_create(&s->eval, s->cand.eval_model, p->ctx);
    if (st == QC_OK) st = (s->formats = calloc(2 * s->cand.num_layers, sizeof *s->formats)) ? QC_OK
                                                                                              : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK && proxy != QC_MODEL_PROXY_LAYER)
        st = qcms__model_proxy(s, o->proxy_batches, proxy == QC_MODEL_PROXY_MODEL_SCALED, __func__);
    if (st != QC_OK) {
        qc_model_search_free(s);
        return st;
    }
    *out = s;
    return QC_OK;
}

void qc_model_search_free(qc_model_search *s)
{
    if (s == NULL) return;
    for (size_t b = 0; b < s->num_batches; b++) {
        qcp__batch_free(&s->batches[b]);
        free(s->labels ? s->labels[b] : NULL), free(s->reference ? s->reference[b] : NULL);
    }
    free(s->batches), free(s->labels), free(s->reference);
    free_names(s->keep, s->recipe.num_keep_float), free_names(s->unrotated, s->recipe.num_unrotated);
    free(s->formats), free(s->model_error);
    qc_session_free(s->eval), qc_session_free(s->fp);
    qcms__twins_free(s);
    qcp__candidates_free(&s->cand);
    qcp__rotated_free(&s->rotated);
    free(s);
}

size_t qc_model_search_layer_count(const qc_model_search *s)
{
    return s ? s->cand.num_layers : 0;
}

size_t qc_model_search_candidate_count(const qc_model_search *s, size_t layer)
{
    return s && layer < s->cand.num_layers ? qcms__candidate_count(s, layer) : 0;
}

qc_status qcms__check_candidate(const qc_model_search *s, size_t layer, uint32_t c, const char *function)
{
    if (layer >= s->cand.num_layers)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "layer %zu is not below the searched layer count %zu", layer,
                           s->cand.num_layers);
    if (c >= qcms__candidate_count(s, layer))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "layer %zu: candidate %u is not below the candidate count %zu", layer, c,
                           qcms__candidate_count(s, layer));
    return QC_OK;
}

/* Searched layer t's index among the pipeline's own layers (a rotated model's layers keep their weights'
 * names). */
static size_t outer_layer(const qc_model_search *s, size_t t)
{
    return qcp__layer_named(s->p, s->work->layers[s->cand.layers[t]].weight);
}

qc_status qc_model_search_candidate(const qc_model_search *s, size_t layer, uint32_t c, qc_model_candidate *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(out);
    QCM_TRY(qcms__check_candidate(s, layer, c, __func__));
    size_t i = outer_layer(s, layer);
    qcms_cell cell = qcms__cell(s, layer, c);
    double weight_bits = cell.width ? cell.width : 32, input_bits = s->recipe.activation_bits ? s->recipe.activation_bits : 32;
    *out = (qc_model_candidate){i, s->p->layers[i].weight, cell.width, cell.bytes, cell.output_error, cell.ethosu_bytes,
                                s->cand.macs[layer] * weight_bits * input_bits};
    return QC_OK;
}

qc_status qc_model_search_candidate_rotated(const qc_model_search *s, size_t layer, uint32_t c, int32_t *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(out);
    QCM_TRY(qcms__check_candidate(s, layer, c, __func__));
    *out = s->recipe.rotation != QC_ROTATION_NONE && s->rotated.rotated[outer_layer(s, layer)] && !qcms__is_twin(s, c);
    return QC_OK;
}

qc_status qc_model_search_candidate_lq_bits(const qc_model_search *s, size_t layer, uint32_t c, int32_t *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(out);
    QCM_TRY(qcms__check_candidate(s, layer, c, __func__));
    *out = qcms__cell(s, layer, c).lq_bits;
    return QC_OK;
}

qc_status qc_model_search_recipe(qc_model_search *s, const uint32_t *choice, qc_recipe *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(choice);
    QCM_CHECK_NOT_NULL(out);
    size_t n = s->cand.num_layers, uniform = 0, lq = 0, left = 0;
    qc_layer_format *lq_formats = s->formats + n; /* the second half of s->formats */
    for (size_t t = 0; t < n; t++) {
        QCM_TRY(qcms__check_candidate(s, t, choice[t], __func__));
        qcms_cell cell = qcms__cell(s, t, choice[t]);
        qc_layer_format f = {s->work->layers[s->cand.layers[t]].weight, cell.width};
        if (cell.lq_bits) lq_formats[lq++] = f;
        else s->formats[uniform++] = f;
        if (qcms__is_twin(s, choice[t])) s->unrotated_choice[left++] = f.weight;
    }
    *out = s->recipe;
    out->num_layer_formats = uniform, out->layer_formats = s->formats;
    out->num_lq_layers = lq, out->lq_layers = lq ? lq_formats : NULL;
    if (s->unrotated_choice) out->num_unrotated = left, out->unrotated = s->unrotated_choice;
    return QC_OK;
}
