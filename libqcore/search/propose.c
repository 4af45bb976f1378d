/* What to ask next, per algorithm: queued points (initial spread, baselines' paths), random feasible
 * configurations, successive-halving promotions, and QCORE's expected-hypervolume-improvement proposals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "search/state.h"

enum { RANDOM_ATTEMPTS = 256 };
static const double CAP_NOISE = 3; /* the monotone cap's slack, in noise std: metrics are measured with noise */

/* 1 when choice may be asked at `fidelity` (new: at no fidelity yet). */
static qc_status askable(qc_search *s, const uint32_t *choice, size_t fidelity, int *ok, double *cost,
                         const char *function)
{
    *ok = 0;
    if (!qc__space_structurally_ok(s->space, choice) || qc__search_known(s, choice, fidelity)) return QC_OK;
    return qc__space_feasible(s->space, choice, ok, cost, function);
}

static qc_status from_queue(qc_search *s, uint32_t *choice, int *found, const char *function)
{
    while (!*found && s->queue_next < s->queue->size) {
        memcpy(choice, s->queue->choices + s->queue_next++ * s->queue->num_tensors,
               s->space->num_tensors * sizeof *choice);
        QC_TRY(askable(s, choice, SIZE_MAX, found, NULL, function));
    }
    return QC_OK;
}

static qc_status from_random(qc_search *s, uint32_t *choice, int *found, const char *function)
{
    for (int attempt = 0; attempt < RANDOM_ATTEMPTS && !*found; attempt++) {
        for (size_t k = 0; k < s->plan.num_components; k++) {
            const qc__component *c = &s->plan.components[k];
            size_t o = (size_t)(qc__search_random(s) % c->num_options);
            qc__plan_apply(&s->plan, k, c->options + o * c->num_units, choice);
        }
        QC_TRY(askable(s, choice, SIZE_MAX, found, NULL, function));
    }
    return QC_OK;
}

/* The cost below which the proxy front is not worth asking: the costliest of its evaluated points that
 * fell below the reference metric (along the front, less cost means more proxy loss, so cheaper points
 * would fall further); the front's cheapest cost when none did. */
static double proxy_front_floor(const qc_search *s, double rm)
{
    const qc_search_front *q = s->queue;
    double floor = q->cost[0];
    for (size_t i = 0; i < q->size; i++) {
        size_t e = qc__front_find(s->evals, q->choices + i * q->num_tensors, qc__search_full(s));
        if (e != SIZE_MAX && s->evals->metric[e] < rm) floor = fmax(floor, q->cost[i]);
    }
    return floor;
}

/* The distance in cost from `cost` to the floor and to the nearest asked point of the proxy front within
 * (floor, rc]. */
static double gap_to_asked(const qc_search *s, double cost, double floor, double rc)
{
    const qc_search_front *q = s->queue;
    double gap = cost - floor;
    for (size_t i = 0; i < q->size; i++)
        if (q->cost[i] > floor && q->cost[i] <= rc && qc__search_known(s, q->choices + i * q->num_tensors, SIZE_MAX))
            gap = fmin(gap, fabs(q->cost[i] - cost));
    return gap;
}

/* QCORE's initial design with a reference metric: points of the proxy front (in cost order) cheaper than
 * the reference cost (a point there bounds no hypervolume, and the one just below it calibrates as well),
 * the costliest first, then each the farthest in cost from the asked ones and from the
 * floor (proxy_front_floor), so that the design bisects towards where the front crosses the reference
 * metric while spreading over the part that can dominate the reference point. */
static qc_status from_adaptive_start(qc_search *s, uint32_t *choice, int *found, const char *function)
{
    const qc_search_front *q = s->queue;
    double rc, rm;
    qc__search_reference_now(s, &rc, &rm);
    double floor = proxy_front_floor(s, rm), best_gap = -1;
    for (size_t i = q->size; i-- > 0;) { /* costliest first: equal gaps keep the costlier point */
        const uint32_t *c = q->choices + i * q->num_tensors;
        if (q->cost[i] <= floor || q->cost[i] >= rc) continue;
        double gap = gap_to_asked(s, q->cost[i], floor, rc);
        if (!(gap > best_gap)) continue;
        int ok;
        QC_TRY(askable(s, c, SIZE_MAX, &ok, NULL, function));
        if (!ok) continue;
        best_gap = gap, *found = 1;
        memcpy(choice, c, s->space->num_tensors * sizeof *choice);
    }
    return QC_OK;
}

/* Evaluations allowed at fidelity f: max_evaluations at the full one, eta times more per step down. */
static size_t rung_cap(const qc_search *s, size_t f)
{
    size_t cap = s->opts.max_evaluations;
    for (size_t k = f; k < qc__search_full(s); k++) cap = cap > SIZE_MAX / s->opts.eta ? SIZE_MAX : cap * s->opts.eta;
    return cap;
}

static int dominated_at(const qc_search_front *e, size_t i)
{
    for (size_t j = 0; j < e->size; j++)
        if (j != i && e->fidelity[j] == e->fidelity[i] && e->cost[j] <= e->cost[i] && e->metric[j] >= e->metric[i] &&
            (e->cost[j] < e->cost[i] || e->metric[j] > e->metric[i]))
            return 1;
    return 0;
}

