/* Internal: the model search handle (qc_model.h), shared by model_search.c and model_search_eval.c. */
#ifndef QC_MODEL_SEARCH_INTERNAL_H
#define QC_MODEL_SEARCH_INTERNAL_H

#include "pipeline_candidates.h"

struct qc_model_search {
    qc_pipeline *p;
    qc_recipe recipe;             /* the base recipe (keep_float borrowed from the caller's, copied below) */
    char **keep;                  /* owned copies of the recipe's keep_float names */
    qcp_rotated rotated;          /* the recipe's rotated model and its inner pipeline (empty without rotation) */
    qc_pipeline *work;            /* the pipeline the candidates come from: p, or rotated.inner */
    qcp_candidates cand;          /* layer indices are work's */
    qc_session *eval;             /* over cand.eval_model: the configuration's weights swapped in */
    qc_session *fp;               /* over the source model (never rotated): reference outputs when there are no labels */
    qcp_batch *batches;
    int64_t **labels;             /* per batch, NULL when the batches have none */
    float **reference;            /* per batch: the float model's first output, computed on first use */
    size_t num_batches;
    const char *output;           /* the first graph output's name (borrowed from the model) */
    qc_layer_format *formats;     /* qc_model_search_recipe's */
};

/* QC_ERR_INVALID_ARG unless `layer` is a searched layer and `candidate` one of its candidates. */
qc_status qcms__check_candidate(const qc_model_search *s, size_t layer, uint32_t candidate, const char *function);

#endif
