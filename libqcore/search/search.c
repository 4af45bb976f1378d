/* The search object: options, creation, tell, the evaluation cache and the fronts it reports. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "qcore/qc_tensor.h"
#include "search/state.h"

enum { MAX_EVALUATIONS = 1000000, MAX_BUCKETS = 1 << 24 };
/* QCORE's initial design with a reference metric: two proxy-front points fix the surrogate's line
 * (m0, alpha); from there every proposal is placed by its expected hypervolume improvement, which spends
 * evaluations where the front can gain area, not on spreading over a cost range whose flat or
 * below-reference parts add none (MiniLM, 16 evaluations: 6 spread points left 3 that added nothing). */
enum { ADAPTIVE_INITIAL_POINTS = 2 };
static const uint64_t RANDOM_STREAM = 0x5345415243480000ull; /* "SEARCH" */
static const double MAX_PRIOR_WIDTH = 100;

/* The bytes of a struct of `version` (fields are only appended). */
static size_t options_size(unsigned version)
{
    return version == 1 ? offsetof(qc_search_options, prior_width) : sizeof(qc_search_options);
}

qc_status qc_search_options_init(qc_search_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_SEARCH_OPTIONS_VERSION, "qc_search_options", __func__));
    qc_search_options d = QC_SEARCH_OPTIONS_INIT;
    d.version = version;
    memcpy(opts, &d, options_size(version)); /* a version-1 struct ends before prior_width */
    return QC_OK;
}

static qc_status check_fidelities(const qc_search_options *o, const char *function)
{
    if (o->num_fidelities > QC__SEARCH_MAX_FIDELITIES)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': num_fidelities = %zu is above %d",
                          o->num_fidelities, QC__SEARCH_MAX_FIDELITIES);
    if (o->num_fidelities > 1 && o->fidelities == NULL)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': fidelities is NULL with num_fidelities = %zu",
                          o->num_fidelities);
    for (size_t i = 0; i < o->num_fidelities && o->num_fidelities > 1; i++) {
        double f = o->fidelities[i];
        if (!(isfinite(f) && f > 0))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': fidelities[%zu] = %g must be finite and > 0",
                              i, f);
        if (i > 0 && !(f > o->fidelities[i - 1]))
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                              "argument 'opts': fidelities must ascend, but fidelities[%zu] = %g follows %g", i, f,
                              o->fidelities[i - 1]);
    }
    return QC_OK;
}

static qc_status check_options(const qc_search_options *o, const char *function)
{
    if (o->version == 0 || o->version > QC_SEARCH_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION,
                          "argument 'opts': version = %u is unknown (this library knows 1..%d; use QC_SEARCH_OPTIONS_INIT)",
                          (unsigned)o->version, QC_SEARCH_OPTIONS_VERSION);
    if ((unsigned)o->algorithm > QC_SEARCH_ONESHOT_DP)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': algorithm = %d is unknown", (int)o->algorithm);
    if (o->max_evaluations == 0 || o->max_evaluations > MAX_EVALUATIONS)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': max_evaluations = %zu is outside [1, %d]",
                          o->max_evaluations, MAX_EVALUATIONS);
    if (o->cost_buckets == 0 || o->cost_buckets > MAX_BUCKETS)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': cost_buckets = %zu is outside [1, %d]",
                          o->cost_buckets, MAX_BUCKETS);
    if (o->eta < 2) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': eta = %u must be >= 2", o->eta);
    if (!(isfinite(o->noise) && o->noise >= 0))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': noise = %g must be finite and >= 0", o->noise);
    if (o->version >= 2 && !(isfinite(o->prior_width) && o->prior_width >= 0 && o->prior_width <= MAX_PRIOR_WIDTH))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': prior_width = %g is outside [0, %g]",
                          o->prior_width, MAX_PRIOR_WIDTH);
    if (isinf(o->reference_cost) || isinf(o->reference_metric))
        return QC_FAIL_IN(function, QC_ERR_NUMERIC, "argument 'opts': the reference point (%g, %g) is infinite",
                          o->reference_cost, o->reference_metric);
    return check_fidelities(o, function);
}

