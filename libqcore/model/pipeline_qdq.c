/* The activation quantization in front of the pipeline's layers: QuantizeLinear + DequantizeLinear (after
 * a Clip for widths ONNX has no integer type for), read by the quantized layers only: other readers of the
 * value, such as a residual connection, keep the float value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "pipeline_internal.h"

/* The ONNX integer type that holds N-bit values. */
static int32_t container(int bits, int is_signed)
{
    if (bits <= 4) return is_signed ? QC_ONNX_INT4 : QC_ONNX_UINT4;
    if (bits <= 8) return is_signed ? QC_ONNX_INT8 : QC_ONNX_UINT8;
    return is_signed ? QC_ONNX_INT16 : QC_ONNX_UINT16;
}

static qc_status add_scalar(qc_model *m, qcm_value_name out, const char *base, const char *suffix, int32_t type,
                            const void *bytes, size_t nbytes)
{
    qcm__fresh_name(out, sizeof(qcm_value_name), m, base, suffix);
    return qc_model_add_initializer(m, out, type, 0, NULL, bytes, nbytes);
}

static qc_status add_node(qc_model *m, const char *op, const char *a, const char *b, const char *c, qcm_value_name out,
                          const char *base, const char *suffix)
{
    const char *inputs[3] = {a, b, c}, *outputs[1] = {out};
    qcm__fresh_name(out, sizeof(qcm_value_name), m, base, suffix);
    return qc_model_add_node(m, NULL, op, "", out, 3, inputs, 1, outputs);
}

/* Clip to the N-bit range's real values, so that the container type's wider range is never used. */
static qc_status clip(qc_model *m, const char *value, float scale, int64_t lo, int64_t hi, qcm_value_name out)
{
    qcm_value_name low, high;
    float bounds[2] = {(float)lo * scale, (float)hi * scale};
    QCM_TRY(add_scalar(m, low, value, "_clip_min", QC_ONNX_FLOAT, &bounds[0], sizeof(float)));
    QCM_TRY(add_scalar(m, high, value, "_clip_max", QC_ONNX_FLOAT, &bounds[1], sizeof(float)));
    return add_node(m, "Clip", value, low, high, out, value, "_clipped");
}

static qc_status rewire(qcp_run *r, const char *value, const char *to)
{
    Onnx__GraphProto *g = r->qmodel->proto->graph;
    for (size_t j = 0; j < r->p->num_layers; j++) {
        if (r->keep[j] || strcmp(r->p->layers[j].input, value) != 0) continue;
        size_t node = 0;
        QCM_TRY(qcp__node_reading(r->qmodel, r->p->layers[j].weight, &node, r->function));
        char *copy = strdup(to);
        if (copy == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
        free(g->node[node]->input[0]);
        g->node[node]->input[0] = copy;
    }
    return QC_OK;
}

qc_status qcp__add_input_quantizer(qc_model *m, const char *value, int bits, int is_signed, float scale, char *out,
                                   size_t size)
{
    int64_t lo, hi;
    QCM_TRY(qc_accum_input_range(&lo, &hi, bits, is_signed));
    int32_t type = container(bits, is_signed);
    qc_quant_options grid = QC_QUANT_OPTIONS_INIT;
    QCM_TRY(qcm__require_qdq_format(m, &grid, type));
    qcm_value_name source, scale_name, zero_point, quantized, dequantized;
    snprintf(source, sizeof source, "%s", value);
    if (qc_onnx_type_bits(type) != bits) QCM_TRY(clip(m, value, scale, lo, hi, source));
    uint8_t zeros[2] = {0, 0}; /* zero point 0 in any container (4-bit: one packed byte) */
    QCM_TRY(add_scalar(m, scale_name, value, "_scale", QC_ONNX_FLOAT, &scale, sizeof(float)));
    QCM_TRY(add_scalar(m, zero_point, value, "_zero_point", type, zeros, type == QC_ONNX_INT16 || type == QC_ONNX_UINT16 ? 2 : 1));
    QCM_TRY(add_node(m, "QuantizeLinear", source, scale_name, zero_point, quantized, value, "_quantized"));
    QCM_TRY(add_node(m, "DequantizeLinear", quantized, scale_name, zero_point, dequantized, value, "_dequantized"));
    snprintf(out, size, "%s", dequantized);
    return QC_OK;
}

qc_status qcp__quantize_input(qcp_run *r, size_t i)
{
    const char *value = r->p->layers[i].input;
    qcm_value_name dequantized;
    QCM_TRY(qcp__add_input_quantizer(r->qmodel, value, r->r->activation_bits, r->act_signed[i], r->act_scale[i],
                                     dequantized, sizeof dequantized));
    return rewire(r, value, dequantized);
}
