/* The search space: per-(tensor, candidate) cost, proxy and label tables, ties, forbidden combinations and
 * the whole-configuration check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "search/search.h"

enum { MAX_LABEL = 255 };

static void free_forbids(qc__forbid *forbids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(forbids[i].tensors);
        free(forbids[i].candidates);
    }
    free(forbids);
}

void qc_search_space_free(qc_search_space *space)
{
    if (space == NULL) return;
    if (space->label != NULL)
        for (size_t i = 0; i < space->offset[space->num_tensors]; i++) free(space->label[i]);
    free(space->label);
    free_forbids(space->forbids, space->num_forbids);
    free(space->num_candidates);
    free(space->offset);
    free(space->cost);
    free(space->proxy);
    free(space->tie_parent);
    free(space);
}

/* Allocates the tables of a space whose num_tensors, num_candidates and offset are set. */
static qc_status alloc_tables(qc_search_space *s, const char *function)
{
    size_t entries = s->offset[s->num_tensors];
    s->cost = calloc(entries, sizeof *s->cost);
    s->proxy = calloc(entries, sizeof *s->proxy);
    s->label = calloc(entries, sizeof *s->label);
    s->tie_parent = malloc(s->num_tensors * sizeof *s->tie_parent);
    if (!s->cost || !s->proxy || !s->label || !s->tie_parent)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the tables of %zu entries", entries);
    return QC_OK;
}

static qc_status space_alloc(qc_search_space **out, size_t num_tensors, const uint32_t *num_candidates,
                             const char *function)
{
    qc_search_space *s = calloc(1, sizeof *s);
    if (s == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a space");
    s->num_tensors = num_tensors;
    s->num_candidates = malloc(num_tensors * sizeof *s->num_candidates);
    s->offset = malloc((num_tensors + 1) * sizeof *s->offset);
    if (!s->num_candidates || !s->offset) {
        qc_search_space_free(s);
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a space of %zu tensors", num_tensors);
    }
    s->offset[0] = 0;
    for (size_t t = 0; t < num_tensors; t++) {
        s->num_candidates[t] = num_candidates[t];
        s->offset[t + 1] = s->offset[t] + num_candidates[t];
    }
    qc_status st = alloc_tables(s, function);
    if (st != QC_OK) {
        qc_search_space_free(s);
        return st;
    }
    *out = s;
    return QC_OK;
}

qc_status qc_search_space_create(qc_search_space **out, size_t num_tensors, const uint32_t *num_candidates)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    if (num_tensors == 0) return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'num_tensors' is 0: a space needs a tensor");
    QC_CHECK_NOT_NULL(num_candidates);
    for (size_t t = 0; t < num_tensors; t++)
        if (num_candidates[t] == 0)
            return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'num_candidates': tensor %zu has 0 candidates", t);
    qc_search_space *s;
    QC_TRY(space_alloc(&s, num_tensors, num_candidates, __func__));
    for (size_t t = 0; t < num_tensors; t++) s->tie_parent[t] = t;
    *out = s;
    return QC_OK;
}

