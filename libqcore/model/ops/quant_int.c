/* Quantized integer ops: MatMulInteger and QLinearMatMul (exact integer products), DynamicQuantizeLinear,
 * and com.microsoft.MatMulNBits (blockwise 2/4/8-bit weights, dequantized to float for BLAS).
 *
 * Integer products centre each operand on its zero points into int16 (|level - zero point| <= 255) and
 * sum each row in int32 over chunks of K short enough never to overflow (32768 * 255 * 255 < 2^31), the
 * chunks in int64: a sum outside int32 fails naming the node instead of wrapping as onnxruntime's does.
 * QLinearMatMul then requantizes the int32 sums exactly as onnxruntime does, so results match it bit for
 * bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/blas.h"
#include "ops/matmul.h"
#include "ops/ops.h"
#include "qcore/qc_quant.h"

#define INT8_TYPES (QCE_DT(QC_DT_I8) | QCE_DT(QC_DT_U8))
#define CHUNK 32768

/* Output k's data, or NULL when nobody reads it or it is empty (the kernel then has nothing to write). */
static void *output_data(const qce_call *call, size_t k)
{
    return k < call->num_outputs && call->outputs[k] ? call->outputs[k]->tensor.data : NULL;
}

/* ---- zero points and scales of matmul operands ---- */

/* A parameter of one matmul operand, one per tensor or one per line (row of A, column of B), the lines'
 * values shared by every matrix of the operand or given per matrix: entry (matrix, line) is element
 * matrix * matrix_stride + line * line_stride. */
typedef struct line_param {
    const qc_tensor *t;          /* NULL for an absent optional input: every entry is 0 */
    int64_t matrix_stride;
    int64_t line_stride;
} line_param;

/* Input `in` as a parameter of operand x (rank >= 2) whose lines run along `line_axis` (ndim - 2 for the
 * rows of A, ndim - 1 for the columns of B): one value, a vector over the lines, or x's shape with the
 * reduced axis K set to 1 (the layouts MatMulInteger's spec gives). */
static qc_status line_param_init(const qce_call *call, size_t in, const qc_tensor *x, int line_axis, line_param *p)
{
    memset(p, 0, sizeof *p);
    if (!qce__present(call, in)) return QC_OK;
    const qc_tensor *t = p->t = &call->inputs[in]->tensor;
    int64_t lines = x->dims[line_axis];
    int k_axis = line_axis == x->ndim - 1 ? x->ndim - 2 : x->ndim - 1;
    int per_matrix = t->ndim == x->ndim;
    for (int d = 0; per_matrix && d < t->ndim; d++) per_matrix = t->dims[d] == (d == k_axis ? 1 : x->dims[d]);
    if (qce__numel(t) == 1) return QC_OK;
    p->line_stride = 1;
    if (t->ndim == 1 && t->dims[0] == lines) return QC_OK;
    p->matrix_stride = lines;
    if (per_matrix) return QC_OK;
    return qce__fail(call, QC_ERR_SHAPE, "input %zu ('%s') must hold one value or one per %s (%lld)", in,
                     call->inputs[in]->name, line_axis == x->ndim - 1 ? "column of B" : "row of A", (long long)lines);
}

static double line_value(const line_param *p, int64_t matrix, int64_t line)
{
    return p->t ? qce__load(p->t, matrix * p->matrix_stride + line * p->line_stride) : 0.0;
}

/* ---- exact integer products ---- */

/* (A - a_zero_point)(B - b_zero_point) for int8/uint8 A and B, as numpy matmul. */
typedef struct int_product {
    qce_matmul mm;
    line_param za, zb;
} int_product;

/* A zero point, when present, has its operand's dtype. */
static qc_status expect_zero_point(const qce_call *call, size_t zp, size_t of)
{
    return qce__present(call, zp) ? qce__expect_input(call, zp, QCE_DT(call->inputs[of]->tensor.dtype)) : QC_OK;
}

static qc_status int_product_init(int_product *p, const qce_call *call, size_t ia, size_t iza, size_t ib, size_t izb)
{
    QCE_TRY(qce__expect_input(call, ia, INT8_TYPES));
    QCE_TRY(qce__expect_input(call, ib, INT8_TYPES));
    QCE_TRY(expect_zero_point(call, iza, ia));
    QCE_TRY(expect_zero_point(call, izb, ib));
    QCE_TRY(qce__matmul_init(&p->mm, call, ia, ib));
    QCE_TRY(line_param_init(call, iza, &p->mm.a, p->mm.a.ndim - 2, &p->za));
    return line_param_init(call, izb, &p->mm.b, p->mm.b.ndim - 1, &p->zb);
}

