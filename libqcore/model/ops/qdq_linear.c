/* A MatMul or Gemm of dequantized operands run on integers (planned by exec_fuse_qdq.c; inputs in
 * QCE_FUSED_* order). x is quantized once as its QuantizeLinear does; the codes go to the unsigned side
 * of qc_int8_gemm, signed ones shifted by 128, and the weights (prepared once per session) to its signed
 * side, uint8 ones shifted by -128: the shifts change the codes and their zero points alike, so
 *   sum_k (u - zu)(w - zw) = sum_k u w - zw sum_k u - zu sum_k w + K zu zw
 * is the layer's exact int32 sum (checked against int32 as ONNX's integer ops are). Both operands' rows
 * are zero-padded to whole 64-byte vectors so that the kernel copies nothing. A simulated accumulator
 * (qc_session_set_accumulator) takes the centred codes through MatMulInteger's register instead. Then
 * y = x_scale w_scale[o] sum (Gemm: alpha times that, plus beta C) in float.
 * Conv stays on the float path: an im2col of the codes through this kernel (tried, see the history) ran
 * MNIST CNN's Convs (K = 9 and 144, 16 and 32 outputs) slower than the float sgemm. */
#include <stdlib.h>
#include <string.h>

#include "ops/matmul.h"
#include "ops/ops.h"
#include "ops/qdq_bitserial.h"
#include "qcore/qc_kernels.h"
#include "qcore/qc_quant.h"

/* Below MAX_UNCHECKED_K terms of |u - zu| |w - zw| <= 255 * 255 each, no sum can leave int32: the
 * corrections are then taken modulo 2^32 (unsigned), which gives the exact sum, with no check. */
enum { ROW_ALIGN = 64, SIGNED_SHIFT = 128, MAX_UNCHECKED_K = 33025 };

static const qc_tensor *input(const qce_call *call, size_t k)
{
    return &call->inputs[k]->tensor;
}

static int is_signed_code(qc_dtype d)
{
    return d == QC_DT_I8 || d == QC_DT_INT4;
}

/* The layer's shapes and per-tensor parameters. */
typedef struct layer {
    int gemm, transposed;            /* W is [O, K] (Gemm transB) rather than [K, O] */
    int64_t rows, k, k_pad, outputs;
    qc_dtype codes;                  /* the activation's integer type */
    int32_t zu;                      /* the activation's DequantizeLinear zero point, shifted as its codes */
    int32_t w_shift;                 /* subtracted from uint8 weight codes (and zero points) */
    float x_scale;
} layer;

/* What the node keeps besides the codes: their bit-planes for the bit-serial kernels, made on the first
 * run that may use them (NULL when the codes are too wide for them). */
typedef struct kept_head {
    int bitserial_made;
    qce_qdq_bitserial *bitserial;
} kept_head;

/* The weights as qc_int8_gemm takes them, kept with the node: the signed codes [O, k_pad] (zero-padded,
 * 64-byte aligned) and each row's sum. */
typedef struct weights {
    kept_head *head;
    int64_t *sums;
    int8_t *rows;
} weights;

static size_t weights_bytes(const layer *l)
{
    return sizeof(kept_head) + sizeof(int64_t) * (size_t)l->outputs + 2 * ROW_ALIGN + (size_t)(l->outputs * l->k_pad);
}

/* The derived data's release (qce_derived.release): the bit-planes are what it owns. */
static void release_kept(void *data)
{
    kept_head *head = data;
    qce__qdq_bitserial_free(head->bitserial);
    head->bitserial = NULL, head->bitserial_made = 0;
}

