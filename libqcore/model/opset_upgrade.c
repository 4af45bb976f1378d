/* Raising a model's default-domain opset without changing what it computes: attributes that a later
 * version takes as an input (Reduce* axes since opset 18; ReduceSum, Squeeze and Unsqueeze axes and Split's
 * split since 13) become int64 initializers read as that input, as ONNX's version converter does. Without
 * this, a QDQ export that needs opset 21 (4-bit or blocked weights) left MiniLM's ReduceL2 with an `axes`
 * attribute that onnxruntime rejects and that qcore's executor, reading the opset, ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"

typedef struct moved_attribute {
    const char *op_type;
    int64_t since;            /* the first version that takes it as input 1 */
    const char *attribute;
} moved_attribute;

static const moved_attribute MOVED[] = {
    {"ReduceSum", 13, "axes"},       {"Squeeze", 13, "axes"},         {"Unsqueeze", 13, "axes"},
    {"Split", 13, "split"},          {"ReduceL1", 18, "axes"},        {"ReduceL2", 18, "axes"},
    {"ReduceLogSum", 18, "axes"},    {"ReduceLogSumExp", 18, "axes"}, {"ReduceMax", 18, "axes"},
    {"ReduceMean", 18, "axes"},      {"ReduceMin", 18, "axes"},       {"ReduceProd", 18, "axes"},
    {"ReduceSumSquare", 18, "axes"},
};

static const moved_attribute *moved(const Onnx__NodeProto *n, int64_t from, int64_t to)
{
    if (!qcm__is_onnx_domain(n->domain)) return NULL;
    for (size_t k = 0; k < sizeof MOVED / sizeof *MOVED; k++)
        if (strcmp(n->op_type, MOVED[k].op_type) == 0 && from < MOVED[k].since && MOVED[k].since <= to) return &MOVED[k];
    return NULL;
}

/* The attribute becomes initializer NODE_OUTPUT_ATTRIBUTE (int64 [n]) read as input 1. */
static qc_status move_attribute(qc_model *m, Onnx__NodeProto *n, size_t a, const char *function)
{
    Onnx__AttributeProto *attr = n->attribute[a];
    if (n->n_input != 1)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%s' (%s) has %zu inputs with attribute '%s'; expected 1",
                           n->name ? n->name : "", n->op_type, n->n_input, attr->name);
    char name[256], suffix[64];
    snprintf(suffix, sizeof suffix, "_%s", attr->name);
    qcm__fresh_name(name, sizeof name, m, n->n_output ? n->output[0] : n->op_type, suffix);
    int64_t dims[1] = {(int64_t)attr->n_ints};
    QCM_TRY(qc_model_add_initializer(m, name, QC_ONNX_INT64, 1, dims, attr->ints, attr->n_ints * sizeof *attr->ints));
    char **inputs = realloc(n->input, 2 * sizeof *inputs);
    char *copy = strdup(name);
    if (inputs == NULL || copy == NULL) {
        free(copy);
        if (inputs) n->input = inputs;
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for an input");
    }
    n->input = inputs, n->input[n->n_input++] = copy;
    onnx__attribute_proto__free_unpacked(attr, NULL);
    memmove(&n->attribute[a], &n->attribute[a + 1], (n->n_attribute - a - 1) * sizeof *n->attribute);
    n->n_attribute--;
    return QC_OK;
}

static qc_status upgrade_graph(qc_model *m, Onnx__GraphProto *g, int64_t from, int64_t to, const char *function);

static qc_status upgrade_node(qc_model *m, Onnx__NodeProto *n, int64_t from, int64_t to, const char *function)
{
    const moved_attribute *rule = moved(n, from, to);
    for (size_t a = 0; a < n->n_attribute; a++) {
        Onnx__AttributeProto *attr = n->attribute[a];
        if (attr->g) QCM_TRY(upgrade_graph(m, attr->g, from, to, function));
        for (size_t k = 0; k < attr->n_graphs; k++) QCM_TRY(upgrade_graph(m, attr->graphs[k], from, to, function));
        if (rule && strcmp(attr->name, rule->attribute) == 0) {
            QCM_TRY(move_attribute(m, n, a, function));
            a--;
        }
    }
    return QC_OK;
}

/* Subgraphs read the new initializers from the outer scope, the main graph. */
static qc_status upgrade_graph(qc_model *m, Onnx__GraphProto *g, int64_t from, int64_t to, const char *function)
{
    for (size_t i = 0; i < g->n_node; i++) QCM_TRY(upgrade_node(m, g->node[i], from, to, function));
    return QC_OK;
}

qc_status qcm__upgrade_opset(qc_model *m, int64_t from, int64_t to, const char *function)
{
    return upgrade_graph(m, m->proto->graph, from, to, function);
}
