/* qc_model_insert_qdq: ONNX QDQ quantization of one value, with parameters from libqcore's quantizer
 * (used, like every libqcore function here, through its public API). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"

/* The ONNX integer type of a grid, and the width of one stored element (0: two per byte). */
static qc_status onnx_type_of(const qc_quant_options *o, int32_t *type, const char *function)
{
    switch (o->bits) {
    case 4: *type = o->is_signed ? QC_ONNX_INT4 : QC_ONNX_UINT4; return QC_OK;
    case 8: *type = o->is_signed ? QC_ONNX_INT8 : QC_ONNX_UINT8; return QC_OK;
    case 16: *type = o->is_signed ? QC_ONNX_INT16 : QC_ONNX_UINT16; return QC_OK;
    default:
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "argument 'opts': ONNX has no %d-bit integer type (4, 8, 16)",
                           (int)o->bits);
    }
}

/* A value name not used yet: base + suffix, numbered when taken. */
static int value_taken(const qc_model *m, const char *name)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return 1;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (strcmp(g->node[i]->output[k], name) == 0) return 1;
    for (size_t i = 0; i < g->n_input; i++)
        if (g->input[i]->name && strcmp(g->input[i]->name, name) == 0) return 1;
    return 0;
}

/* The base is cut to 200 bytes so that the suffix and the number always fit in 256: a name truncated at
 * the end would repeat for every number, and the search would never end. */
void qcm__fresh_name(char *out, size_t size, const qc_model *m, const char *base, const char *suffix)
{
    snprintf(out, size, "%.200s%s", base, suffix);
    for (int k = 1; value_taken(m, out); k++) snprintf(out, size, "%.200s%s_%d", base, suffix, k);
}

/* Integers of `type` stored as ONNX raw data: from int32 values (4-bit: packed). */
static qc_status raw_integers(uint8_t **out, size_t *nbytes, const int32_t *v, int64_t n, int32_t type,
                              const char *function)
{
    int bits = qc_onnx_type_bits(type);
    *nbytes = (size_t)((n * bits + 7) / 8);
    *out = calloc(*nbytes ? *nbytes : 1, 1);
    if (*out == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", *nbytes);
    for (int64_t i = 0; i < n; i++) {
        if (bits == 4) (*out)[i / 2] |= (uint8_t)((v[i] & 0x0F) << (4 * (i % 2)));
        else if (bits == 8) (*out)[i] = (uint8_t)v[i];
        else memcpy(*out + 2 * i, &(uint16_t){(uint16_t)v[i]}, 2);
    }
    return QC_OK;
}

/* The zero points the node stores: the given ones, or the grid's fixed one for symmetric grids. */
static qc_status zero_points(int32_t *out, int64_t n, const qc_tensor *zero_point, const qc_quant_options *o,
                             const char *function)
{
    int32_t qmin, qmax;
    if (qc_quant_range(&qmin, &qmax, o) != QC_OK) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "%s", qc_last_error());
    for (int64_t i = 0; i < n; i++)
        out[i] = zero_point ? ((const int32_t *)zero_point->data)[i] : o->is_signed ? 0 : (qmin + qmax + 1) / 2;
    return QC_OK;
}

typedef struct qdq_names {
    char scale[256], zero_point[256], quantized[256], dequantized[256];
} qdq_names;

static qc_status add_parameters(qc_model *m, const qdq_names *n, const qc_tensor *scale, const qc_tensor *zero_point,
                                const qc_quant_options *o, int32_t type, const char *function)
{
    int64_t count = qc_tensor_numel(scale);
    int32_t *zp = malloc((size_t)(count > 0 ? count : 1) * sizeof *zp);
    uint8_t *raw = NULL;
    size_t nbytes;
    qc_status st = zp ? zero_points(zp, count, zero_point, o, function) : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = raw_integers(&raw, &nbytes, zp, count, type, function);
    if (st == QC_OK)
        st = qc_model_add_initializer(m, n->scale, QC_ONNX_FLOAT, scale->ndim, scale->dims, scale->data, (size_t)count * 4);
    if (st == QC_OK) st = qc_model_add_initializer(m, n->zero_point, type, scale->ndim, scale->dims, raw, nbytes);
    free(zp), free(raw);
    return st;
}

