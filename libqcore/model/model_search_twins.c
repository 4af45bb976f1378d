/* Unrotated twins of a rotated model search's candidates (qc_model_search_options.rotation_choice): every
 * searched layer whose input the recipe's rotation rotates online also gets each candidate but the float
 * weight (uniform widths and LQ bits) quantized without that rotation. They come from a candidate pass over
 * the model with every layer in the recipe's `unrotated` (norms folded alike, nothing rotated), which is
 * what qc_pipeline_run quantizes for a layer so named, input quantizer included.
 * One evaluation session holds both (model_search_paths.c). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "model_search_internal.h"

void qcms__twins_free(qc_model_search *s)
{
    qcms__paths_free(s);
    free(s->twin_of), free(s->twin_width), free(s->unrotated_choice);
    qcp__candidates_free(&s->twins);
    qcp__rotated_free(&s->plain);
    s->twin_of = NULL, s->twin_width = NULL, s->unrotated_choice = NULL;
    s->num_twin_widths = 0;
}

size_t qcms__candidate_count(const qc_model_search *s, size_t t)
{
    return s->cand.num_widths + (s->twin_of && s->twin_of[t] != SIZE_MAX ? s->num_twin_widths : 0);
}

int qcms__is_twin(const qc_model_search *s, uint32_t c)
{
    return c >= s->cand.num_widths;
}

/* The twins' cell of candidate c >= num_widths of searched layer t. */
static size_t twin_cell(const qc_model_search *s, size_t t, uint32_t c)
{
    return s->twin_of[t] * s->twins.num_widths + s->twin_width[c - s->cand.num_widths];
}

qcms_cell qcms__cell(const qc_model_search *s, size_t t, uint32_t c)
{
    size_t w = s->cand.num_widths;
    if (!qcms__is_twin(s, c)) {
        size_t k = t * w + c;
        return (qcms_cell){s->cand.weights[k], s->cand.bytes[k], s->cand.output_error[k], s->cand.ethosu_bytes[k],
                           s->cand.widths[c], s->cand.lq_bits[c]};
    }
    size_t k = twin_cell(s, t, c), base = s->twin_width[c - w];
    return (qcms_cell){s->twins.weights[k], s->twins.bytes[k], s->twins.output_error[k], s->twins.ethosu_bytes[k],
                       s->twins.widths[base], s->twins.lq_bits[base]};
}

/* The candidate pass over the model with no layer rotated (every outer layer in `unrotated`). */
static qc_status plain_candidates(qc_model_search *s, const qc_model_search_options *o, const qcp_formats *f,
                                  const char *function)
{
    qc_pipeline *p = s->p;
    const char **all = malloc((p->num_layers + 1) * sizeof *all);
    if (all == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < p->num_layers; i++) all[i] = p->layers[i].weight;
    qc_recipe rc = s->recipe, inner;
    rc.num_unrotated = p->num_layers, rc.unrotated = all;
    const char **keep = NULL;
    qc_status st = qcp__rotated_build(p, &rc, &s->plain, function);
    if (st == QC_OK) st = qcp__rotated_recipe(&s->plain, &rc, &inner, &keep, function);
    if (st == QC_OK) st = qcp__candidates(s->plain.inner, &inner, f, o->ethosu_config, &s->twins, function);
    free(keep), free(all);
    return st;
}

/* The work pipeline's layer whose node writes `value` (an online rotation's MatMul), or num_layers. */
static size_t layer_writing(const qc_pipeline *work, const char *value)
{
    const Onnx__GraphProto *g = work->model->proto->graph;
    for (size_t e = 0; e < work->num_layers; e++) {
        const Onnx__NodeProto *n = g->node[work->layers[e].node_index];
        if (n->n_output > 0 && strcmp(n->output[0], value) == 0) return e;
    }
    return work->num_layers;
}

/* Searched layer t's twins, when its input is rotated online (else twin_of[t] stays SIZE_MAX); source[t]
 * becomes the rotation's input x (borrowed from the work model), which its unrotated path reads. */
static void layer_twins(qc_model_search *s, size_t t, const char **source)
{
    const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
    size_t i = qcp__layer_named(s->p, l->weight), e = layer_writing(s->work, l->input);
    if (i == s->p->num_layers || !s->rotated.online[i] || e == s->work->num_layers) return;
    size_t u = 0;
    while (u < s->twins.num_layers && strcmp(s->plain.inner->layers[s->twins.layers[u]].weight, l->weight) != 0) u++;
    if (u == s->twins.num_layers) return; /* kept in float in the plain pass: nothing to choose */
    s->twin_of[t] = u;
    source[t] = s->work->model->proto->graph->node[s->work->layers[e].node_index]->input[0];
}

qc_status qcms__check_twins(const qc_model_search *s, const char *function)
{
    if (s->recipe.rotation == QC_ROTATION_NONE)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'rotation_choice': it chooses per layer whether the recipe's "
                           "rotation applies, and the recipe's rotation is none");
    if (s->recipe.num_unrotated != 0)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'rotation_choice': the recipe already names unrotated layers; "
                           "the search chooses them itself");
    return QC_OK;
}

qc_status qcms__twins(qc_model_search *s, const qc_model_search_options *o, const qcp_formats *formats,
                      const char *function)
{
    size_t n = s->cand.num_layers, w = s->cand.num_widths;
    s->twin_of = malloc(n * sizeof *s->twin_of);
    s->twin_width = malloc(w * sizeof *s->twin_width);
    s->unrotated_choice = malloc((n + 1) * sizeof *s->unrotated_choice);
    if (!s->twin_of || !s->twin_width || !s->unrotated_choice)
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t t = 0; t < n; t++) s->twin_of[t] = SIZE_MAX;
    for (size_t c = 0; c < w; c++)
        if (s->cand.widths[c] != 0) s->twin_width[s->num_twin_widths++] = c; /* a float weight is the same either way;
                                                                                  LQ levels are not */
    QCM_TRY(plain_candidates(s, o, formats, function));
    const char **source = calloc(n, sizeof *source);
    if (source == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t t = 0; t < n; t++) layer_twins(s, t, source);
    qc_status st = qcms__add_paths(s, source, function);
    free(source);
    return st;
}
