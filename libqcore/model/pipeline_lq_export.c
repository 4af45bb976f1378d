/* An LQ layer's weight in a pipeline run's result (qc_model.h, "LQ weights in a recipe"), with standard
 * ONNX ops: UINT4 codes, a FLOAT table of each channel's levels by code, and GatherElements picking each
 * weight's level from its channel's column (or row), so that the file holds 4 bits per weight plus
 * 2^K floats per channel and both qcore's executor and onnxruntime run it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "pipeline_internal.h"

/* Each channel's levels by code (qc_lq_decode of the codes 0 .. 2^K - 1): [2^K, out] for a weight stored
 * [in, out], else [out, 2^K]. */
static qc_status level_table(const qcp_run *r, size_t i, float *table)
{
    const qcp_layer *l = &r->p->layers[i];
    int32_t k = r->lq_bits[i];
    int64_t count = (int64_t)1 << k, dims[2] = {l->out, count}, b_dims[2] = {l->out, k};
    uint8_t *codes = malloc((size_t)(l->out * count));
    float *levels = malloc((size_t)(l->out * count) * sizeof *levels);
    qc_tensor ct, lt, bt;
    qc_status st = codes && levels ? QC_OK : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (int64_t k2 = 0; st == QC_OK && k2 < l->out * count; k2++) codes[k2] = (uint8_t)(k2 % count);
    if (st == QC_OK) st = qc_tensor_init(&ct, codes, QC_DT_U8, 2, dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&lt, levels, QC_DT_F32, 2, dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&bt, r->scale[i], QC_DT_F32, 2, b_dims, NULL);
    if (st == QC_OK) st = qc_lq_decode(r->p->ctx, &lt, &ct, &bt, QC_LQ_SIGNED);
    for (int64_t o = 0; st == QC_OK && o < l->out; o++)
        for (int64_t c = 0; c < count; c++) table[l->transposed ? o * count + c : c * l->out + o] = levels[o * count + c];
    free(codes), free(levels);
    return st;
}

/* The codes in the stored layout ([out, in] or [in, out]), packed two per byte (UINT4) into `packed`. */
static qc_status packed_codes(const qcp_run *r, size_t i, uint8_t *packed)
{
    const qcp_layer *l = &r->p->layers[i];
    size_t n = (size_t)(l->out * l->in);
    int8_t *codes = malloc(n);
    if (codes == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t k = 0; k < l->in; k++) codes[l->transposed ? o * l->in + k : k * l->out + o] = (int8_t)r->levels[i][o * l->in + k];
    qc_status st = qc_pack_int4(packed, codes, n, 0);
    free(codes);
    return st;
}

/* The codes and table initializers of layer i, named into `codes` and `table`. */
static qc_status add_tensors(qcp_run *r, size_t i, qcm_value_name codes, qcm_value_name table)
{
    const qcp_layer *l = &r->p->layers[i];
    int64_t count = (int64_t)1 << r->lq_bits[i];
    int64_t c_dims[2] = {l->transposed ? l->out : l->in, l->transposed ? l->in : l->out};
    int64_t t_dims[2] = {l->transposed ? l->out : count, l->transposed ? count : l->out};
    size_t bytes = (size_t)(l->out * l->in + 1) / 2;
    uint8_t *packed = malloc(bytes);
    float *levels = malloc((size_t)(l->out * count) * sizeof *levels);
    qc_status st = packed && levels ? packed_codes(r, i, packed) : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = level_table(r, i, levels);
    qcm__fresh_name(codes, sizeof(qcm_value_name), r->qmodel, l->weight, "_lq_codes");
    if (st == QC_OK) st = qc_model_add_initializer(r->qmodel, codes, QC_ONNX_UINT4, 2, c_dims, packed, bytes);
    qcm__fresh_name(table, sizeof(qcm_value_name), r->qmodel, l->weight, "_lq_table");
    if (st == QC_OK)
        st = qc_model_add_initializer(r->qmodel, table, QC_ONNX_FLOAT, 2, t_dims, levels, (size_t)(l->out * count) * sizeof *levels);
    free(packed), free(levels);
    return st;
}

static qc_status add_node(qc_model *m, const char *op, size_t num_inputs, const char *const *inputs, const char *out,
                          size_t *index)
{
    const char *outputs[1] = {out};
    return qc_model_add_node(m, index, op, "", out, num_inputs, inputs, 1, outputs);
}

/* Cast + GatherElements (+ Reshape for a Conv) producing the weight's own name. */
static qc_status add_decoder(qcp_run *r, size_t i, const char *codes, const char *table)
{
    const qcp_layer *l = &r->p->layers[i];
    qcm_value_name index, gathered, shape;
    size_t node;
    int64_t to = QC_ONNX_INT64, axis = l->transposed ? 1 : 0;
    qcm__fresh_name(index, sizeof index, r->qmodel, l->weight, "_lq_index");
    QCM_TRY(add_node(r->qmodel, "Cast", 1, &codes, index, &node));
    QCM_TRY(qc_model_set_attribute(r->qmodel, node, "to", QC_ATTRIBUTE_INT, &to, 1));
    if (l->conv) qcm__fresh_name(gathered, sizeof gathered, r->qmodel, l->weight, "_lq_rows");
    else snprintf(gathered, sizeof gathered, "%s", l->weight);
    const char *gather[2] = {table, index};
    QCM_TRY(add_node(r->qmodel, "GatherElements", 2, gather, gathered, &node));
    QCM_TRY(qc_model_set_attribute(r->qmodel, node, "axis", QC_ATTRIBUTE_INT, &axis, 1));
    if (!l->conv) return QC_OK;
    int64_t ndim = l->ndim;
    qcm__fresh_name(shape, sizeof shape, r->qmodel, l->weight, "_lq_shape");
    QCM_TRY(qc_model_add_initializer(r->qmodel, shape, QC_ONNX_INT64, 1, &ndim, l->dims, (size_t)ndim * sizeof(int64_t)));
    const char *reshape[2] = {gathered, shape};
    return add_node(r->qmodel, "Reshape", 2, reshape, l->weight, NULL);
}

qc_status qcp__export_lq_layer(qcp_run *r, size_t i)
{
    const qcp_layer *l = &r->p->layers[i];
    qcm_value_name codes, table;
    size_t weight;
    QCM_TRY(qc_model_require_opset(r->qmodel, "", 21)); /* UINT4 */
    qcm__require_ir_version(r->qmodel, 10);
    QCM_TRY(add_tensors(r, i, codes, table));
    QCM_TRY(qc_model_find_initializer(r->qmodel, l->weight, &weight));
    qcm__remove_initializer(r->qmodel, weight);
    QCM_TRY(add_decoder(r, i, codes, table));
    return qc_model_sort(r->qmodel);
}
