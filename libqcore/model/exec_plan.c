/* Planning a session: one value per name the graph uses (sorted by name for lookups), a kernel per
 * node, and an execution order in which every node runs after the producers of its inputs. Subgraphs
 * (If branches) are planned the same way, as sessions of their own (exec_subgraph.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec_internal.h"

#define PLAN_FAIL(status, ...) QCM_FAIL_IN("qc_session_create", status, __VA_ARGS__)

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

int qce__dtype_of_onnx(int32_t type)
{
    switch (type) {
    case QC_ONNX_FLOAT: return QC_DT_F32;
    case QC_ONNX_DOUBLE: return QC_DT_F64;
    case QC_ONNX_INT8: return QC_DT_I8;
    case QC_ONNX_UINT8: case QC_ONNX_BOOL: return QC_DT_U8;
    case QC_ONNX_INT16: return QC_DT_I16;
    case QC_ONNX_INT32: return QC_DT_I32;
    case QC_ONNX_INT64: return QC_DT_I64;
    case QC_ONNX_INT4: return QC_DT_INT4;
    case QC_ONNX_UINT4: return QC_DT_UINT4;
    default: return 0;
    }
}

size_t qce__value_index(const qc_session *s, const char *name)
{
    size_t lo = 0, hi = s->num_values;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->values[mid].name, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return SIZE_MAX;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every name the graph mentions, sorted and without repeats, becomes a value. */
static qc_status collect_values(qc_session *s)
{
    const Onnx__GraphProto *g = s->graph;
    size_t cap = g->n_input + g->n_initializer + g->n_output;
    for (size_t i = 0; i < g->n_node; i++) cap += g->node[i]->n_input + g->node[i]->n_output;
    const char **names = malloc((cap + 1) * sizeof *names);
    if (names == NULL) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %zu names", cap);
    size_t n = 0;
    for (size_t i = 0; i < g->n_input; i++) names[n++] = or_empty(g->input[i]->name);
    for (size_t i = 0; i < g->n_initializer; i++) names[n++] = g->initializer[i]->name;
    for (size_t i = 0; i < g->n_output; i++) names[n++] = or_empty(g->output[i]->name);
    for (size_t i = 0; i < g->n_node; i++) {
        for (size_t k = 0; k < g->node[i]->n_input; k++) names[n++] = g->node[i]->input[k];
        for (size_t k = 0; k < g->node[i]->n_output; k++) names[n++] = g->node[i]->output[k];
    }
    qsort(names, n, sizeof *names, compare_strings);
    s->values = calloc(n + 1, sizeof *s->values);
    if (s->values == NULL) {
        free(names);
        return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %zu values", n);
    }
    for (size_t i = 0; i < n; i++)
        if (names[i][0] != '\0' && (s->num_values == 0 || strcmp(s->values[s->num_values - 1].name, names[i]) != 0))
            s->values[s->num_values++].name = names[i];
    free(names);
    return QC_OK;
}

/* Kernels read typed elements: raw_data borrowed from the file lies wherever the file put it, so a
 * misaligned one is copied once into the value's own storage. */
static qc_status aligned_copy_if_needed(qce_value *v, const void **data, size_t nbytes, qc_dtype dtype)
{
    size_t item = (size_t)(qc_dtype_bits(dtype) + 7) / 8;
    if (item <= 1 || (uintptr_t)*data % item == 0) return QC_OK;
    if (!qce__reserve(v, nbytes)) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", nbytes);
    memcpy(v->storage, *data, nbytes);
    *data = v->storage;
    return QC_OK;
}

static qc_status bind_initializers(qc_session *s)
{
    qc_model *m = (qc_model *)s->model;
    const Onnx__GraphProto *g = s->graph; /* a subgraph has none (exec_subgraph.c) */
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        qce_value *v = &s->values[qce__value_index(s, t->name)];
        int dtype = qce__dtype_of_onnx(t->data_type);
        if (dtype == 0)
            return PLAN_FAIL(QC_ERR_UNSUPPORTED, "initializer '%s' has element type %s, which the executor does not handle",
                             t->name, qc_onnx_type_string(t->data_type));
        if (t->n_dims > QC_MAX_DIMS)
            return PLAN_FAIL(QC_ERR_UNSUPPORTED, "initializer '%s' has rank %zu (at most %d)", t->name, t->n_dims, QC_MAX_DIMS);
        const void *data = m->bytes[i].data;
        QCM_TRY(aligned_copy_if_needed(v, &data, m->bytes[i].nbytes, (qc_dtype)dtype));
        qc_status st = qc_tensor_init(&v->tensor, (void *)data, (qc_dtype)dtype, (int)t->n_dims, t->dims, NULL);
        if (st != QC_OK) return PLAN_FAIL(QC_ERR_FORMAT, "initializer '%s' is not a valid tensor", t->name);
        v->is_constant = v->is_bound = 1;
    }
    return QC_OK;
}

/* Element types are part of what the executor covers: a graph input or output, or a node's "to" type
 * (Cast), that it cannot hold is refused here, before any run. */