/* Axis and block_size attributes of a Q or DQ node, as the granularity needs. With the value's rank
 * unknown (ndim < 0), a negative axis is written as is: ONNX counts it from the back too. */
static qc_status set_layout_attributes(qc_model *m, size_t node, const qc_quant_options *o, int ndim)
{
    if (o->granularity == QC_GRAN_TENSOR) return QC_OK;
    int64_t axis = o->axis < 0 && ndim >= 0 ? o->axis + ndim : o->axis;
    QCM_TRY(qc_model_set_attribute(m, node, "axis", QC_ATTRIBUTE_INT, &axis, 1));
    if (o->granularity == QC_GRAN_GROUP) QCM_TRY(qc_model_set_attribute(m, node, "block_size", QC_ATTRIBUTE_INT, &o->group_size, 1));
    return QC_OK;
}

static qc_status require_format(qc_model *m, const qc_quant_options *o, int32_t type)
{
    int64_t opset = o->granularity == QC_GRAN_TENSOR ? 10 : 13;
    if (type != QC_ONNX_INT8 && type != QC_ONNX_UINT8) opset = 21;
    if (o->granularity == QC_GRAN_GROUP) opset = 21;
    QCM_TRY(qc_model_require_opset(m, "", opset));
    if (opset >= 21) qcm__require_ir_version(m, 10);
    return QC_OK;
}

