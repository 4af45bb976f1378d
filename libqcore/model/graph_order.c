/* The dependency order of a graph's nodes, shared by qc_model_sort and the executor's planner: Kahn's
 * algorithm by repeated stable scans, so that an already ordered graph keeps its order. */
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

static int build_table(name_table *t, const Onnx__GraphProto *g)
{
    size_t cap = g->n_input + g->n_initializer;
    for (size_t i = 0; i < g->n_node; i++) cap += g->node[i]->n_input + g->node[i]->n_output;
    t->names = malloc((cap + 1) * sizeof *t->names);
    if (t->names == NULL) return 0;
    size_t n = 0;
    for (size_t i = 0; i < g->n_input; i++) t->names[n++] = g->input[i]->name ? g->input[i]->name : "";
    for (size_t i = 0; i < g->n_initializer; i++) t->names[n++] = g->initializer[i]->name;
    for (size_t i = 0; i < g->n_node; i++) {
        for (size_t k = 0; k < g->node[i]->n_input; k++) t->names[n++] = g->node[i]->input[k];
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

static int node_ready(const Onnx__NodeProto *n, const name_table *t, const char *available)
{
    for (size_t k = 0; k < n->n_input; k++)
        if (n->input[k][0] != '\0' && !available[lookup(t, n->input[k])]) return 0;
    return 1;
}

/* Names the first node left out: a cycle when its missing input is produced by some node. */
static qc_status explain(const Onnx__GraphProto *g, const name_table *t, const char *available, const char *placed,
                         const char *function)
{
    for (size_t i = 0; i < g->n_node; i++) {
        if (placed[i]) continue;
        const Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_input; k++) {
            if (n->input[k][0] == '\0' || available[lookup(t, n->input[k])]) continue;
            int produced = 0;
            for (size_t j = 0; j < g->n_node && !produced; j++)
                for (size_t o = 0; o < g->node[j]->n_output; o++) produced |= strcmp(g->node[j]->output[o], n->input[k]) == 0;
            return QCM_FAIL_IN(function, QC_ERR_FORMAT,
                               produced ? "the graph has a cycle through node '%s' (input '%s')"
                                        : "node '%s' reads '%s', which no node, input or initializer provides",
                               n->name ? n->name : "", n->input[k]);
        }
    }
    return QCM_FAIL_IN(function, QC_ERR_INTERNAL, "ordering failed without a culprit");
}

qc_status qcm__graph_order(const Onnx__GraphProto *g, size_t *order, const char *function)
{
    name_table t;
    char *placed = calloc(g->n_node + 1, 1);
    if (!placed || !build_table(&t, g)) {
        free(placed);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory to order %zu nodes", g->n_node);
    }
    char *available = calloc(t.count + 1, 1);
    qc_status st = available ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; st == QC_OK && i < g->n_input; i++) mark(available, &t, g->input[i]->name ? g->input[i]->name : "");
    for (size_t i = 0; st == QC_OK && i < g->n_initializer; i++) mark(available, &t, g->initializer[i]->name);
    size_t done = 0;
    for (int progress = 1; st == QC_OK && progress && done < g->n_node;) {
        progress = 0;
        for (size_t i = 0; i < g->n_node; i++) {
            if (placed[i] || !node_ready(g->node[i], &t, available)) continue;
            for (size_t k = 0; k < g->node[i]->n_output; k++)
                if (g->node[i]->output[k][0] != '\0') mark(available, &t, g->node[i]->output[k]);
            order[done++] = i;
            placed[i] = progress = 1;
        }
    }
    if (st == QC_OK && done < g->n_node) st = explain(g, &t, available, placed, function);
    free(available), free(placed), free(t.names);
    return st;
}
