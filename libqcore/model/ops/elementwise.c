/* Elementwise ops: unary float functions, broadcasting arithmetic and comparisons, Where, Clip, Cast. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/broadcast.h"
#include "ops/ops.h"
#include "ops/vmath.h"

/* ---- unary float functions --------------------------------------------------------------------- */

/* fn(x, parameter): the parameter is an attribute read once per call (LeakyRelu's alpha), not per
 * element. */
static inline float relu(float x, float p) { (void)p; return x > 0.0f ? x : 0.0f; }
static inline float sqrt_(float x, float p) { (void)p; return sqrtf(x); }
static inline float log_(float x, float p) { (void)p; return logf(x); }
static inline float abs_(float x, float p) { (void)p; return fabsf(x); }
static inline float neg(float x, float p) { (void)p; return -x; }
static inline float reciprocal(float x, float p) { (void)p; return 1.0f / x; }
static inline float floor_(float x, float p) { (void)p; return floorf(x); }
static inline float ceil_(float x, float p) { (void)p; return ceilf(x); }
static inline float leaky_relu(float x, float alpha) { return x >= 0.0f ? x : alpha * x; }
static inline float softplus(float x, float p) { (void)p; return log1pf(expf(-fabsf(x))) + fmaxf(x, 0.0f); }
static inline float gelu_tanh(float x, float p)
{
    (void)p;
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

/* A unary function over an array. Each scalar function above gets an array form in which it is inlined,
 * so that the simple ones (Relu, Abs, Neg, ...) vectorize instead of costing a call per element; the
 * transcendental ones use ops/vmath.h. */
typedef void (*array_fn)(float *out, const float *in, size_t n, float parameter);

#define ARRAY_FORM(fn)                                                                 \
    static void fn##_array(float *out, const float *in, size_t n, float parameter)     \
    {                                                                                  \
        for (size_t i = 0; i < n; i++) out[i] = fn(in[i], parameter);                 \
    }
ARRAY_FORM(relu)
ARRAY_FORM(sqrt_)
ARRAY_FORM(log_)
ARRAY_FORM(abs_)
ARRAY_FORM(neg)
ARRAY_FORM(reciprocal)
ARRAY_FORM(floor_)
ARRAY_FORM(ceil_)
ARRAY_FORM(leaky_relu)
ARRAY_FORM(softplus)
ARRAY_FORM(gelu_tanh)

#define VMATH_FORM(fn)                                                                 \
    static void fn##_array(float *out, const float *in, size_t n, float parameter)     \
    {                                                                                  \
        (void)parameter;                                                               \
        qcm_v##fn(out, in, n);                                                         \
    }
VMATH_FORM(sigmoid)
VMATH_FORM(tanh)
VMATH_FORM(erf)
VMATH_FORM(exp)
VMATH_FORM(gelu)

enum { ARRAY_CHUNK = 16384 };

/* Runs fn over input 0 in chunks spread over the threads (in place when the input dies here). */
static qc_status unary_with(const qce_call *call, array_fn fn, float parameter)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int in_place;
    QCE_TRY(qce__output_over_input(call, 0, 0, QC_DT_F32, x->ndim, x->dims, &in_place));
    const float *in = x->data;
    float *out = call->outputs[0]->tensor.data;
    int64_t n = qce__numel(x), chunks = (n + ARRAY_CHUNK - 1) / ARRAY_CHUNK;
    if (n <= 65536) { /* not even a region that if() turns off: entering it costs more than a small array */
        for (int64_t first = 0; first < n; first += ARRAY_CHUNK)
            fn(out + first, in + first, (size_t)(n - first < ARRAY_CHUNK ? n - first : ARRAY_CHUNK), parameter);
        return QC_OK;
    }
#pragma omp parallel for num_threads(call->threads > 0 ? call->threads : 1) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t first = c * ARRAY_CHUNK;
        fn(out + first, in + first, (size_t)(n - first < ARRAY_CHUNK ? n - first : ARRAY_CHUNK), parameter);
    }
    return QC_OK;
}

