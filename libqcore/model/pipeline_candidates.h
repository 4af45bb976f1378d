/* Internal: every searched layer's weight at each candidate width (pipeline_candidates.c). */
#ifndef QC_PIPELINE_CANDIDATES_H
#define QC_PIPELINE_CANDIDATES_H

#include "pipeline_internal.h"

typedef struct qcp_candidates {
    size_t num_layers;       /* searched layers: the pipeline's layers not in the recipe's keep_float */
    size_t *layers;          /* their pipeline indices */
    size_t num_widths;
    int32_t *widths;         /* candidate weight widths; 0: the float weight */
    float **weights;         /* [t * num_widths + w]: layer t's dequantized weight at widths[w], ONNX layout */
    int64_t *bytes;          /* its stored size (as qc_layer_report.weight_bytes) */
    double *output_error;    /* its qc_layer_report.output_error on the report rows (0 for float) */
    qc_model *eval_model;    /* the source model with the searched layers' activation quantizers */
} qcp_candidates;

/* Quantizes every searched layer at every width under `recipe` (one pass; its layer formats ignored). */
qc_status qcp__candidates(qc_pipeline *p, const qc_recipe *recipe, size_t num_widths, const int32_t *widths,
                          qcp_candidates *out, const char *function);

/* Frees what qcp__candidates filled; a zeroed struct is accepted. */
void qcp__candidates_free(qcp_candidates *c);

#endif
