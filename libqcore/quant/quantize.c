/* Quantize, dequantize and fake-quantize with ONNX QuantizeLinear/DequantizeLinear semantics. The work
 * is cut into runs (quant/layout.h) spread over the context's threads; each stretch with one parameter
 * goes to the context's kernel. */
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "kernels/ref/quant_ref.h"
#include "quant/params_check.h"

/* What to do with `n` elements starting at element `offset`, all under grid `g`. */
typedef void (*stretch_fn)(void *job, int64_t offset, int64_t n, qc_grid_run g);

/* Index (from `offset`) of the first of n input elements the operation must refuse, or -1. */
typedef int64_t (*validate_fn)(const void *job, int64_t offset, int64_t n);

static void run_stretches(const qc_quant_call *call, qc_quant_run run, stretch_fn fn, void *job)
{
    for (int64_t j = 0; j < run.length; j += run.per) {
        int64_t n = run.length - j < run.per ? run.length - j : run.per;
        fn(job, run.offset + j, n, qc__quant_call_grid(call, run.param + j / run.per));
    }
}

/* Tensors of fewer elements are quantized on the calling thread (qc__ctx_threads_for; the executor's unary
 * ops use the same bound). */
static const double SERIAL_ELEMENTS = 65537;

/* Applies fn over every element, validating each run first while it is in cache. Returns the index of
 * the first invalid element (runs holding one are skipped), or -1. */
static int64_t for_each_stretch(const qc_ctx *ctx, const qc_quant_call *call, validate_fn validate, stretch_fn fn,
                                void *job)
{
    int64_t runs = qc__quant_layout_runs(&call->layout);
    int64_t first_bad = INT64_MAX;
    int threads = qc__ctx_threads_for(ctx, (double)call->layout.rows * (double)call->layout.row_length, SERIAL_ELEMENTS);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4) reduction(min : first_bad)
    for (int64_t k = 0; k < runs; k++) {
        qc_quant_run run = qc__quant_layout_run(&call->layout, k);
        int64_t bad = validate(job, run.offset, run.length);
        if (bad >= 0) {
            if (run.offset + bad < first_bad) first_bad = run.offset + bad;
            continue;
        }
        run_stretches(call, run, fn, job);
    }
    return first_bad == INT64_MAX ? -1 : first_bad;
}

static qc_status nonfinite_error(const float *x, int64_t bad, const char *function)
{
    return QC_FAIL_IN(function, QC_ERR_NUMERIC, "argument 'x': element %lld is %g; inputs must be finite",
                      (long long)bad, (double)x[bad]);
}

typedef struct quantize_job {
    const qc_kernels *kernels;
    const float *x;
    void *out;
    qc_dtype out_dtype; /* i8/u8 (bytes), i16 or i32 */
} quantize_job;

static int64_t quantize_validate(const void *p, int64_t offset, int64_t n)
{
    return qc__first_nonfinite(((const quantize_job *)p)->x + offset, n);
}

static void quantize_stretch(void *p, int64_t offset, int64_t n, qc_grid_run g)
{
    quantize_job *job = p;
    const float *x = job->x + offset;
    switch (job->out_dtype) {
    case QC_DT_I16:
        for (int64_t i = 0; i < n; i++) ((int16_t *)job->out)[offset + i] = (int16_t)qc__quantize_one(x[i], g);
        break;
    case QC_DT_I32:
        for (int64_t i = 0; i < n; i++) ((int32_t *)job->out)[offset + i] = qc__quantize_one(x[i], g);
        break;
    default: job->kernels->quantize_f32_bytes((uint8_t *)job->out + offset, x, (size_t)n, g); break;
    }
}

/* The integer range each output dtype can hold. */
static int dtype_range(qc_dtype dtype, int64_t *lo, int64_t *hi)
{
    switch (dtype) {
    case QC_DT_I8: *lo = -128, *hi = 127; return 1;
    case QC_DT_U8: *lo = 0, *hi = 255; return 1;
    case QC_DT_I16: *lo = -32768, *hi = 32767; return 1;
    case QC_DT_I32: *lo = INT32_MIN, *hi = INT32_MAX; return 1;
    case QC_DT_INT4: *lo = -8, *hi = 7; return 1;
    case QC_DT_UINT4: *lo = 0, *hi = 15; return 1;
    default: return 0;
    }
}