void qc_search_free(qc_search *s)
{
    if (s == NULL) return;
    qc_search_space_free(s->space);
    qc__plan_free(&s->plan);
    qc_search_front_free(s->evals);
    qc_search_front_free(s->pending);
    qc_search_front_free(s->queue);
    qc__surrogate_free(&s->surrogate);
    free(s->work);
    free(s);
}

static double largest_cost(const qc_search *s)
{
    double total = 0;
    for (size_t k = 0; k < s->plan.num_components; k++) {
        const qc__component *c = &s->plan.components[k];
        double most = -INFINITY;
        for (size_t o = 0; o < c->num_options; o++) {
            qc__plan_apply(&s->plan, k, c->options + o * c->num_units, s->work);
            double cost = 0;
            for (size_t i = 0; i < c->num_units; i++)
                for (size_t m = s->plan.unit_first[c->units[i]]; m < s->plan.unit_first[c->units[i] + 1]; m++) {
                    size_t t = s->plan.unit_members[m];
                    cost += s->space->cost[s->space->offset[t] + s->work[t]];
                }
            most = fmax(most, cost);
        }
        total += most;
    }
    return total;
}

/* initial_points 0: two with a reference metric (adaptive start), else 6..8 spread points by budget. */
static size_t default_initial_points(const qc_search *s)
{
    size_t budget = s->opts.max_evaluations / 4;
    if (qc__search_adaptive_start(s)) return ADAPTIVE_INITIAL_POINTS;
    return budget < 6 ? 6 : budget > 8 ? 8 : budget;
}

