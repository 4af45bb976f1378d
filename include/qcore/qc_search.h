/*
 * qc_search.h: mixed-precision search. Which of its candidate formats each tensor gets, traded between a
 * cost (lower is better, e.g. bytes) and a metric (higher is better, e.g. accuracy). Model-independent:
 * the caller describes the space with tables and evaluates configurations through a callback or through
 * ask/tell. Since 1.4.
 *
 * The space: T tensors (decision variables); tensor t has C_t candidate formats 0..C_t-1. A configuration
 * is uint32_t choice[T]. Each (tensor, candidate) carries
 *   - a cost; a configuration's cost is the sum over tensors (optionally replaced by the check callback);
 *   - a proxy loss >= 0: the predicted metric drop when this tensor alone takes this candidate (0 for the
 *     reference, e.g. float). The proxy model of a configuration is metric ~ m0 - sum_t loss_t(choice_t).
 * Constraints: tie groups (tensors that must take the same candidate index), forbidden combinations
 * (these tensors at these candidates all at once), and an optional whole-configuration check. Tensors
 * linked by ties and forbidden combinations form components whose feasible joint choices are enumerated
 * (at most QC_SEARCH_MAX_COMPONENT_OPTIONS each); components are independent of each other.
 *
 * The proxy front (qc_search_dp_front): a multiple-choice knapsack dynamic programme over the components,
 * with the cost discretised into buckets, gives the configuration of least total proxy loss for every
 * cost bucket, then keeps the non-dominated ones. Exact when the costs are integers and the bucket width
 * is 1 (cost_buckets = max total cost - min total cost).
 *
 * The search (qc_search_create, ask/tell or run) with algorithm QC_SEARCH_QCORE:
 *   1. evaluate points of the proxy front spread over the cost range (the calibration set; initial_points,
 *      by default 6..8 by budget); with a reference metric, only the part cheaper than the reference cost
 *      (a point at it bounds no hypervolume), starting from its costliest point, each next point the
 *      farthest in cost from those asked, and none cheaper than a front point that fell below the
 *      reference metric; by default only two there, enough to fix m0 and alpha below, so that every
 *      later point is placed by its hypervolume improvement (step 3) rather than by spread;
 *   2. fit an additive Bayesian linear surrogate on the evaluations:
 *        metric = m0 - sum_t (alpha + s_t) loss_t(choice_t) - sum_t delta_t(choice_t) + noise,
 *      the prior centred on the proxy (m0, alpha from a least-squares line; each tensor's sensitivity
 *      s_t ~ N(0, alpha^2); delta_t(c) ~ N(0, (alpha (0.5 loss_t(c) + 0.01 mean loss))^2)); an evaluation at
 *      fidelity f counts with weight f / f_full (noise variance noise^2 f_full / f); noise 0 (automatic) is
 *      1e-3 of the metric range, or the residuals' level when larger;
 *   3. propose, among the surrogate's own DP front and every single-tensor (single tie group) move from
 *      the evaluated front, the feasible, not yet evaluated configuration of highest expected hypervolume
 *      improvement (EHVI) of the (cost, metric) front, taking first those whose predicted mean itself
 *      improves it (above the reference metric, not dominated by an evaluation): a long shot whose EHVI
 *      comes from a wide spread is asked only when no candidate is expected to gain; a candidate's
 *      prediction is held under the least metric evaluated on a configuration whose every tensor has no
 *      more proxy loss (plus 3 noise std), and candidates so held below the reference metric are not
 *      proposed;
 *   4. with several fidelities, new proposals start at the cheapest one and are promoted one fidelity up
 *      while they are non-dominated among the evaluations at their fidelity (asynchronous successive
 *      halving: a configuration is promoted when it is non-dominated at its fidelity and fewer than 1 in
 *      eta of that fidelity's evaluations have been promoted; fidelity k allows max_evaluations *
 *      eta^(full - k) evaluations); only full-fidelity evaluations make the front and count towards
 *      max_evaluations.
 * Baselines in the same interface: QC_SEARCH_RANDOM (uniform feasible configurations),
 * QC_SEARCH_GREEDY (AIMET-AMP-like: single-tensor moves sorted by proxy loss per cost saved, applied
 * cumulatively from the reference; prefixes evaluated in bisection order) and QC_SEARCH_ONESHOT_DP
 * (HAWQ-like: proxy-front points spread over cost, in bisection order). Baselines evaluate at full
 * fidelity only.
 * Every search is deterministic for a seed, never asks for a (choice, fidelity) twice, and every asked
 * configuration respects ties, forbidden combinations and the check. It never stops at the first
 * configuration that meets some bar: it runs until max_evaluations full evaluations or until no
 * unevaluated feasible proposal remains.
 */
