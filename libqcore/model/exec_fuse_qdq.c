/* Planning integer execution of uniform quantized linear layers: a MatMul or Gemm whose activation is
 * DequantizeLinear(QuantizeLinear(x)) and whose weight is DequantizeLinear(constant integers) reads x and
 * the integers directly (its fused_inputs) and runs ops/qdq_linear.c; the Q/DQ nodes that then feed
 * nobody are skipped when the session runs with integer kernels (qc_session_set_integer_kernels).
 * Anything outside the cases qc_model.h lists keeps the float path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec_internal.h"

/* The padded row the int8 kernel reads (whole 64-byte vectors) must stay within its n <= 65535. */
enum { ROW_ALIGN = 64, MAX_PADDED_K = 65535 };

static int is_op(const Onnx__NodeProto *p, const char *op_type)
{
    return qcm__is_onnx_domain(p->domain) && strcmp(p->op_type, op_type) == 0;
}

static int64_t attr_int(const qce_node *node, const char *name, int64_t fallback)
{
    const qce_call call = {.node = node};
    return qce__attr_int(&call, name, fallback);
}

/* Input k of node: its value index, SIZE_MAX when absent. */
static size_t input_of(const qce_node *node, size_t k)
{
    return k < node->proto->n_input ? node->inputs[k] : SIZE_MAX;
}

static const qce_value *constant(const qc_session *s, size_t v)
{
    return v != SIZE_MAX && s->values[v].is_constant ? &s->values[v] : NULL;
}

static int is_code_dtype(qc_dtype d)
{
    return d == QC_DT_I8 || d == QC_DT_U8 || d == QC_DT_INT4 || d == QC_DT_UINT4;
}

/* A constant f32 scale with one value. */
static int scalar_scale(const qc_session *s, size_t v)
{
    const qce_value *c = constant(s, v);
    return c && c->tensor.dtype == QC_DT_F32 && c->tensor.ndim <= 1 && qce__numel(&c->tensor) == 1;
}

/* An absent zero point, or a constant one of `count` values of dtype `dtype` (0: any code dtype). */
static int zero_point_ok(const qc_session *s, size_t v, int64_t count, qc_dtype dtype)
{
    if (v == SIZE_MAX) return 1;
    const qce_value *c = constant(s, v);
    return c && qce__numel(&c->tensor) == count && (dtype ? c->tensor.dtype == dtype : is_code_dtype(c->tensor.dtype));
}

/* The node producing value v, or NULL (an input, initializer, or a value of an enclosing graph). */
static const qce_node *producer(const qc_session *s, const size_t *made_by, size_t v)
{
    return v != SIZE_MAX && made_by[v] != SIZE_MAX ? &s->nodes[made_by[v]] : NULL;
}

/* The activation operand a = DequantizeLinear(QuantizeLinear(x)), per tensor: fills the X and scale
 * and zero point entries of f. */
static int match_activation(const qc_session *s, const size_t *made_by, size_t a, size_t *f)
{
    const qce_node *dq = producer(s, made_by, a);
    if (dq == NULL || !is_op(dq->proto, "DequantizeLinear") || attr_int(dq, "block_size", 0) != 0) return 0;
    const qce_node *q = producer(s, made_by, input_of(dq, 0));
    if (q == NULL || !is_op(q->proto, "QuantizeLinear") || attr_int(q, "block_size", 0) != 0) return 0;
    f[QCE_FUSED_X] = input_of(q, 0);
    f[QCE_FUSED_Q_SCALE] = input_of(q, 1), f[QCE_FUSED_Q_ZERO] = input_of(q, 2);
    f[QCE_FUSED_DQ_SCALE] = input_of(dq, 1), f[QCE_FUSED_DQ_ZERO] = input_of(dq, 2);
    if (f[QCE_FUSED_X] == SIZE_MAX || !scalar_scale(s, f[QCE_FUSED_Q_SCALE]) || !scalar_scale(s, f[QCE_FUSED_DQ_SCALE]))
        return 0;
    /* the codes' type is the zero point's; without one, uint8 unless output_dtype says otherwise */
    const qce_value *z = constant(s, f[QCE_FUSED_Q_ZERO]);
    qc_dtype codes = z ? z->tensor.dtype : QC_DT_U8;
    if (z == NULL && (f[QCE_FUSED_Q_ZERO] != SIZE_MAX || attr_int(q, "output_dtype", 0) != 0)) return 0;
    return zero_point_ok(s, f[QCE_FUSED_Q_ZERO], 1, 0) && zero_point_ok(s, f[QCE_FUSED_DQ_ZERO], 1, codes);
}

/* The weight operand b = DequantizeLinear(W) of a constant 2-D integer W whose output dimension is
 * `out_axis` (1 for B [K, N], 0 for Gemm's transposed B [N, K]): one scale, or one per output. */