static qc_status check_value_type(const Onnx__ValueInfoProto *v, const char *what)
{
    const Onnx__TypeProto *type = v->type;
    if (type == NULL || type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        if (type == NULL || type->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET) return QC_OK; /* undeclared (subgraphs) */
        return PLAN_FAIL(QC_ERR_UNSUPPORTED, "graph %s '%s' is not a tensor (sequences and maps are not supported)", what,
                         or_empty(v->name));
    }
    int32_t elem = type->tensor_type->has_elem_type ? type->tensor_type->elem_type : 0;
    if (elem != 0 && qce__dtype_of_onnx(elem) == 0)
        return PLAN_FAIL(QC_ERR_UNSUPPORTED, "graph %s '%s' has element type %s, which the executor does not handle", what,
                         or_empty(v->name), qc_onnx_type_string(elem));
    return QC_OK;
}

static qc_status check_node_types(const Onnx__NodeProto *p)
{
    for (size_t i = 0; i < p->n_attribute; i++) {
        const Onnx__AttributeProto *a = p->attribute[i];
        if (a->name && strcmp(a->name, "to") == 0 && a->has_i && qce__dtype_of_onnx((int32_t)a->i) == 0)
            return PLAN_FAIL(QC_ERR_UNSUPPORTED, "node '%s' (%s) converts to %s, which the executor does not handle",
                             or_empty(p->name), p->op_type, qc_onnx_type_string((int32_t)a->i));
    }
    return QC_OK;
}

static qc_status mark_inputs_outputs(qc_session *s)
{
    const Onnx__GraphProto *g = s->graph;
    for (size_t i = 0; i < g->n_input; i++) QCM_TRY(check_value_type(g->input[i], "input"));
    for (size_t i = 0; i < g->n_output; i++) QCM_TRY(check_value_type(g->output[i], "output"));
    for (size_t i = 0; i < g->n_input; i++) {
        qce_value *v = &s->values[qce__value_index(s, or_empty(g->input[i]->name))];
        if (!v->is_constant) v->is_input = 1; /* IR < 4 lists initializers as inputs too */
    }
    for (size_t i = 0; i < g->n_output; i++) {
        size_t k = qce__value_index(s, or_empty(g->output[i]->name));
        if (k == SIZE_MAX) return PLAN_FAIL(QC_ERR_FORMAT, "graph output %zu has no name", i);
        s->values[k].keep = 1;
    }
    return QC_OK;
}

static qc_status plan_node(qc_session *s, qce_node *node, const Onnx__NodeProto *p)
{
    const char *domain = or_empty(p->domain);
    node->proto = p;
    node->kernel = qce__find_kernel(domain, p->op_type);
    if (node->kernel == NULL)
        return PLAN_FAIL(QC_ERR_UNSUPPORTED, "op '%s'%s%s%s of node '%s' is not supported by the executor", p->op_type,
                         domain[0] ? " (domain '" : "", domain, domain[0] ? "')" : "", or_empty(p->name));
    QCM_TRY(check_node_types(p));
    node->inputs = malloc((p->n_input + 1) * sizeof *node->inputs);
    node->outputs = malloc((p->n_output + 1) * sizeof *node->outputs);
    if (!node->inputs || !node->outputs) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t k = 0; k < p->n_input; k++)
        node->inputs[k] = p->input[k][0] ? qce__value_index(s, p->input[k]) : SIZE_MAX;
    for (size_t k = 0; k < p->n_output; k++)
        node->outputs[k] = p->output[k][0] ? qce__value_index(s, p->output[k]) : SIZE_MAX;
    return qce__plan_subgraphs(s, node);
}

/* Puts the planned nodes (in file order) into dependency order. */
static qc_status order_nodes(qc_session *s)
{
    const Onnx__GraphProto *g = s->graph;
    size_t *order = malloc((g->n_node + 1) * sizeof *order);
    qce_node *planned = malloc((g->n_node + 1) * sizeof *planned);
    qc_status st = order && planned ? qcm__graph_order(g, order, s->parent != NULL, "qc_session_create")
                                    : PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory to order %zu nodes", g->n_node);
    if (st == QC_OK) {
        memcpy(planned, s->nodes, g->n_node * sizeof *planned);
        for (size_t i = 0; i < g->n_node; i++) s->nodes[i] = planned[order[i]];
    }
    free(order), free(planned);
    return st;
}

/* For each node, the values it is the last to touch in execution order (read, also through its
 * subgraphs, or produced and never read), so that a run can hand their storage on as soon as that node
 * is done. */
