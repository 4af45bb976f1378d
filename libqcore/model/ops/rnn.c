/* LSTM (ONNX opsets 7 and 14): forward, reverse or bidirectional; optional bias, sequence lengths,
 * initial states and peepholes; layouts 0 and 1; clip and input_forget; activations Sigmoid, Tanh and
 * Relu. Per direction, the input projection of all time steps is one GEMM (X W^T + Wb + Rb), and each
 * step adds one GEMM of the previous hidden states by R^T before the elementwise cell update. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/blas.h"
#include "ops/ops.h"

enum { GATES = 4, MAX_DIRS = 2 }; /* gate rows of W, R and B come in the order i, o, f, c */
enum { IN_X, IN_W, IN_R, IN_B, IN_LENS, IN_H0, IN_C0, IN_P };
enum { OUT_Y, OUT_H, OUT_C };

typedef float (*activation)(float);

typedef struct lstm {
    int64_t steps, batch, input, hidden;
    int dirs, layout;
    int reverse;                 /* a single direction running from the last step to the first */
    float clip;                  /* bound of the gates' pre-activations; 0 for none */
    int couple;                  /* input_forget: f = 1 - i */
    activation act[MAX_DIRS][3]; /* f (gates), g (cell input), h (output) per direction */
    const float *x, *w, *r, *b, *h0, *c0, *p;
    const qc_tensor *lens;       /* NULL: every sequence is `steps` long */
} lstm;

static float sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

static float relu(float x)
{
    return x > 0.0f ? x : 0.0f;
}

static float tanh_activation(float x)
{
    return tanhf(x);
}

static int attr_string_is(const ProtobufCBinaryData *s, const char *text)
{
    return s->len == strlen(text) && memcmp(s->data, text, s->len) == 0;
}