static qc_status copy_forbids(qc_search_space *c, const qc_search_space *s, const char *function)
{
    if (s->num_forbids == 0) return QC_OK;
    c->forbids = calloc(s->num_forbids, sizeof *c->forbids);
    if (c->forbids == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot copy the forbidden combinations");
    c->num_forbids = s->num_forbids;
    for (size_t i = 0; i < s->num_forbids; i++) {
        size_t n = s->forbids[i].n;
        c->forbids[i].n = n;
        c->forbids[i].tensors = malloc(n * sizeof(size_t));
        c->forbids[i].candidates = malloc(n * sizeof(uint32_t));
        if (!c->forbids[i].tensors || !c->forbids[i].candidates)
            return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot copy the forbidden combinations");
        memcpy(c->forbids[i].tensors, s->forbids[i].tensors, n * sizeof(size_t));
        memcpy(c->forbids[i].candidates, s->forbids[i].candidates, n * sizeof(uint32_t));
    }
    return QC_OK;
}

static qc_status copy_contents(qc_search_space *c, const qc_search_space *s, const char *function)
{
    size_t entries = s->offset[s->num_tensors];
    memcpy(c->cost, s->cost, entries * sizeof *c->cost);
    memcpy(c->proxy, s->proxy, entries * sizeof *c->proxy);
    memcpy(c->tie_parent, s->tie_parent, s->num_tensors * sizeof *c->tie_parent);
    for (size_t i = 0; i < entries; i++) {
        if (s->label[i] == NULL) continue;
        c->label[i] = strdup(s->label[i]);
        if (c->label[i] == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot copy the labels");
    }
    c->check = s->check;
    c->check_user = s->check_user;
    return copy_forbids(c, s, function);
}

qc_status qc__space_copy(qc_search_space **out, const qc_search_space *s, const char *function)
{
    qc_search_space *c;
    QC_TRY(space_alloc(&c, s->num_tensors, s->num_candidates, function));
    qc_status st = copy_contents(c, s, function);
    if (st != QC_OK) {
        qc_search_space_free(c);
        return st;
    }
    *out = c;
    return QC_OK;
}

static qc_status check_entry(const qc_search_space *space, size_t tensor, uint32_t candidate, const char *function)
{
    if (space == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'space' is NULL");
    if (tensor >= space->num_tensors)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'tensor' = %zu is out of range (%zu tensors)", tensor,
                          space->num_tensors);
    if (candidate >= space->num_candidates[tensor])
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "argument 'candidate' = %u is out of range (tensor %zu has %u candidates)", candidate, tensor,
                          space->num_candidates[tensor]);
    return QC_OK;
}

qc_status qc_search_space_set_cost(qc_search_space *space, size_t tensor, uint32_t candidate, double cost)
{
    QC_TRY(check_entry(space, tensor, candidate, __func__));
    if (!isfinite(cost))
        return QC_FAIL(QC_ERR_NUMERIC, "argument 'cost' = %g of tensor %zu candidate %u is not finite", cost, tensor,
                       candidate);
    space->cost[space->offset[tensor] + candidate] = cost;
    return QC_OK;
}

qc_status qc_search_space_set_proxy(qc_search_space *space, size_t tensor, uint32_t candidate, double loss)
{
    QC_TRY(check_entry(space, tensor, candidate, __func__));
    if (!isfinite(loss))
        return QC_FAIL(QC_ERR_NUMERIC, "argument 'loss' = %g of tensor %zu candidate %u is not finite", loss, tensor,
                       candidate);
    if (loss < 0)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'loss' = %g of tensor %zu candidate %u is negative", loss, tensor,
                       candidate);
    space->proxy[space->offset[tensor] + candidate] = loss;
    return QC_OK;
}

qc_status qc_search_space_set_label(qc_search_space *space, size_t tensor, uint32_t candidate, const char *label)
{
    QC_TRY(check_entry(space, tensor, candidate, __func__));
    QC_CHECK_NOT_NULL(label);
    if (strlen(label) > MAX_LABEL)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'label' is %zu bytes long (at most %d)", strlen(label), MAX_LABEL);
    char *copy = strdup(label);
    if (copy == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot copy argument 'label'");
    size_t e = space->offset[tensor] + candidate;
    free(space->label[e]);
    space->label[e] = copy;
    return QC_OK;
}

static size_t find_root(const size_t *parent, size_t t)
{
    while (parent[t] != t) t = parent[t];
    return t;
}

/* Distinct, in-range tensors; `what` names the argument. */
static qc_status check_tensor_list(const qc_search_space *space, size_t n, const size_t *tensors, const char *function)
{
    for (size_t i = 0; i < n; i++) {
        if (tensors[i] >= space->num_tensors)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'tensors': entry %zu = %zu is out of range (%zu tensors)",
                              i, tensors[i], space->num_tensors);
        for (size_t j = 0; j < i; j++)
            if (tensors[j] == tensors[i])
                return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'tensors': tensor %zu appears twice", tensors[i]);
    }
    return QC_OK;
}

qc_status qc_search_space_tie(qc_search_space *space, size_t n, const size_t *tensors)
{
    QC_CHECK_NOT_NULL(space);
    if (n < 2) return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'n' = %zu: a tie needs at least 2 tensors", n);
    QC_CHECK_NOT_NULL(tensors);
    QC_TRY(check_tensor_list(space, n, tensors, __func__));
    for (size_t i = 1; i < n; i++)
        if (space->num_candidates[tensors[i]] != space->num_candidates[tensors[0]])
            return QC_FAIL(QC_ERR_INVALID_ARG,
                           "argument 'tensors': tensor %zu has %u candidates but tensor %zu has %u; tied tensors share "
                           "candidate indices",
                           tensors[i], space->num_candidates[tensors[i]], tensors[0], space->num_candidates[tensors[0]]);
    size_t root = find_root(space->tie_parent, tensors[0]);
    for (size_t i = 1; i < n; i++) {
        size_t r = find_root(space->tie_parent, tensors[i]);
        if (r < root) {
            space->tie_parent[root] = r;
            root = r;
        } else if (r != root) {
            space->tie_parent[r] = root;
        }
    }
    return QC_OK;
}

