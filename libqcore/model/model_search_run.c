/* A model search's space (qc_search.h) and the search over it: costs are stored bytes, proxies
 * qc_model_search_proxy's (the layer's or the model's squared relative output error), evaluations the
 * executor's metric on the first `fidelity` fraction of the evaluation batches. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_search_internal.h"

static const double MODEL_PROXY_PRIOR_WIDTH = 0.5; /* qc_search_options.prior_width for a model-level proxy */

static double cost_of(const qc_model_search *s, size_t t, uint32_t c, qc_model_cost cost)
{
    qc_model_candidate info;
    qc_model_search_candidate(s, t, c, &info);
    if (cost == QC_MODEL_COST_BIT_OPERATIONS) return info.bit_operations;
    if (cost == QC_MODEL_COST_ETHOSU_BYTES && info.ethosu_bytes > 0) return (double)info.ethosu_bytes;
    return (double)info.bytes;
}

static qc_status fill_layer(const qc_model_search *s, qc_search_space *space, size_t t, qc_model_cost cost)
{
    for (uint32_t c = 0; c < qcms__candidate_count(s, t); c++) {
        char label[300];
        qcms_cell cell = qcms__cell(s, t, c);
        const char *weight = s->work->layers[s->cand.layers[t]].weight, *twin = qcms__is_twin(s, c) ? ":unrotated" : "";
        if (cell.width == 0) snprintf(label, sizeof label, "%.250s:float", weight);
        else if (cell.lq_bits) snprintf(label, sizeof label, "%.250s:lq%d%s", weight, (int)cell.lq_bits, twin);
        else snprintf(label, sizeof label, "%.250s:w%d%s", weight, (int)cell.width, twin);
        QCM_TRY(qc_search_space_set_cost(space, t, c, cost_of(s, t, c, cost)));
        double proxy;
        QCM_TRY(qc_model_search_proxy(s, t, c, &proxy));
        QCM_TRY(qc_search_space_set_proxy(space, t, c, proxy));
        QCM_TRY(qc_search_space_set_label(space, t, c, label));
    }
    return QC_OK;
}

static qc_status check_cost(const qc_model_search *s, qc_model_cost cost)
{
    if (cost < QC_MODEL_COST_BYTES || cost > QC_MODEL_COST_ETHOSU_BYTES)
        return QCM_FAIL_IN("qc_model_search_space", QC_ERR_INVALID_ARG, "argument 'cost': %d is not a qc_model_cost", (int)cost);
    for (size_t k = 0; cost == QC_MODEL_COST_ETHOSU_BYTES && k < s->cand.num_layers * s->cand.num_widths; k++)
        if (s->cand.ethosu_bytes[k] > 0) return QC_OK;
    if (cost == QC_MODEL_COST_ETHOSU_BYTES)
        return QCM_FAIL_IN("qc_model_search_space", QC_ERR_INVALID_ARG,
                           "argument 'cost': Ethos-U bytes need the search's ethosu_config option (no candidate was packed)");
    return QC_OK;
}

qc_status qc_model_search_space(const qc_model_search *s, qc_model_cost cost, qc_search_space **out)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    QCM_CHECK_NOT_NULL(s);
    QCM_TRY(check_cost(s, cost));
    size_t n = s->cand.num_layers;
    uint32_t *counts = malloc(n * sizeof *counts);
    if (counts == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t t = 0; t < n; t++) counts[t] = (uint32_t)qcms__candidate_count(s, t);
    qc_search_space *space = NULL;
    qc_status st = qc_search_space_create(&space, n, counts);
    free(counts);
    for (size_t t = 0; st == QC_OK && t < n; t++) st = fill_layer(s, space, t, cost);
    if (st != QC_OK) {
        qc_search_space_free(space);
        return st;
    }
    *out = space;
    return QC_OK;
}

/* The search being run and the first evaluation failure, kept because qc_search_run reports its own. */
typedef struct run_state {
    qc_model_search *search;
    qc_status status;
    char message[512];
} run_state;

/* qc_search_eval_fn over qc_model_search_evaluate; a failure stops the search. */
static int evaluate(const uint32_t *choice, size_t fidelity_index, double fidelity, double *metric, void *user)
{
    run_state *state = user;
    (void)fidelity_index;
    state->status = qc_model_search_evaluate(state->search, choice, fidelity, metric);
    if (state->status != QC_OK) snprintf(state->message, sizeof state->message, "%s", qc_last_error());
    return state->status == QC_OK ? 0 : 1;
}

/* The options (NULL: the defaults) at the current version, prior_width 0 resolved from the proxy: a
 * model-level proxy (s->model_error) is measured in the model the metric runs, so the surrogate's prior
 * is narrowed to MODEL_PROXY_PRIOR_WIDTH (benchmarks/search_accuracy.py: MiniLM hypervolume at 16
 * evaluations 1.83 -> 1.98 x 1e5); the layer proxy keeps the default width. */
static qc_status with_prior_width(const qc_model_search *s, const qc_search_options *opts, qc_search_options *o)
{
    if (opts != NULL && (opts->version == 0 || opts->version > QC_SEARCH_OPTIONS_VERSION))
        return QCM_FAIL(QC_ERR_VERSION, "argument 'opts': version = %u is unknown (this library knows 1..%d)",
                        (unsigned)opts->version, QC_SEARCH_OPTIONS_VERSION);
    QCM_TRY(qc_search_options_init(o, QC_SEARCH_OPTIONS_VERSION));
    if (opts != NULL) memcpy(o, opts, opts->version == 1 ? offsetof(qc_search_options, prior_width) : sizeof *o);
    o->version = QC_SEARCH_OPTIONS_VERSION;
    if (o->prior_width == 0 && s->model_error != NULL) o->prior_width = MODEL_PROXY_PRIOR_WIDTH;
    return QC_OK;
}

qc_status qc_model_search_run(qc_model_search *s, const qc_search_space *space, const qc_search_options *opts,
                              qc_search **out)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(space);
    if (qc_search_space_num_tensors(space) != s->cand.num_layers)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'space': %zu tensors, but the search has %zu layers",
                        qc_search_space_num_tensors(space), s->cand.num_layers);
    if (s->num_batches == 0) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'search': no evaluation batch was added");
    qc_search_options o;
    QCM_TRY(with_prior_width(s, opts, &o));
    qc_search *search = NULL;
    QCM_TRY(qc_search_create(&search, space, &o, s->p->ctx));
    run_state state = {s, QC_OK, ""};
    qc_status st = qc_search_run(search, evaluate, &state);
    if (st != QC_OK) {
        qc_search_free(search);
        if (state.status != QC_OK && state.status != QC_ERR_CANCELLED)
            return QCM_FAIL(state.status, "evaluating a configuration: %s", state.message);
        return st;
    }
    *out = search;
    return QC_OK;
}
