/* Internal: every searched layer's weight at each candidate width (pipeline_candidates.c). */
#ifndef QC_PIPELINE_CANDIDATES_H
#define QC_PIPELINE_CANDIDATES_H

#include "pipeline_internal.h"

typedef struct qcp_candidates {
    size_t num_layers;       /* searched layers: the pipeline's layers not in the recipe's keep_float */
    size_t *layers;          /* their pipeline indices */
    size_t num_widths;       /* candidates per layer: the widths, then the LQ candidates */
    int32_t *widths;         /* candidate weight widths; 0: the float weight; an LQ candidate's K */
    int32_t *lq_bits;        /* K of an LQ candidate (qc_model.h, "LQ weights in a recipe"); 0: a uniform width */
    float **weights;         /* [t * num_widths + w]: layer t's dequantized weight at widths[w], ONNX layout */
    int64_t *bytes;          /* its stored size (as qc_layer_report.weight_bytes) */
    double *output_error;    /* its qc_layer_report.output_error on the report rows (0 for float) */
    int64_t *ethosu_bytes;   /* its Ethos-U stream size (0: not asked for, a float weight, or beyond int8) */
    double *macs;            /* [t]: layer t's multiply-accumulates per sample */
    float *act_scale;        /* [t]: layer t's input quantizer scale (unused with float activations) */
    int *act_signed;         /* [t]: whether that quantizer is signed */
    qc_model *eval_model;    /* the source model with the searched layers' activation quantizers */
} qcp_candidates;

/* The candidate formats of a search: uniform widths, then LQ bits. */
typedef struct qcp_formats {
    size_t num_widths;
    const int32_t *widths;
    size_t num_lq;
    const int32_t *lq_bits;
} qcp_formats;

/* Quantizes every searched layer at every width and LQ bits under `recipe` (one pass; its layer formats
 * ignored); with ethosu_config (a qc_ethosu_config, or 0 for none) each integer candidate is also packed. */
qc_status qcp__candidates(qc_pipeline *p, const qc_recipe *recipe, const qcp_formats *formats, int32_t ethosu_config,
                          qcp_candidates *out, const char *function);

/* Layer i's Ethos-U stream size for `config` from the run's current integer weights (0 when a weight is
 * beyond -255..255 after its zero point). */
qc_status qcp__candidate_ethosu_bytes(const qcp_run *r, size_t i, int32_t config, int64_t *out);

/* c->macs from one float run of the first calibration batch. */
qc_status qcp__candidate_macs(qcp_run *r, qcp_candidates *c);

/* Frees what qcp__candidates filled; a zeroed struct is accepted. */
void qcp__candidates_free(qcp_candidates *c);

#endif