#ifndef QC_SEARCH_H
#define QC_SEARCH_H

#include <math.h>

#include "qcore/qc_core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most feasible joint choices one component (tensors linked by ties and forbidden combinations) may
 * have; larger components give QC_ERR_UNSUPPORTED. */
#define QC_SEARCH_MAX_COMPONENT_OPTIONS 65536

typedef struct qc_search_space qc_search_space;

/* Whole-configuration check: `choice` [T] (borrowed); *cost holds the additive cost and may be replaced
 * by the true cost. Returns 1 when the configuration is allowed, 0 when not, < 0 to abort the calling
 * function (which then returns QC_ERR_CANCELLED). */
typedef int (*qc_search_check_fn)(const uint32_t *choice, double *cost, void *user);

/* A space of num_tensors tensors (>= 1), tensor t with num_candidates[t] >= 1 candidates (borrowed,
 * copied). Costs and proxies start at 0. `out` receives a space owned by the caller (qc_search_space_free). */
QC_API qc_status qc_search_space_create(qc_search_space **out, size_t num_tensors, const uint32_t *num_candidates);
/* Frees a space; NULL is accepted. A search made from it keeps its own copy. */
QC_API void qc_search_space_free(qc_search_space *space);
/* The cost of `tensor` at `candidate` (finite). */
QC_API qc_status qc_search_space_set_cost(qc_search_space *space, size_t tensor, uint32_t candidate, double cost);
/* The proxy loss of `tensor` at `candidate` (finite, >= 0). */
QC_API qc_status qc_search_space_set_proxy(qc_search_space *space, size_t tensor, uint32_t candidate, double loss);
/* A name for the candidate in JSON output (borrowed, copied; at most 255 bytes). */
QC_API qc_status qc_search_space_set_label(qc_search_space *space, size_t tensor, uint32_t candidate,
                                           const char *label);
/* Ties `n` >= 2 distinct tensors (borrowed) to the same candidate index; they must have equal candidate
 * counts. Ties are transitive. */
QC_API qc_status qc_search_space_tie(qc_search_space *space, size_t n, const size_t *tensors);
/* Forbids configurations in which tensors[i] takes candidates[i] for every i < n (n >= 1, distinct
 * tensors; both arrays borrowed). */
QC_API qc_status qc_search_space_forbid(qc_search_space *space, size_t n, const size_t *tensors,
                                        const uint32_t *candidates);
/* Installs (fn = NULL removes) the whole-configuration check; `user` is borrowed. */
QC_API qc_status qc_search_space_set_check(qc_search_space *space, qc_search_check_fn fn, void *user);
/* The number of tensors, and the candidate count of one tensor (0 when out of range). */
QC_API size_t qc_search_space_num_tensors(const qc_search_space *space);
QC_API uint32_t qc_search_space_num_candidates(const qc_search_space *space, size_t tensor);
/* The additive cost and the summed proxy loss of `choice` [T] (borrowed); QC_ERR_INVALID_ARG names an
 * out-of-range candidate. Ties, forbidden combinations and the check are not applied. */
QC_API qc_status qc_search_space_evaluate(const qc_search_space *space, const uint32_t *choice, double *cost,
                                          double *proxy);
/* *feasible = 1 when `choice` respects ties, forbidden combinations and the check (which may set *cost,
 * else the additive cost; cost may be NULL), else 0. */
