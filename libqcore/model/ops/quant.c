/* QuantizeLinear and DequantizeLinear (per tensor, per axis, blocked; int8/uint8/int16/int4/uint4),
 * computed by libqcore's uniform quantizer through its public API. */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "qcore/qc_quant.h"

/* The libqcore grid and parameter tensors for a Q/DQ node: `quantized_dtype` is the integer side. */
typedef struct qdq_params {
    qc_quant_options opts;
    qc_tensor zero_point;        /* i32 copy of the node's zero point, same shape as its scale */
    int32_t *zero_point_data;
} qdq_params;

static qc_status grid_of(const qce_call *call, qc_dtype q, qc_quant_options *o)
{
    switch (q) {
    case QC_DT_I8: o->bits = 8, o->is_signed = 1; break;
    case QC_DT_U8: o->bits = 8, o->is_signed = 0; break;
    case QC_DT_I16: o->bits = 16, o->is_signed = 1; break;
    case QC_DT_INT4: o->bits = 4, o->is_signed = 1; break;
    case QC_DT_UINT4: o->bits = 4, o->is_signed = 0; break;
    default: return qce__fail(call, QC_ERR_UNSUPPORTED, "quantized type %s", qc_dtype_string(q));
    }
    return QC_OK;
}

static qc_status params_init(const qce_call *call, qdq_params *p, const qc_tensor *x, qc_dtype q)
{
    memset(p, 0, sizeof *p);
    qc_quant_options_init(&p->opts, QC_QUANT_OPTIONS_VERSION);
    QCE_TRY(grid_of(call, q, &p->opts));
    p->opts.symmetric = 0; /* the node gives its zero point */
    const qc_tensor *scale = &call->inputs[1]->tensor;
    int64_t block = qce__attr_int(call, "block_size", 0);
    if (qce__numel(scale) == 1 && scale->ndim <= 1) {
        p->opts.granularity = QC_GRAN_TENSOR;
    } else {
        p->opts.axis = (int32_t)qce__attr_int(call, "axis", 1);
        p->opts.granularity = block > 0 ? QC_GRAN_GROUP : QC_GRAN_CHANNEL;
        p->opts.group_size = block > 0 ? block : p->opts.group_size;
    }
    int64_t n = qce__numel(scale);
    p->zero_point_data = calloc((size_t)(n > 0 ? n : 1), sizeof *p->zero_point_data);
    if (p->zero_point_data == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (call->num_inputs > 2 && call->inputs[2]) {
        const qc_tensor *zp = &call->inputs[2]->tensor;
        if (qce__numel(zp) != n) return qce__fail(call, QC_ERR_SHAPE, "zero point and scale differ in size");
        if (zp->dtype == QC_DT_INT4 || zp->dtype == QC_DT_UINT4) {
            int8_t *unpacked = malloc((size_t)(n > 0 ? n : 1));
            if (unpacked == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory");
            qc_unpack_int4(unpacked, zp->data, (size_t)n, zp->dtype == QC_DT_INT4);
            for (int64_t i = 0; i < n; i++) p->zero_point_data[i] = zp->dtype == QC_DT_INT4 ? unpacked[i] : (uint8_t)unpacked[i];
            free(unpacked);
        } else {
            for (int64_t i = 0; i < n; i++) p->zero_point_data[i] = (int32_t)qce__load(zp, i);
        }
    }
    if (qc_tensor_init(&p->zero_point, p->zero_point_data, QC_DT_I32, scale->ndim, scale->dims, NULL) != QC_OK)
        return qce__fail(call, QC_ERR_SHAPE, "bad scale shape");
    (void)x;
    return QC_OK;
}

static qc_status forward_error(const qce_call *call, qc_status st)
{
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

/* qc_quantize and qc_dequantize share this signature: (ctx, out, in, scale, zero point, options). */
typedef qc_status (*quantizer_fn)(qc_ctx *, qc_tensor *, const qc_tensor *, const qc_tensor *, const qc_tensor *,
                                  const qc_quant_options *);

/* Output 0 (of `out_dtype`, input 0's shape) = fn(input 0) under the node's grid for integer type q. */
static qc_status run_quantizer(const qce_call *call, quantizer_fn fn, qc_dtype q, qc_dtype out_dtype, int bits)
{
    const qc_tensor *x = &call->inputs[0]->tensor;
    qdq_params p;
    qc_status st = params_init(call, &p, x, q);
    if (bits) p.opts.bits = bits;
    if (st == QC_OK) st = qce__output(call, 0, out_dtype, x->ndim, x->dims);
    qc_ctx *ctx = NULL;
    if (st == QC_OK) st = forward_error(call, qc_ctx_create(&ctx));
    if (st == QC_OK) qc_ctx_set_param(ctx, QC_CTX_THREADS, call->threads);
    if (st == QC_OK)
        st = forward_error(call, fn(ctx, &call->outputs[0]->tensor, x, &call->inputs[1]->tensor, &p.zero_point, &p.opts));
    qc_ctx_free(ctx);
    free(p.zero_point_data);
    return st;
}

static qc_status op_quantize_linear(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_F32)));
    qc_dtype q = call->num_inputs > 2 && call->inputs[2] ? call->inputs[2]->tensor.dtype : QC_DT_U8;
    return run_quantizer(call, qc_quantize, q, q, 0);
}

