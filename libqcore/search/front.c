/* Fronts: growable lists of (choice, cost, metric, fidelity), their non-dominated filter and accessors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "search/search.h"

qc_status qc__front_create(qc_search_front **out, size_t num_tensors, const char *function)
{
    qc_search_front *f = calloc(1, sizeof *f);
    if (f == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a front");
    f->num_tensors = num_tensors;
    *out = f;
    return QC_OK;
}

static qc_status grow(qc_search_front *f, const char *function)
{
    size_t cap = f->capacity ? 2 * f->capacity : 16;
    uint32_t *choices = realloc(f->choices, cap * f->num_tensors * sizeof *choices);
    if (choices) f->choices = choices;
    double *cost = realloc(f->cost, cap * sizeof *cost);
    if (cost) f->cost = cost;
    double *metric = realloc(f->metric, cap * sizeof *metric);
    if (metric) f->metric = metric;
    size_t *fidelity = realloc(f->fidelity, cap * sizeof *fidelity);
    if (fidelity) f->fidelity = fidelity;
    if (!choices || !cost || !metric || !fidelity)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot grow a front to %zu points", cap);
    f->capacity = cap;
    return QC_OK;
}

qc_status qc__front_push(qc_search_front *f, const uint32_t *choice, double cost, double metric, size_t fidelity,
                         const char *function)
{
    if (f->size == f->capacity) QC_TRY(grow(f, function));
    memcpy(f->choices + f->size * f->num_tensors, choice, f->num_tensors * sizeof *choice);
    f->cost[f->size] = cost;
    f->metric[f->size] = metric;
    f->fidelity[f->size] = fidelity;
    f->size++;
    return QC_OK;
}

/* qsort has no context argument: the front being sorted, per thread. */
static _Thread_local const qc_search_front *sort_front;

static int by_cost_then_metric(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const double *c = sort_front->cost, *m = sort_front->metric;
    if (c[i] != c[j]) return c[i] < c[j] ? -1 : 1;
    if (m[i] != m[j]) return m[i] > m[j] ? -1 : 1;
    return i < j ? -1 : (i > j);
}

/* Moves the points idx[0..kept) into a new front's arrays and swaps them into f. */
static qc_status gather(qc_search_front *f, const size_t *idx, size_t kept, const char *function)
{
    qc_search_front g = {f->num_tensors, 0, 0, NULL, NULL, NULL, NULL};
    while (g.capacity < kept) {
        qc_status st = grow(&g, function);
        if (st != QC_OK) {
            free(g.choices), free(g.cost), free(g.metric), free(g.fidelity);
            return st;
        }
    }
    for (size_t k = 0; k < kept; k++)
        QC_TRY(qc__front_push(&g, f->choices + idx[k] * f->num_tensors, f->cost[idx[k]], f->metric[idx[k]],
                              f->fidelity[idx[k]], function));
    free(f->choices), free(f->cost), free(f->metric), free(f->fidelity);
    *f = g;
    return QC_OK;
}

qc_status qc__front_filter(qc_search_front *f, const char *function)
{
    if (f->size == 0) return QC_OK;
    size_t *idx = malloc(f->size * sizeof *idx);
    if (idx == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot sort a front of %zu points", f->size);
    for (size_t i = 0; i < f->size; i++) idx[i] = i;
    sort_front = f;
    qsort(idx, f->size, sizeof *idx, by_cost_then_metric);
    size_t kept = 0;
    for (size_t k = 0; k < f->size; k++)
        if (kept == 0 || f->metric[idx[k]] > f->metric[idx[kept - 1]]) idx[kept++] = idx[k];
    qc_status st = gather(f, idx, kept, function);
    free(idx);
    return st;
}

size_t qc__front_find(const qc_search_front *f, const uint32_t *choice, size_t fidelity)
{
    for (size_t i = 0; i < f->size; i++)
        if ((fidelity == SIZE_MAX || f->fidelity[i] == fidelity) &&
            memcmp(f->choices + i * f->num_tensors, choice, f->num_tensors * sizeof *choice) == 0)
            return i;
    return SIZE_MAX;
}

size_t qc_search_front_size(const qc_search_front *front)
{
    return front ? front->size : 0;
}

size_t qc_search_front_num_tensors(const qc_search_front *front)
{
    return front ? front->num_tensors : 0;
}

qc_status qc_search_front_point(const qc_search_front *front, size_t i, const uint32_t **choice, double *cost,
                                double *metric, size_t *fidelity_index)
{
    QC_CHECK_NOT_NULL(front);
    if (i >= front->size)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'i' = %zu is out of range (the front has %zu points)", i,
                       front->size);
    if (choice) *choice = front->choices + i * front->num_tensors;
    if (cost) *cost = front->cost[i];
    if (metric) *metric = front->metric[i];
    if (fidelity_index) *fidelity_index = front->fidelity[i];
    return QC_OK;
}

void qc_search_front_free(qc_search_front *front)
{
    if (front == NULL) return;
    free(front->choices);
    free(front->cost);
    free(front->metric);
    free(front->fidelity);
    free(front);
}
