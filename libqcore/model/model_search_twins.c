/* Unrotated twins of a rotated model search's candidates (qc_model_search_options.rotation_choice): every
 * searched layer whose input the recipe's rotation rotates online also gets each candidate but the float
 * weight (uniform widths and LQ bits) quantized without that rotation. They come from a candidate pass over
 * the model with every layer in the recipe's `unrotated` (norms folded alike, nothing rotated), which is
 * what qc_pipeline_run quantizes for a layer so named, input quantizer included.
 *
 * One evaluation session holds both: a twinned layer's rotated node y = layer(q(x R), W) is joined by its
 * unrotated path, y = layer(q(x R), W) + layer(q'(x), T), q' the plain pass's input quantizer of x. The
 * configuration puts its weight on one path and zeros on the other, so the sum is the chosen layer exactly
 * (adding zero changes nothing), whatever the activations' width. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "model_search_internal.h"

void qcms__twins_free(qc_model_search *s)
{
    for (size_t t = 0; s->twin_weight && t < s->cand.num_layers; t++) free(s->twin_weight[t]);
    free(s->twin_weight), free(s->zeros), free(s->twin_of), free(s->twin_width), free(s->unrotated_choice);
    qcp__candidates_free(&s->twins);
    qcp__rotated_free(&s->plain);
    s->twin_weight = NULL, s->zeros = NULL, s->twin_of = NULL, s->twin_width = NULL, s->unrotated_choice = NULL;
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

typedef char value_name[320];

/* The input of layer t's unrotated path: x itself with float activations, else x through the plain pass's
 * quantizer, shared with the twinned layers before t that read x (source[t'] == x; their inputs in path[t']). */
static qc_status path_input(qc_model_search *s, size_t t, const char *const *source, char *const *path, value_name out)
{
    for (size_t k = 0; k < t; k++)
        if (source[k] && strcmp(source[k], source[t]) == 0) {
            snprintf(out, sizeof(value_name), "%s", path[k]);
            return QC_OK;
        }
    if (s->recipe.activation_bits == 0) {
        snprintf(out, sizeof(value_name), "%s", source[t]);
        return QC_OK;
    }
    size_t u = s->twin_of[t];
    return qcp__add_input_quantizer(s->cand.eval_model, source[t], s->recipe.activation_bits, s->twins.act_signed[u],
                                    s->twins.act_scale[u], out, sizeof(value_name));
}

