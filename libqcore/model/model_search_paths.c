/* The unrotated paths of a rotation-choice search's evaluation model (model_search_twins.c). A twinned
 * layer's rotated node y = layer(q(x R), W, b) is joined by a copy reading x itself:
 *
 *     y = layer(q(x R), W, b) + layer(q'(x), T, b')
 *
 * q' being the plain pass's quantizer of x (none with float activations). A configuration puts its weight
 * and the bias on the path it chose and zeros on the other, whose output is then +0: the sum is bit for bit
 * the chosen layer as a recipe's model computes it (up to the sign of a zero), whatever the activations'
 * width. Each twinned layer costs two products per evaluation, and its zero weight one more copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "model_search_internal.h"

void qcms__paths_free(qc_model_search *s)
{
    for (size_t t = 0; s->paths && t < s->cand.num_layers; t++) {
        qcms_path *p = &s->paths[t];
        free(p->weight), free(p->bias), free(p->path_bias), free(p->bias_values);
    }
    free(s->paths), free(s->zeros);
    s->paths = NULL, s->zeros = NULL;
}

/* A name taken whole into `out`, or QC_ERR_UNSUPPORTED naming it: a cut name would read or write another value. */
static qc_status copy_name(qcm_value_name out, const char *name, const char *function)
{
    if ((size_t)snprintf(out, sizeof(qcm_value_name), "%s", name) < sizeof(qcm_value_name)) return QC_OK;
    return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "option 'rotation_choice': value name '%.60s...' is longer than %zu bytes",
                       name, sizeof(qcm_value_name) - 1);
}

/* The input of layer t's path: x itself with float activations, else x through the plain pass's quantizer,
 * shared with the twinned layers before t that read x (source[k] == x; their inputs in input[k]). */