QC_API qc_status qc_search_space_feasible(const qc_search_space *space, const uint32_t *choice, int *feasible,
                                          double *cost);

/* The single-tensor output-error proxy of quantizing a weight W [rows, cols] (f32, row-major) to Wq:
 *     loss = tr(E H E^T) / tr(W H W^T),   E = W - Wq,
 * with H [cols, cols] (f64, symmetric positive semi-definite) the second moment of the layer's inputs
 * (X^T X / n), so that loss is the relative output error ||X E^T||^2 / ||X W^T||^2; H = NULL uses the
 * identity (relative weight error, 1/SQNR). Multiply by a sensitivity (e.g. the metric lost per unit of
 * relative error) before set_proxy if wanted. QC_ERR_NUMERIC for NaN/Inf or a zero denominator. */
QC_API qc_status qc_search_proxy_output_error(double *loss, qc_ctx *ctx, const float *w, const float *wq,
                                              size_t rows, size_t cols, const double *h);

/* ---------------------------------------------------------------------------------------------
 * Fronts: sets of configurations with a cost, a metric and the fidelity index it was measured at.
 */
typedef struct qc_search_front qc_search_front;

/* Number of points, and the tensors per point. */
QC_API size_t qc_search_front_size(const qc_search_front *front);
QC_API size_t qc_search_front_num_tensors(const qc_search_front *front);
/* Point i (points are sorted by increasing cost): *choice points into the front (valid until it is
 * freed); any output may be NULL. */
QC_API qc_status qc_search_front_point(const qc_search_front *front, size_t i, const uint32_t **choice,
                                       double *cost, double *metric, size_t *fidelity_index);
/* Frees a front; NULL is accepted. */
QC_API void qc_search_front_free(qc_search_front *front);

/* The proxy front for every budget (see the top of this file): metric = -(summed proxy loss), fidelity
 * index 0, additive costs; ties and forbidden combinations are respected, the check callback is not
 * applied. cost_buckets >= 1 (at most 2^24) sets the resolution. `out` is owned by the caller. */
QC_API qc_status qc_search_dp_front(qc_search_front **out, const qc_search_space *space, size_t cost_buckets);

/* The area dominated by the n points (cost[i], metric[i]) (borrowed) and bounded by the reference point:
 * the measure of {(c, m): c <= reference_cost, m >= reference_metric, some point has cost <= c and
 * metric >= m}. Points beyond the reference add nothing. NaN anywhere gives QC_ERR_NUMERIC. */
QC_API qc_status qc_search_hypervolume(double *out, const double *cost, const double *metric, size_t n,
                                       double reference_cost, double reference_metric);

/* ---------------------------------------------------------------------------------------------
 * The search.
 */
typedef enum qc_search_algorithm {
    QC_SEARCH_QCORE = 0,
    QC_SEARCH_RANDOM = 1,
    QC_SEARCH_GREEDY = 2,
    QC_SEARCH_ONESHOT_DP = 3
} qc_search_algorithm;

#define QC_SEARCH_OPTIONS_VERSION 2

/* Initialise with QC_SEARCH_OPTIONS_INIT or qc_search_options_init; fields are only ever appended. */
typedef struct qc_search_options {
    uint32_t version;              /* QC_SEARCH_OPTIONS_VERSION */
    qc_search_algorithm algorithm; /* default QC_SEARCH_QCORE */
    uint64_t seed;                 /* every random draw; default 0 */
    size_t max_evaluations;        /* full-fidelity evaluations, >= 1; default 32 */
    size_t num_fidelities;         /* 0 or 1: one fidelity (1.0); else the length of `fidelities` */
    const double *fidelities;      /* borrowed, copied: ascending, > 0, the last is the full one */
    double reference_cost;         /* hypervolume reference point; NaN (default): the largest and smallest */
    double reference_metric;       /*   the space allows, from the costs and the first evaluations */
    size_t cost_buckets;           /* DP resolution, 1..2^24; default 1024 */
    size_t initial_points;         /* QCORE: proxy-front points evaluated first; 0 (default): 2 with a reference
                                      metric, else 6..8 by budget */
    double noise;                  /* QCORE: metric noise std; 0 (default): 1e-3 * the evaluated metric range */
    uint32_t eta;                  /* successive halving: keep 1 in eta at each fidelity, >= 2; default 3 */
    /* version 2 (libqcore 1.6); a version-1 struct gets 0 */
    double prior_width;            /* QCORE: how far the surrogate's prior lets each tensor's loss stray from
                                      its proxy, as a multiple of the default width (a tensor's sensitivity 0..2x
                                      the proxy's and each entry's within a factor ~2, one std); finite, 0..100.
                                      Narrower suits an accurate proxy: fewer evaluations go to testing it.
                                      0 (default): 1; qc_model_search_run: 0.5 for a model-level proxy */
} qc_search_options;