/* The node's INT and FLOAT attributes (all a MatMul or Gemm has) onto node `to`. */
static qc_status copy_attributes(qc_model *m, const Onnx__NodeProto *from, size_t to, const char *function)
{
    for (size_t a = 0; a < from->n_attribute; a++) {
        const Onnx__AttributeProto *at = from->attribute[a];
        if (at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
            QCM_TRY(qc_model_set_attribute(m, to, at->name, QC_ATTRIBUTE_INT, &at->i, 1));
        else if (at->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
            QCM_TRY(qc_model_set_attribute(m, to, at->name, QC_ATTRIBUTE_FLOAT, &at->f, 1));
        else
            return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "option 'rotation_choice': node '%s' (%s) has attribute '%s' of a kind "
                               "its unrotated path cannot copy", from->name, from->op_type, at->name);
    }
    return QC_OK;
}

/* Layer t's unrotated path reading `input`: its node (without bias) over a zero weight T, and the sum. */
static qc_status add_path(qc_model_search *s, size_t t, const char *input, const char *function)
{
    qc_model *m = s->cand.eval_model;
    const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
    value_name weight, part, rotated, output;
    qcm__fresh_name(weight, sizeof weight, m, l->weight, "_unrotated");
    QCM_TRY(qc_model_add_initializer(m, weight, QC_ONNX_FLOAT, l->ndim, l->dims, s->zeros,
                                     (size_t)(l->in * l->out) * sizeof(float)));
    size_t n = 0, path = 0;
    QCM_TRY(qcp__node_reading(m, l->weight, &n, function));
    snprintf(output, sizeof output, "%s", m->proto->graph->node[n]->output[0]);
    qcm__fresh_name(part, sizeof part, m, output, "_unrotated");
    qcm__fresh_name(rotated, sizeof rotated, m, output, "_rotated");
    const char *inputs[2] = {input, weight}, *outputs[1] = {part};
    QCM_TRY(qc_model_add_node(m, &path, m->proto->graph->node[n]->op_type, "", part, 2, inputs, 1, outputs));
    QCM_TRY(copy_attributes(m, m->proto->graph->node[n], path, function));
    Onnx__NodeProto *node = m->proto->graph->node[n];
    char *renamed = strdup(rotated);
    if (renamed == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    free(node->output[0]), node->output[0] = renamed;
    const char *sum[2] = {rotated, part}, *sum_out[1] = {output};
    QCM_TRY(qc_model_add_node(m, NULL, "Add", "", output, 2, sum, 1, sum_out));
    s->twin_weight[t] = strdup(weight);
    return s->twin_weight[t] ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
}

/* Searched layer t's twins, when its input is rotated online (else twin_of[t] stays SIZE_MAX); source[t]
 * becomes the rotation's input x (borrowed from the work model) and path[t] its path's input. */
static qc_status layer_twins(qc_model_search *s, size_t t, const char **source, char **path, const char *function)
{
    const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
    size_t i = qcp__layer_named(s->p, l->weight), e = layer_writing(s->work, l->input);
    if (i == s->p->num_layers || !s->rotated.online[i] || e == s->work->num_layers) return QC_OK;
    size_t u = 0;
    while (u < s->twins.num_layers && strcmp(s->plain.inner->layers[s->twins.layers[u]].weight, l->weight) != 0) u++;
    if (u == s->twins.num_layers) return QC_OK; /* kept in float in the plain pass: nothing to choose */
    s->twin_of[t] = u;
    source[t] = s->work->model->proto->graph->node[s->work->layers[e].node_index]->input[0];
    value_name input;
    QCM_TRY(path_input(s, t, source, path, input));
    path[t] = strdup(input);
    if (path[t] == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    return add_path(s, t, input, function);
}

/* Every twinned layer's path, then the evaluation model put back in topological order. */
static qc_status add_paths(qc_model_search *s, const char *function)
{
    size_t n = s->cand.num_layers;
    const char **source = calloc(n, sizeof *source);
    char **path = calloc(n, sizeof *path);
    qc_status st = source && path ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t t = 0; st == QC_OK && t < n; t++) st = layer_twins(s, t, source, path, function);
    if (st == QC_OK) st = qc_model_sort(s->cand.eval_model);
    for (size_t t = 0; path && t < n; t++) free(path[t]);
    free(source), free(path);
    return st;
}

qc_status qcms__swap_in(qc_model_search *s, size_t t, uint32_t c)
{
    const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
    int twin = qcms__is_twin(s, c);
    const float *weight = qcms__cell(s, t, c).weight;
    qc_tensor on, off;
    QCM_TRY(qc_tensor_init(&on, (float *)weight, QC_DT_F32, l->ndim, l->dims, NULL));
    QCM_TRY(qc_session_set_initializer(s->eval, twin ? s->twin_weight[t] : l->weight, &on));
    if (s->twin_weight == NULL || s->twin_weight[t] == NULL) return QC_OK;
    QCM_TRY(qc_tensor_init(&off, s->zeros, QC_DT_F32, l->ndim, l->dims, NULL));
    return qc_session_set_initializer(s->eval, twin ? l->weight : s->twin_weight[t], &off);
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

/* The largest searched layer's weight count. */
static size_t largest_weight(const qc_model_search *s)
{
    size_t most = 1;
    for (size_t t = 0; t < s->cand.num_layers; t++) {
        const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
        if ((size_t)(l->in * l->out) > most) most = (size_t)(l->in * l->out);
    }
    return most;
}

qc_status qcms__twins(qc_model_search *s, const qc_model_search_options *o, const qcp_formats *formats,
                      const char *function)
{
    size_t n = s->cand.num_layers, w = s->cand.num_widths;
    s->twin_of = malloc(n * sizeof *s->twin_of);
    s->twin_width = malloc(w * sizeof *s->twin_width);
    s->twin_weight = calloc(n, sizeof *s->twin_weight);
    s->zeros = calloc(largest_weight(s), sizeof *s->zeros);
    s->unrotated_choice = malloc((n + 1) * sizeof *s->unrotated_choice);
    if (!s->twin_of || !s->twin_width || !s->twin_weight || !s->zeros || !s->unrotated_choice)
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t t = 0; t < n; t++) s->twin_of[t] = SIZE_MAX;
    for (size_t c = 0; c < w; c++)
        if (s->cand.widths[c] != 0) s->twin_width[s->num_twin_widths++] = c; /* a float weight is the same either way;
                                                                                  LQ levels are not */
    QCM_TRY(plain_candidates(s, o, formats, function));
    return add_paths(s, function);
}