static int32_t level(const qc_tensor *t, int64_t i)
{
    return t->dtype == QC_DT_I8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

/* out = x - its zero point, x seen as [matrices, rows, columns], the zero point per row or per column. */
static void center(int16_t *out, const qc_tensor *x, const line_param *zp, int per_column)
{
    int64_t rows = x->dims[x->ndim - 2], cols = x->dims[x->ndim - 1], total = qce__numel(x);
    for (int64_t i = 0; i < total; i++) {
        int64_t matrix = i / (rows * cols), line = per_column ? i % cols : i / cols % rows;
        out[i] = (int16_t)(level(x, i) - (int32_t)line_value(zp, matrix, line));
    }
}

/* total[j] = sum_i a[i] * b[i, j] over i < k, exact (see the top of the file). */
static void product_row(const int16_t *a, const int16_t *b, int64_t k, int64_t n, int32_t *part, int64_t *total)
{
    for (int64_t j = 0; j < n; j++) total[j] = 0;
    for (int64_t k0 = 0; k0 < k; k0 += CHUNK) {
        int64_t k1 = k - k0 < CHUNK ? k : k0 + CHUNK;
        for (int64_t j = 0; j < n; j++) part[j] = 0;
        for (int64_t i = k0; i < k1; i++) {
            int32_t ai = a[i];
            const int16_t *bi = b + i * n;
            for (int64_t j = 0; j < n; j++) part[j] += ai * bi[j];
        }
        for (int64_t j = 0; j < n; j++) total[j] += part[j];
    }
}

enum { SUM_OVERFLOW = 1, NO_MEMORY = 2 };

/* One dot product through a simulated P-bit register (qc_session_set_accumulator): terms are added in
 * order of the reduction index; a partial sum outside the register's range is an event, after which the
 * register wraps around or saturates. The exact partial sums are tracked alongside for the statistics. */
static int32_t register_dot(const int16_t *a, const int16_t *b, int64_t k, int64_t stride, const qce_accumulator *acc,
                            qc_accumulator_stats *stats)
{
    int64_t lo = -((int64_t)1 << (acc->bits - 1)), hi = ((int64_t)1 << (acc->bits - 1)) - 1, span = hi - lo + 1;
    int64_t exact = 0, reg = 0, top = 0;
    uint64_t events = 0;
    for (int64_t i = 0; i < k; i++) {
        int64_t term = (int64_t)a[i] * b[i * stride];
        exact += term;
        reg += term;
        top = exact > top ? exact : -exact > top ? -exact : top;
        if (reg >= lo && reg <= hi) continue;
        events++;
        if (acc->mode == QC_ACCUMULATE_WRAP) reg = ((reg - lo) % span + span) % span + lo;
        else reg = reg < lo ? lo : hi;
    }
    stats->dot_products++;
    stats->overflow_events += events;
    stats->overflowing_products += events > 0;
    if (top > stats->max_abs_partial_sum) stats->max_abs_partial_sum = top;
    return (int32_t)reg;
}

static void add_stats(qc_accumulator_stats *total, const qc_accumulator_stats *part)
{
    total->dot_products += part->dot_products;
    total->overflow_events += part->overflow_events;
    total->overflowing_products += part->overflowing_products;
    if (part->max_abs_partial_sum > total->max_abs_partial_sum) total->max_abs_partial_sum = part->max_abs_partial_sum;
}

void qce__register_product(const int16_t *a, const int16_t *b, int64_t rows, int64_t k, int64_t n, int32_t *c, int threads,
                           qce_accumulator *acc)
{
#pragma omp parallel num_threads(threads) if (rows > 1)
    {
        qc_accumulator_stats mine = {0, 0, 0, 0};
#pragma omp for schedule(static)
        for (int64_t row = 0; row < rows; row++)
            for (int64_t j = 0; j < n; j++) c[row * n + j] = register_dot(a + row * k, b + j, k, n, acc, &mine);
#pragma omp critical(qce_accumulator_stats)
        add_stats(&acc->stats, &mine);
    }
}

/* One output row, exact: int32 partial sums per chunk, int64 across chunks, checked against int32. */
static int exact_row(const int16_t *a, const int16_t *b, int64_t k, int64_t n, int32_t *part, int64_t *total, int32_t *c)
{
    int bad = 0;
    product_row(a, b, k, n, part, total);
    for (int64_t j = 0; j < n; j++) {
        int fits = total[j] >= INT32_MIN && total[j] <= INT32_MAX;
        bad |= fits ? 0 : SUM_OVERFLOW;
        c[j] = fits ? (int32_t)total[j] : 0;
    }
    return bad;
}

/* The rows of the product into c (int32, the output's shape), spread over the threads. */
static int product_rows(const qce_matmul *mm, const int16_t *ac, const int16_t *bc, int32_t *c, int threads,
                        qce_accumulator *acc)
{
    int64_t m = mm->m, k = mm->k, n = mm->n, rows = mm->count * m;
    int bad = 0;
#pragma omp parallel num_threads(threads) if (rows > 1)
    {
        int32_t *part = malloc(sizeof *part * (size_t)n + 1);
        int64_t *total = malloc(sizeof *total * (size_t)n + 1);
        qc_accumulator_stats mine = {0, 0, 0, 0};
#pragma omp for schedule(static) reduction(| : bad)
        for (int64_t row = 0; row < rows; row++) {
            if (part == NULL || total == NULL) {
                bad |= NO_MEMORY;
                continue;
            }
            int64_t oa, ob;
            qce__matmul_operands(mm, row / m, &oa, &ob);
            const int16_t *a = ac + (oa * m + row % m) * k, *b = bc + ob * k * n;
            if (acc->bits == 0) {
                bad |= exact_row(a, b, k, n, part, total, c + row * n);
                continue;
            }
            for (int64_t j = 0; j < n; j++) c[row * n + j] = register_dot(a, b + j, k, n, acc, &mine);
        }
#pragma omp critical(qce_accumulator_stats)
        add_stats(&acc->stats, &mine);
        free(part);
        free(total);
    }
    return bad;
}

static qc_status int_product_run(const int_product *p, const qce_call *call, int32_t *c)
{
    const qce_matmul *mm = &p->mm;
    int16_t *ac = malloc(sizeof *ac * (size_t)qce__numel(&mm->a) + 1);
    int16_t *bc = malloc(sizeof *bc * (size_t)qce__numel(&mm->b) + 1);
    int bad = ac == NULL || bc == NULL ? NO_MEMORY : 0;
    if (!bad) {
        center(ac, &mm->a, &p->za, 0);
        center(bc, &mm->b, &p->zb, 1);
        bad = product_rows(mm, ac, bc, c, call->threads > 0 ? call->threads : 1, call->accumulator);
    }
    free(ac);
    free(bc);
    if (bad & NO_MEMORY) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the integer product");
    if (bad & SUM_OVERFLOW)
        return qce__fail(call, QC_ERR_OVERFLOW, "a sum of %lld products does not fit the int32 accumulator",
                         (long long)mm->k);
    return QC_OK;
}

static qc_status op_matmul_integer(const qce_call *call)
{
    int_product p;
    QCE_TRY(int_product_init(&p, call, 0, 2, 1, 3));
    QCE_TRY(qce__output(call, 0, QC_DT_I32, p.mm.ndim, p.mm.dims));
    int32_t *y = output_data(call, 0);
    return y ? int_product_run(&p, call, y) : QC_OK;
}

/* ---- QLinearMatMul ---- */

/* y = saturate(round_half_even(float(c) * multiplier) + y_zero_point) with multiplier = a_scale * b_scale /
 * y_scale in float, as onnxruntime's MlasRequantizeOutput: the product is clamped to the output's range
 * before rounding, a NaN to its low end (as MAXPS does). */
static void requantize(const int_product *p, const line_param *sa, const line_param *sb, float y_scale, int32_t y_zero,
                       const int32_t *c, qc_tensor *y)
{
    const qce_matmul *mm = &p->mm;
    int32_t qmin = y->dtype == QC_DT_I8 ? -128 : 0, qmax = y->dtype == QC_DT_I8 ? 127 : 255;
    float lo = (float)(qmin - y_zero), hi = (float)(qmax - y_zero);
    for (int64_t row = 0; row < mm->count * mm->m; row++) {
        int64_t oa, ob;
        qce__matmul_operands(mm, row / mm->m, &oa, &ob);
        float a_scale = (float)line_value(sa, oa, row % mm->m);
        for (int64_t j = 0; j < mm->n; j++) {
            float multiplier = a_scale * (float)line_value(sb, ob, j) / y_scale;
            float v = fminf(fmaxf((float)c[row * mm->n + j] * multiplier, lo), hi);
            qce__store(y, row * mm->n + j, rintf(v) + (float)y_zero);
        }
    }
}

static qc_status op_qlinear_matmul(const qce_call *call)
{
    /* a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point */
    for (size_t k = 0; k < 8; k++)
        QCE_TRY(qce__expect_input(call, k, k == 1 || k == 4 || k == 6 ? QCE_DT(QC_DT_F32) : INT8_TYPES));
    int_product p;
    QCE_TRY(int_product_init(&p, call, 0, 2, 3, 5));
    line_param sa, sb;
    QCE_TRY(line_param_init(call, 1, &p.mm.a, p.mm.a.ndim - 2, &sa));
    QCE_TRY(line_param_init(call, 4, &p.mm.b, p.mm.b.ndim - 1, &sb));
    const qc_tensor *y_scale = &call->inputs[6]->tensor, *y_zero = &call->inputs[7]->tensor;
    if (qce__numel(y_scale) != 1 || qce__numel(y_zero) != 1)
        return qce__fail(call, QC_ERR_UNSUPPORTED, "y_scale and y_zero_point must hold one value each (per-tensor output)");
    QCE_TRY(qce__output(call, 0, y_zero->dtype, p.mm.ndim, p.mm.dims));
    if (output_data(call, 0) == NULL) return QC_OK;
    int32_t *c = malloc(sizeof *c * (size_t)(p.mm.count * p.mm.m * p.mm.n) + 1);
    if (c == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the int32 sums");
    qc_status st = int_product_run(&p, call, c);
    if (st == QC_OK)
        requantize(&p, &sa, &sb, (float)qce__load(y_scale, 0), (int32_t)qce__load(y_zero, 0), c, &call->outputs[0]->tensor);
    free(c);
    return st;
}

/* ---- DynamicQuantizeLinear ---- */

/* Widens [lo, hi] to hold every element of x (f32), which must be finite for a scale to exist. */
static qc_status finite_range(const qce_call *call, const qc_tensor *x, float *lo, float *hi)
{
    const float *v = x->data;
    for (int64_t i = 0, n = qce__numel(x); i < n; i++) {
        if (!isfinite(v[i]))
            return qce__fail(call, QC_ERR_NUMERIC, "element %lld is %g: no scale covers it", (long long)i, v[i]);
        *lo = fminf(*lo, v[i]), *hi = fmaxf(*hi, v[i]);
    }
    return QC_OK;
}

/* y = QuantizeLinear(x, scale, zero) on the uint8 grid, by libqcore's quantizer. */
static qc_status quantize_u8(const qce_call *call, qc_tensor *y, const qc_tensor *x, float scale, int32_t zero)
{
    qc_tensor s, z;
    qc_quant_options o;
    qc_ctx *ctx = NULL;
    qc_status st = qc_tensor_init(&s, &scale, QC_DT_F32, 0, NULL, NULL);
    if (st == QC_OK) st = qc_tensor_init(&z, &zero, QC_DT_I32, 0, NULL, NULL);
    if (st == QC_OK) st = qc_quant_options_init(&o, QC_QUANT_OPTIONS_VERSION);
    o.bits = 8, o.is_signed = 0, o.symmetric = 0, o.granularity = QC_GRAN_TENSOR;
    if (st == QC_OK) st = qc_ctx_create(&ctx);
    if (st == QC_OK) st = qc_ctx_set_param(ctx, QC_CTX_THREADS, call->threads);
    if (st == QC_OK) st = qc_quantize(ctx, y, x, &s, &z, &o);
    qc_ctx_free(ctx);
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

static qc_status op_dynamic_quantize_linear(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[0]->tensor;
    float lo = 0.0f, hi = 0.0f; /* the range always holds 0, so that 0 is exact */
    QCE_TRY(finite_range(call, x, &lo, &hi));
    /* onnxruntime's arithmetic, in float; an empty range (x all zero) gets scale 1, where the spec's
     * formula would divide by zero. */
    float scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
    float zero = rintf(fminf(fmaxf(0.0f - lo / scale, 0.0f), 255.0f));
    QCE_TRY(qce__output(call, 0, QC_DT_U8, x->ndim, x->dims));
    QCE_TRY(qce__output(call, 1, QC_DT_F32, 0, NULL));
    QCE_TRY(qce__output(call, 2, QC_DT_U8, 0, NULL));
    float *y_scale = output_data(call, 1);
    uint8_t *y_zero = output_data(call, 2);
    if (y_scale) *y_scale = scale;
    if (y_zero) *y_zero = (uint8_t)zero;
    return output_data(call, 0) ? quantize_u8(call, &call->outputs[0]->tensor, x, scale, (int32_t)zero) : QC_OK;
}

/* ---- com.microsoft.MatMulNBits ---- */

/* B holds W^T [N, K] in blocks of `block` values along K, each block `blob` bytes of `bits`-bit fields. */
typedef struct nbits_layout {
    int64_t k, n, bits, block;
    int64_t k_blocks;            /* blocks per column of W: ceil(K / block) */
    int64_t blob;                /* bytes per block: block * bits / 8 */
    int64_t zp_row;              /* bytes of packed zero points per column: ceil(k_blocks * bits / 8) */
} nbits_layout;

static qc_status nbits_layout_init(const qce_call *call, nbits_layout *q)
{
    q->k = qce__attr_int(call, "K", 0), q->n = qce__attr_int(call, "N", 0);
    q->bits = qce__attr_int(call, "bits", 4), q->block = qce__attr_int(call, "block_size", 0);
    if (q->k <= 0 || q->n <= 0)
        return qce__fail(call, QC_ERR_INVALID_ARG, "attributes K and N must be positive (K = %lld, N = %lld)",
                         (long long)q->k, (long long)q->n);
    if (q->bits != 2 && q->bits != 4 && q->bits != 8)
        return qce__fail(call, QC_ERR_UNSUPPORTED, "bits = %lld (2, 4 and 8 are supported)", (long long)q->bits);
    if (q->block < 16 || (q->block & (q->block - 1)) != 0)
        return qce__fail(call, QC_ERR_INVALID_ARG, "block_size = %lld is not a power of 2 of at least 16",
                         (long long)q->block);
    q->k_blocks = (q->k + q->block - 1) / q->block;
    q->blob = q->block * q->bits / 8;
    q->zp_row = (q->k_blocks * q->bits + 7) / 8;
    return QC_OK;
}

/* Input `in` holds rows * cols values as [rows, cols] or [rows * cols] (the 1-D form of older models). */
static qc_status expect_matrix(const qce_call *call, size_t in, int64_t rows, int64_t cols)
{
    const qc_tensor *t = &call->inputs[in]->tensor;
    if ((t->ndim == 1 && t->dims[0] == rows * cols) || (t->ndim == 2 && t->dims[0] == rows && t->dims[1] == cols))
        return QC_OK;
    return qce__fail(call, QC_ERR_SHAPE, "input %zu ('%s') must have shape [%lld, %lld] or [%lld]", in,
                     call->inputs[in]->name, (long long)rows, (long long)cols, (long long)(rows * cols));
}

static qc_status nbits_check_inputs(const qce_call *call, const nbits_layout *q)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_U8)));
    QCE_TRY(qce__expect_input(call, 2, QCE_DT(QC_DT_F32)));
    if (qce__present(call, 4))
        return qce__fail(call, QC_ERR_UNSUPPORTED,
                         "input 4 (g_idx, a permutation of K for act-order weights) is not supported");
    const qc_tensor *a = &call->inputs[0]->tensor, *b = &call->inputs[1]->tensor;
    if (a->ndim == 0 || a->dims[a->ndim - 1] != q->k)
        return qce__fail(call, QC_ERR_SHAPE, "the last dimension of A must be K = %lld", (long long)q->k);
    if (b->ndim != 3 || b->dims[0] != q->n || b->dims[1] != q->k_blocks || b->dims[2] != q->blob)
        return qce__fail(call, QC_ERR_SHAPE,
                         "B must have shape [N, ceil(K / block_size), block_size * bits / 8] = [%lld, %lld, %lld]",
                         (long long)q->n, (long long)q->k_blocks, (long long)q->blob);
    QCE_TRY(expect_matrix(call, 2, q->n, q->k_blocks));
    if (qce__present(call, 3)) {
        QCE_TRY(qce__expect_input(call, 3, QCE_DT(QC_DT_U8) | QCE_DT(QC_DT_F32)));
        QCE_TRY(expect_matrix(call, 3, q->n, call->inputs[3]->tensor.dtype == QC_DT_U8 ? q->zp_row : q->k_blocks));
    }
    if (qce__present(call, 5)) {
        QCE_TRY(qce__expect_input(call, 5, QCE_DT(QC_DT_F32)));
        QCE_TRY(expect_matrix(call, 5, 1, q->n));
    }
    return QC_OK;
}