/* int32 levels (bias-style) exceed every grid libqcore quantizes to: (x - zero point) * scale directly,
 * per tensor or per axis. */
static qc_status dequantize_int32(const qce_call *call)
{
    const qc_tensor *x = &call->inputs[0]->tensor, *scale = &call->inputs[1]->tensor;
    const qc_tensor *zp = call->num_inputs > 2 && call->inputs[2] ? &call->inputs[2]->tensor : NULL;
    int64_t params = qce__numel(scale), outer = 1, extent = 1, inner = 1;
    if (qce__attr_int(call, "block_size", 0) > 0) return qce__fail(call, QC_ERR_UNSUPPORTED, "blocked int32 dequantization");
    if (zp && qce__numel(zp) != params) return qce__fail(call, QC_ERR_SHAPE, "zero point and scale differ in size");
    if (params > 1) {
        int axis;
        QCE_TRY(qce__axis(call, qce__attr_int(call, "axis", 1), x->ndim, &axis));
        for (int d = 0; d < x->ndim; d++) *(d < axis ? &outer : d == axis ? &extent : &inner) *= x->dims[d];
        if (extent != params) return qce__fail(call, QC_ERR_SHAPE, "scale has %lld entries for an axis of %lld", (long long)params,
                                               (long long)extent);
    } else {
        inner = qce__numel(x);
    }
    QCE_TRY(qce__output(call, 0, QC_DT_F32, x->ndim, x->dims));
    const int32_t *in = x->data;
    float *out = call->outputs[0]->tensor.data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t e = 0; e < extent; e++) {
            float s = ((const float *)scale->data)[e];
            int64_t z = zp ? (int64_t)qce__load(zp, e) : 0;
            int64_t base = (o * extent + e) * inner;
            for (int64_t i = 0; i < inner; i++) out[base + i] = (float)((int64_t)in[base + i] - z) * s;
        }
    return QC_OK;
}

static qc_status op_dequantize_linear(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_I8) | QCE_DT(QC_DT_U8) | QCE_DT(QC_DT_I16) | QCE_DT(QC_DT_I32) |
                                           QCE_DT(QC_DT_INT4) | QCE_DT(QC_DT_UINT4)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_F32)));
    qc_dtype q = call->inputs[0]->tensor.dtype;
    return q == QC_DT_I32 ? dequantize_int32(call) : run_quantizer(call, qc_dequantize, q, QC_DT_F32, 0);
}

const qce_op qce__quant_ops[] = {
    {"QuantizeLinear", op_quantize_linear},
    {"DequantizeLinear", op_dequantize_linear},
    {NULL, NULL},
};