static qc_status path_input(qc_model_search *s, size_t t, const char *const *source, char *const *input, qcm_value_name out,
                            const char *function)
{
    for (size_t k = 0; k < t; k++)
        if (source[k] && strcmp(source[k], source[t]) == 0) return copy_name(out, input[k], function);
    if (s->recipe.activation_bits == 0) return copy_name(out, source[t], function);
    size_t u = s->twin_of[t];
    return qcp__add_input_quantizer(s->cand.eval_model, source[t], s->recipe.activation_bits, s->twins.act_signed[u],
                                    s->twins.act_scale[u], out, sizeof(qcm_value_name));
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

/* The path's bias b' when the layer's node has a float32 bias initializer of its own (a Gemm's C): a copy of
 * b, and b' zeros, into path; `out` its name ("" when the path goes without, its sum then rounding once more
 * than the recipe's Gemm). */
static qc_status add_bias(qc_model_search *s, const Onnx__NodeProto *node, qcms_path *path, size_t zeros, qcm_value_name out,
                          const char *function)
{
    qc_model *m = s->cand.eval_model;
    size_t k;
    qc_initializer_info info;
    out[0] = '\0';
    if (node->n_input < 3 || node->input[2][0] == '\0' || qc_model_find_initializer(m, node->input[2], &k) != QC_OK) return QC_OK;
    QCM_TRY(qc_model_initializer(m, k, &info));
    if (info.elem_type != QC_ONNX_FLOAT || info.is_external || info.nbytes > zeros * sizeof(float) || qcm__reader_count(m->proto->graph, info.name) != 1)
        return QC_OK;
    path->bias = strdup(info.name), path->bias_values = malloc(info.nbytes ? info.nbytes : 1);
    if (!path->bias || !path->bias_values) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    memcpy(path->bias_values, info.data, info.nbytes);
    path->bias_ndim = info.ndim;
    memcpy(path->bias_dims, info.dims, sizeof info.dims);
    qcm__fresh_name(out, sizeof(qcm_value_name), m, info.name, "_unrotated");
    QCM_TRY(qc_model_add_initializer(m, out, QC_ONNX_FLOAT, info.ndim, info.dims, s->zeros, info.nbytes));
    path->path_bias = strdup(out);
    return path->path_bias ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
}

/* Node n's output renamed `rotated`, and Add(rotated, part) writing its old name. */
static qc_status join(qc_model *m, size_t n, const char *part, const char *function)
{
    qcm_value_name output, rotated;
    QCM_TRY(copy_name(output, m->proto->graph->node[n]->output[0], function));
    qcm__fresh_name(rotated, sizeof rotated, m, output, "_rotated");
    char *renamed = strdup(rotated);
    if (renamed == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    Onnx__NodeProto *node = m->proto->graph->node[n];
    free(node->output[0]), node->output[0] = renamed;
    const char *sum[2] = {rotated, part}, *sum_out[1] = {output};
    return qc_model_add_node(m, NULL, "Add", "", output, 2, sum, 1, sum_out);
}

/* Layer t's path reading `input`: a copy of its node over a zero weight T (and bias b'), joined to its output. */
static qc_status add_path(qc_model_search *s, size_t t, const char *input, size_t zeros, const char *function)
{
    qc_model *m = s->cand.eval_model;
    const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
    qcms_path *path = &s->paths[t];
    qcm_value_name weight, bias, part;
    size_t n = 0, copy = 0;
    QCM_TRY(qcp__node_reading(m, l->weight, &n, function));
    qcm__fresh_name(weight, sizeof weight, m, l->weight, "_unrotated");
    QCM_TRY(qc_model_add_initializer(m, weight, QC_ONNX_FLOAT, l->ndim, l->dims, s->zeros, (size_t)(l->in * l->out) * sizeof(float)));
    if ((path->weight = strdup(weight)) == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    QCM_TRY(add_bias(s, m->proto->graph->node[n], path, zeros, bias, function));
    qcm__fresh_name(part, sizeof part, m, m->proto->graph->node[n]->output[0], "_unrotated");
    const char *inputs[3] = {input, weight, bias}, *outputs[1] = {part};
    QCM_TRY(qc_model_add_node(m, &copy, m->proto->graph->node[n]->op_type, "", part, bias[0] ? 3 : 2, inputs, 1, outputs));
    QCM_TRY(copy_attributes(m, m->proto->graph->node[n], copy, function));
    return join(m, n, part, function);
}

/* The largest twinned layer's weight count (at least 1). */
static size_t largest_weight(const qc_model_search *s, const char *const *source)
{
    size_t most = 1;
    for (size_t t = 0; t < s->cand.num_layers; t++) {
        const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
        if (source[t] && (size_t)(l->in * l->out) > most) most = (size_t)(l->in * l->out);
    }
    return most;
}

qc_status qcms__add_paths(qc_model_search *s, const char *const *source, const char *function)
{
    size_t n = s->cand.num_layers, zeros = largest_weight(s, source);
    s->paths = calloc(n, sizeof *s->paths), s->zeros = calloc(zeros, sizeof *s->zeros);
    char **input = calloc(n, sizeof *input);
    qc_status st = s->paths && s->zeros && input ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t t = 0; st == QC_OK && t < n; t++) {
        if (source[t] == NULL) continue;
        qcm_value_name in;
        st = path_input(s, t, source, input, in, function);
        if (st == QC_OK) st = (input[t] = strdup(in)) ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
        if (st == QC_OK) st = add_path(s, t, in, zeros, function);
    }
    if (st == QC_OK) st = qc_model_sort(s->cand.eval_model);
    for (size_t t = 0; input && t < n; t++) free(input[t]);
    free(input);
    return st;
}

static qc_status set_floats(qc_session *eval, const char *name, const float *data, int32_t ndim, const int64_t *dims)
{
    qc_tensor v;
    QCM_TRY(qc_tensor_init(&v, (float *)data, QC_DT_F32, ndim, dims, NULL));
    return qc_session_set_initializer(eval, name, &v);
}

/* The unrotated path's bias and the layer's: `on_path` puts the layer's bias on the path and zeros on the
 * rotated node, else the other way round. */
static qc_status place_bias(qc_model_search *s, const qcms_path *path, int on_path)
{
    if (path->bias == NULL) return QC_OK;
    QCM_TRY(set_floats(s->eval, path->bias, on_path ? s->zeros : path->bias_values, path->bias_ndim, path->bias_dims));
    return set_floats(s->eval, path->path_bias, on_path ? path->bias_values : s->zeros, path->bias_ndim, path->bias_dims);
}

qc_status qcms__path_off(qc_model_search *s, size_t t)
{
    const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
    const qcms_path *path = s->paths ? &s->paths[t] : NULL;
    if (path == NULL || path->weight == NULL) return QC_OK;
    QCM_TRY(set_floats(s->eval, path->weight, s->zeros, l->ndim, l->dims));
    return place_bias(s, path, 0);
}

qc_status qcms__swap_in(qc_model_search *s, size_t t, uint32_t c)
{
    const qcp_layer *l = &s->work->layers[s->cand.layers[t]];
    const float *weight = qcms__cell(s, t, c).weight;
    const qcms_path *path = s->paths ? &s->paths[t] : NULL;
    if (path == NULL || path->weight == NULL) return set_floats(s->eval, l->weight, weight, l->ndim, l->dims);
    int twin = qcms__is_twin(s, c);
    QCM_TRY(set_floats(s->eval, l->weight, twin ? s->zeros : weight, l->ndim, l->dims));
    QCM_TRY(set_floats(s->eval, path->weight, twin ? weight : s->zeros, l->ndim, l->dims));
    return place_bias(s, path, twin);
}
