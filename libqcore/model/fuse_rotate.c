/* Rotations fused into a model's linear layers (qc_model.h): a layer's input side, folded into its
 * producer or applied online by a constant MatMul; a layer's output side paired with its consumers'
 * input side; and per-head rotations of an attention's V and O projections. Each keeps the float
 * function: for an orthogonal R, (x R)(R^T W) = x W. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuse.h"

/* The layer's input side (W <- R^T W, R [in, in]) or its output side (W <- W R and b <- b R, R [out, out]),
 * for its W [in, out] and b [out]. */
static qc_status rotate_side(qc_model *m, const qcm_linear *l, const double *r, int output, const char *function)
{
    size_t count = (size_t)(l->in * l->out);
    double *w = malloc(count * sizeof *w), *t = malloc(count * sizeof *t);
    qc_status st = w && t ? qcm__read_weight(m, l, w, function) : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) {
        if (output) qcm__dgemm(0, l->in, l->out, l->out, w, r, t);
        else qcm__dgemm(1, l->in, l->out, l->in, r, w, t);
        st = qcm__write_weight(m, l, t, function);
    }
    if (st == QC_OK && output && l->bias != QCM_NONE) {
        qcm__read_bias(m, l, w);
        qcm__dgemm(0, 1, l->out, l->out, w, r, t);
        st = qcm__write_bias(m, l, t, function);
    }
    free(w), free(t);
    return st;
}

/* The layer's producer as a linear layer whose output the layer alone reads, or QCM_NONE. */
static int foldable_producer(const qc_model *m, const qcm_linear *l, qcm_linear *producer)
{
    int is_output;
    if (qcm__consumers(m, l->input, NULL, &is_output) != 1 || is_output) return 0;
    return qcm__linear_producing(m, l->input, producer) && producer->out == l->in;
}

/* A MatMul by R already reading `input` (an earlier call with the same R), or QCM_NONE. */
static size_t shared_rotation(const qc_model *m, const char *input, const float *r, int64_t n)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *node = g->node[i];
        size_t w;
        qc_initializer_info info;
        if (strcmp(node->op_type, "MatMul") != 0 || node->n_input != 2 || strcmp(node->input[0], input) != 0) continue;
        if (qc_model_find_initializer(m, node->input[1], &w) != QC_OK) {
            qc_clear_error();
            continue;
        }
        if (qc_model_initializer(m, w, &info) == QC_OK && info.elem_type == QC_ONNX_FLOAT && info.ndim == 2 &&
            info.dims[0] == n && info.dims[1] == n && memcmp(info.data, r, (size_t)(n * n) * sizeof *r) == 0)
            return i;
    }
    return QCM_NONE;
}

/* x -> x R as a MatMul by the constant R (shared with an identical earlier one), and the layer reads it. */
static qc_status insert_online(qc_model *m, const qcm_linear *l, const double *r, const char *function)
{
    size_t count = (size_t)(l->in * l->in);
    float *f = malloc(count * sizeof *f);
    if (f == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < count; i++) f[i] = (float)r[i];
    Onnx__NodeProto *layer = m->proto->graph->node[l->node];
    size_t existing = shared_rotation(m, l->input, f, l->in);
    char rotation[256], rotated[256];
    qc_status st = QC_OK;
    if (existing != QCM_NONE) snprintf(rotated, sizeof rotated, "%s", m->proto->graph->node[existing]->output[0]);
    else {
        qcm__fresh_name(rotation, sizeof rotation, m, layer->name[0] ? layer->name : l->input, "_rotation");
        qcm__fresh_name(rotated, sizeof rotated, m, l->input, "_rotated");
        int64_t dims[2] = {l->in, l->in};
        const char *inputs[2] = {l->input, rotation}, *outputs[1] = {rotated};
        st = qc_model_add_initializer(m, rotation, QC_ONNX_FLOAT, 2, dims, f, count * sizeof *f);
        if (st == QC_OK) st = qc_model_add_node(m, NULL, "MatMul", "", rotated, 2, inputs, 1, outputs);
    }
    free(f);
    QCM_TRY(st);
    char *renamed = strdup(rotated);
    if (renamed == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    free(layer->input[0]);
    layer->input[0] = renamed;
    return qc_model_sort(m);
}

qc_status qc_model_rotate_input(qc_model *model, const char *node, const qc_tensor *r, double tolerance, int *online)
{
    size_t index;
    qcm_linear l, producer;
    QCM_TRY(qcm__named_linear(model, node, &index, &l, __func__));
    double *rd;
    QCM_TRY(qcm__rotation(&rd, r, l.in, tolerance, __func__));
    int fold = foldable_producer(model, &l, &producer);
    qc_status st = fold ? rotate_side(model, &producer, rd, 1, __func__) : insert_online(model, &l, rd, __func__);
    if (st == QC_OK) {
        /* the online rotation renamed the layer's input and re-sorted the nodes */
        st = qcm__named_linear(model, node, &index, &l, __func__);
        if (st == QC_OK) st = rotate_side(model, &l, rd, 0, __func__);
    }
    free(rd);
    if (st == QC_OK && online) *online = !fold;
    return st;
}

qc_status qc_model_rotate_output(qc_model *model, const char *node, const qc_tensor *r, double tolerance)
{
    size_t index, count = 0;
    qcm_linear l, *readers = NULL;
    QCM_TRY(qcm__named_linear(model, node, &index, &l, __func__));
    double *rd;
    QCM_TRY(qcm__rotation(&rd, r, l.out, tolerance, __func__));
    qc_status st = qcm__readers(model, l.output, l.out, 0, &readers, &count, __func__);
    if (st == QC_OK) {
        st = rotate_side(model, &l, rd, 1, __func__);
        for (size_t i = 0; st == QC_OK && i < count; i++) st = rotate_side(model, &readers[i], rd, 0, __func__);
        free(readers);
    }
    free(rd);
    return st;
}

/* ---- per-head rotations ------------------------------------------------------------------------- */

/* From `value` back through Reshape and Transpose nodes that only it feeds; the value reached. */
static const char *through_layout_ops(const qc_model *m, const char *value)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (;;) {
        size_t p = qcm__producer(m, value);
        int is_output;
        if (p == QCM_NONE || qcm__consumers(m, value, NULL, &is_output) != 1 || is_output) return value;
        const char *op = g->node[p]->op_type;
        if (strcmp(op, "Reshape") != 0 && strcmp(op, "Transpose") != 0) return value;
        value = g->node[p]->input[0];
    }
}