static qc_status parse_activation(const qce_call *call, const ProtobufCBinaryData *name, activation *out)
{
    static const struct {
        const char *name;
        activation fn;
    } known[] = {{"Sigmoid", sigmoid}, {"Tanh", tanh_activation}, {"Relu", relu}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (attr_string_is(name, known[i].name)) return *out = known[i].fn, QC_OK;
    return qce__fail(call, QC_ERR_UNSUPPORTED, "activation '%.*s' is not supported (Sigmoid, Tanh and Relu are)",
                     (int)(name->len > 40 ? 40 : name->len), (const char *)name->data);
}

static qc_status parse_direction(const qce_call *call, lstm *l)
{
    const Onnx__AttributeProto *a = qce__attr(call, "direction");
    l->dirs = 1, l->reverse = 0;
    if (a == NULL || attr_string_is(&a->s, "forward")) return QC_OK;
    if (attr_string_is(&a->s, "reverse")) return l->reverse = 1, QC_OK;
    if (attr_string_is(&a->s, "bidirectional")) return l->dirs = 2, QC_OK;
    return qce__fail(call, QC_ERR_INVALID_ARG, "direction '%.*s' is none of forward, reverse and bidirectional",
                     (int)(a->s.len > 40 ? 40 : a->s.len), (const char *)a->s.data);
}

static qc_status parse_attributes(const qce_call *call, lstm *l)
{
    QCE_TRY(parse_direction(call, l));
    l->layout = (int)qce__attr_int(call, "layout", 0);
    if (l->layout != 0 && l->layout != 1) return qce__fail(call, QC_ERR_INVALID_ARG, "layout %d is neither 0 nor 1", l->layout);
    l->couple = qce__attr_int(call, "input_forget", 0) != 0;
    const Onnx__AttributeProto *clip = qce__attr(call, "clip");
    l->clip = clip ? clip->f : 0.0f;
    if (clip && !(clip->f > 0.0f))
        return qce__fail(call, QC_ERR_INVALID_ARG, "clip must be positive, it is %g", (double)clip->f);
    const Onnx__AttributeProto *names = qce__attr(call, "activations");
    size_t count = names ? names->n_strings : 0;
    if (count != 0 && count != (size_t)(3 * l->dirs))
        return qce__fail(call, QC_ERR_INVALID_ARG, "%zu activations given, %d needed (3 per direction)", count, 3 * l->dirs);
    for (int d = 0; d < l->dirs; d++) {
        activation defaults[3] = {sigmoid, tanh_activation, tanh_activation};
        for (int k = 0; k < 3; k++) {
            l->act[d][k] = defaults[k];
            if (count) QCE_TRY(parse_activation(call, &names->strings[3 * d + k], &l->act[d][k]));
        }
    }
    return QC_OK;
}

/* "[a, b, c]" into buf. */
static const char *dims_string(char *buf, size_t size, int ndim, const int64_t *dims)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, d ? ", %lld" : "%lld", (long long)dims[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

/* Input k (called `what`) absent when optional, or present with the given dtype and shape. */
static qc_status expect_shape(const qce_call *call, size_t k, const char *what, int optional, qc_dtype dtype, int ndim,
                              const int64_t *dims)
{
    if (optional && (k >= call->num_inputs || call->inputs[k] == NULL)) return QC_OK;
    QCE_TRY(qce__expect_input(call, k, QCE_DT(dtype)));
    const qc_tensor *t = &call->inputs[k]->tensor;
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->dims[d] == dims[d];
    if (same) return QC_OK;
    char want[96], have[96];
    return qce__fail(call, QC_ERR_SHAPE, "%s must have shape %s, it has %s", what, dims_string(want, sizeof want, ndim, dims),
                     dims_string(have, sizeof have, t->ndim, t->dims));
}

static const float *optional_data(const qce_call *call, size_t k)
{
    return k < call->num_inputs && call->inputs[k] ? call->inputs[k]->tensor.data : NULL;
}

/* Sizes from X, W and R (and hidden_size, which must agree with R). */
static qc_status read_sizes(const qce_call *call, lstm *l)
{
    QCE_TRY(qce__expect_input(call, IN_X, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, IN_W, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, IN_R, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[IN_X]->tensor, *r = &call->inputs[IN_R]->tensor;
    if (x->ndim != 3) return qce__fail(call, QC_ERR_SHAPE, "X must have rank 3, it has %d", x->ndim);
    if (r->ndim != 3) return qce__fail(call, QC_ERR_SHAPE, "R must have rank 3, it has %d", r->ndim);
    l->steps = x->dims[l->layout ? 1 : 0];
    l->batch = x->dims[l->layout ? 0 : 1];
    l->input = x->dims[2];
    l->hidden = qce__attr_int(call, "hidden_size", r->dims[2]);
    if (l->hidden <= 0 || l->hidden != r->dims[2])
        return qce__fail(call, QC_ERR_SHAPE, "hidden_size %lld disagrees with R's last dimension (%lld)", (long long)l->hidden,
                         (long long)r->dims[2]);
    return QC_OK;
}

static qc_status check_lengths(const qce_call *call, lstm *l)
{
    l->lens = NULL;
    if (IN_LENS >= call->num_inputs || call->inputs[IN_LENS] == NULL) return QC_OK;
    QCE_TRY(qce__expect_input(call, IN_LENS, QCE_DT(QC_DT_I32) | QCE_DT(QC_DT_I64)));
    const qc_tensor *t = &call->inputs[IN_LENS]->tensor;
    if (t->ndim != 1 || t->dims[0] != l->batch)
        return qce__fail(call, QC_ERR_SHAPE, "sequence_lens must hold one length per batch entry (%lld)", (long long)l->batch);
    for (int64_t b = 0; b < l->batch; b++) {
        double n = qce__load(t, b);
        if (n < 0 || n > (double)l->steps)
            return qce__fail(call, QC_ERR_INVALID_ARG, "sequence_lens[%lld] = %.0f is outside 0..%lld", (long long)b, n,
                             (long long)l->steps);
    }
    l->lens = t;
    return QC_OK;
}

static qc_status read_inputs(const qce_call *call, lstm *l)
{
    QCE_TRY(read_sizes(call, l));
    int64_t dirs = l->dirs, h = l->hidden;
    int64_t w_dims[3] = {dirs, GATES * h, l->input}, r_dims[3] = {dirs, GATES * h, h}, b_dims[2] = {dirs, 2 * GATES * h};
    int64_t p_dims[2] = {dirs, 3 * h}, state_dims[3] = {dirs, l->batch, h};
    if (l->layout) state_dims[0] = l->batch, state_dims[1] = dirs;
    QCE_TRY(expect_shape(call, IN_W, "W", 0, QC_DT_F32, 3, w_dims));
    QCE_TRY(expect_shape(call, IN_R, "R", 0, QC_DT_F32, 3, r_dims));
    QCE_TRY(expect_shape(call, IN_B, "B", 1, QC_DT_F32, 2, b_dims));
    QCE_TRY(expect_shape(call, IN_H0, "initial_h", 1, QC_DT_F32, 3, state_dims));
    QCE_TRY(expect_shape(call, IN_C0, "initial_c", 1, QC_DT_F32, 3, state_dims));
    QCE_TRY(expect_shape(call, IN_P, "P", 1, QC_DT_F32, 2, p_dims));
    QCE_TRY(check_lengths(call, l));
    l->x = call->inputs[IN_X]->tensor.data;
    l->w = call->inputs[IN_W]->tensor.data;
    l->r = call->inputs[IN_R]->tensor.data;
    l->b = optional_data(call, IN_B);
    l->h0 = optional_data(call, IN_H0);
    l->c0 = optional_data(call, IN_C0);
    l->p = optional_data(call, IN_P);
    return QC_OK;
}

static qc_status shape_outputs(const qce_call *call, const lstm *l)
{
    int64_t y_dims[4] = {l->steps, l->dirs, l->batch, l->hidden}, state_dims[3] = {l->dirs, l->batch, l->hidden};
    if (l->layout) {
        y_dims[0] = l->batch, y_dims[1] = l->steps, y_dims[2] = l->dirs;
        state_dims[0] = l->batch, state_dims[1] = l->dirs;
    }
    QCE_TRY(qce__output(call, OUT_Y, QC_DT_F32, 4, y_dims));
    QCE_TRY(qce__output(call, OUT_H, QC_DT_F32, 3, state_dims));
    return qce__output(call, OUT_C, QC_DT_F32, 3, state_dims);
}

static float *output_data(const qce_call *call, size_t k)
{
    return k < call->num_outputs && call->outputs[k] ? call->outputs[k]->tensor.data : NULL;
}

/* The row of X (and of the input projections) at (step t, batch b); offsets, in floats, of Y's [hidden]
 * row at (t, direction d, b) and of a state's row at (d, b). */
static int64_t x_row(const lstm *l, int64_t t, int64_t b)
{
    return l->layout ? b * l->steps + t : t * l->batch + b;
}

static int64_t y_row(const lstm *l, int64_t t, int d, int64_t b)
{
    return (l->layout ? (b * l->steps + t) * l->dirs + d : (t * l->dirs + d) * l->batch + b) * l->hidden;
}

static int64_t state_row(const lstm *l, int d, int64_t b)
{
    return (l->layout ? b * l->dirs + d : d * l->batch + b) * l->hidden;
}

static int64_t length(const lstm *l, int64_t b)
{
    return l->lens ? (int64_t)qce__load(l->lens, b) : l->steps;
}

static float clipped(const lstm *l, float z)
{
    if (l->clip == 0.0f) return z;
    return z < -l->clip ? -l->clip : z > l->clip ? l->clip : z;
}

/* Scratch of one call: the input projections [steps * batch, 4H] (rows in X's order), the recurrent
 * products [batch, 4H], and the hidden and cell states [batch, H]. */
typedef struct scratch {
    float *projection, *recurrent, *h, *c;
} scratch;

static qc_status scratch_alloc(const qce_call *call, const lstm *l, scratch *s)
{
    uint64_t limit = SIZE_MAX / 8 / sizeof(float), width = GATES * (uint64_t)l->hidden;
    uint64_t rows = (uint64_t)l->steps * (uint64_t)l->batch + (uint64_t)l->batch; /* projections, then products */
    if ((l->batch && (uint64_t)l->steps > limit / (uint64_t)l->batch) || (width && rows > limit / width))
        return qce__fail(call, QC_ERR_OVERFLOW, "the scratch for %lld steps of %lld sequences is too large",
                         (long long)l->steps, (long long)l->batch);
    uint64_t floats = rows * width + 2 * (uint64_t)l->batch * (uint64_t)l->hidden;
    s->projection = malloc((size_t)floats * sizeof(float) + sizeof(float));
    if (s->projection == NULL)
        return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for %llu floats of scratch", (unsigned long long)floats);
    s->recurrent = s->projection + (rows - (uint64_t)l->batch) * width;
    s->h = s->recurrent + (uint64_t)l->batch * width;
    s->c = s->h + (uint64_t)l->batch * (uint64_t)l->hidden;
    return QC_OK;
}

/* projection = X W_d^T + Wb_d + Rb_d, for every step at once. */
static void project_inputs(const qce_call *call, const lstm *l, int d, float *projection)
{
    int64_t width = GATES * l->hidden, rows = l->steps * l->batch, ld = l->input ? l->input : 1; /* BLAS: ld >= 1 */
    if (l->b && rows > 0) {
        const float *wb = l->b + d * 2 * width, *rb = wb + width;
        for (int64_t k = 0; k < width; k++) projection[k] = wb[k] + rb[k];
        for (int64_t row = 1; row < rows; row++) memcpy(projection + row * width, projection, (size_t)width * sizeof(float));
    }
    qce__sgemm(call->threads, 0, 1, rows, width, l->input, 1.0f, l->x, ld, l->w + d * width * l->input, ld,
               l->b ? 1.0f : 0.0f, projection, width);
}

static void initial_state(const lstm *l, int d, float *h, float *c)
{
    size_t row = (size_t)l->hidden * sizeof(float);
    for (int64_t b = 0; b < l->batch; b++) {
        float *hb = h + b * l->hidden, *cb = c + b * l->hidden;
        if (l->h0) memcpy(hb, l->h0 + state_row(l, d, b), row); else memset(hb, 0, row);
        if (l->c0) memcpy(cb, l->c0 + state_row(l, d, b), row); else memset(cb, 0, row);
    }
}

/* One step of one sequence: gate pre-activations z = projection + recurrent (each [4H], i o f c) update
 * the states h and c in place. */
static void cell(const lstm *l, int d, const float *projection, const float *recurrent, float *h, float *c)
{
    int64_t n = l->hidden;
    const float *p = l->p ? l->p + d * 3 * n : NULL; /* peepholes i, o, f */
    activation f = l->act[d][0], g = l->act[d][1], act_h = l->act[d][2];
    for (int64_t j = 0; j < n; j++) {
        float zi = projection[j] + recurrent[j], zo = projection[n + j] + recurrent[n + j];
        float zf = projection[2 * n + j] + recurrent[2 * n + j], zc = projection[3 * n + j] + recurrent[3 * n + j];
        if (p) zi += p[j] * c[j], zf += p[2 * n + j] * c[j];
        float i = f(clipped(l, zi));
        float forget = l->couple ? 1.0f - i : f(clipped(l, zf));
        c[j] = forget * c[j] + i * g(clipped(l, zc));
        if (p) zo += p[n + j] * c[j];
        h[j] = f(clipped(l, zo)) * act_h(c[j]);
    }
}

/* Runs direction d over all steps: a sequence whose length is reached keeps its state and gets zeros
 * in Y, so a reverse pass starts each sequence at its own last step. */
static void run_direction(const qce_call *call, const lstm *l, int d, const scratch *s, float *y)
{
    int64_t width = GATES * l->hidden, n = l->hidden;
    int reverse = l->reverse || d == 1;
    project_inputs(call, l, d, s->projection);
    initial_state(l, d, s->h, s->c);
    for (int64_t step = 0; step < l->steps; step++) {
        int64_t t = reverse ? l->steps - 1 - step : step;
        qce__sgemm(call->threads, 0, 1, l->batch, width, n, 1.0f, s->h, n, l->r + d * width * n, n, 0.0f, s->recurrent, width);
        for (int64_t b = 0; b < l->batch; b++) {
            int active = t < length(l, b);
            if (active)
                cell(l, d, s->projection + x_row(l, t, b) * width, s->recurrent + b * width, s->h + b * n, s->c + b * n);
            if (y) {
                if (active) memcpy(y + y_row(l, t, d, b), s->h + b * n, (size_t)n * sizeof(float));
                else memset(y + y_row(l, t, d, b), 0, (size_t)n * sizeof(float));
            }
        }
    }
}

/* Y_h and Y_c of direction d: the last states; zeros for an empty sequence, as onnxruntime gives. */
static void store_states(const qce_call *call, const lstm *l, int d, const scratch *s)
{
    float *outputs[2] = {output_data(call, OUT_H), output_data(call, OUT_C)};
    const float *states[2] = {s->h, s->c};
    size_t row = (size_t)l->hidden * sizeof(float);
    for (int k = 0; k < 2; k++)
        for (int64_t b = 0; outputs[k] && b < l->batch; b++) {
            if (length(l, b) > 0) memcpy(outputs[k] + state_row(l, d, b), states[k] + b * l->hidden, row);
            else memset(outputs[k] + state_row(l, d, b), 0, row);
        }
}

static qc_status op_lstm(const qce_call *call)
{
    lstm l = {0};
    QCE_TRY(parse_attributes(call, &l));
    QCE_TRY(read_inputs(call, &l));
    QCE_TRY(shape_outputs(call, &l));
    scratch s = {0};
    QCE_TRY(scratch_alloc(call, &l, &s));
    for (int d = 0; d < l.dirs; d++) {
        run_direction(call, &l, d, &s, output_data(call, OUT_Y));
        store_states(call, &l, d, &s);
    }
    free(s.projection);
    return QC_OK;
}

const qce_op qce__rnn_ops[] = {
    {"LSTM", op_lstm},
    {NULL, NULL},
};
