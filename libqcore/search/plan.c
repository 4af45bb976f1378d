/* The structure of a space: tie groups become units (one decision each), units linked by forbidden
 * combinations become components, and each component's feasible joint choices are enumerated, so that
 * the DP and random sampling treat components as independent multiple-choice items. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "search/search.h"

void qc__plan_free(qc__plan *plan)
{
    if (plan == NULL) return;
    for (size_t k = 0; k < plan->num_components; k++) {
        free(plan->components[k].units);
        free(plan->components[k].options);
    }
    free(plan->components);
    free(plan->unit_of);
    free(plan->unit_first);
    free(plan->unit_members);
    free(plan->unit_candidates);
    memset(plan, 0, sizeof *plan);
}

static size_t root_of(const size_t *parent, size_t i)
{
    while (parent[i] != i) i = parent[i];
    return i;
}

/* Units from the tie union-find, numbered by their first tensor. */
static qc_status build_units(qc__plan *p, const qc_search_space *s, const char *function)
{
    size_t T = s->num_tensors;
    p->unit_of = malloc(T * sizeof(size_t));
    p->unit_first = calloc(T + 1, sizeof(size_t));
    p->unit_members = malloc(T * sizeof(size_t));
    p->unit_candidates = malloc(T * sizeof(uint32_t));
    size_t *fill = calloc(T + 1, sizeof(size_t));
    if (!p->unit_of || !p->unit_first || !p->unit_members || !p->unit_candidates || !fill) {
        free(fill);
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the units of %zu tensors", T);
    }
    for (size_t t = 0; t < T; t++) {
        size_t r = root_of(s->tie_parent, t);
        if (r == t) {
            p->unit_candidates[p->num_units] = s->num_candidates[t];
            p->unit_of[t] = p->num_units++;
        } else {
            p->unit_of[t] = p->unit_of[r]; /* roots are the smallest member, so seen first */
        }
        p->unit_first[p->unit_of[t] + 1]++;
    }
    for (size_t u = 0; u < p->num_units; u++) p->unit_first[u + 1] += p->unit_first[u];
    for (size_t t = 0; t < T; t++) {
        size_t u = p->unit_of[t];
        p->unit_members[p->unit_first[u] + fill[u]++] = t;
    }
    free(fill);
    return QC_OK;
}

void qc__plan_apply(const qc__plan *plan, size_t k, const uint32_t *option, uint32_t *choice)
{
    const qc__component *c = &plan->components[k];
    for (size_t i = 0; i < c->num_units; i++) {
        size_t u = c->units[i];
        for (size_t m = plan->unit_first[u]; m < plan->unit_first[u + 1]; m++) choice[plan->unit_members[m]] = option[i];
    }
}

static int option_allowed(const qc_search_space *s, const qc__plan *p, size_t k, const size_t *comp_of_unit,
                          const uint32_t *choice)
{
    for (size_t i = 0; i < s->num_forbids; i++) {
        const qc__forbid *f = &s->forbids[i];
        if (comp_of_unit[p->unit_of[f->tensors[0]]] != k) continue;
        size_t j = 0;
        while (j < f->n && choice[f->tensors[j]] == f->candidates[j]) j++;
        if (j == f->n) return 0;
    }
    return 1;
}

/* Enumerates component k's joint choices (mixed radix over its units) and keeps the allowed ones. */
static qc_status enumerate(qc__plan *p, const qc_search_space *s, size_t k, const size_t *comp_of_unit,
                           uint32_t *choice, const char *function)
{
    qc__component *c = &p->components[k];
    size_t total = 1;
    for (size_t i = 0; i < c->num_units; i++) {
        total *= p->unit_candidates[c->units[i]];
        if (total > QC_SEARCH_MAX_COMPONENT_OPTIONS)
            return QC_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                              "the tensors linked to tensor %zu by ties and forbidden combinations have more than %d "
                              "joint choices",
                              p->unit_members[p->unit_first[c->units[0]]], QC_SEARCH_MAX_COMPONENT_OPTIONS);
    }
    c->options = malloc(total * c->num_units * sizeof(uint32_t));
    if (c->options == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot enumerate %zu joint choices", total);
    for (size_t code = 0; code < total; code++) {
        uint32_t *row = c->options + c->num_options * c->num_units;
        size_t rest = code;
        for (size_t i = 0; i < c->num_units; i++) {
            row[i] = (uint32_t)(rest % p->unit_candidates[c->units[i]]);
            rest /= p->unit_candidates[c->units[i]];
        }
        qc__plan_apply(p, k, row, choice);
        if (option_allowed(s, p, k, comp_of_unit, choice)) c->num_options++;
    }
    if (c->num_options == 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "every joint choice of the tensors linked to tensor %zu is forbidden: no configuration is "
                          "feasible",
                          p->unit_members[p->unit_first[c->units[0]]]);
    return QC_OK;
}

/* Components: union-find over units, linked by each forbidden combination. */
static qc_status build_components(qc__plan *p, const qc_search_space *s, size_t *comp_of_unit, const char *function)
{
    size_t U = p->num_units;
    size_t *parent = malloc(U * sizeof(size_t));
    if (parent == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the components");
    for (size_t u = 0; u < U; u++) parent[u] = u;
    for (size_t i = 0; i < s->num_forbids; i++)
        for (size_t j = 1; j < s->forbids[i].n; j++) {
            size_t a = root_of(parent, p->unit_of[s->forbids[i].tensors[0]]);
            size_t b = root_of(parent, p->unit_of[s->forbids[i].tensors[j]]);
            if (a != b) parent[a > b ? a : b] = a < b ? a : b;
        }
    p->components = calloc(U, sizeof *p->components);
    if (p->components == NULL) {
        free(parent);
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the components");
    }
    for (size_t u = 0; u < U; u++) {
        size_t r = root_of(parent, u);
        comp_of_unit[u] = r == u ? p->num_components++ : comp_of_unit[r];
        qc__component *c = &p->components[comp_of_unit[u]];
        if (c->units == NULL) c->units = malloc(U * sizeof(size_t));
        if (c->units == NULL) {
            free(parent);
            return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the components");
        }
        c->units[c->num_units++] = u;
    }
    free(parent);
    return QC_OK;
}

static qc_status build(qc__plan *p, const qc_search_space *s, size_t *comp_of_unit, uint32_t *choice,
                       const char *function)
{
    QC_TRY(build_units(p, s, function));
    QC_TRY(build_components(p, s, comp_of_unit, function));
    memset(choice, 0, s->num_tensors * sizeof *choice);
    for (size_t k = 0; k < p->num_components; k++) QC_TRY(enumerate(p, s, k, comp_of_unit, choice, function));
    return QC_OK;
}

qc_status qc__plan_build(qc__plan *plan, const qc_search_space *space, const char *function)
{
    memset(plan, 0, sizeof *plan);
    size_t *comp_of_unit = malloc(space->num_tensors * sizeof(size_t));
    uint32_t *choice = malloc(space->num_tensors * sizeof(uint32_t));
    qc_status st = comp_of_unit && choice
                       ? build(plan, space, comp_of_unit, choice, function)
                       : QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the plan of %zu tensors",
                                    space->num_tensors);
    free(comp_of_unit);
    free(choice);
    if (st != QC_OK) qc__plan_free(plan);
    return st;
}