static qc_status unary(const qce_call *call, array_fn fn)
{
    return unary_with(call, fn, 0.0f);
}

#define UNARY_OP(name, fn) \
    static qc_status op_##name(const qce_call *call) { return unary(call, fn##_array); }
UNARY_OP(relu, relu)
UNARY_OP(sqrt, sqrt_)
UNARY_OP(log, log_)
UNARY_OP(abs, abs_)
UNARY_OP(reciprocal, reciprocal)
UNARY_OP(floor, floor_)
UNARY_OP(ceil, ceil_)
UNARY_OP(softplus, softplus)
UNARY_OP(sigmoid, sigmoid)
UNARY_OP(tanh, tanh)
UNARY_OP(erf, erf)
UNARY_OP(exp, exp)

static qc_status op_leaky_relu(const qce_call *call)
{
    return unary_with(call, leaky_relu_array, qce__attr_float(call, "alpha", 0.01f));
}

static qc_status op_gelu(const qce_call *call)
{
    const Onnx__AttributeProto *a = qce__attr(call, "approximate");
    int tanh_form = a && a->s.len == 4 && memcmp(a->s.data, "tanh", 4) == 0;
    return unary(call, tanh_form ? gelu_tanh_array : gelu_array);
}

/* Neg also takes integers (shape arithmetic). */
static qc_status op_neg(const qce_call *call)
{
    if (call->num_inputs > 0 && call->inputs[0] && call->inputs[0]->tensor.dtype == QC_DT_F32) return unary(call, neg_array);
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_I64) | QCE_DT(QC_DT_I32)));
    const qc_tensor *x = &call->inputs[0]->tensor;
    QCE_TRY(qce__output(call, 0, x->dtype, x->ndim, x->dims));
    int64_t n = qce__numel(x);
    for (int64_t i = 0; i < n; i++) qce__store(&call->outputs[0]->tensor, i, -qce__load(x, i));
    return QC_OK;
}

/* ---- broadcasting binary ops ------------------------------------------------------------------- */

typedef enum { ADD, SUB, MUL, DIV, POW, MAX, MIN, MOD, FMOD, EQUAL, LESS, GREATER, LESS_EQUAL, GREATER_EQUAL, AND, OR, XOR } binary_kind;

static int is_comparison(binary_kind k)
{
    return k >= EQUAL;
}

/* One output row of a float op: a and b advance by sa and sb (0 or 1) per element. The switch sits
 * outside the loops, and each stride pair gets its own loop with constant strides, so that each
 * vectorizes (a loop over variable strides does not). */
#define ROW_BODY(expr, ia, ib)                                                                         \
    for (int64_t j = 0; j < n; j++) {                                                                  \
        float x = a[ia], z = b[ib];                                                                    \
        y[j] = (expr);                                                                                 \
    }
#define ROW_LOOP(expr)                                                                                 \
    do {                                                                                               \
        if (sa == 1 && sb == 1) ROW_BODY(expr, j, j)                                                   \
        else if (sa == 1 && sb == 0) ROW_BODY(expr, j, 0)                                              \
        else if (sa == 0 && sb == 1) ROW_BODY(expr, 0, j)                                              \
        else ROW_BODY(expr, j * sa, j * sb)                                                            \
    } while (0)

static void row_f32(binary_kind k, float *y, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n)
{
    switch (k) {
    case ADD: ROW_LOOP(x + z); break;
    case SUB: ROW_LOOP(x - z); break;
    case MUL: ROW_LOOP(x * z); break;
    case DIV: ROW_LOOP(x / z); break;
    case POW: ROW_LOOP(z == 2.0f ? x * x : powf(x, z)); break;
    case MAX: ROW_LOOP(x > z ? x : z); break;
    case MIN: ROW_LOOP(x < z ? x : z); break;
    case MOD: case FMOD: ROW_LOOP(fmodf(x, z)); break;
    default: break;
    }
}