static int match_weight(const qc_session *s, const size_t *made_by, size_t b, int out_axis, size_t *f)
{
    const qce_node *dq = producer(s, made_by, b);
    if (dq == NULL || !is_op(dq->proto, "DequantizeLinear") || attr_int(dq, "block_size", 0) != 0) return 0;
    f[QCE_FUSED_W] = input_of(dq, 0), f[QCE_FUSED_W_SCALE] = input_of(dq, 1), f[QCE_FUSED_W_ZERO] = input_of(dq, 2);
    const qce_value *w = constant(s, f[QCE_FUSED_W]), *scale = constant(s, f[QCE_FUSED_W_SCALE]);
    if (w == NULL || scale == NULL || w->tensor.ndim != 2 || !is_code_dtype(w->tensor.dtype) || scale->tensor.dtype != QC_DT_F32)
        return 0;
    int64_t k = w->tensor.dims[1 - out_axis], outputs = w->tensor.dims[out_axis], count = qce__numel(&scale->tensor);
    if (k < 1 || (k + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN > MAX_PADDED_K) return 0;
    int64_t axis = attr_int(dq, "axis", 1);
    int per_channel = scale->tensor.ndim == 1 && count == outputs && (axis == out_axis || axis == out_axis - 2);
    if (!(count == 1 && scale->tensor.ndim <= 1) && !per_channel) return 0;
    return zero_point_ok(s, f[QCE_FUSED_W_ZERO], count, w->tensor.dtype);
}

/* The fused inputs of node when it is a MatMul or Gemm of the two patterns, else 0. */
static int match_linear(const qc_session *s, const size_t *made_by, const qce_node *node, size_t *f)
{
    for (size_t k = 0; k < QCE_FUSED_COUNT; k++) f[k] = SIZE_MAX;
    const Onnx__NodeProto *p = node->proto;
    int gemm = is_op(p, "Gemm");
    if (!gemm && !is_op(p, "MatMul")) return 0;
    if (gemm && attr_int(node, "transA", 0) != 0) return 0;
    int out_axis = gemm && attr_int(node, "transB", 0) != 0 ? 0 : 1;
    if (!match_activation(s, made_by, input_of(node, 0), f) || !match_weight(s, made_by, input_of(node, 1), out_axis, f))
        return 0;
    f[QCE_FUSED_BIAS] = gemm ? input_of(node, 2) : SIZE_MAX;
    return 1;
}

/* Marks the Q/DQ nodes that nothing needs once fused nodes read their own inputs: in reverse execution
 * order, a value is needed when a later node that runs reads it (fused nodes their fused inputs), a
 * subgraph reads it, or it is kept. */
static qc_status mark_fused_away(qc_session *s)
{
    char *needed = calloc(s->num_values + 1, 1);
    if (needed == NULL) return QCM_FAIL_IN("qc_session_create", QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t v = 0; v < s->num_values; v++) needed[v] = (char)s->values[v].keep;
    for (size_t i = s->num_nodes; i-- > 0;) {
        qce_node *node = &s->nodes[i];
        int any = 0;
        for (size_t k = 0; k < node->proto->n_output; k++) any |= node->outputs[k] != SIZE_MAX && needed[node->outputs[k]];
        node->fused_away = !any && !node->folded &&
                           (is_op(node->proto, "QuantizeLinear") || is_op(node->proto, "DequantizeLinear"));
        if (node->fused_away) continue;
        const size_t *reads = node->fused_inputs ? node->fused_inputs : node->inputs;
        size_t count = node->fused_inputs ? QCE_FUSED_COUNT : node->proto->n_input;
        for (size_t k = 0; k < count; k++)
            if (reads[k] != SIZE_MAX) needed[reads[k]] = 1;
        for (const size_t *v = node->outer_reads; v && *v != SIZE_MAX; v++) needed[*v] = 1;
    }
    free(needed);
    return QC_OK;
}

qc_status qce__plan_integer_linear(qc_session *s)
{
    size_t *made_by = malloc((s->num_values + 1) * sizeof *made_by);
    if (made_by == NULL) return QCM_FAIL_IN("qc_session_create", QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t v = 0; v < s->num_values; v++) made_by[v] = SIZE_MAX;
    for (size_t i = 0; i < s->num_nodes; i++)
        for (size_t k = 0; k < s->nodes[i].proto->n_output; k++)
            if (s->nodes[i].outputs[k] != SIZE_MAX) made_by[s->nodes[i].outputs[k]] = i;
    qc_status st = QC_OK;
    size_t fused[QCE_FUSED_COUNT];
    for (size_t i = 0; i < s->num_nodes && st == QC_OK; i++) {
        qce_node *node = &s->nodes[i];
        if (!match_linear(s, made_by, node, fused)) continue;
        node->fused_inputs = malloc(sizeof fused);
        if (node->fused_inputs == NULL) {
            st = QCM_FAIL_IN("qc_session_create", QC_ERR_OUT_OF_MEMORY, "no memory");
            break;
        }
        memcpy(node->fused_inputs, fused, sizeof fused);
        node->fused_kernel = qce__qdq_linear;
    }
    free(made_by);
    return st == QC_OK ? mark_fused_away(s) : st;
}
