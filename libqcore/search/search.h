/* Internal: the search space, its components (tensors linked by ties and forbidden combinations, with
 * their feasible joint choices enumerated), the DP, fronts and the search state. */
#ifndef QC_SEARCH_INTERNAL_H
#define QC_SEARCH_INTERNAL_H

#include <stdint.h>

#include "qcore/qc_search.h"

typedef struct qc__forbid {
    size_t n;
    size_t *tensors;
    uint32_t *candidates;
} qc__forbid;

struct qc_search_space {
    size_t num_tensors;
    uint32_t *num_candidates; /* [T] */
    size_t *offset;           /* [T + 1]: (t, c) is entry offset[t] + c of the tables */
    double *cost, *proxy;
    char **label;             /* per entry, NULL when unset */
    size_t *tie_parent;       /* union-find over tensors */
    qc__forbid *forbids;
    size_t num_forbids;
    qc_search_check_fn check;
    void *check_user;
};

/* A component: units (tie groups) linked by forbidden combinations, with its feasible joint choices. */
typedef struct qc__component {
    size_t num_units;
    size_t *units;        /* unit ids */
    size_t num_options;
    uint32_t *options;    /* [num_options][num_units]: each unit's candidate */
} qc__component;

/* The space's structure: units are tie groups (the candidate of a unit is every member's); components
 * group units. */
typedef struct qc__plan {
    size_t num_units;
    size_t *unit_of;            /* [T] */
    size_t *unit_first;         /* [units + 1], members in unit_members */
    size_t *unit_members;       /* [T] */
    uint32_t *unit_candidates;  /* [units] */
    size_t num_components;
    qc__component *components;
} qc__plan;

qc_status qc__plan_build(qc__plan *plan, const qc_search_space *space, const char *function);
void qc__plan_free(qc__plan *plan);
/* Writes the unit candidates `option` of component k into choice [T]. */
void qc__plan_apply(const qc__plan *plan, size_t k, const uint32_t *option, uint32_t *choice);

qc_status qc__space_copy(qc_search_space **out, const qc_search_space *space, const char *function);
/* 1 when choice violates no forbidden combination and every tie; no range check. */
int qc__space_structurally_ok(const qc_search_space *space, const uint32_t *choice);
double qc__space_cost(const qc_search_space *space, const uint32_t *choice);
/* Feasibility with the check: 1 / 0, or QC_ERR_CANCELLED (as negative status) when the check aborts. */
qc_status qc__space_feasible(const qc_search_space *space, const uint32_t *choice, int *feasible, double *cost,
                             const char *function);
qc_status qc__space_check_choice(const qc_search_space *space, const uint32_t *choice, const char *function);

/* A list of configurations with cost, metric and fidelity. */
struct qc_search_front {
    size_t num_tensors;
    size_t size, capacity;
    uint32_t *choices;
    double *cost, *metric;
    size_t *fidelity;
};

qc_status qc__front_create(qc_search_front **out, size_t num_tensors, const char *function);
qc_status qc__front_push(qc_search_front *front, const uint32_t *choice, double cost, double metric,
                         size_t fidelity, const char *function);
/* Keeps the non-dominated points (lower cost, higher metric; first of equal points), sorted by cost. */
qc_status qc__front_filter(qc_search_front *front, const char *function);
/* Index of `choice` at `fidelity` (SIZE_MAX for any fidelity), or SIZE_MAX. */
size_t qc__front_find(const qc_search_front *front, const uint32_t *choice, size_t fidelity);

/* The DP: for loss [entries] (per (tensor, candidate), in the space's table layout), the least-loss
 * configuration of each cost bucket, non-dominated, metric = offset - loss. */
qc_status qc__dp_front(qc_search_front **out, const qc_search_space *space, const qc__plan *plan,
                       const double *loss, double offset, size_t cost_buckets, const char *function);

/* Hypervolume of the points of `front` (any order) against the reference; no checks. */
double qc__hypervolume(const double *cost, const double *metric, size_t n, double rc, double rm);
/* Expected hypervolume improvement of a point at cost c with metric ~ N(mean, sd^2) over the
 * non-dominated, cost-sorted points (cost, metric) of a front. */
double qc__ehvi(const double *cost, const double *metric, size_t n, double rc, double rm, double c, double mean,
                double sd);

/* The additive Bayesian surrogate. */
typedef struct qc__surrogate {
    size_t entries;   /* table entries */
    size_t params;    /* 2 + tensors + entries */
    double m0, alpha; /* prior means' fit */
    double *mean;     /* [params] posterior mean: m0, alpha, scale per tensor, delta per entry */
    double *cov;      /* [params^2] posterior covariance */
    double noise;     /* std */
    double width;     /* prior_width of the fit */
    int fitted;
} qc__surrogate;

/* Fits on every evaluation, evaluation i weighted weight[fidelity index of i]; noise 0: automatic;
 * prior_width (> 0) multiplies the prior std of the tensor scales and entry corrections. */
qc_status qc__surrogate_fit(qc__surrogate *s, const qc_search_space *space, const qc_search_front *evals,
                            const double *weight, double noise, double prior_width, const char *function);
void qc__surrogate_free(qc__surrogate *s);
/* Predicted metric mean and std (without noise) of a configuration. */
void qc__surrogate_predict(const qc__surrogate *s, const qc_search_space *space, const uint32_t *choice,
                           double *mean, double *sd);
/* For moves from `choice`: g [params] = cov phi(choice), and its predicted mean and variance. */
void qc__surrogate_base(const qc__surrogate *s, const qc_search_space *space, const uint32_t *choice, double *g,
                        double *mean, double *var);
/* The prediction after moving tensors members[0..count) (one tie group) from candidate `from` to `to`, updated
 * from qc__surrogate_base's output in O(count^2); idx, val: scratch of 1 + 3 count entries. */
void qc__surrogate_move(const qc__surrogate *s, const qc_search_space *space, const double *g, double base_mean,
                        double base_var, const size_t *members, size_t count, uint32_t from, uint32_t to,
                        size_t *idx, double *val, double *mean, double *sd);
/* Per-entry predicted loss ((alpha + scale_t) * proxy + delta) into loss [entries]. */
void qc__surrogate_losses(const qc__surrogate *s, const qc_search_space *space, double *loss);

#endif
