/* Internal: the model search handle (qc_model.h), shared by model_search.c and model_search_eval.c. */
#ifndef QC_MODEL_SEARCH_INTERNAL_H
#define QC_MODEL_SEARCH_INTERNAL_H

#include "pipeline_candidates.h"

struct qc_model_search {
    qc_pipeline *p;
    qc_recipe recipe;             /* the base recipe (keep_float borrowed from the caller's, copied below) */
    char **keep;                  /* owned copies of the recipe's keep_float names */
    char **unrotated;             /* and of its unrotated names (version 5) */
    qcp_rotated rotated;          /* the recipe's rotated model and its inner pipeline (empty without rotation) */
    qc_pipeline *work;            /* the pipeline the candidates come from: p, or rotated.inner */
    qcp_candidates cand;          /* layer indices are work's */
    qc_session *eval;             /* over cand.eval_model: the configuration's weights swapped in */
    qc_session *fp;               /* over the source model (never rotated): reference outputs when there are no labels
                                     (created by the first add_batch without labels) */
    qcp_batch *batches;
    int64_t **labels;             /* per batch, NULL when the batches have none */
    float **reference;            /* per batch without labels: the float model's output, computed at add_batch */
    size_t num_batches;
    int64_t classes;              /* the output's columns (top-1 classes) once a run of the evaluation session
                                     has read them; 0 before */
    const char *output;           /* the first graph output's name (borrowed from the model) */
    qc_layer_format *formats;     /* qc_model_search_recipe's: [num_layers] layer formats, then [num_layers] LQ layers */
    double *model_error;          /* [t * num_widths + c]: QC_MODEL_PROXY_MODEL's squared relative output
                                     error (model_search_proxy.c); NULL for the layer proxy */
    /* rotation_choice (model_search_twins.c); all NULL / 0 without it */
    qcp_rotated plain;            /* the model with norms folded and no layer rotated, and its pipeline */
    qcp_candidates twins;         /* plain's candidates (layer indices are plain.inner's) */
    size_t *twin_of;              /* [t]: layer t's index in twins, SIZE_MAX when t has no twins */
    size_t *twin_width;           /* [k]: the candidate index of twin k (every candidate but the float one) */
    size_t num_twin_widths;
    struct qcms_path *paths;      /* [t]: layer t's unrotated path in cand.eval_model (model_search_paths.c) */
    float *zeros;                 /* the largest twinned layer's weight count of zeros: the unchosen path */
    const char **unrotated_choice;/* qc_model_search_recipe's unrotated list */
};

/* A twinned layer's unrotated path in the evaluation model; all NULL when the layer has none. */
typedef struct qcms_path {
    char *weight;                 /* the path's weight initializer */
    char *bias;                   /* the layer's bias initializer (a Gemm's C), NULL when the path has none */
    char *path_bias;              /* the path's own bias initializer */
    float *bias_values;           /* the bias */
    int32_t bias_ndim;
    int64_t bias_dims[QC_MAX_DIMS];
} qcms_path;

/* One candidate of a searched layer: its weight as the evaluation session takes it, and its figures. */
typedef struct qcms_cell {
    const float *weight;
    int64_t bytes;
    double output_error;
    int64_t ethosu_bytes;
    int32_t width;                /* 0: float; an LQ candidate's K */
    int32_t lq_bits;              /* K of an LQ candidate; 0: a uniform width or float */
} qcms_cell;

/* Candidate c of searched layer t: the options' widths first, then its LQ bits, then (rotation_choice) the
 * unrotated twins of every candidate but the float weight. */
qcms_cell qcms__cell(const qc_model_search *s, size_t t, uint32_t c);
size_t qcms__candidate_count(const qc_model_search *s, size_t t);
/* Whether candidate c is an unrotated twin (c >= num_widths). */
int qcms__is_twin(const qc_model_search *s, uint32_t c);

/* Whether the recipe allows rotation_choice (a rotation, no unrotated list of its own). */
qc_status qcms__check_twins(const qc_model_search *s, const char *function);
/* Builds the twins for rotation_choice, after the candidates and before the evaluation session: each
 * twinned layer gets its unrotated path in cand.eval_model (qcms__add_paths). */
qc_status qcms__twins(qc_model_search *s, const qc_model_search_options *o, const qcp_formats *formats,
                      const char *function);
void qcms__twins_free(qc_model_search *s);
/* The unrotated path of every searched layer t with source[t] (the rotation's input x; NULL: no twins),
 * into cand.eval_model, then sorted; qcms__paths_free frees what it keeps. */
qc_status qcms__add_paths(qc_model_search *s, const char *const *source, const char *function);
void qcms__paths_free(qc_model_search *s);

/* Searched layer t's candidate c into the evaluation session: its weight (and bias) on the path it belongs
 * to, and zeros on the other for a twinned layer. */
qc_status qcms__swap_in(qc_model_search *s, size_t t, uint32_t c);
/* Layer t's unrotated path off (zero weight, the bias on the rotated node); nothing without a path. */
qc_status qcms__path_off(qc_model_search *s, size_t t);

/* QC_ERR_INVALID_ARG unless `layer` is a searched layer and `candidate` one of its candidates. */
qc_status qcms__check_candidate(const qc_model_search *s, size_t layer, uint32_t candidate, const char *function);

/* The output's class count from a run of `batch` whose output has one row per sample (its columns); other
 * shapes say nothing of classes and leave it. */
void qcms__learn_classes(qc_model_search *s, const qcp_batch *batch, int64_t rows, int64_t cols);

/* The first output of the session's last run, `name`, as [rows, cols] float32. */
qc_status qcms__output_rows(const qc_session *session, const char *name, int64_t *rows, int64_t *cols, const float **data,
                            const char *function);

/* Fills s->model_error from the first `proxy_batches` (0: all) of the pipeline's calibration batches (at
 * create; qc_model_search_measure_proxy measures on the evaluation batches), the evaluation session holding
 * float weights before and, on success, after; `scaled`: measured at the lowest integer width only, the
 * others scaled by the layer errors' ratios (QC_MODEL_PROXY_MODEL_SCALED). */
qc_status qcms__model_proxy(qc_model_search *s, size_t proxy_batches, int scaled, const char *function);

#endif
