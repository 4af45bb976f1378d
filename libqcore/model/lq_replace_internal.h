/* Internal: what the LQ replacement (lq_replace.c) hands to its onnxruntime export (lq_export.c). */
#ifndef QC_LQ_REPLACE_INTERNAL_H
#define QC_LQ_REPLACE_INTERNAL_H

#include "pipeline_internal.h"

/* One replaced layer, fitted. */
typedef struct qclq_layer {
    size_t layer;                     /* the pipeline layer */
    const char *bias;                 /* the Gemm's C initializer, or NULL (borrowed from the source model) */
    qc_lq_code x_code;
    float x_basis[QC_LQ_MAX_BITS];    /* Ka entries */
    float *w_basis;                   /* [out, Kw] */
    uint8_t *codes;                   /* W's codes [out, in] */
} qclq_layer;

/* The onnxruntime export of p's model with `layers` (count of them) replaced: their weights become W's
 * levels and their inputs go through the input quantizer of standard ONNX ops (qc_model.h). `out`
 * receives a new model (owned by the caller). */
qc_status qclq__export_ort(qc_model **out, const qc_pipeline *p, const qclq_layer *layers, size_t count, int ka,
                           int kw, const char *function);

#endif
