/* Internal: the state of one search (ask/tell). */
#ifndef QC_SEARCH_STATE_H
#define QC_SEARCH_STATE_H

#include <math.h>

#include "search/search.h"

enum { QC__SEARCH_MAX_FIDELITIES = 16 };

struct qc_search {
    qc_search_space *space;   /* owned copy */
    qc__plan plan;
    qc_search_options opts;   /* fidelities points at `fidelity` */
    double fidelity[QC__SEARCH_MAX_FIDELITIES];
    size_t num_fidelities;    /* >= 1; the last is full */
    double weight[QC__SEARCH_MAX_FIDELITIES]; /* surrogate weight of an evaluation: fidelity / full fidelity */
    qc_ctx *ctx;              /* borrowed, may be NULL */
    qc_search_front *evals;   /* told, in order */
    qc_search_front *pending; /* asked and not told */
    qc_search_front *queue;   /* planned configurations (initial points, baselines' paths) */
    size_t queue_next;
    size_t initial_points;
    uint64_t draws;           /* random words used */
    double max_cost;          /* the largest additive cost the space allows */
    double rc, rm;            /* reference point, NaN until resolved */
    qc__surrogate surrogate;
    uint32_t *work;           /* [T] scratch */
};

/* Full-fidelity index. */
static inline size_t qc__search_full(const qc_search *s)
{
    return s->num_fidelities - 1;
}

/* Evaluations (told and pending) at fidelity f. */
size_t qc__search_count(const qc_search *s, size_t fidelity);
/* 1 when (choice, fidelity) is told or pending (fidelity SIZE_MAX: at any fidelity). */
int qc__search_known(const qc_search *s, const uint32_t *choice, size_t fidelity);
/* The reference point for hypervolumes now: the options', else resolved from the evaluations. */
void qc__search_reference_now(const qc_search *s, double *rc, double *rm);
/* The evaluated full-fidelity front (owned by the caller). */
qc_status qc__search_full_front(qc_search_front **out, const qc_search *s, const char *function);
/* A uniform random word of the search's stream. */
uint64_t qc__search_random(qc_search *s);

/* 1 when QCORE starts from the reference's end of the proxy front (a reference metric is set). */
static inline int qc__search_adaptive_start(const qc_search *s)
{
    return s->opts.algorithm == QC_SEARCH_QCORE && !isnan(s->opts.reference_metric);
}

/* Builds the planned queue of the algorithm (QCORE: initial points; baselines: their paths). */
qc_status qc__search_plan_queue(qc_search *s, const char *function);
/* The next configuration to ask, or *found = 0. */
qc_status qc__search_propose(qc_search *s, uint32_t *choice, size_t *fidelity, int *found, const char *function);

#endif