static qc_status check_integer_tensor(const qc_tensor *q, const char *name, const qc_grid *grid, const char *function)
{
    QC_TRY(qc__tensor_check(q, function, name));
    int64_t lo, hi;
    if (!dtype_range(q->dtype, &lo, &hi))
        return QC_FAIL_IN(function, QC_ERR_DTYPE, "argument '%s': dtype %s is not one of i8, u8, i16, i32, int4, uint4",
                          name, qc_dtype_string(q->dtype));
    if (grid->qmin < lo || grid->qmax > hi)
        return QC_FAIL_IN(function, QC_ERR_DTYPE, "argument '%s': dtype %s cannot hold the grid [%d, %d]", name,
                          qc_dtype_string(q->dtype), (int)grid->qmin, (int)grid->qmax);
    if (!qc_tensor_is_contiguous(q))
        return QC_FAIL_IN(function, QC_ERR_LAYOUT, "argument '%s': must be C-contiguous", name);
    return QC_OK;
}

static int is_packed4(qc_dtype d)
{
    return d == QC_DT_INT4 || d == QC_DT_UINT4;
}

qc_status qc_quantize(qc_ctx *ctx, qc_tensor *q, const qc_tensor *x, const qc_tensor *scale,
                      const qc_tensor *zero_point, const qc_quant_options *opts)
{
    qc_quant_call call;
    QC_TRY(qc__quant_call_init(&call, ctx, opts, x, "x", scale, zero_point, __func__));
    QC_TRY(qc__tensor_expect(x, __func__, "x", QC_DT_F32));
    QC_TRY(check_integer_tensor(q, "q", &call.grid, __func__));
    QC_TRY(qc__tensor_same_shape(q, x, __func__, "q", "x"));
    int64_t n = qc_tensor_numel(x);
    quantize_job job = {ctx->kernels, x->data, q->data, q->dtype};
    if (is_packed4(q->dtype)) {
        job.out = malloc(n > 0 ? (size_t)n : 1);
        if (job.out == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld unpacked values", (long long)n);
        job.out_dtype = QC_DT_I8;
    }
    int64_t bad = for_each_stretch(ctx, &call, quantize_validate, quantize_stretch, &job);
    qc_status st = bad >= 0 ? nonfinite_error(x->data, bad, __func__) : QC_OK;
    if (st == QC_OK && is_packed4(q->dtype)) st = qc_pack_int4(q->data, job.out, (size_t)n, q->dtype == QC_DT_INT4);
    if (job.out != q->data) free(job.out);
    return st;
}

typedef struct dequantize_job {
    const qc_kernels *kernels;
    const void *q;
    qc_dtype q_dtype; /* i8, u8, i16 or i32 */
    float *out;
    int32_t qmin, qmax;
} dequantize_job;

static void dequantize_stretch(void *p, int64_t offset, int64_t n, qc_grid_run g)
{
    dequantize_job *job = p;
    float *out = job->out + offset;
    switch (job->q_dtype) {
    case QC_DT_I16:
        for (int64_t i = 0; i < n; i++) out[i] = qc__dequantize_one(((const int16_t *)job->q)[offset + i], g);
        break;
    case QC_DT_I32:
        for (int64_t i = 0; i < n; i++) out[i] = qc__dequantize_one(((const int32_t *)job->q)[offset + i], g);
        break;
    default:
        job->kernels->dequantize_bytes_f32(out, (const uint8_t *)job->q + offset, (size_t)n, job->q_dtype == QC_DT_I8, g);
        break;
    }
}

static int64_t integer_at(const void *q, qc_dtype dtype, int64_t i)
{
    switch (dtype) {
    case QC_DT_I8: return ((const int8_t *)q)[i];
    case QC_DT_U8: return ((const uint8_t *)q)[i];
    case QC_DT_I16: return ((const int16_t *)q)[i];
    default: return ((const int32_t *)q)[i];
    }
}

/* Branch-free per dtype so that the scan vectorizes; the position is searched only on failure. */
#define ANY_OUTSIDE(type, q, n, lo, hi, any)                        \
    for (int64_t i_ = 0; i_ < (n); i_++) {                           \
        int32_t v_ = ((const type *)(q))[i_];                        \
        (any) |= (v_ < (lo)) | (v_ > (hi));                          \
    }

static int64_t dequantize_validate(const void *p, int64_t offset, int64_t n)
{
    const dequantize_job *job = p;
    int any = 0;
    switch (job->q_dtype) {
    case QC_DT_I8: ANY_OUTSIDE(int8_t, (const int8_t *)job->q + offset, n, job->qmin, job->qmax, any); break;
    case QC_DT_U8: ANY_OUTSIDE(uint8_t, (const uint8_t *)job->q + offset, n, job->qmin, job->qmax, any); break;
    case QC_DT_I16: ANY_OUTSIDE(int16_t, (const int16_t *)job->q + offset, n, job->qmin, job->qmax, any); break;
    default: ANY_OUTSIDE(int32_t, (const int32_t *)job->q + offset, n, job->qmin, job->qmax, any); break;
    }
    for (int64_t i = 0; any && i < n; i++) {
        int64_t v = integer_at(job->q, job->q_dtype, offset + i);
        if (v < job->qmin || v > job->qmax) return i;
    }
    return -1;
}

qc_status qc_dequantize(qc_ctx *ctx, qc_tensor *x, const qc_tensor *q, const qc_tensor *scale,
                        const qc_tensor *zero_point, const qc_quant_options *opts)
{
    qc_quant_call call;
    QC_TRY(qc__quant_call_init(&call, ctx, opts, q, "q", scale, zero_point, __func__));
    QC_TRY(check_integer_tensor(q, "q", &call.grid, __func__));
    QC_TRY(qc__tensor_expect(x, __func__, "x", QC_DT_F32));
    QC_TRY(qc__tensor_same_shape(x, q, __func__, "x", "q"));
    int64_t n = qc_tensor_numel(q);
    dequantize_job job = {ctx->kernels, q->data, q->dtype, x->data, call.grid.qmin, call.grid.qmax};
    int8_t *unpacked = NULL;
    if (is_packed4(q->dtype)) {
        unpacked = malloc(n > 0 ? (size_t)n : 1);
        if (unpacked == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld unpacked values", (long long)n);
        qc_unpack_int4(unpacked, q->data, (size_t)n, q->dtype == QC_DT_INT4);
        job.q = unpacked;
        job.q_dtype = q->dtype == QC_DT_INT4 ? QC_DT_I8 : QC_DT_U8;
    }
    int64_t bad = for_each_stretch(ctx, &call, dequantize_validate, dequantize_stretch, &job);
    qc_status st = QC_OK;
    if (bad >= 0)
        st = QC_FAIL(QC_ERR_INVALID_ARG, "argument 'q': element %lld is %lld, outside the grid [%d, %d]", (long long)bad,
                     (long long)integer_at(job.q, job.q_dtype, bad), (int)call.grid.qmin, (int)call.grid.qmax);
    free(unpacked);
    return st;
}

typedef struct fake_job {
    const qc_kernels *kernels;
    const float *x;
    float *y;
} fake_job;

static int64_t fake_validate(const void *p, int64_t offset, int64_t n)
{
    return qc__first_nonfinite(((const fake_job *)p)->x + offset, n);
}

static void fake_stretch(void *p, int64_t offset, int64_t n, qc_grid_run g)
{
    fake_job *job = p;
    job->kernels->fake_quantize_f32(job->y + offset, job->x + offset, (size_t)n, g);
}

qc_status qc_fake_quantize(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *scale,
                           const qc_tensor *zero_point, const qc_quant_options *opts)
{
    qc_quant_call call;
    QC_TRY(qc__quant_call_init(&call, ctx, opts, x, "x", scale, zero_point, __func__));
    QC_TRY(qc__tensor_expect(x, __func__, "x", QC_DT_F32));
    QC_TRY(qc__tensor_expect(y, __func__, "y", QC_DT_F32));
    QC_TRY(qc__tensor_same_shape(y, x, __func__, "y", "x"));
    fake_job job = {ctx->kernels, x->data, y->data};
    int64_t bad = for_each_stretch(ctx, &call, fake_validate, fake_stretch, &job);
    return bad >= 0 ? nonfinite_error(x->data, bad, __func__) : QC_OK;
}
