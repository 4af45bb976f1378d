/* Planned queues: the proxy front spread over cost (QCORE's initial points, the one-shot DP baseline) and
 * the greedy-sensitivity path, each in bisection order so that any prefix of the queue is spread out. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "search/state.h"

/* Bisection order of positions 0..n-1 (n >= 1): both ends, then midpoints level by level. */
static void bisection_order(size_t n, size_t *order, unsigned char *used)
{
    size_t k = 0;
    memset(used, 0, n);
    for (size_t level = 1; k < n; level *= 2) {
        for (size_t j = 0; j <= level && k < n; j++) {
            size_t pos = (size_t)llround((double)j * (double)(n - 1) / (double)level);
            if (!used[pos]) used[pos] = 1, order[k++] = pos;
        }
        if (level > 2 * n) break;
    }
    for (size_t pos = 0; pos < n && k < n; pos++)
        if (!used[pos]) order[k++] = pos;
}

/* Replaces the queue by its points in bisection order of position (greedy) or of cost (DP fronts: the
 * point nearest each target cost, targets up to the reference cost when one is set). */
static qc_status reorder(qc_search *s, int by_cost, const char *function)
{
    qc_search_front *q = s->queue, *r;
    size_t n = q->size;
    if (n == 0) return QC_OK;
    size_t *order = malloc(n * sizeof *order);
    unsigned char *used = malloc(n);
    qc_status st = order && used ? qc__front_create(&r, q->num_tensors, function)
                                 : QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot order %zu points", n);
    if (st == QC_OK) {
        bisection_order(n, order, used);
        if (by_cost) {
            memset(used, 0, n);
            double lo = q->cost[0], hi = q->cost[n - 1];
            if (s->opts.reference_cost > lo && s->opts.reference_cost < hi) hi = s->opts.reference_cost; /* spend nothing beyond it */
            for (size_t k = 0; k < n; k++) { /* target cost at the bisection fraction: nearest unused point */
                double target = lo + (hi - lo) * (double)order[k] / (double)(n > 1 ? n - 1 : 1);
                size_t best = SIZE_MAX;
                for (size_t i = 0; i < n; i++)
                    if (!used[i] && (best == SIZE_MAX || fabs(q->cost[i] - target) < fabs(q->cost[best] - target)))
                        best = i;
                used[best] = 1, order[k] = best;
            }
        }
        for (size_t k = 0; st == QC_OK && k < n; k++)
            st = qc__front_push(r, q->choices + order[k] * q->num_tensors, q->cost[order[k]], q->metric[order[k]], 0,
                                function);
        if (st == QC_OK) s->queue = r, r = q;
        qc_search_front_free(r);
    }
    free(order);
    free(used);
    return st;
}

/* The proxy front; QCORE with a reference metric keeps it in cost order for its adaptive initial design
 * (propose.c), everything else takes it in bisection order of cost. */
static qc_status proxy_front_queue(qc_search *s, const char *function)
{
    qc_search_front *f;
    QC_TRY(qc__dp_front(&f, s->space, &s->plan, s->space->proxy, 0.0, s->opts.cost_buckets, function));
    qc_search_front_free(s->queue);
    s->queue = f;
    if (qc__search_adaptive_start(s)) return QC_OK;
    return reorder(s, 1, function);
}

/* One greedy move: unit u to candidate c, with the proxy loss it adds and the cost it saves. */
typedef struct move {
    size_t unit;
    uint32_t candidate;
    double loss, saved;
} move;

static int by_loss(const void *a, const void *b)
{
    const move *p = a, *q = b;
    if (p->loss != q->loss) return p->loss < q->loss ? -1 : 1;
    if (p->saved != q->saved) return p->saved > q->saved ? -1 : 1;
    return p->unit != q->unit ? (p->unit < q->unit ? -1 : 1) : (p->candidate > q->candidate) - (p->candidate < q->candidate);
}

/* A unit's summed cost or proxy at candidate c. */
static double unit_sum(const qc_search *s, const double *table, size_t u, uint32_t c)
{
    double sum = 0;
    for (size_t m = s->plan.unit_first[u]; m < s->plan.unit_first[u + 1]; m++)
        sum += table[s->space->offset[s->plan.unit_members[m]] + c];
    return sum;
}

/* The reference: each unit at its least proxy loss, the costliest such candidate on ties. */
static uint32_t reference_candidate(const qc_search *s, size_t u)
{
    uint32_t best = 0;
    for (uint32_t c = 1; c < s->plan.unit_candidates[u]; c++) {
        double l = unit_sum(s, s->space->proxy, u, c), lb = unit_sum(s, s->space->proxy, u, best);
        if (l < lb || (l == lb && unit_sum(s, s->space->cost, u, c) > unit_sum(s, s->space->cost, u, best))) best = c;
    }
    return best;
}

static void set_unit(const qc_search *s, uint32_t *choice, size_t u, uint32_t c)
{
    for (size_t m = s->plan.unit_first[u]; m < s->plan.unit_first[u + 1]; m++) choice[s->plan.unit_members[m]] = c;
}

/* AIMET-AMP-like path: moves sorted by the proxy loss they add, applied cumulatively when they lower the
 * unit's cost further; each changed configuration is the next prefix. */
static qc_status greedy_path(qc_search *s, move *moves, uint32_t *current, const char *function)
{
    size_t n = 0;
    for (size_t u = 0; u < s->plan.num_units; u++) {
        uint32_t r = reference_candidate(s, u);
        set_unit(s, current, u, r);
        for (uint32_t c = 0; c < s->plan.unit_candidates[u]; c++) {
            double saved = unit_sum(s, s->space->cost, u, r) - unit_sum(s, s->space->cost, u, c);
            if (saved > 0)
                moves[n++] = (move){u, c, unit_sum(s, s->space->proxy, u, c) - unit_sum(s, s->space->proxy, u, r), saved};
        }
    }
    qsort(moves, n, sizeof *moves, by_loss);
    QC_TRY(qc__front_push(s->queue, current, qc__space_cost(s->space, current), 0, 0, function));
    for (size_t i = 0; i < n; i++) {
        size_t t = s->plan.unit_members[s->plan.unit_first[moves[i].unit]];
        if (!(s->space->cost[s->space->offset[t] + moves[i].candidate] < s->space->cost[s->space->offset[t] + current[t]]))
            continue;
        set_unit(s, current, moves[i].unit, moves[i].candidate);
        QC_TRY(qc__front_push(s->queue, current, qc__space_cost(s->space, current), 0, 0, function));
    }
    return reorder(s, 0, function);
}

static qc_status greedy_queue(qc_search *s, const char *function)
{
    size_t entries = s->space->offset[s->space->num_tensors];
    move *moves = malloc(entries * sizeof *moves);
    uint32_t *current = malloc(s->space->num_tensors * sizeof *current);
    qc_status st = moves && current ? greedy_path(s, moves, current, function)
                                    : QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the greedy moves");
    free(moves);
    free(current);
    return st;
}

qc_status qc__search_plan_queue(qc_search *s, const char *function)
{
    switch (s->opts.algorithm) {
    case QC_SEARCH_QCORE:
    case QC_SEARCH_ONESHOT_DP: return proxy_front_queue(s, function);
    case QC_SEARCH_GREEDY: return greedy_queue(s, function);
    case QC_SEARCH_RANDOM: return QC_OK;
    }
    return QC_FAIL_IN(function, QC_ERR_INTERNAL, "unknown algorithm %d", (int)s->opts.algorithm);
}
