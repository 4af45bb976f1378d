/* The onnxruntime export of an LQ replacement (qc_model.h): standard ONNX ops only, so that onnxruntime
 * can cross-check qcore's LQGemm model. Each replaced layer keeps its node; its weight holds W's levels
 * and its input goes through the LQ input quantizer, made of ops every opset since 8 has (so the model's
 * opset stays as it is):
 *     index  = Sum over thresholds t of Cast<FLOAT>(Not(Less(X, lower_t)))   (the thresholds below x)
 *     X_q    = Gather(levels, Cast<INT64>(index))
 * which is qc_lq_encode's rule followed by qc_lq_decode's levels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "lq_replace_internal.h"
#include "model_internal.h"

/* The smallest float above t: x >= it exactly when x > t, for every float x (t in double). */
static float smallest_float_above(double t)
{
    float f = (float)t;
    return (double)f > t ? f : nextafterf(f, INFINITY);
}

/* X's sorted levels (as qc_lq_decode rounds them) and the float bounds of their intervals. */
static qc_status input_table(const qclq_layer *f, int ka, float *levels, float *lower)
{
    int count = 1 << ka;
    double level[1 << QC_LQ_MAX_BITS], threshold[(1 << QC_LQ_MAX_BITS) - 1];
    int64_t basis_dims[2] = {1, ka}, level_dims[2] = {1, count}, threshold_dims[2] = {1, count - 1};
    qc_tensor basis, lt, tt;
    QCM_TRY(qc_tensor_init(&basis, (void *)f->x_basis, QC_DT_F32, 2, basis_dims, NULL));
    QCM_TRY(qc_tensor_init(&lt, level, QC_DT_F64, 2, level_dims, NULL));
    QCM_TRY(qc_tensor_init(&tt, threshold, QC_DT_F64, 2, threshold_dims, NULL));
    QCM_TRY(qc_lq_levels(&lt, NULL, &tt, &basis, f->x_code));
    for (int i = 0; i < count; i++) levels[i] = (float)level[i];
    for (int i = 0; i + 1 < count; i++) lower[i] = smallest_float_above(threshold[i]);
    return QC_OK;
}

static qc_status add_node(qc_model *m, const char *op, size_t num_inputs, const char *const *inputs, qcm_value_name out,
                          const char *base, const char *suffix, size_t *index)
{
    const char *outputs[1] = {out};
    qcm__fresh_name(out, sizeof(qcm_value_name), m, base, suffix);
    return qc_model_add_node(m, index, op, "", out, num_inputs, inputs, 1, outputs);
}

static qc_status add_cast(qc_model *m, const char *from, int64_t to, qcm_value_name out, const char *base, const char *suffix)
{
    size_t node;
    QCM_TRY(add_node(m, "Cast", 1, &from, out, base, suffix, &node));
    return qc_model_set_attribute(m, node, "to", QC_ATTRIBUTE_INT, &to, 1);
}

/* Whether x >= lower, as FLOAT 0/1: Cast(Not(Less(x, lower))) (opset 7 ops; x is finite). */
static qc_status at_or_above(qc_model *m, const char *x, float lower, const char *base, qcm_value_name out)
{
    qcm_value_name bound, below, above;
    qcm__fresh_name(bound, sizeof bound, m, base, "_lq_lower");
    QCM_TRY(qc_model_add_initializer(m, bound, QC_ONNX_FLOAT, 0, NULL, &lower, sizeof lower));
    const char *compare[2] = {x, bound}, *negate[1] = {below};
    QCM_TRY(add_node(m, "Less", 2, compare, below, base, "_lq_below", NULL));
    QCM_TRY(add_node(m, "Not", 1, negate, above, base, "_lq_above", NULL));
    return add_cast(m, above, QC_ONNX_FLOAT, out, base, "_lq_above_f");
}

/* The quantizer of f's input in front of node `node` (which alone reads its output). */
static qc_status add_quantizer(qc_model *m, const qcp_layer *l, const qclq_layer *f, int ka, size_t node)
{
    float levels[1 << QC_LQ_MAX_BITS], lower[(1 << QC_LQ_MAX_BITS) - 1];
    QCM_TRY(input_table(f, ka, levels, lower));
    const char *base = l->weight;
    int thresholds = (1 << ka) - 1;
    qcm_value_name above[(1 << QC_LQ_MAX_BITS) - 1], levels_name, index_f, index, quantized;
    const char *terms[(1 << QC_LQ_MAX_BITS) - 1];
    for (int t = 0; t < thresholds; t++) {
        QCM_TRY(at_or_above(m, l->input, lower[t], base, above[t]));
        terms[t] = above[t];
    }
    QCM_TRY(add_node(m, "Sum", (size_t)thresholds, terms, index_f, base, "_lq_index_f", NULL));
    QCM_TRY(add_cast(m, index_f, QC_ONNX_INT64, index, base, "_lq_index"));
    int64_t count = 1 << ka;
    qcm__fresh_name(levels_name, sizeof levels_name, m, base, "_lq_levels");
    QCM_TRY(qc_model_add_initializer(m, levels_name, QC_ONNX_FLOAT, 1, &count, levels, (size_t)count * sizeof(float)));
    const char *gather[2] = {levels_name, index};
    QCM_TRY(add_node(m, "Gather", 2, gather, quantized, base, "_lq_input", NULL));
    Onnx__NodeProto *n = m->proto->graph->node[node];
    char *copy = strdup(quantized);
    if (copy == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    free(n->input[0]);
    n->input[0] = copy;
    return QC_OK;
}

/* Layer f's weight replaced by W's levels, in its own ONNX layout. */
static qc_status put_levels(qc_model *m, const qcp_layer *l, const qclq_layer *f, int kw, const char *function)
{
    size_t values = (size_t)(l->out * l->in);
    float *levels = malloc(values * sizeof(float)), *onnx = malloc(values * sizeof(float));
    int64_t dims[2] = {l->out, l->in}, basis_dims[2] = {l->out, kw};
    qc_tensor lt, ct, bt;
    qc_ctx *ctx = NULL;
    qc_status st = levels && onnx ? qc_ctx_create(&ctx) : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = qc_tensor_init(&lt, levels, QC_DT_F32, 2, dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&ct, f->codes, QC_DT_U8, 2, dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&bt, f->w_basis, QC_DT_F32, 2, basis_dims, NULL);
    if (st == QC_OK) st = qc_lq_decode(ctx, &lt, &ct, &bt, QC_LQ_SIGNED);
    if (st == QC_OK) {
        qcp__to_onnx_layout(l, levels, onnx);
        st = qc_model_set_initializer(m, l->weight, QC_ONNX_FLOAT, l->ndim, l->dims, onnx, values * sizeof(float));
    }
    qc_ctx_free(ctx);
    free(levels), free(onnx);
    return st;
}

qc_status qclq__export_ort(qc_model **out, const qc_pipeline *p, const qclq_layer *layers, size_t count, int ka, int kw,
                           const char *function)
{
    qc_model *m = NULL;
    qc_status st = qc_model_clone(&m, p->model);
    for (size_t k = 0; st == QC_OK && k < count; k++) {
        const qcp_layer *l = &p->layers[layers[k].layer];
        st = put_levels(m, l, &layers[k], kw, function);
        if (st == QC_OK) st = add_quantizer(m, l, &layers[k], ka, l->node_index);
    }
    if (st == QC_OK) st = qc_model_sort(m);
    if (st != QC_OK) {
        qc_model_free(m);
        return st;
    }
    *out = m;
    return QC_OK;
}
