/* Subgraphs (If branches): every GRAPH attribute of a node is planned, with the node, as a session of its
 * own. A name the subgraph reads without defining it is bound, at the start of each of its runs, to the
 * value of that name in the nearest enclosing graph, which keeps it alive until the node has run. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec_internal.h"

#define PLAN_FAIL(status, ...) QCM_FAIL_IN("qc_session_create", status, __VA_ARGS__)

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* The value called `name` in s or the nearest graph enclosing it, or NULL. */
static const qce_value *find_enclosing(const qc_session *s, const char *name)
{
    for (; s != NULL; s = s->parent) {
        size_t i = qce__value_index(s, name);
        if (i != SIZE_MAX) return &s->values[i];
    }
    return NULL;
}

/* Points the values that the subgraph s reads but does not define (no initializer, input or node of its
 * own) at the enclosing graphs' values. */
static qc_status bind_enclosing(qc_session *s, const char *attribute, const Onnx__NodeProto *owner)
{
    char *produced = calloc(s->num_values + 1, 1);
    if (produced == NULL) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < s->num_nodes; i++)
        for (size_t k = 0; k < s->nodes[i].proto->n_output; k++)
            if (s->nodes[i].outputs[k] != SIZE_MAX) produced[s->nodes[i].outputs[k]] = 1;
    qc_status st = QC_OK;
    for (size_t v = 0; st == QC_OK && v < s->num_values; v++) {
        qce_value *value = &s->values[v];
        if (produced[v] || value->is_constant || value->is_input) continue;
        value->outer = find_enclosing(s->parent, value->name);
        if (value->outer == NULL)
            st = PLAN_FAIL(QC_ERR_FORMAT, "%s of %s node '%s' reads '%s', which neither it nor an enclosing graph provides",
                           attribute, owner->op_type, or_empty(owner->name), value->name);
    }
    free(produced);
    return st;
}

/* Plans graph g, attribute `attribute` of node `owner` in session parent, into *out. */
static qc_status plan_child(qc_session **out, qc_session *parent, const Onnx__GraphProto *g, const char *attribute,
                            const Onnx__NodeProto *owner)
{
    /* Initializers of subgraphs would need their own resolved bytes; exporters emit Constant nodes. */
    if (g->n_initializer > 0)
        return PLAN_FAIL(QC_ERR_UNSUPPORTED,
                         "%s of %s node '%s' has initializers, which the executor does not support in subgraphs", attribute,
                         owner->op_type, or_empty(owner->name));
    qc_session *s = calloc(1, sizeof *s);
    if (s == NULL) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a subgraph");
    *out = s;
    s->model = parent->model;
    s->ctx = parent->ctx;
    s->graph = g;
    s->parent = parent;
    QCM_TRY(qce__plan(s));
    return bind_enclosing(s, attribute, owner);
}

/* The values of s that node's subgraphs read (SIZE_MAX-ended); names s does not hold belong to graphs
 * further out, which keep them alive themselves. */
static qc_status plan_outer_reads(qc_session *s, qce_node *node)
{
    const char **names;
    size_t count;
    QCM_TRY(qcm__outer_reads(node->proto, &names, &count, "qc_session_create"));
    node->outer_reads = malloc((count + 1) * sizeof *node->outer_reads);
    if (node->outer_reads == NULL) {
        free(names);
        return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if ((node->outer_reads[n] = qce__value_index(s, names[i])) != SIZE_MAX) n++;
    node->outer_reads[n] = SIZE_MAX;
    free(names);
    return QC_OK;
}

qc_status qce__plan_subgraphs(qc_session *s, qce_node *node)
{
    const Onnx__NodeProto *p = node->proto;
    int any = 0;
    for (size_t i = 0; i < p->n_attribute; i++) {
        if (p->attribute[i]->n_graphs > 0)
            return PLAN_FAIL(QC_ERR_UNSUPPORTED,
                             "node '%s' (%s) has a list of graphs (attribute '%s'), which the executor does not support",
                             or_empty(p->name), p->op_type, or_empty(p->attribute[i]->name));
        any |= p->attribute[i]->g != NULL;
    }
    if (!any) return QC_OK;
    /* First, as it also refuses subgraphs nested too deep for the planner to follow. */
    QCM_TRY(plan_outer_reads(s, node));
    node->subgraphs = calloc(p->n_attribute + 1, sizeof *node->subgraphs);
    if (node->subgraphs == NULL) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    node->num_subgraphs = p->n_attribute;
    for (size_t i = 0; i < p->n_attribute; i++)
        if (p->attribute[i]->g)
            QCM_TRY(plan_child(&node->subgraphs[i], s, p->attribute[i]->g, or_empty(p->attribute[i]->name), p));
    return QC_OK;
}

void qce__free_subgraphs(qce_node *node)
{
    for (size_t i = 0; i < node->num_subgraphs; i++) qc_session_free(node->subgraphs[i]);
    free(node->subgraphs);
    free(node->outer_reads);
}

qc_session *qce__subgraph(const qce_call *call, const char *name)
{
    const qce_node *node = call->node;
    for (size_t i = 0; i < node->num_subgraphs; i++)
        if (node->proto->attribute[i]->name && strcmp(node->proto->attribute[i]->name, name) == 0) return node->subgraphs[i];
    return NULL;
}