static double apply_wide(binary_kind k, double a, double b, int integer)
{
    switch (k) {
    case ADD: return a + b;
    case SUB: return a - b;
    case MUL: return a * b;
    case DIV: return integer ? (b != 0 ? (double)((int64_t)a / (int64_t)b) : 0) : a / b;
    case POW: return pow(a, b);
    case MAX: return a > b ? a : b;
    case MIN: return a < b ? a : b;
    case MOD: return integer ? (b != 0 ? (double)((int64_t)a - (int64_t)b * (int64_t)floor(a / b)) : 0) : fmod(a, b);
    case FMOD: return integer ? (b != 0 ? (double)((int64_t)a % (int64_t)b) : 0) : fmod(a, b);
    case EQUAL: return a == b;
    case LESS: return a < b;
    case GREATER: return a > b;
    case LESS_EQUAL: return a <= b;
    case GREATER_EQUAL: return a >= b;
    case AND: return (a != 0) && (b != 0);
    case OR: return (a != 0) || (b != 0);
    case XOR: return (a != 0) != (b != 0);
    }
    return 0;
}

enum { CHUNK = 4096 };

static qc_status binary(const qce_call *call, binary_kind kind)
{
    /* Mod's fmod = 1 takes the dividend's sign (C's fmod); the default, the divisor's (Python's %). */
    if (kind == MOD && qce__attr_int(call, "fmod", 0)) kind = FMOD;
    unsigned types = QCE_DT(QC_DT_F32) | QCE_DT(QC_DT_F64) | QCE_DT(QC_DT_I64) | QCE_DT(QC_DT_I32) |
                     QCE_DT(QC_DT_I8) | QCE_DT(QC_DT_U8) | QCE_DT(QC_DT_I16);
    QCE_TRY(qce__expect_input(call, 0, types));
    QCE_TRY(qce__expect_input(call, 1, types));
    const qc_tensor *a = &call->inputs[0]->tensor, *b = &call->inputs[1]->tensor;
    if (a->dtype != b->dtype && kind != POW) /* Pow alone may raise to an exponent of another type */
        return qce__fail(call, QC_ERR_DTYPE, "inputs have different dtypes (%s and %s)", qc_dtype_string(a->dtype),
                         qc_dtype_string(b->dtype));
    const qc_tensor *ins[2] = {a, b};
    qce_broadcast bc;
    QCE_TRY(qce__broadcast_init(&bc, call, ins, 2));
    int in_place; /* into a's storage when a dies here and is not broadcast: each element is read, then written */
    QCE_TRY(qce__output_over_input(call, 0, 0, is_comparison(kind) ? QC_DT_U8 : a->dtype, bc.ndim, bc.dims, &in_place));
    qc_tensor *y = &call->outputs[0]->tensor;
    int64_t length = qce__broadcast_row_length(&bc), rows = length ? qce__numel(y) / length : 0;
    int64_t sa = bc.ndim ? bc.strides[0][bc.ndim - 1] : 0, sb = bc.ndim ? bc.strides[1][bc.ndim - 1] : 0;
    int fast = a->dtype == QC_DT_F32 && b->dtype == QC_DT_F32 && !is_comparison(kind);
    int integer = a->dtype != QC_DT_F32 && a->dtype != QC_DT_F64;
#pragma omp parallel for num_threads(call->threads > 0 ? call->threads : 1) schedule(static) if (rows * length > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t offsets[3];
        qce__broadcast_row(&bc, r, offsets);
        if (fast) {
            row_f32(kind, (float *)y->data + r * length, (const float *)a->data + offsets[0], sa,
                    (const float *)b->data + offsets[1], sb, length);
            continue;
        }
        for (int64_t j = 0; j < length; j++)
            qce__store(y, r * length + j,
                       apply_wide(kind, qce__load(a, offsets[0] + j * sa), qce__load(b, offsets[1] + j * sb), integer));
    }
    return QC_OK;
}

