/* Whole-graph edits: topological sorting, removal of dead nodes and unused initializers. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"

qc_status qc_model_sort(qc_model *m)
{
    QCM_CHECK_NOT_NULL(m);
    Onnx__GraphProto *g = m->proto->graph;
    size_t *order = malloc((g->n_node + 1) * sizeof *order);
    Onnx__NodeProto **sorted = malloc((g->n_node + 1) * sizeof *sorted);
    qc_status st = order && sorted ? qcm__graph_order(g, order, 0, __func__) : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) {
        for (size_t i = 0; i < g->n_node; i++) sorted[i] = g->node[order[i]];
        memcpy(g->node, sorted, g->n_node * sizeof *sorted);
    }
    free(order), free(sorted);
    return st;
}

void qcm__remove_initializer(qc_model *m, size_t i)
{
    Onnx__GraphProto *g = m->proto->graph;
    const char *name = g->initializer[i]->name;
    for (size_t k = 0; k < g->n_input; k++)
        if (g->input[k]->name && strcmp(g->input[k]->name, name) == 0) {
            onnx__value_info_proto__free_unpacked(g->input[k], NULL);
            memmove(&g->input[k], &g->input[k + 1], (g->n_input - k - 1) * sizeof *g->input);
            g->n_input--;
            break;
        }
    free(m->bytes[i].owned);
    onnx__tensor_proto__free_unpacked(g->initializer[i], &m->allocator);
    memmove(&g->initializer[i], &g->initializer[i + 1], (g->n_initializer - i - 1) * sizeof *g->initializer);
    memmove(&m->bytes[i], &m->bytes[i + 1], (g->n_initializer - i - 1) * sizeof *m->bytes);
    g->n_initializer--;
    /* graph.input lost an entry: the non-initializer input index is rebuilt by the caller's next load;
     * keep it consistent here by recounting. */
    size_t n = 0;
    for (size_t k = 0; k < g->n_input; k++) {
        int is_init = 0;
        for (size_t j = 0; j < g->n_initializer && !is_init; j++)
            is_init = g->input[k]->name && strcmp(g->input[k]->name, g->initializer[j]->name) == 0;
        if (!is_init) m->input_index[n++] = k;
    }
    m->num_inputs = n;
}

static int names_equal(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* What each node reads from the graph through its subgraphs (If branches), found once. */
typedef struct outer_reads {
    const char **names;
    size_t count;
} outer_reads;

static int reads_name(const Onnx__NodeProto *n, const outer_reads *outer, const char *name)
{
    for (size_t k = 0; k < n->n_input; k++)
        if (names_equal(n->input[k], name)) return 1;
    for (size_t k = 0; k < outer->count; k++)
        if (names_equal(outer->names[k], name)) return 1;
    return 0;
}

/* 1 when some kept node reads `name` (directly or in a subgraph), or a graph output is called so. */
static int is_read(const Onnx__GraphProto *g, const char *keep, const outer_reads *outer, const char *name)
{
    for (size_t i = 0; i < g->n_output; i++)
        if (names_equal(g->output[i]->name, name)) return 1;
    for (size_t i = 0; i < g->n_node; i++)
        if (keep[i] && reads_name(g->node[i], &outer[i], name)) return 1;
    return 0;
}

static void free_outer_reads(outer_reads *outer, size_t n)
{
    for (size_t i = 0; outer && i < n; i++) free(outer[i].names);
    free(outer);
}

static qc_status find_outer_reads(const Onnx__GraphProto *g, outer_reads **out, const char *function)
{
    outer_reads *outer = calloc(g->n_node + 1, sizeof *outer);
    if (outer == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < g->n_node; i++) {
        qc_status st = qcm__outer_reads(g->node[i], &outer[i].names, &outer[i].count, function);
        if (st != QC_OK) {
            free_outer_reads(outer, g->n_node);
            return st;
        }
    }
    *out = outer;
    return QC_OK;
}

qc_status qc_model_remove_dead(qc_model *m, size_t *removed_nodes, size_t *removed_initializers)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_TRY(qc_model_sort(m));
    Onnx__GraphProto *g = m->proto->graph;
    outer_reads *outer = NULL;
    QCM_TRY(find_outer_reads(g, &outer, __func__));
    char *keep = calloc(g->n_node + 1, 1);
    if (keep == NULL) {
        free_outer_reads(outer, g->n_node);
        return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    /* Backwards over the sorted nodes: a node lives when a graph output or a living node reads it. */
    for (size_t i = g->n_node; i-- > 0;)
        for (size_t k = 0; !keep[i] && k < g->node[i]->n_output; k++)
            keep[i] = is_read(g, keep, outer, g->node[i]->output[k]);
    size_t kept = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        if (keep[i]) {
            outer[kept] = outer[i];
            g->node[kept++] = g->node[i];
        } else {
            free(outer[i].names);
            onnx__node_proto__free_unpacked(g->node[i], NULL);
        }
    }
    if (removed_nodes) *removed_nodes = g->n_node - kept;
    g->n_node = kept;
    memset(keep, 1, kept);
    size_t dropped = 0;
    for (size_t i = g->n_initializer; i-- > 0;)
        if (!is_read(g, keep, outer, g->initializer[i]->name)) qcm__remove_initializer(m, i), dropped++;
    free_outer_reads(outer, kept);
    if (removed_initializers) *removed_initializers = dropped;
    free(keep);
    return QC_OK;
}