static qc_status setup(qc_search *s, const qc_search_space *space, const qc_search_options *o, const char *function)
{
    memset(&s->opts, 0, sizeof s->opts);
    memcpy(&s->opts, o, options_size(o->version));
    if (s->opts.prior_width == 0) s->opts.prior_width = 1;
    s->opts.version = QC_SEARCH_OPTIONS_VERSION; /* every field now set */
    s->num_fidelities = o->num_fidelities > 1 ? o->num_fidelities : 1;
    s->fidelity[0] = 1.0;
    if (o->num_fidelities > 1) memcpy(s->fidelity, o->fidelities, o->num_fidelities * sizeof(double));
    s->opts.fidelities = s->fidelity;
    s->opts.num_fidelities = s->num_fidelities;
    for (size_t k = 0; k < s->num_fidelities; k++) s->weight[k] = s->fidelity[k] / s->fidelity[s->num_fidelities - 1];
    s->initial_points = o->initial_points ? o->initial_points : default_initial_points(s);
    if (s->initial_points > o->max_evaluations) s->initial_points = o->max_evaluations;
    s->rc = o->reference_cost, s->rm = o->reference_metric;
    QC_TRY(qc__space_copy(&s->space, space, function));
    QC_TRY(qc__plan_build(&s->plan, s->space, function));
    s->work = malloc(space->num_tensors * sizeof *s->work);
    if (s->work == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a configuration");
    s->max_cost = largest_cost(s);
    QC_TRY(qc__front_create(&s->evals, space->num_tensors, function));
    QC_TRY(qc__front_create(&s->pending, space->num_tensors, function));
    QC_TRY(qc__front_create(&s->queue, space->num_tensors, function));
    return qc__search_plan_queue(s, function);
}

qc_status qc_search_create(qc_search **out, const qc_search_space *space, const qc_search_options *opts, qc_ctx *ctx)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    QC_CHECK_NOT_NULL(space);
    qc_search_options defaults = QC_SEARCH_OPTIONS_INIT;
    if (opts == NULL) opts = &defaults;
    QC_TRY(check_options(opts, __func__));
    qc_search *s = calloc(1, sizeof *s);
    if (s == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot allocate a search");
    s->ctx = ctx;
    qc_status st = setup(s, space, opts, __func__);
    if (st != QC_OK) {
        qc_search_free(s);
        return st;
    }
    *out = s;
    return QC_OK;
}

uint64_t qc__search_random(qc_search *s)
{
    uint64_t word;
    qc_random_bits(&word, 1, s->opts.seed, RANDOM_STREAM, s->draws++);
    return word;
}

size_t qc__search_count(const qc_search *s, size_t fidelity)
{
    size_t n = 0;
    for (size_t i = 0; i < s->evals->size; i++) n += s->evals->fidelity[i] == fidelity;
    for (size_t i = 0; i < s->pending->size; i++) n += s->pending->fidelity[i] == fidelity;
    return n;
}

int qc__search_known(const qc_search *s, const uint32_t *choice, size_t fidelity)
{
    return qc__front_find(s->evals, choice, fidelity) != SIZE_MAX ||
           qc__front_find(s->pending, choice, fidelity) != SIZE_MAX;
}

qc_status qc_search_ask(qc_search *s, uint32_t *choice, size_t *fidelity_index, int *done)
{
    QC_CHECK_NOT_NULL(s);
    QC_CHECK_NOT_NULL(choice);
    QC_CHECK_NOT_NULL(fidelity_index);
    QC_CHECK_NOT_NULL(done);
    *done = 1;
    if (qc__search_count(s, qc__search_full(s)) >= s->opts.max_evaluations) return QC_OK;
    int found = 0;
    size_t f = 0;
    QC_TRY(qc__search_propose(s, s->work, &f, &found, __func__));
    if (!found) return QC_OK;
    QC_TRY(qc__front_push(s->pending, s->work, NAN, NAN, f, __func__));
    memcpy(choice, s->work, s->space->num_tensors * sizeof *choice);
    *fidelity_index = f;
    *done = 0;
    return QC_OK;
}

static void remove_pending(qc_search *s, size_t i)
{
    qc_search_front *p = s->pending;
    size_t T = p->num_tensors, last = p->size - 1;
    memmove(p->choices + i * T, p->choices + (i + 1) * T, (last - i) * T * sizeof *p->choices);
    memmove(p->fidelity + i, p->fidelity + i + 1, (last - i) * sizeof *p->fidelity);
    memmove(p->cost + i, p->cost + i + 1, (last - i) * sizeof *p->cost);
    memmove(p->metric + i, p->metric + i + 1, (last - i) * sizeof *p->metric);
    p->size = last;
}

qc_status qc_search_tell(qc_search *s, const uint32_t *choice, size_t fidelity_index, double metric)
{
    QC_CHECK_NOT_NULL(s);
    QC_TRY(qc__space_check_choice(s->space, choice, __func__));
    if (fidelity_index >= s->num_fidelities)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'fidelity_index' = %zu is out of range (%zu fidelities)",
                       fidelity_index, s->num_fidelities);
    if (!isfinite(metric)) return QC_FAIL(QC_ERR_NUMERIC, "argument 'metric' = %g is not finite", metric);
    if (qc__front_find(s->evals, choice, fidelity_index) != SIZE_MAX)
        return QC_FAIL(QC_ERR_INVALID_ARG, "this configuration was already told at fidelity %zu", fidelity_index);
    int feasible;
    double cost;
    QC_TRY(qc__space_feasible(s->space, choice, &feasible, &cost, __func__));
    if (!feasible)
        return QC_FAIL(QC_ERR_INVALID_ARG,
                       "argument 'choice' breaks a tie, a forbidden combination or the check: it cannot be told");
    QC_TRY(qc__front_push(s->evals, choice, cost, metric, fidelity_index, __func__));
    size_t i = qc__front_find(s->pending, choice, fidelity_index);
    if (i != SIZE_MAX) remove_pending(s, i);
    return QC_OK;
}

static qc_status evaluate(qc_search *s, qc_search_eval_fn fn, void *user, size_t fidelity, const char *function)
{
    double metric = NAN;
    int r = fn(s->work, fidelity, s->fidelity[fidelity], &metric, user);
    if (r != 0) return QC_FAIL_IN(function, QC_ERR_CANCELLED, "the evaluation callback returned %d", r);
    if (!isfinite(metric))
        return QC_FAIL_IN(function, QC_ERR_NUMERIC, "the evaluation callback gave a metric of %g (not finite)", metric);
    return qc_search_tell(s, s->work, fidelity, metric);
}