static weights weights_view(void *data, const layer *l)
{
    weights w = {data, NULL, NULL};
    w.sums = (int64_t *)(((uintptr_t)(w.head + 1) + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN);
    uintptr_t after = (uintptr_t)(w.sums + l->outputs);
    w.rows = (int8_t *)((after + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN);
    return w;
}

/* Code (k, o) of W, whose (unpacked) levels are `levels`. */
static int32_t weight_code(const qc_tensor *wt, const int8_t *levels, const layer *l, int64_t k, int64_t o)
{
    int64_t i = l->transposed ? o * l->k + k : k * l->outputs + o;
    if (wt->dtype == QC_DT_U8) return ((const uint8_t *)wt->data)[i];
    if (wt->dtype == QC_DT_UINT4) return (uint8_t)levels[i];
    return levels[i];
}

static qc_status fill_weights(const qce_call *call, const layer *l, weights w)
{
    const qc_tensor *wt = input(call, QCE_FUSED_W);
    int8_t *unpacked = NULL;
    const int8_t *levels = wt->data;
    if (wt->dtype == QC_DT_INT4 || wt->dtype == QC_DT_UINT4) {
        size_t n = (size_t)qce__numel(wt);
        levels = unpacked = malloc(n + 1);
        if (unpacked == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory to unpack the weights");
        qc_unpack_int4(unpacked, wt->data, n, wt->dtype == QC_DT_INT4);
    }
    for (int64_t o = 0; o < l->outputs; o++) {
        int8_t *row = w.rows + o * l->k_pad;
        int64_t sum = 0;
        for (int64_t k = 0; k < l->k; k++) {
            row[k] = (int8_t)(weight_code(wt, levels, l, k, o) - l->w_shift);
            sum += row[k];
        }
        memset(row + l->k, 0, (size_t)(l->k_pad - l->k));
        w.sums[o] = sum;
    }
    free(unpacked);
    return QC_OK;
}

/* The kept weights, rebuilt when the initializer is replaced. */
static qc_status prepare_weights(const qce_call *call, const layer *l, weights *w)
{
    const size_t source = QCE_FUSED_W;
    int fresh;
    void *kept = qce__derived(call, weights_bytes(l), &source, 1, &fresh);
    if (fresh < 0) return QC_ERR_OUT_OF_MEMORY;
    if (kept == NULL) return qce__fail(call, QC_ERR_INVALID_ARG, "the weight '%s' is not a constant", call->inputs[QCE_FUSED_W]->name);
    *w = weights_view(kept, l);
    if (fresh) {
        w->head->bitserial_made = 0, w->head->bitserial = NULL;
        call->derived->release = release_kept;
    }
    qc_status st = fresh ? fill_weights(call, l, *w) : QC_OK;
    if (st != QC_OK) call->derived->bytes = 0; /* half filled: the next run fills it again */
    return st;
}

/* Zero point k (of a per-tensor or per-output parameter), 0 when absent. */
static int32_t zero_point(const qce_call *call, size_t k, int64_t i)
{
    if (!qce__present(call, k)) return 0;
    const qc_tensor *z = input(call, k);
    if (z->dtype != QC_DT_INT4 && z->dtype != QC_DT_UINT4) return (int32_t)qce__load(z, qce__numel(z) == 1 ? 0 : i);
    int8_t v[2];
    int64_t at = qce__numel(z) == 1 ? 0 : i;
    qc_unpack_int4(v, (const uint8_t *)z->data + at / 2, 2, z->dtype == QC_DT_INT4);
    return z->dtype == QC_DT_UINT4 ? (uint8_t)v[at % 2] : v[at % 2];
}

static qc_status layer_init(const qce_call *call, layer *l)
{
    memset(l, 0, sizeof *l);
    QCE_TRY(qce__expect_input(call, QCE_FUSED_X, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = input(call, QCE_FUSED_X), *w = input(call, QCE_FUSED_W);
    l->gemm = strcmp(call->node->proto->op_type, "Gemm") == 0;
    l->transposed = l->gemm && qce__attr_int(call, "transB", 0) != 0;
    l->k = w->dims[l->transposed ? 1 : 0], l->outputs = w->dims[l->transposed ? 0 : 1];
    l->k_pad = (l->k + ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN;
    if (l->gemm && x->ndim != 2) return qce__fail(call, QC_ERR_SHAPE, "Gemm takes 2-D A and B");
    if (x->ndim < 1 || x->dims[x->ndim - 1] != l->k)
        return qce__fail(call, QC_ERR_SHAPE, "inner dimensions differ: %lld and %lld",
                         (long long)(x->ndim ? x->dims[x->ndim - 1] : 0), (long long)l->k);
    l->rows = qce__numel(x) / l->k;
    l->codes = qce__present(call, QCE_FUSED_Q_ZERO) ? input(call, QCE_FUSED_Q_ZERO)->dtype : QC_DT_U8;
    l->zu = zero_point(call, QCE_FUSED_DQ_ZERO, 0) + (is_signed_code(l->codes) ? SIGNED_SHIFT : 0);
    l->w_shift = w->dtype == QC_DT_U8 ? SIGNED_SHIFT : 0;
    l->x_scale = (float)qce__load(input(call, QCE_FUSED_DQ_SCALE), 0);
    return QC_OK;
}

/* x's codes as its QuantizeLinear gives them (libqcore's quantizer on the node's grid), into `codes`
 * (rows * k bytes, int8 or uint8). */
static qc_status quantize_x(const qce_call *call, const layer *l, void *codes)
{
    const qc_tensor *x = input(call, QCE_FUSED_X), *scale = input(call, QCE_FUSED_Q_SCALE);
    int32_t zero = zero_point(call, QCE_FUSED_Q_ZERO, 0);
    qc_quant_options o;
    qc_tensor z, q;
    qc_status st = qc_quant_options_init(&o, QC_QUANT_OPTIONS_VERSION);
    o.bits = l->codes == QC_DT_INT4 || l->codes == QC_DT_UINT4 ? 4 : 8;
    o.is_signed = is_signed_code(l->codes), o.symmetric = 0, o.granularity = QC_GRAN_TENSOR;
    if (st == QC_OK) st = qc_tensor_init(&z, &zero, QC_DT_I32, scale->ndim, scale->dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&q, codes, o.is_signed ? QC_DT_I8 : QC_DT_U8, x->ndim, x->dims, NULL);
    if (st == QC_OK) st = qc_quantize(call->ctx, &q, x, scale, &z, &o);
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

/* u [rows, k_pad] = the codes shifted to uint8, zero-padded, and each row's sum. */
static void pad_codes(const layer *l, const void *codes, uint8_t *u, int64_t *sums)
{
    int shift = is_signed_code(l->codes) ? SIGNED_SHIFT : 0;
    for (int64_t r = 0; r < l->rows; r++) {
        int64_t sum = 0;
        for (int64_t k = 0; k < l->k; k++) {
            int32_t c = shift ? ((const int8_t *)codes)[r * l->k + k] + shift : ((const uint8_t *)codes)[r * l->k + k];
            u[r * l->k_pad + k] = (uint8_t)c;
            sum += c;
        }
        memset(u + r * l->k_pad + l->k, 0, (size_t)(l->k_pad - l->k));
        sums[r] = sum;
    }
}

/* sums [rows, O] exactly: the int8 product, then the zero-point corrections, each total checked against
 * int32. */
static qc_status exact_sums(const qce_call *call, const layer *l, const weights *w, const uint8_t *u, const int64_t *u_sums,
                            const int32_t *zw, int32_t *sums)
{
    qc_tensor y, x, wt;
    int64_t y_dims[2] = {l->rows, l->outputs}, x_dims[2] = {l->rows, l->k_pad}, w_dims[2] = {l->outputs, l->k_pad};
    qc_status st = qc_tensor_init(&y, sums, QC_DT_I32, 2, y_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&x, (void *)u, QC_DT_U8, 2, x_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&wt, w->rows, QC_DT_I8, 2, w_dims, NULL);
    if (st == QC_OK) st = qc_int8_gemm(call->ctx, &y, &x, &wt);
    if (st != QC_OK) return qce__fail(call, st, "%s", qc_last_error());
    int64_t *fixed = malloc(sizeof *fixed * (size_t)l->outputs + 1); /* the corrections that do not depend on the row */
    if (fixed == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the corrections");
    for (int64_t o = 0; o < l->outputs; o++) fixed[o] = (int64_t)l->zu * w->sums[o] - l->k * (int64_t)l->zu * zw[o];
    int bad = 0;
    for (int64_t r = 0; r < l->rows; r++) {
        int32_t *row = sums + r * l->outputs;
        if (l->k <= MAX_UNCHECKED_K) {
            uint32_t us = (uint32_t)u_sums[r];
            for (int64_t o = 0; o < l->outputs; o++)
                row[o] = (int32_t)((uint32_t)row[o] - (uint32_t)zw[o] * us - (uint32_t)fixed[o]);
            continue;
        }
        for (int64_t o = 0; o < l->outputs; o++) {
            int64_t total = (int64_t)row[o] - (int64_t)zw[o] * u_sums[r] - fixed[o];
            bad |= total != (int32_t)total;
            row[o] = (int32_t)total;
        }
    }
    free(fixed);
    if (bad)
        return qce__fail(call, QC_ERR_OVERFLOW, "a sum of %lld products does not fit the int32 accumulator", (long long)l->k);
    return QC_OK;
}

/* The bit-serial form of the weights, made once when the session may use it; NULL when it may not or the
 * codes are too wide. */
static qc_status bitserial_weights(const qce_call *call, const layer *l, const weights *w, qce_qdq_bitserial **out)
{
    *out = NULL;
    if (call->integer_kernels == QC_INTEGER_KERNELS_INT8) return QC_OK;
    if (!w->head->bitserial_made) {
        QCE_TRY(qce__qdq_bitserial_create(call, &w->head->bitserial, w->rows, l->k_pad, l->outputs, l->k));
        w->head->bitserial_made = 1;
    }
    *out = w->head->bitserial;
    return QC_OK;
}

/* sums [rows, O] exactly, on the bit-serial kernels when the session's choice and the codes' spans say
 * so (qc_model.h: qc_integer_kernels), else on qc_int8_gemm. */
static qc_status kernel_sums(const qce_call *call, const layer *l, const weights *w, const uint8_t *u, const int64_t *u_sums,
                             const int32_t *zw, int32_t *sums)
{
    qce_qdq_bitserial *b;
    QCE_TRY(bitserial_weights(call, l, w, &b));
    qce_qdq_operands op = {u, l->rows, l->k_pad, u_sums, l->zu, 0, zw};
    int force = call->integer_kernels == QC_INTEGER_KERNELS_BITSERIAL;
    int ka = qce__qdq_bitserial_input_planes(b, u, l->rows, l->k_pad, force, &op.u_min);
    if (ka) call->accumulator->kernels.bitserial_layers++;
    else call->accumulator->kernels.int8_layers++;
    return ka ? qce__qdq_bitserial_sums(call, b, ka, &op, sums) : exact_sums(call, l, w, u, u_sums, zw, sums);
}

/* sums [rows, O] through the session's simulated register, from the centred codes. */
static qc_status register_sums(const qce_call *call, const layer *l, const weights *w, const uint8_t *u, const int32_t *zw,
                               int32_t *sums)
{
    int16_t *a = malloc(sizeof *a * (size_t)(l->rows * l->k) + 1), *b = malloc(sizeof *b * (size_t)(l->k * l->outputs) + 1);
    if (a == NULL || b == NULL) {
        free(a), free(b);
        return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the centred codes");
    }
    for (int64_t r = 0; r < l->rows; r++)
        for (int64_t k = 0; k < l->k; k++) a[r * l->k + k] = (int16_t)(u[r * l->k_pad + k] - l->zu);
    for (int64_t k = 0; k < l->k; k++)
        for (int64_t o = 0; o < l->outputs; o++) b[k * l->outputs + o] = (int16_t)(w->rows[o * l->k_pad + k] - zw[o]);
    call->accumulator->kernels.simulated_layers++;
    qce__register_product(a, b, l->rows, l->k, l->outputs, sums, call->threads > 0 ? call->threads : 1, call->accumulator);
    free(a), free(b);
    return QC_OK;
}

/* y = x_scale w_scale[o] sum, Gemm's alpha and beta C applied (y already holds C when beta C counts).
 * `scale` holds x_scale w_scale[o]. */
static void scale_sums(const qce_call *call, const layer *l, const int32_t *sums, const float *scale, float *y, int with_c)
{
    float alpha = l->gemm ? qce__attr_float(call, "alpha", 1.0f) : 1.0f, beta = qce__attr_float(call, "beta", 1.0f);
    for (int64_t r = 0; r < l->rows; r++)
        for (int64_t o = 0; o < l->outputs; o++) {
            float v = (float)sums[r * l->outputs + o] * scale[o];
            if (l->gemm) v *= alpha;
            y[r * l->outputs + o] = with_c ? v + beta * y[r * l->outputs + o] : v;
        }
}

/* x_scale w_scale[o] per output. */
static float *output_scales(const qce_call *call, const layer *l)
{
    const qc_tensor *ws = input(call, QCE_FUSED_W_SCALE);
    const float *w_scale = ws->data;
    float *scale = malloc(sizeof *scale * (size_t)l->outputs + 1);
    for (int64_t o = 0; scale && o < l->outputs; o++) scale[o] = l->x_scale * w_scale[qce__numel(ws) > 1 ? o : 0];
    return scale;
}

/* The weight zero points per output, shifted as the codes. */
static int32_t *weight_zeros(const qce_call *call, const layer *l)
{
    int32_t *zw = malloc(sizeof *zw * (size_t)l->outputs + 1);
    for (int64_t o = 0; zw && o < l->outputs; o++) zw[o] = zero_point(call, QCE_FUSED_W_ZERO, o) - l->w_shift;
    return zw;
}

static qc_status run_layer(const qce_call *call, const layer *l, const weights *w, float *y)
{
    void *codes = malloc((size_t)(l->rows * l->k) + 1);
    uint8_t *u = aligned_alloc(ROW_ALIGN, (size_t)(l->rows * l->k_pad) + ROW_ALIGN);
    int64_t *u_sums = malloc(sizeof *u_sums * (size_t)l->rows + 1);
    int32_t *sums = malloc(sizeof *sums * (size_t)(l->rows * l->outputs) + 1), *zw = weight_zeros(call, l);
    float *scale = output_scales(call, l);
    qc_status st = codes && u && u_sums && sums && zw && scale ? QC_OK
                                                      : qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the integer layer");
    if (st == QC_OK) st = quantize_x(call, l, codes);
    if (st == QC_OK) pad_codes(l, codes, u, u_sums);
    if (st == QC_OK)
        st = call->accumulator->bits == 0 ? kernel_sums(call, l, w, u, u_sums, zw, sums) : register_sums(call, l, w, u, zw, sums);
    int with_c = l->gemm && qce__present(call, QCE_FUSED_BIAS) && qce__attr_float(call, "beta", 1.0f) != 0.0f;
    if (st == QC_OK && with_c) st = qce__expect_input(call, QCE_FUSED_BIAS, QCE_DT(QC_DT_F32));
    if (st == QC_OK && with_c) st = qce__gemm_fill_bias(call, input(call, QCE_FUSED_BIAS), y, l->rows, l->outputs);
    if (st == QC_OK) scale_sums(call, l, sums, scale, y, with_c);
    free(codes), free(u), free(u_sums), free(sums), free(zw), free(scale);
    return st;
}

qc_status qce__qdq_linear(const qce_call *call)
{
    layer l;
    QCE_TRY(layer_init(call, &l));
    const qc_tensor *x = input(call, QCE_FUSED_X);
    int64_t dims[QC_MAX_DIMS];
    qce__copy_ints(dims, x->dims, (size_t)x->ndim);
    dims[x->ndim - 1] = l.outputs;
    QCE_TRY(qce__output(call, 0, QC_DT_F32, x->ndim, dims));
    if (l.rows == 0 || call->outputs[0] == NULL) return QC_OK;
    weights w = {NULL, NULL, NULL};
    QCE_TRY(prepare_weights(call, &l, &w));
    return run_layer(call, &l, &w, call->outputs[0]->tensor.data);
}
