/* The multiple-choice knapsack DP over discretised cost: for every cost bucket, the configuration of least
 * total loss, one component (independent item with its feasible joint choices) at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "search/search.h"

enum { MAX_BUCKETS = 1 << 24 };

/* Per component option: cost, loss, and bucket offset from the component's cheapest option. */
typedef struct dp_items {
    double *cost, *loss;
    size_t *bucket;
    size_t *first; /* [K + 1]: component k's options are first[k] .. first[k+1]-1 */
    size_t buckets;
} dp_items;

static void items_free(dp_items *it)
{
    free(it->cost), free(it->loss), free(it->bucket), free(it->first);
}

static void option_totals(const qc_search_space *s, const qc__plan *p, size_t k, size_t o, const double *loss,
                          uint32_t *choice, double *cost, double *total)
{
    const qc__component *c = &p->components[k];
    qc__plan_apply(p, k, c->options + o * c->num_units, choice);
    *cost = *total = 0;
    for (size_t i = 0; i < c->num_units; i++)
        for (size_t m = p->unit_first[c->units[i]]; m < p->unit_first[c->units[i] + 1]; m++) {
            size_t t = p->unit_members[m];
            *cost += s->cost[s->offset[t] + choice[t]];
            *total += loss[s->offset[t] + choice[t]];
        }
}

static qc_status items_build(dp_items *it, const qc_search_space *s, const qc__plan *p, const double *loss,
                             size_t cost_buckets, uint32_t *choice, const char *function)
{
    size_t K = p->num_components, n = 0;
    it->first = malloc((K + 1) * sizeof(size_t));
    if (it->first == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the DP items");
    for (size_t k = 0; k < K; k++) it->first[k] = n, n += p->components[k].num_options;
    it->first[K] = n;
    it->cost = malloc(n * sizeof(double));
    it->loss = malloc(n * sizeof(double));
    it->bucket = malloc(n * sizeof(size_t));
    if (!it->cost || !it->loss || !it->bucket)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate %zu DP items", n);
    double range = 0;
    for (size_t k = 0; k < K; k++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t o = it->first[k]; o < it->first[k + 1]; o++) {
            option_totals(s, p, k, o - it->first[k], loss, choice, &it->cost[o], &it->loss[o]);
            lo = fmin(lo, it->cost[o]), hi = fmax(hi, it->cost[o]);
        }
        range += hi - lo;
    }
    double width = range > 0 ? range / (double)cost_buckets : 1.0;
    size_t total = 1;
    for (size_t k = 0; k < K; k++) {
        double lo = INFINITY;
        for (size_t o = it->first[k]; o < it->first[k + 1]; o++) lo = fmin(lo, it->cost[o]);
        size_t most = 0;
        for (size_t o = it->first[k]; o < it->first[k + 1]; o++) {
            it->bucket[o] = (size_t)llround((it->cost[o] - lo) / width);
            if (it->bucket[o] > most) most = it->bucket[o];
        }
        total += most;
    }
    it->buckets = total;
    return QC_OK;
}

/* best[k][b]: the option of component k on the least-loss path to bucket b after components 0..k. */
static void run_dp(const dp_items *it, size_t K, uint32_t *best, double *f, double *g, double *fc, double *gc)
{
    size_t B = it->buckets;
    for (size_t b = 0; b < B; b++) f[b] = INFINITY, fc[b] = INFINITY;
    f[0] = 0, fc[0] = 0;
    for (size_t k = 0; k < K; k++) {
        for (size_t b = 0; b < B; b++) g[b] = INFINITY, gc[b] = INFINITY;
        for (size_t o = it->first[k]; o < it->first[k + 1]; o++) {
            size_t q = it->bucket[o];
            for (size_t b = q; b < B; b++) {
                double l = f[b - q] + it->loss[o], c = fc[b - q] + it->cost[o];
                if (l < g[b] || (l == g[b] && c < gc[b])) {
                    g[b] = l, gc[b] = c;
                    best[k * B + b] = (uint32_t)(o - it->first[k]);
                }
            }
        }
        memcpy(f, g, B * sizeof *f);
        memcpy(fc, gc, B * sizeof *fc);
    }
}

/* Walks the choices back from bucket b and pushes the configuration. */
static qc_status push_bucket(qc_search_front *out, const qc_search_space *s, const qc__plan *p, const dp_items *it,
                             const uint32_t *best, size_t b, const double *loss, double offset, uint32_t *choice,
                             const char *function)
{
    size_t B = it->buckets;
    for (size_t k = p->num_components; k-- > 0;) {
        uint32_t o = best[k * B + b];
        qc__plan_apply(p, k, p->components[k].options + (size_t)o * p->components[k].num_units, choice);
        b -= it->bucket[it->first[k] + o];
    }
    double total = 0;
    for (size_t t = 0; t < s->num_tensors; t++) total += loss[s->offset[t] + choice[t]];
    return qc__front_push(out, choice, qc__space_cost(s, choice), offset - total, 0, function);
}

static qc_status dp_front(qc_search_front *out, const qc_search_space *s, const qc__plan *p, const double *loss,
                          double offset, size_t cost_buckets, uint32_t *choice, const char *function)
{
    dp_items it = {0};
    qc_status st = items_build(&it, s, p, loss, cost_buckets, choice, function);
    size_t K = p->num_components, B = it.buckets;
    uint32_t *best = NULL;
    double *work = NULL;
    if (st == QC_OK && K > SIZE_MAX / 4 / B)
        st = QC_FAIL_IN(function, QC_ERR_OVERFLOW, "the DP table of %zu components x %zu buckets is too large", K, B);
    if (st == QC_OK) {
        best = malloc(K * B * sizeof *best);
        work = malloc(4 * B * sizeof *work);
        if (!best || !work)
            st = QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the DP table of %zu x %zu", K, B);
    }
    if (st == QC_OK) run_dp(&it, K, best, work, work + B, work + 2 * B, work + 3 * B);
    double least = INFINITY;
    for (size_t b = 0; st == QC_OK && b < B; b++) {
        if (!(work[b] < least)) continue;
        least = work[b];
        st = push_bucket(out, s, p, &it, best, b, loss, offset, choice, function);
    }
    if (st == QC_OK) st = qc__front_filter(out, function);
    free(best);
    free(work);
    items_free(&it);
    return st;
}

qc_status qc__dp_front(qc_search_front **out, const qc_search_space *space, const qc__plan *plan, const double *loss,
                       double offset, size_t cost_buckets, const char *function)
{
    uint32_t *choice = malloc(space->num_tensors * sizeof *choice);
    if (choice == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a configuration");
    qc_search_front *f = NULL;
    qc_status st = qc__front_create(&f, space->num_tensors, function);
    if (st == QC_OK) st = dp_front(f, space, plan, loss, offset, cost_buckets, choice, function);
    free(choice);
    if (st != QC_OK) {
        qc_search_front_free(f);
        return st;
    }
    *out = f;
    return QC_OK;
}

qc_status qc_search_dp_front(qc_search_front **out, const qc_search_space *space, size_t cost_buckets)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    QC_CHECK_NOT_NULL(space);
    if (cost_buckets == 0 || cost_buckets > MAX_BUCKETS)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'cost_buckets' = %zu is outside [1, %d]", cost_buckets, MAX_BUCKETS);
    qc__plan plan;
    QC_TRY(qc__plan_build(&plan, space, __func__));
    qc_status st = qc__dp_front(out, space, &plan, space->proxy, 0.0, cost_buckets, __func__);
    qc__plan_free(&plan);
    return st;
}