#define QC_SEARCH_OPTIONS_INIT { QC_SEARCH_OPTIONS_VERSION, QC_SEARCH_QCORE, 0, 32, 0, NULL, NAN, NAN, 1024, 0, 0.0, 3, 0.0 }

/* Fills `opts` with the defaults of struct version `version`. */
QC_API qc_status qc_search_options_init(qc_search_options *opts, unsigned version);

typedef struct qc_search qc_search;

/* A search over a copy of `space` (borrowed; its check callback and user pointer are kept, and must stay
 * valid). opts NULL: defaults. ctx (borrowed, may be NULL) receives progress ("search", full evaluations,
 * max) and logs from qc_search_run. QC_ERR_INVALID_ARG when no configuration is feasible. */
QC_API qc_status qc_search_create(qc_search **out, const qc_search_space *space, const qc_search_options *opts,
                                  qc_ctx *ctx);
/* Frees a search; NULL is accepted. */
QC_API void qc_search_free(qc_search *search);

/* The next configuration to evaluate: choice [T] (written), *fidelity_index. *done = 1 (choice untouched)
 * when the budget is spent or nothing feasible is left. A configuration asked and not yet told is not
 * asked again. */
QC_API qc_status qc_search_ask(qc_search *search, uint32_t *choice, size_t *fidelity_index, int *done);
/* Records the metric (finite) of `choice` (borrowed) at `fidelity_index`: usually an asked one, but any
 * feasible configuration is accepted. Telling a (choice, fidelity) twice is QC_ERR_INVALID_ARG. */
QC_API qc_status qc_search_tell(qc_search *search, const uint32_t *choice, size_t fidelity_index, double metric);

/* Evaluates `choice` [T] at fidelity `fidelity` (index fidelity_index) into *metric. Returns 0 on success;
 * anything else stops qc_search_run with QC_ERR_CANCELLED. */
typedef int (*qc_search_eval_fn)(const uint32_t *choice, size_t fidelity_index, double fidelity, double *metric,
                                 void *user);
/* Asks, evaluates with fn and tells until done. */
QC_API qc_status qc_search_run(qc_search *search, qc_search_eval_fn fn, void *user);

/* The evaluated non-dominated set at full fidelity (owned by the caller). */
QC_API qc_status qc_search_evaluated_front(qc_search_front **out, const qc_search *search);
/* The front the surrogate fitted on the evaluations so far predicts over the whole space, by the DP
 * (metric = predicted mean, additive costs, check callback not applied; any algorithm). */
QC_API qc_status qc_search_predicted_front(qc_search_front **out, const qc_search *search);
/* Every evaluation told so far, in order (owned by the caller; not filtered, not sorted). */
QC_API qc_status qc_search_evaluations(qc_search_front **out, const qc_search *search);
/* The reference point in use (resolved from NaN options once known; NaN until then). */
QC_API qc_status qc_search_reference(const qc_search *search, double *reference_cost, double *reference_metric);
/* Writes the space, the options (prior_width as resolved), every evaluation, the front and the predicted
 * front as JSON to `path`, atomically (a temporary file in the same folder, then rename). */
QC_API qc_status qc_search_write_json(const qc_search *search, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* QC_SEARCH_H */