/* Field i of a run of `bits`-bit fields packed into bytes, low bits first. */
static int32_t field(const uint8_t *bytes, int64_t i, int64_t bits)
{
    int64_t bit = i * bits;
    return (bytes[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
}

/* The zero point of block b of column n: packed fields, floats, or the grid's middle 2^(bits-1). */
static float nbits_zero_point(const nbits_layout *q, const qc_tensor *zp, int64_t n, int64_t b)
{
    if (zp == NULL) return (float)(1 << (q->bits - 1));
    if (zp->dtype == QC_DT_U8) return (float)field((const uint8_t *)zp->data + n * q->zp_row, b, q->bits);
    return ((const float *)zp->data)[n * q->k_blocks + b];
}

/* w [N, K] = (level - zero point) * scale, block by block (the padding of a last partial block dropped). */
static void nbits_dequantize(const nbits_layout *q, const uint8_t *packed, const float *scales, const qc_tensor *zp,
                             float *w, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(static) if (q->n * q->k >= 65536)
    for (int64_t n = 0; n < q->n; n++)
        for (int64_t b = 0; b < q->k_blocks; b++) {
            float scale = scales[n * q->k_blocks + b], zero = nbits_zero_point(q, zp, n, b);
            const uint8_t *blob = packed + (n * q->k_blocks + b) * q->blob;
            int64_t first = b * q->block, count = q->k - first < q->block ? q->k - first : q->block;
            for (int64_t i = 0; i < count; i++) w[n * q->k + first + i] = ((float)field(blob, i, q->bits) - zero) * scale;
        }
}

/* Y [..., N] = A [..., K] W^T + bias, W dequantized whole for one BLAS call (accuracy_level, which lets
 * onnxruntime quantize A to int8, is ignored: everything is float). */
static qc_status op_matmul_nbits(const qce_call *call)
{
    nbits_layout q;
    QCE_TRY(nbits_layout_init(call, &q));
    QCE_TRY(nbits_check_inputs(call, &q));
    const qc_tensor *a = &call->inputs[0]->tensor, *zp = qce__present(call, 3) ? &call->inputs[3]->tensor : NULL;
    const float *bias = qce__present(call, 5) ? call->inputs[5]->tensor.data : NULL;
    int64_t dims[QC_MAX_DIMS];
    qce__copy_ints(dims, a->dims, (size_t)a->ndim);
    dims[a->ndim - 1] = q.n;
    QCE_TRY(qce__output(call, 0, QC_DT_F32, a->ndim, dims));
    float *y = output_data(call, 0);
    int64_t m = qce__numel(a) / q.k;
    if (y == NULL || m == 0) return QC_OK;
    /* constant weights (the usual case) are dequantized once and kept with the node */
    size_t bytes = sizeof(float) * (size_t)(q.n * q.k);
    const size_t sources[3] = {1, 2, 3};
    int fresh;
    float *kept = qce__derived(call, bytes, sources, 3, &fresh);
    if (fresh < 0) return QC_ERR_OUT_OF_MEMORY;
    float *w = kept ? kept : malloc(bytes);
    if (w == NULL)
        return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the %lld x %lld dequantized weight", (long long)q.n,
                         (long long)q.k);
    int threads = call->threads > 0 ? call->threads : 1;
    if (kept == NULL || fresh) nbits_dequantize(&q, call->inputs[1]->tensor.data, call->inputs[2]->tensor.data, zp, w, threads);
    for (int64_t row = 0; bias && row < m; row++) memcpy(y + row * q.n, bias, sizeof *y * (size_t)q.n);
    qce__sgemm(call->threads, 0, 1, m, q.n, q.k, 1.0f, a->data, q.k, w, q.k, bias ? 1.0f : 0.0f, y, q.n);
    if (kept == NULL) free(w);
    return QC_OK;
}

const qce_op qce__quant_int_ops[] = {
    {"MatMulInteger", op_matmul_integer},
    {"QLinearMatMul", op_qlinear_matmul},
    {"DynamicQuantizeLinear", op_dynamic_quantize_linear},
    {"com.microsoft.MatMulNBits", op_matmul_nbits},
    {NULL, NULL},
};