#define BINARY_OP(name, kind) \
    static qc_status op_##name(const qce_call *call) { return binary(call, kind); }
BINARY_OP(add, ADD)
BINARY_OP(sub, SUB)
BINARY_OP(mul, MUL)
BINARY_OP(div, DIV)
BINARY_OP(pow, POW)
BINARY_OP(mod, MOD)
BINARY_OP(equal, EQUAL)
BINARY_OP(less, LESS)
BINARY_OP(greater, GREATER)
BINARY_OP(less_equal, LESS_EQUAL)
BINARY_OP(greater_equal, GREATER_EQUAL)
BINARY_OP(and, AND)
BINARY_OP(or, OR)
BINARY_OP(xor, XOR)

/* Max, Min and Sum take any number of inputs: folded pairwise into the output. */
static qc_status variadic(const qce_call *call, binary_kind kind)
{
    if (call->num_inputs == 1) return qce__copy_input(call, 0, 0);
    qce_call first_pair = *call;
    first_pair.num_inputs = 2, first_pair.num_outputs = 1;
    QCE_TRY(binary(&first_pair, kind));
    for (size_t k = 2; k < call->num_inputs; k++) {
        qce_value *pair[2] = {call->outputs[0], call->inputs[k]};
        qce_value scratch = *call->outputs[0];
        scratch.storage = NULL, scratch.capacity = 0;
        qce_value *outs[1] = {&scratch};
        qce_call next = *call;
        next.inputs = pair, next.num_inputs = 2, next.outputs = outs, next.num_outputs = 1;
        qc_status st = binary(&next, kind);
        if (st == QC_OK) st = qce__move_value(call->outputs[0], &scratch);
        free(scratch.storage);
        QCE_TRY(st);
    }
    return QC_OK;
}

static qc_status op_max(const qce_call *call) { return variadic(call, MAX); }
static qc_status op_min(const qce_call *call) { return variadic(call, MIN); }
static qc_status op_sum(const qce_call *call) { return variadic(call, ADD); }

static qc_status op_not(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_U8)));
    const qc_tensor *x = &call->inputs[0]->tensor;
    QCE_TRY(qce__output(call, 0, QC_DT_U8, x->ndim, x->dims));
    const uint8_t *in = x->data;
    uint8_t *out = call->outputs[0]->tensor.data;
    for (int64_t i = 0; i < qce__numel(x); i++) out[i] = !in[i];
    return QC_OK;
}

static qc_status op_where(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_U8)));
    for (size_t k = 1; k < 3; k++) QCE_TRY(qce__expect_input(call, k, ~0u));
    const qc_tensor *c = &call->inputs[0]->tensor, *a = &call->inputs[1]->tensor, *b = &call->inputs[2]->tensor;
    if (a->dtype != b->dtype) return qce__fail(call, QC_ERR_DTYPE, "the two value inputs have different dtypes");
    const qc_tensor *ins[3] = {c, a, b};
    qce_broadcast bc;
    QCE_TRY(qce__broadcast_init(&bc, call, ins, 3));
    QCE_TRY(qce__output(call, 0, a->dtype, bc.ndim, bc.dims));
    qc_tensor *y = &call->outputs[0]->tensor;
    size_t item = (size_t)qc_dtype_bits(a->dtype) / 8;
    int64_t n = qce__numel(y);
    for (int64_t first = 0; first < n; first += CHUNK) {
        int64_t count = n - first < CHUNK ? n - first : CHUNK, oc[CHUNK], oa[CHUNK], ob[CHUNK];
        int64_t *offsets[3] = {oc, oa, ob};
        qce__broadcast_offsets(&bc, first, count, offsets);
        for (int64_t j = 0; j < count; j++) {
            const uint8_t *src = ((const uint8_t *)c->data)[oc[j]] ? (const uint8_t *)a->data + oa[j] * item
                                                                 : (const uint8_t *)b->data + ob[j] * item;
            memcpy((uint8_t *)y->data + (first + j) * item, src, item);
        }
    }
    return QC_OK;
}

