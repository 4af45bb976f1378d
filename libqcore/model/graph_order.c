/* The dependency order of a graph's nodes, shared by qc_model_sort and the executor's planner: Kahn's
 * algorithm by repeated stable scans, so that an already ordered graph keeps its order. A node reads its
 * inputs and whatever its subgraphs (If branches) read from outside themselves. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Value names of the graph, sorted and unique, for index lookups. */
typedef struct name_table {
    const char **names;
    size_t count;
} name_table;

static size_t lookup(const name_table *t, const char *name)
{
    const char **hit = bsearch(&name, t->names, t->count, sizeof *t->names, compare_strings);
    return hit ? (size_t)(hit - t->names) : SIZE_MAX;
}

/* The names node i's subgraphs read from outside themselves (qcm__outer_reads). */
typedef struct outer_reads {
    const char **names;
    size_t count;
} outer_reads;

static size_t read_count(const Onnx__NodeProto *n, const outer_reads *outer)
{
    return n->n_input + outer->count;
}

/* Read k of a node: its inputs first, then its subgraphs' outer reads. */
static const char *read_name(const Onnx__NodeProto *n, const outer_reads *outer, size_t k)
{
    return k < n->n_input ? n->input[k] : outer->names[k - n->n_input];
}

static void free_outer(outer_reads *outer, size_t n)
{
    for (size_t i = 0; outer && i < n; i++) free(outer[i].names);
    free(outer);
}

static qc_status collect_outer(const Onnx__GraphProto *g, outer_reads **out, const char *function)
{
    *out = calloc(g->n_node + 1, sizeof **out);
    if (*out == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < g->n_node; i++) QCM_TRY(qcm__outer_reads(g->node[i], &(*out)[i].names, &(*out)[i].count, function));
    return QC_OK;
}

static int build_table(name_table *t, const Onnx__GraphProto *g, const outer_reads *outer)
{
    size_t cap = g->n_input + g->n_initializer;
    for (size_t i = 0; i < g->n_node; i++) cap += read_count(g->node[i], &outer[i]) + g->node[i]->n_output;
    t->names = malloc((cap + 1) * sizeof *t->names);
    if (t->names == NULL) return 0;
    size_t n = 0;
    for (size_t i = 0; i < g->n_input; i++) t->names[n++] = g->input[i]->name ? g->input[i]->name : "";
    for (size_t i = 0; i < g->n_initializer; i++) t->names[n++] = g->initializer[i]->name;
    for (size_t i = 0; i < g->n_node; i++) {
        for (size_t k = 0; k < read_count(g->node[i], &outer[i]); k++) t->names[n++] = read_name(g->node[i], &outer[i], k);
        for (size_t k = 0; k < g->node[i]->n_output; k++) t->names[n++] = g->node[i]->output[k];
    }
    qsort(t->names, n, sizeof *t->names, compare_strings);
    t->count = 0;
    for (size_t i = 0; i < n; i++)
        if (t->count == 0 || strcmp(t->names[t->count - 1], t->names[i]) != 0) t->names[t->count++] = t->names[i];
    return 1;
}

/* Marks a value available (every name of the graph is in the table). */
static void mark(char *available, const name_table *t, const char *name)
{
    size_t v = lookup(t, name);
    if (v != SIZE_MAX) available[v] = 1;
}

static int node_ready(const Onnx__NodeProto *n, const outer_reads *outer, const name_table *t, const char *available)
{
    for (size_t k = 0; k < read_count(n, outer); k++)
        if (read_name(n, outer, k)[0] != '\0' && !available[lookup(t, read_name(n, outer, k))]) return 0;
    return 1;
}

/* Names the first node left out: a cycle when its missing input is produced by some node. */
static qc_status explain(const Onnx__GraphProto *g, const outer_reads *outer, const name_table *t, const char *available,
                         const char *placed, const char *function)
{
    for (size_t i = 0; i < g->n_node; i++) {
        if (placed[i]) continue;
        const Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < read_count(n, &outer[i]); k++) {
            const char *name = read_name(n, &outer[i], k);
            if (name[0] == '\0' || available[lookup(t, name)]) continue;
            int produced = 0;
            for (size_t j = 0; j < g->n_node && !produced; j++)
                for (size_t o = 0; o < g->node[j]->n_output; o++) produced |= strcmp(g->node[j]->output[o], name) == 0;
            return QCM_FAIL_IN(function, QC_ERR_FORMAT,
                               produced ? "the graph has a cycle through node '%s' (input '%s')"
                                        : "node '%s' reads '%s', which no node, input or initializer provides",
                               n->name ? n->name : "", name);
        }
    }
    return QCM_FAIL_IN(function, QC_ERR_INTERNAL, "ordering failed without a culprit");
}

/* In a subgraph, every name that no node of it produces comes from an enclosing graph: available from
 * the start. */
static void mark_outer(char *available, const name_table *t, const Onnx__GraphProto *g)
{
    memset(available, 1, t->count);
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (g->node[i]->output[k][0] != '\0') available[lookup(t, g->node[i]->output[k])] = 0;
}

qc_status qcm__graph_order(const Onnx__GraphProto *g, size_t *order, int nested, const char *function)
{
    outer_reads *outer = NULL;
    qc_status st = collect_outer(g, &outer, function);
    if (st != QC_OK) {
        free_outer(outer, g->n_node);
        return st;
    }
    name_table t;
    char *placed = calloc(g->n_node + 1, 1);
    if (!placed || !build_table(&t, g, outer)) {
        free(placed), free_outer(outer, g->n_node);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory to order %zu nodes", g->n_node);
    }
    char *available = calloc(t.count + 1, 1);
    st = available ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK && nested) mark_outer(available, &t, g);
    for (size_t i = 0; st == QC_OK && i < g->n_input; i++) mark(available, &t, g->input[i]->name ? g->input[i]->name : "");
    for (size_t i = 0; st == QC_OK && i < g->n_initializer; i++) mark(available, &t, g->initializer[i]->name);
    size_t done = 0;
    for (int progress = 1; st == QC_OK && progress && done < g->n_node;) {
        progress = 0;
        for (size_t i = 0; i < g->n_node; i++) {
            if (placed[i] || !node_ready(g->node[i], &outer[i], &t, available)) continue;
            for (size_t k = 0; k < g->node[i]->n_output; k++)
                if (g->node[i]->output[k][0] != '\0') mark(available, &t, g->node[i]->output[k]);
            order[done++] = i;
            placed[i] = progress = 1;
        }
    }
    if (st == QC_OK && done < g->n_node) st = explain(g, outer, &t, available, placed, function);
    free(available), free(placed), free(t.names), free_outer(outer, g->n_node);
    return st;
}