/* Asynchronous successive halving: a told configuration at fidelity k goes up one fidelity when it is
 * non-dominated at k and fewer than 1 in eta of k's evaluations have gone up; highest fidelity first. */
static void promotion(qc_search *s, uint32_t *choice, size_t *fidelity, int *found)
{
    const qc_search_front *e = s->evals;
    for (size_t k = qc__search_full(s); k-- > 0 && !*found;) {
        size_t told = 0, promoted = 0;
        for (size_t i = 0; i < e->size; i++)
            if (e->fidelity[i] == k) told++, promoted += qc__search_known(s, e->choices + i * e->num_tensors, k + 1);
        if (qc__search_count(s, k + 1) >= rung_cap(s, k + 1)) continue;
        for (size_t i = 0; i < e->size && !*found && (promoted + 1) * s->opts.eta <= told; i++) {
            const uint32_t *c = e->choices + i * e->num_tensors;
            if (e->fidelity[i] != k || qc__search_known(s, c, k + 1) || dominated_at(e, i)) continue;
            memcpy(choice, c, e->num_tensors * sizeof *choice);
            *fidelity = k + 1, *found = 1;
        }
    }
}

/* The candidates' scoring state: the evaluated front, the reference, the best so far, and the scratch of
 * the incremental predictions of moves (g [2 + T + entries], idx and val [1 + 3 T]). */
typedef struct scoring {
    const double *cost, *metric;
    size_t n;
    double rc, rm, best;
    uint32_t *best_choice;
    int found, best_expected; /* best_expected: the best's predicted mean itself improves the front */
    double *g, *val;
    size_t *idx;
} scoring;

/* 1 when every tensor of `choice` has at least the proxy loss it has in `other`. */
static int no_better(const qc_search_space *space, const uint32_t *choice, const uint32_t *other)
{
    for (size_t t = 0; t < space->num_tensors; t++)
        if (space->proxy[space->offset[t] + choice[t]] < space->proxy[space->offset[t] + other[t]]) return 0;
    return 1;
}

/* The highest metric `choice` can have if the metric falls as any tensor's proxy loss rises: the least
 * metric evaluated (at any fidelity) on a configuration that is no worse on every tensor, plus CAP_NOISE
 * times that evaluation's noise std (noise / sqrt(its fidelity weight)). */
static double monotone_cap(const qc_search *s, const uint32_t *choice)
{
    const qc_search_front *e = s->evals;
    double cap = INFINITY;
    for (size_t i = 0; i < e->size; i++) {
        double bound = e->metric[i] + CAP_NOISE * s->surrogate.noise / sqrt(s->weight[e->fidelity[i]]);
        if (bound < cap && no_better(s->space, choice, e->choices + i * e->num_tensors)) cap = bound;
    }
    return cap;
}

/* Keeps `choice` (predicted mean, sd) when it is askable and ranks above the best so far: first whether its
 * predicted mean itself improves the hypervolume (is above the reference metric and not dominated by the
 * evaluated front), then its EHVI. EHVI alone ranks a long shot (mean far under the front, sd wide: on
 * MiniLM a move to 2 bits predicted 0.77 +- 0.12 against a front at 0.97) above a likely small gain, and
 * at tens of evaluations such gambles mostly come back dominated; they are taken only once no proposal
 * is expected to improve the front, which keeps exploring when the surrogate is wrong (on the Fashion
 * CNN, excluding them outright left the search 6 short of the true front's hypervolume, 706, at 128).
 * The prediction is held under the monotone cap (the surrogate, linear in the proxy, extrapolates far
 * cheaper configurations with a wide spread that the evaluations already rule out). */
static qc_status score_prediction(qc_search *s, scoring *sc, const uint32_t *choice, double mean, double sd,
                                  const char *function)
{
    double cap = monotone_cap(s, choice);
    if (cap < sc->rm) return QC_OK;
    if (cap < INFINITY) mean = fmin(mean, cap), sd = fmin(sd, cap - mean);
    int ok;
    double cost;
    QC_TRY(askable(s, choice, SIZE_MAX, &ok, &cost, function));
    if (!ok) return QC_OK;
    double gain = qc__ehvi(sc->cost, sc->metric, sc->n, sc->rc, sc->rm, cost, mean, sd);
    int expected = qc__ehvi(sc->cost, sc->metric, sc->n, sc->rc, sc->rm, cost, mean, 0) > 0;
    if (!sc->found || expected > sc->best_expected || (expected == sc->best_expected && gain > sc->best)) {
        sc->best = gain, sc->found = 1, sc->best_expected = expected;
        memcpy(sc->best_choice, choice, s->space->num_tensors * sizeof *choice);
    }
    return QC_OK;
}