static qc_status plan_releases(qc_session *s)
{
    size_t *last = malloc((s->num_values + 1) * sizeof *last);
    if (last == NULL) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t v = 0; v < s->num_values; v++) last[v] = SIZE_MAX;
    for (size_t i = 0; i < s->num_nodes; i++) {
        const qce_node *n = &s->nodes[i];
        for (size_t k = 0; k < n->proto->n_output; k++)
            if (n->outputs[k] != SIZE_MAX) last[n->outputs[k]] = i;
        for (size_t k = 0; k < n->proto->n_input; k++)
            if (n->inputs[k] != SIZE_MAX) last[n->inputs[k]] = i;
        for (size_t k = 0; n->fused_inputs && k < QCE_FUSED_COUNT; k++) /* read when run on integers */
            if (n->fused_inputs[k] != SIZE_MAX) last[n->fused_inputs[k]] = i;
        for (const size_t *v = n->outer_reads; v && *v != SIZE_MAX; v++) last[*v] = i;
    }
    size_t *counts = calloc(s->num_nodes + 1, sizeof *counts);
    qc_status st = counts ? QC_OK : PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t v = 0; st == QC_OK && v < s->num_values; v++)
        if (last[v] != SIZE_MAX) counts[last[v]]++;
    for (size_t i = 0; st == QC_OK && i < s->num_nodes; i++) {
        free(s->nodes[i].last_reads); /* planned again once fusion changed what nodes read */
        s->nodes[i].last_reads = malloc((counts[i] + 1) * sizeof *s->nodes[i].last_reads);
        if (s->nodes[i].last_reads == NULL) st = PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
        else s->nodes[i].last_reads[0] = SIZE_MAX, counts[i] = 0;
    }
    for (size_t v = 0; st == QC_OK && v < s->num_values; v++) {
        if (last[v] == SIZE_MAX) continue;
        qce_node *n = &s->nodes[last[v]];
        n->last_reads[counts[last[v]]++] = v;
        n->last_reads[counts[last[v]]] = SIZE_MAX;
    }
    free(last), free(counts);
    return st;
}

static int is_constant_node(const Onnx__NodeProto *p)
{
    return strcmp(p->op_type, "Constant") == 0 && or_empty(p->domain)[0] == '\0' && p->n_input == 0 && p->n_output == 1;
}

/* Constant nodes hold their value in an attribute: each is evaluated once here and its output kept as a
 * constant (like an initializer) that runs skip (MiniLM has 140 of them, Silero's branches hundreds). */
static qc_status fold_constant_nodes(qc_session *s)
{
    for (size_t i = 0; i < s->num_nodes; i++) {
        qce_node *node = &s->nodes[i];
        if (!is_constant_node(node->proto) || node->outputs[0] == SIZE_MAX) continue;
        qce_value *v = &s->values[node->outputs[0]], *slots[1];
        v->is_constant = v->is_folded = 1; /* set first: the run below must not release it to the pool */
        qc_status st = qce__run_node(s, node, 1, slots);
        if (st != QC_OK) { /* the kernel named qc_session_run; this happens at creation */
            char message[512];
            const char *text = strstr(qc_last_error(), ": ");
            snprintf(message, sizeof message, "%s", text ? text + 2 : qc_last_error());
            return PLAN_FAIL(st, "%s", message);
        }
        node->folded = 1;
    }
    return QC_OK;
}

qc_status qce__plan(qc_session *s)
{
    QCM_TRY(collect_values(s));
    QCM_TRY(bind_initializers(s));
    QCM_TRY(mark_inputs_outputs(s));
    const Onnx__GraphProto *g = s->graph;
    s->nodes = calloc(g->n_node + 1, sizeof *s->nodes);
    if (s->nodes == NULL) return PLAN_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %zu nodes", g->n_node);
    s->num_nodes = g->n_node;
    for (size_t i = 0; i < g->n_node; i++) QCM_TRY(plan_node(s, &s->nodes[i], g->node[i]));
    QCM_TRY(order_nodes(s));
    QCM_TRY(plan_releases(s));
    QCM_TRY(fold_constant_nodes(s));
    QCM_TRY(qce__plan_integer_linear(s));
    return plan_releases(s);
}

qc_status qc_session_create(qc_session **out, const qc_model *model, qc_ctx *ctx)
{
    QCM_CHECK_NOT_NULL(out);
    QCM_CHECK_NOT_NULL(model);
    QCM_CHECK_NOT_NULL(ctx);
    *out = NULL;
    qc_session *s = calloc(1, sizeof *s);
    if (s == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a session");
    s->model = model;
    s->ctx = ctx;
    s->graph = model->proto->graph;
    s->integer_kernels = QC_INTEGER_KERNELS_AUTO;
    qc_status st = qce__plan(s);
    if (st != QC_OK) {
        qc_session_free(s);
        return st;
    }
    *out = s;
    return QC_OK;
}

/* Derived data and whatever its kernel made it own. */
static void free_derived(qce_derived *d)
{
    if (d->data != NULL && d->release != NULL) d->release(d->data);
    free(d->data);
}

void qc_session_free(qc_session *s)
{
    if (s == NULL) return;
    for (size_t i = 0; i < s->num_nodes; i++) {
        free(s->nodes[i].inputs);
        free(s->nodes[i].outputs);
        free(s->nodes[i].last_reads);
        free_derived(&s->nodes[i].derived);
        free(s->nodes[i].fused_inputs);
        free_derived(&s->nodes[i].fused_derived);
        qce__free_subgraphs(&s->nodes[i]);
    }
    free(s->nodes);
    for (size_t i = 0; i < s->num_values; i++) free(s->values[i].storage);
    qce__pool_free(&s->pool);
    free(s->values);
    free(s);
}
