/* Names across graph scopes: the values a node's subgraphs (If branches, loop bodies) read from the graphs
 * that enclose them. Such reads are implicit inputs of the node: it can only run, and those values can
 * only be freed, once they are accounted for. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"

/* Subgraphs nested deeper than this are refused rather than followed (a malformed file could nest them
 * until the stack runs out). */
#define MAX_DEPTH 64

typedef struct name_list {
    const char **names;
    size_t count, room;
} name_list;

static int push(name_list *l, const char *name)
{
    if (l->count == l->room) {
        size_t room = l->room ? 2 * l->room : 32;
        const char **grown = realloc(l->names, room * sizeof *grown);
        if (grown == NULL) return 0;
        l->names = grown;
        l->room = room;
    }
    l->names[l->count++] = name;
    return 1;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void sort_unique(name_list *l)
{
    if (l->count == 0) return;
    qsort(l->names, l->count, sizeof *l->names, compare_strings);
    size_t n = 1;
    for (size_t i = 1; i < l->count; i++)
        if (strcmp(l->names[n - 1], l->names[i]) != 0) l->names[n++] = l->names[i];
    l->count = n;
}

static int contains(const name_list *sorted, const char *name)
{
    return sorted->count && bsearch(&name, sorted->names, sorted->count, sizeof *sorted->names, compare_strings) != NULL;
}

static qc_status node_reads(const Onnx__NodeProto *n, name_list *out, int depth, const char *function);

/* The names g defines: its inputs, initializers and node outputs, sorted. */
static int defined_names(const Onnx__GraphProto *g, name_list *defined)
{
    int ok = 1;
    for (size_t i = 0; ok && i < g->n_input; i++) ok = push(defined, g->input[i]->name ? g->input[i]->name : "");
    for (size_t i = 0; ok && i < g->n_initializer; i++) ok = push(defined, g->initializer[i]->name);
    for (size_t i = 0; ok && i < g->n_node; i++)
        for (size_t k = 0; ok && k < g->node[i]->n_output; k++) ok = push(defined, g->node[i]->output[k]);
    sort_unique(defined);
    return ok;
}

/* Appends to `out` the names g reads (node inputs, its nodes' own subgraph reads, its outputs) without
 * defining them. */
static qc_status graph_reads(const Onnx__GraphProto *g, name_list *out, int depth, const char *function)
{
    if (depth > MAX_DEPTH) return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "subgraphs are nested more than %d deep", MAX_DEPTH);
    name_list defined = {0}, used = {0};
    qc_status st = defined_names(g, &defined) ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; st == QC_OK && i < g->n_node; i++) {
        for (size_t k = 0; st == QC_OK && k < g->node[i]->n_input; k++)
            if (!push(&used, g->node[i]->input[k])) st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
        if (st == QC_OK) st = node_reads(g->node[i], &used, depth + 1, function);
    }
    for (size_t i = 0; st == QC_OK && i < g->n_output; i++)
        if (!push(&used, g->output[i]->name ? g->output[i]->name : ""))
            st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; st == QC_OK && i < used.count; i++)
        if (used.names[i][0] != '\0' && !contains(&defined, used.names[i]) && !push(out, used.names[i]))
            st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    free(defined.names), free(used.names);
    return st;
}

static qc_status node_reads(const Onnx__NodeProto *n, name_list *out, int depth, const char *function)
{
    for (size_t i = 0; i < n->n_attribute; i++) {
        const Onnx__AttributeProto *a = n->attribute[i];
        if (a->g) QCM_TRY(graph_reads(a->g, out, depth, function));
        for (size_t k = 0; k < a->n_graphs; k++) QCM_TRY(graph_reads(a->graphs[k], out, depth, function));
    }
    return QC_OK;
}

qc_status qcm__outer_reads(const Onnx__NodeProto *n, const char ***names, size_t *count, const char *function)
{
    name_list reads = {0};
    qc_status st = node_reads(n, &reads, 0, function);
    if (st != QC_OK) {
        free(reads.names);
        reads.names = NULL, reads.count = 0;
    }
    sort_unique(&reads);
    *names = reads.names;
    *count = reads.count;
    return st;
}