qc_status qcm__attention(const qc_model *m, const qcm_linear *o, const char **product, qcm_linear *v, const char *function)
{
    const Onnx__GraphProto *g = m->proto->graph;
    const char *mixed = through_layout_ops(m, o->input);
    size_t p = qcm__producer(m, mixed);
    int is_output;
    if (p == QCM_NONE || strcmp(g->node[p]->op_type, "MatMul") != 0 || qcm__consumers(m, mixed, NULL, &is_output) != 1 ||
        is_output)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': its input does not come (through Reshape and "
                           "Transpose) from an attention product P V read by it alone", g->node[o->node]->name);
    const char *values = through_layout_ops(m, g->node[p]->input[1]);
    if (qcm__consumers(m, values, NULL, &is_output) != 1 || is_output)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': the attention's V ('%.200s') is not a value read "
                           "by the attention alone", g->node[o->node]->name, values);
    if (!qcm__linear_producing(m, values, v) || v->out != o->in)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': V ('%.200s') is not the output of a linear layer "
                           "of width %lld", g->node[o->node]->name, values, (long long)o->in);
    if (product) *product = mixed;
    return QC_OK;
}

/* blockdiag(R_0, .., R_{H-1}) [D, D] from r ([H, d, d], or [d, d] for every head), each block checked. */
static qc_status block_diagonal(double **out, const qc_tensor *r, int64_t width, double tolerance, const char *function)
{
    if (r == NULL) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'r' is NULL");
    if (qc_tensor_check(r, "r") != QC_OK) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "%s", qc_last_error());
    if (!qc_tensor_is_contiguous(r)) return QCM_FAIL_IN(function, QC_ERR_LAYOUT, "argument 'r' must be C-contiguous");
    if (r->ndim != 2 && r->ndim != 3)
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "argument 'r' must be [d, d] or [heads, d, d], got %d-D", (int)r->ndim);
    int64_t d = r->dims[r->ndim - 1], heads = d > 0 ? width / d : 0;
    if (d < 1 || width % d != 0 || (r->ndim == 3 && r->dims[0] != heads))
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "argument 'r': blocks of %lld do not tile the attention's width %lld%s",
                           (long long)d, (long long)width, r->ndim == 3 ? " in the given number of heads" : "");
    size_t element = r->dtype == QC_DT_F64 ? 8 : 4;
    double *b = calloc((size_t)(width * width), sizeof *b);
    if (b == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (int64_t h = 0; h < heads; h++) {
        qc_tensor block = *r;
        block.ndim = 2, block.dims[0] = block.dims[1] = d, block.strides[0] = d, block.strides[1] = 1;
        if (r->ndim == 3) block.data = (char *)r->data + (size_t)(h * d * d) * element;
        double *rd;
        qc_status st = qcm__rotation(&rd, &block, d, tolerance, function);
        if (st != QC_OK) {
            free(b);
            return st;
        }
        for (int64_t i = 0; i < d; i++) memcpy(b + (h * d + i) * width + h * d, rd + i * d, (size_t)d * sizeof *rd);
        free(rd);
    }
    *out = b;
    return QC_OK;
}

qc_status qc_model_rotate_heads(qc_model *model, const char *node, const qc_tensor *r, double tolerance)
{
    size_t index;
    qcm_linear o, v;
    QCM_TRY(qcm__named_linear(model, node, &index, &o, __func__));
    QCM_TRY(qcm__attention(model, &o, NULL, &v, __func__));
    double *b = NULL;
    QCM_TRY(block_diagonal(&b, r, o.in, tolerance, __func__));
    qc_status st = rotate_side(model, &v, b, 1, __func__);
    if (st == QC_OK) st = rotate_side(model, &o, b, 0, __func__);
    free(b);
    return st;
}