static qc_status op_clip(const qce_call *call)
{
    unsigned numbers = QCE_DT(QC_DT_F32) | QCE_DT(QC_DT_F64) | QCE_DT(QC_DT_I8) | QCE_DT(QC_DT_U8) | QCE_DT(QC_DT_I16) |
                       QCE_DT(QC_DT_I32) | QCE_DT(QC_DT_I64);
    QCE_TRY(qce__expect_input(call, 0, numbers));
    double lo = -INFINITY, hi = INFINITY;
    if (call->opset < 11) {
        lo = qce__attr_float(call, "min", -INFINITY);
        hi = qce__attr_float(call, "max", INFINITY);
    } else {
        if (call->num_inputs > 1 && call->inputs[1]) lo = qce__load(&call->inputs[1]->tensor, 0);
        if (call->num_inputs > 2 && call->inputs[2]) hi = qce__load(&call->inputs[2]->tensor, 0);
    }
    const qc_tensor *x = &call->inputs[0]->tensor;
    QCE_TRY(qce__output(call, 0, x->dtype, x->ndim, x->dims));
    qc_tensor *y = &call->outputs[0]->tensor;
    for (int64_t i = 0; i < qce__numel(x); i++) {
        double v = qce__load(x, i);
        qce__store(y, i, v < lo ? lo : v > hi ? hi : v);
    }
    return QC_OK;
}

static qc_status op_cast(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    int64_t to = qce__attr_int(call, "to", 0);
    int dtype = qce__dtype_of_onnx((int32_t)to);
    if (dtype == 0 || dtype == QC_DT_INT4 || dtype == QC_DT_UINT4)
        return qce__fail(call, QC_ERR_UNSUPPORTED, "casting to %s is not supported", qc_onnx_type_string((int32_t)to));
    const qc_tensor *x = &call->inputs[0]->tensor;
    QCE_TRY(qce__output(call, 0, (qc_dtype)dtype, x->ndim, x->dims));
    qc_tensor *y = &call->outputs[0]->tensor;
    int to_bool = to == QC_ONNX_BOOL;
    for (int64_t i = 0; i < qce__numel(x); i++) {
        double v = qce__load(x, i);
        qce__store(y, i, to_bool ? (v != 0) : v);
    }
    return QC_OK;
}

const qce_op qce__elementwise_ops[] = {
    {"Relu", op_relu}, {"Sigmoid", op_sigmoid}, {"Tanh", op_tanh}, {"Erf", op_erf}, {"Sqrt", op_sqrt},
    {"Exp", op_exp}, {"Log", op_log}, {"Abs", op_abs}, {"Neg", op_neg}, {"Reciprocal", op_reciprocal},
    {"Floor", op_floor}, {"Ceil", op_ceil}, {"LeakyRelu", op_leaky_relu}, {"Softplus", op_softplus},
    {"Gelu", op_gelu}, {"Add", op_add}, {"Sub", op_sub}, {"Mul", op_mul}, {"Div", op_div}, {"Pow", op_pow},
    {"Mod", op_mod}, {"Equal", op_equal}, {"Less", op_less}, {"Greater", op_greater},
    {"LessOrEqual", op_less_equal}, {"GreaterOrEqual", op_greater_equal}, {"And", op_and}, {"Or", op_or},
    {"Xor", op_xor}, {"Max", op_max}, {"Min", op_min}, {"Sum", op_sum}, {"Not", op_not}, {"Where", op_where},
    {"Clip", op_clip}, {"Cast", op_cast}, {NULL, NULL},
};