qc_status qc_search_space_forbid(qc_search_space *space, size_t n, const size_t *tensors, const uint32_t *candidates)
{
    QC_CHECK_NOT_NULL(space);
    if (n == 0) return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'n' is 0: a forbidden combination needs a tensor");
    QC_CHECK_NOT_NULL(tensors);
    QC_CHECK_NOT_NULL(candidates);
    QC_TRY(check_tensor_list(space, n, tensors, __func__));
    for (size_t i = 0; i < n; i++) QC_TRY(check_entry(space, tensors[i], candidates[i], __func__));
    qc__forbid f = {n, malloc(n * sizeof(size_t)), malloc(n * sizeof(uint32_t))};
    qc__forbid *grown = realloc(space->forbids, (space->num_forbids + 1) * sizeof *grown);
    if (!f.tensors || !f.candidates || !grown) {
        free(f.tensors);
        free(f.candidates);
        if (grown) space->forbids = grown;
        return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot store a forbidden combination");
    }
    memcpy(f.tensors, tensors, n * sizeof(size_t));
    memcpy(f.candidates, candidates, n * sizeof(uint32_t));
    space->forbids = grown;
    space->forbids[space->num_forbids++] = f;
    return QC_OK;
}

qc_status qc_search_space_set_check(qc_search_space *space, qc_search_check_fn fn, void *user)
{
    QC_CHECK_NOT_NULL(space);
    space->check = fn;
    space->check_user = fn ? user : NULL;
    return QC_OK;
}

size_t qc_search_space_num_tensors(const qc_search_space *space)
{
    return space ? space->num_tensors : 0;
}

uint32_t qc_search_space_num_candidates(const qc_search_space *space, size_t tensor)
{
    return space && tensor < space->num_tensors ? space->num_candidates[tensor] : 0;
}

qc_status qc__space_check_choice(const qc_search_space *space, const uint32_t *choice, const char *function)
{
    if (choice == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'choice' is NULL");
    for (size_t t = 0; t < space->num_tensors; t++)
        if (choice[t] >= space->num_candidates[t])
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                              "argument 'choice': tensor %zu has candidate %u, out of range (%u candidates)", t,
                              choice[t], space->num_candidates[t]);
    return QC_OK;
}

double qc__space_cost(const qc_search_space *space, const uint32_t *choice)
{
    double cost = 0;
    for (size_t t = 0; t < space->num_tensors; t++) cost += space->cost[space->offset[t] + choice[t]];
    return cost;
}

qc_status qc_search_space_evaluate(const qc_search_space *space, const uint32_t *choice, double *cost, double *proxy)
{
    QC_CHECK_NOT_NULL(space);
    QC_TRY(qc__space_check_choice(space, choice, __func__));
    double p = 0;
    for (size_t t = 0; t < space->num_tensors; t++) p += space->proxy[space->offset[t] + choice[t]];
    if (cost) *cost = qc__space_cost(space, choice);
    if (proxy) *proxy = p;
    return QC_OK;
}

int qc__space_structurally_ok(const qc_search_space *space, const uint32_t *choice)
{
    for (size_t t = 0; t < space->num_tensors; t++)
        if (choice[t] != choice[find_root(space->tie_parent, t)]) return 0;
    for (size_t i = 0; i < space->num_forbids; i++) {
        const qc__forbid *f = &space->forbids[i];
        size_t j = 0;
        while (j < f->n && choice[f->tensors[j]] == f->candidates[j]) j++;
        if (j == f->n) return 0;
    }
    return 1;
}

qc_status qc__space_feasible(const qc_search_space *space, const uint32_t *choice, int *feasible, double *cost,
                             const char *function)
{
    double c = qc__space_cost(space, choice);
    *feasible = qc__space_structurally_ok(space, choice);
    if (*feasible && space->check != NULL) {
        int r = space->check(choice, &c, space->check_user);
        if (r < 0) return QC_FAIL_IN(function, QC_ERR_CANCELLED, "the check callback returned %d (abort)", r);
        if (r > 0 && !isfinite(c))
            return QC_FAIL_IN(function, QC_ERR_NUMERIC, "the check callback gave a cost of %g (not finite)", c);
        *feasible = r > 0;
    }
    if (cost) *cost = c;
    return QC_OK;
}

qc_status qc_search_space_feasible(const qc_search_space *space, const uint32_t *choice, int *feasible, double *cost)
{
    QC_CHECK_NOT_NULL(space);
    QC_CHECK_NOT_NULL(feasible);
    QC_TRY(qc__space_check_choice(space, choice, __func__));
    return qc__space_feasible(space, choice, feasible, cost, __func__);
}