/* Every single-unit move from each point of the evaluated front, predicted incrementally from the point. */
static qc_status score_moves(qc_search *s, scoring *sc, const qc_search_front *front, uint32_t *move,
                             const char *function)
{
    const qc__plan *plan = &s->plan;
    for (size_t i = 0; i < front->size; i++) {
        const uint32_t *base = front->choices + i * front->num_tensors;
        double base_mean, base_var, mean, sd;
        qc__surrogate_base(&s->surrogate, s->space, base, sc->g, &base_mean, &base_var);
        memcpy(move, base, front->num_tensors * sizeof *move);
        for (size_t u = 0; u < plan->num_units; u++) {
            const size_t *members = plan->unit_members + plan->unit_first[u];
            size_t count = plan->unit_first[u + 1] - plan->unit_first[u];
            uint32_t own = base[members[0]];
            for (uint32_t c = 0; c < plan->unit_candidates[u]; c++) {
                if (c == own) continue;
                for (size_t m = 0; m < count; m++) move[members[m]] = c;
                qc__surrogate_move(&s->surrogate, s->space, sc->g, base_mean, base_var, members, count, own, c, sc->idx,
                                   sc->val, &mean, &sd);
                QC_TRY(score_prediction(s, sc, move, mean, sd, function));
            }
            for (size_t m = 0; m < count; m++) move[members[m]] = own;
        }
    }
    return QC_OK;
}

static qc_status score_all(qc_search *s, scoring *sc, const qc_search_front *front, const qc_search_front *predicted,
                           uint32_t *move, const char *function)
{
    for (size_t i = 0; i < predicted->size; i++) {
        const uint32_t *choice = predicted->choices + i * predicted->num_tensors;
        double mean, sd;
        qc__surrogate_predict(&s->surrogate, s->space, choice, &mean, &sd);
        QC_TRY(score_prediction(s, sc, choice, mean, sd, function));
    }
    return score_moves(s, sc, front, move, function);
}

/* QCORE's proposal: refit the surrogate, re-solve the DP on it, and take the best EHVI among its front and
 * the single-unit moves from the evaluated front. */
static qc_status from_surrogate(qc_search *s, uint32_t *choice, int *found, const char *function)
{
    size_t entries = s->space->offset[s->space->num_tensors];
    QC_TRY(qc__surrogate_fit(&s->surrogate, s->space, s->evals, s->weight, s->opts.noise, s->opts.prior_width,
                             function));
    qc_search_front *front = NULL, *predicted = NULL;
    size_t T = s->space->num_tensors;
    double *loss = malloc(entries * sizeof *loss), *g = malloc((2 + T + entries) * sizeof *g);
    double *val = malloc((1 + 3 * T) * sizeof *val);
    size_t *idx = malloc((1 + 3 * T) * sizeof *idx);
    uint32_t *move = malloc(T * sizeof *move);
    qc_status st = loss && g && val && idx && move
                       ? qc__search_full_front(&front, s, function)
                       : QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the proposal");
    if (st == QC_OK) {
        qc__surrogate_losses(&s->surrogate, s->space, loss);
        st = qc__dp_front(&predicted, s->space, &s->plan, loss, s->surrogate.mean[0], s->opts.cost_buckets, function);
    }
    if (st == QC_OK) {
        scoring sc = {front->cost, front->metric, front->size, 0, 0, 0, choice, 0, 0, g, val, idx};
        qc__search_reference_now(s, &sc.rc, &sc.rm);
        if (isnan(sc.rm)) sc.rm = predicted->size ? predicted->metric[0] - 1 : 0;
        st = score_all(s, &sc, front, predicted, move, function);
        *found = sc.found;
    }
    qc_search_front_free(front);
    qc_search_front_free(predicted);
    free(loss), free(g), free(val), free(idx), free(move);
    return st;
}

static qc_status propose_qcore(qc_search *s, uint32_t *choice, size_t *fidelity, int *found, const char *function)
{
    size_t full = qc__search_full(s);
    if (full > 0) promotion(s, choice, fidelity, found);
    if (*found) return QC_OK;
    *fidelity = full;
    if (qc__search_count(s, full) < s->initial_points)
        QC_TRY(qc__search_adaptive_start(s) ? from_adaptive_start(s, choice, found, function)
                                            : from_queue(s, choice, found, function));
    if (*found) return QC_OK;
    if (full > 0 && qc__search_count(s, 0) < rung_cap(s, 0)) *fidelity = 0;
    QC_TRY(from_surrogate(s, choice, found, function));
    if (!*found) QC_TRY(from_random(s, choice, found, function));
    return QC_OK;
}

qc_status qc__search_propose(qc_search *s, uint32_t *choice, size_t *fidelity, int *found, const char *function)
{
    *found = 0;
    *fidelity = qc__search_full(s);
    switch (s->opts.algorithm) {
    case QC_SEARCH_QCORE: return propose_qcore(s, choice, fidelity, found, function);
    case QC_SEARCH_RANDOM: return from_random(s, choice, found, function);
    case QC_SEARCH_GREEDY:
    case QC_SEARCH_ONESHOT_DP: return from_queue(s, choice, found, function);
    }
    return QC_FAIL_IN(function, QC_ERR_INTERNAL, "unknown algorithm %d", (int)s->opts.algorithm);
}