/* An initializer becomes integers + DequantizeLinear producing its old name. */
static qc_status quantize_initializer(qc_model *m, qc_ctx *ctx, size_t index, const qdq_names *n, const qc_tensor *scale,
                                      const qc_tensor *zero_point, const qc_quant_options *o, int32_t type,
                                      const char *function)
{
    qc_initializer_info info;
    QCM_TRY(qc_model_initializer(m, index, &info));
    if (info.elem_type != QC_ONNX_FLOAT)
        return QCM_FAIL_IN(function, QC_ERR_DTYPE, "initializer '%s' is %s; only FLOAT initializers are quantized", info.name,
                           qc_onnx_type_string(info.elem_type));
    /* raw_data borrowed from the file may be misaligned for floats: quantize an aligned copy */
    float *weights = malloc(info.nbytes ? info.nbytes : 1);
    if (weights == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (info.nbytes) memcpy(weights, info.data, info.nbytes);
    qc_tensor x, q;
    qc_status st = qc_tensor_init(&x, weights, QC_DT_F32, info.ndim, info.dims, NULL);
    int64_t count = qc_tensor_numel(&x);
    int32_t *levels = st == QC_OK ? malloc((size_t)(count > 0 ? count : 1) * sizeof *levels) : NULL;
    if (st == QC_OK && levels == NULL) st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    uint8_t *raw = NULL;
    size_t nbytes;
    if (st == QC_OK) st = qc_tensor_init(&q, levels, QC_DT_I32, info.ndim, info.dims, NULL);
    if (st == QC_OK) st = qc_quantize(ctx, &q, &x, scale, zero_point, o);
    if (st == QC_OK) st = raw_integers(&raw, &nbytes, levels, count, type, function);
    if (st == QC_OK) st = qc_model_add_initializer(m, n->quantized, type, info.ndim, info.dims, raw, nbytes);
    free(weights), free(levels), free(raw);
    QCM_TRY(st);
    QCM_TRY(add_parameters(m, n, scale, zero_point, o, type, function));
    char original[256];
    snprintf(original, sizeof original, "%s", info.name);
    size_t node;
    const char *inputs[3] = {n->quantized, n->scale, n->zero_point}, *outputs[1] = {original};
    size_t old;
    QCM_TRY(qc_model_find_initializer(m, original, &old));
    qcm__remove_initializer(m, old); /* its name is now the DequantizeLinear's output */
    QCM_TRY(qc_model_add_node(m, &node, "DequantizeLinear", "", n->dequantized, 3, inputs, 1, outputs));
    return set_layout_attributes(m, node, o, info.ndim);
}

/* Any other value: QuantizeLinear + DequantizeLinear, and its consumers read the dequantized copy. */
static qc_status quantize_activation(qc_model *m, const char *name, const qdq_names *n, const qc_tensor *scale,
                                     const qc_tensor *zero_point, const qc_quant_options *o, int32_t type,
                                     const char *function)
{
    QCM_TRY(add_parameters(m, n, scale, zero_point, o, type, function));
    Onnx__GraphProto *g = m->proto->graph;
    size_t consumers_end = g->n_node;
    size_t q_node, dq_node;
    const char *q_in[3] = {name, n->scale, n->zero_point}, *q_out[1] = {n->quantized};
    const char *dq_in[3] = {n->quantized, n->scale, n->zero_point}, *dq_out[1] = {n->dequantized};
    char q_name[300], dq_name[300];
    snprintf(q_name, sizeof q_name, "%s_QuantizeLinear", name);
    snprintf(dq_name, sizeof dq_name, "%s_DequantizeLinear", name);
    QCM_TRY(qc_model_add_node(m, &q_node, "QuantizeLinear", "", q_name, 3, q_in, 1, q_out));
    QCM_TRY(qc_model_add_node(m, &dq_node, "DequantizeLinear", "", dq_name, 3, dq_in, 1, dq_out));
    int ndim = o->granularity == QC_GRAN_GROUP ? scale->ndim : -1; /* per-group scales have the value's rank */
    QCM_TRY(set_layout_attributes(m, q_node, o, ndim));
    QCM_TRY(set_layout_attributes(m, dq_node, o, ndim));
    for (size_t i = 0; i < consumers_end; i++)
        for (size_t k = 0; k < g->node[i]->n_input; k++)
            if (strcmp(g->node[i]->input[k], name) == 0) {
                char *renamed = strdup(n->dequantized);
                if (renamed == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
                free(g->node[i]->input[k]);
                g->node[i]->input[k] = renamed;
            }
    return qc_model_sort(m);
}

qc_status qc_model_insert_qdq(qc_model *m, qc_ctx *ctx, const char *name, const qc_tensor *scale,
                              const qc_tensor *zero_point, const qc_quant_options *opts)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_CHECK_NOT_NULL(ctx);
    QCM_CHECK_NOT_NULL(name);
    QCM_CHECK_NOT_NULL(opts);
    QCM_TRY(qc_tensor_check(scale, "scale"));
    if (scale->dtype != QC_DT_F32) return QCM_FAIL(QC_ERR_DTYPE, "argument 'scale': must be f32");
    if (zero_point && (qc_tensor_check(zero_point, "zero_point") != QC_OK || zero_point->dtype != QC_DT_I32 ||
                       qc_tensor_numel(zero_point) != qc_tensor_numel(scale)))
        return QCM_FAIL(QC_ERR_DTYPE, "argument 'zero_point': must be i32 with scale's shape");
    int32_t type = 0;
    QCM_TRY(onnx_type_of(opts, &type, __func__));
    if (strlen(name) > 200) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': longer than 200 characters");
    if (!value_taken(m, name)) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': the graph has no value '%s'", name);
    qdq_names n;
    qcm__fresh_name(n.scale, sizeof n.scale, m, name, "_scale");
    qcm__fresh_name(n.zero_point, sizeof n.zero_point, m, name, "_zero_point");
    qcm__fresh_name(n.quantized, sizeof n.quantized, m, name, "_quantized");
    qcm__fresh_name(n.dequantized, sizeof n.dequantized, m, name, "_dequantized");
    QCM_TRY(require_format(m, opts, type));
    size_t index;
    if (qc_model_find_initializer(m, name, &index) == QC_OK)
        return quantize_initializer(m, ctx, index, &n, scale, zero_point, opts, type, __func__);
    qc_clear_error();
    return quantize_activation(m, name, &n, scale, zero_point, opts, type, __func__);
}