qc_status qc_search_run(qc_search *s, qc_search_eval_fn fn, void *user)
{
    QC_CHECK_NOT_NULL(s);
    QC_CHECK_NOT_NULL(fn);
    uint32_t *choice = malloc(s->space->num_tensors * sizeof *choice);
    if (choice == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot allocate a configuration");
    qc_status st = QC_OK;
    for (;;) {
        size_t f;
        int done;
        st = qc_search_ask(s, choice, &f, &done);
        if (st != QC_OK || done) break;
        memcpy(s->work, choice, s->space->num_tensors * sizeof *choice);
        st = evaluate(s, fn, user, f, __func__);
        if (st == QC_OK && s->ctx)
            st = qc__progress(s->ctx, __func__, "search", qc__search_count(s, qc__search_full(s)),
                              s->opts.max_evaluations);
        if (st != QC_OK) break;
    }
    free(choice);
    return st;
}

void qc__search_reference_now(const qc_search *s, double *rc, double *rm)
{
    *rc = isnan(s->rc) ? s->max_cost : s->rc;
    *rm = s->rm;
    if (!isnan(*rm)) return;
    double lo = INFINITY, hi = -INFINITY;
    size_t n = 0, full = qc__search_full(s);
    for (size_t i = 0; i < s->evals->size && n < s->initial_points; i++)
        if (s->evals->fidelity[i] == full) lo = fmin(lo, s->evals->metric[i]), hi = fmax(hi, s->evals->metric[i]), n++;
    if (n == 0) return;
    *rm = hi > lo ? lo - 0.1 * (hi - lo) : lo - 1e-3 * (fabs(lo) + 1);
}

qc_status qc_search_reference(const qc_search *s, double *reference_cost, double *reference_metric)
{
    QC_CHECK_NOT_NULL(s);
    QC_CHECK_NOT_NULL(reference_cost);
    QC_CHECK_NOT_NULL(reference_metric);
    qc__search_reference_now(s, reference_cost, reference_metric);
    return QC_OK;
}

qc_status qc__search_full_front(qc_search_front **out, const qc_search *s, const char *function)
{
    qc_search_front *f;
    QC_TRY(qc__front_create(&f, s->space->num_tensors, function));
    qc_status st = QC_OK;
    for (size_t i = 0; st == QC_OK && i < s->evals->size; i++)
        if (s->evals->fidelity[i] == qc__search_full(s))
            st = qc__front_push(f, s->evals->choices + i * f->num_tensors, s->evals->cost[i], s->evals->metric[i],
                                s->evals->fidelity[i], function);
    if (st == QC_OK) st = qc__front_filter(f, function);
    if (st != QC_OK) {
        qc_search_front_free(f);
        return st;
    }
    *out = f;
    return QC_OK;
}

qc_status qc_search_evaluated_front(qc_search_front **out, const qc_search *s)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    QC_CHECK_NOT_NULL(s);
    return qc__search_full_front(out, s, __func__);
}

qc_status qc_search_evaluations(qc_search_front **out, const qc_search *s)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    QC_CHECK_NOT_NULL(s);
    qc_search_front *f;
    QC_TRY(qc__front_create(&f, s->space->num_tensors, __func__));
    for (size_t i = 0; i < s->evals->size; i++) {
        qc_status st = qc__front_push(f, s->evals->choices + i * f->num_tensors, s->evals->cost[i], s->evals->metric[i],
                                      s->evals->fidelity[i], __func__);
        if (st != QC_OK) {
            qc_search_front_free(f);
            return st;
        }
    }
    *out = f;
    return QC_OK;
}

qc_status qc_search_predicted_front(qc_search_front **out, const qc_search *s)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    QC_CHECK_NOT_NULL(s);
    qc__surrogate fit = {0};
    qc_status st = qc__surrogate_fit(&fit, s->space, s->evals, s->weight, s->opts.noise, s->opts.prior_width, __func__);
    double *loss = st == QC_OK ? malloc(fit.entries * sizeof *loss) : NULL;
    if (st == QC_OK && loss == NULL) st = QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot allocate the predicted losses");
    if (st == QC_OK) {
        qc__surrogate_losses(&fit, s->space, loss);
        st = qc__dp_front(out, s->space, &s->plan, loss, fit.mean[0], s->opts.cost_buckets, __func__);
    }
    free(loss);
    qc__surrogate_free(&fit);
    return st;
}
