/* The built-in rotation objective (qc_rotate.h): one linear layer's output error under weight and
 * activation quantization with R on its input side, and its straight-through gradient. Products are
 * dgemm calls; the quantizers are qc_quant's, applied to the f32 rounding of X R and W R. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "linalg/linalg.h"
#include "rotate/rotate.h"

/* One side of the layer (activations X [rows, in] or the weight W [rows, in]) and its quantizer. */
typedef struct side {
    int64_t rows;
    double *value;          /* X or W, in double */
    double *rotated;        /* X R or W R, then its quantized copy A' or B' */
    float *rounded;         /* V, the f32 rounding of X R */
    float *quantized_value; /* Q(V) */
    float *scale;           /* the grid's parameters (qc_quant_param_shape) */
    int32_t *zero_point;
    int quantized;
    qc_quant_options grid;
    int32_t param_ndim;
    int64_t param_dims[QC_MAX_DIMS];
} side;

struct qc_linear_rotation_loss {
    int64_t in, out;
    side act, weight;
    double *target;         /* X W^T [n, out] */
    double *error;          /* E [n, out] */
    double *product;        /* E B' [n, in], then E^T A' [out, in] */
};

static void free_side(side *s)
{
    free(s->value), free(s->rotated), free(s->rounded), free(s->quantized_value), free(s->scale), free(s->zero_point);
}

void qc_linear_rotation_loss_free(qc_linear_rotation_loss *objective)
{
    if (objective == NULL) return;
    free_side(&objective->act);
    free_side(&objective->weight);
    free(objective->target), free(objective->error), free(objective->product);
    free(objective);
}

/* Checks the grid against the side's shape, and allocates the side's buffers. */
static qc_status make_side(side *s, const qc_tensor *t, const qc_quant_options *grid, const char *grid_name)
{
    const char *function = "qc_linear_rotation_loss_create";
    s->rows = t->dims[0];
    size_t count = (size_t)qc_tensor_numel(t);
    s->quantized = grid != NULL;
    size_t params = 1;
    if (grid) {
        s->grid = *grid;
        if (qc_quant_options_check(grid, t) != QC_OK || qc_quant_param_shape(&s->param_ndim, s->param_dims, t, grid) != QC_OK) {
            char message[512];
            strncpy(message, qc_last_error(), sizeof message - 1);
            message[sizeof message - 1] = '\0';
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s': %s", grid_name, message);
        }
        for (int32_t d = 0; d < s->param_ndim; d++) params *= (size_t)s->param_dims[d];
    }
    s->value = malloc(count * sizeof *s->value);
    s->rotated = malloc(count * sizeof *s->rotated);
    s->rounded = malloc(count * sizeof *s->rounded);
    s->quantized_value = malloc(count * sizeof *s->quantized_value);
    s->scale = malloc(params * sizeof *s->scale);
    s->zero_point = malloc(params * sizeof *s->zero_point);
    if (!s->value || !s->rotated || !s->rounded || !s->quantized_value || !s->scale || !s->zero_point)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a %lldx%lld matrix", (long long)t->dims[0],
                          (long long)t->dims[1]);
    const float *v = t->data;
    for (size_t i = 0; i < count; i++) s->value[i] = v[i];
    return QC_OK;
}

static qc_status check_inputs(const qc_tensor *x, const qc_tensor *w)
{
    const char *function = "qc_linear_rotation_loss_create";
    QC_TRY(qc__tensor_expect(x, function, "x", QC_DT_F32));
    QC_TRY(qc__tensor_expect(w, function, "w", QC_DT_F32));
    if (x->ndim != 2 || w->ndim != 2 || x->dims[0] < 1 || w->dims[0] < 1 || x->dims[1] < 1 || x->dims[1] != w->dims[1]) {
        char xs[128], ws[128];
        qc__shape_string(xs, sizeof xs, x->ndim, x->dims);
        qc__shape_string(ws, sizeof ws, w->ndim, w->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "arguments 'x' %s and 'w' %s must be [n, in] and [out, in], n, out, in >= 1",
                          xs, ws);
    }
    int64_t extents[3] = {x->dims[0], w->dims[0], x->dims[1]};
    if (!qc__linalg_fits(extents, 3))
        return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "arguments 'x'/'w': an extent exceeds the BLAS integer");
    QC_TRY(qc__tensor_check_finite(x, function, "x"));
    return qc__tensor_check_finite(w, function, "w");
}

qc_status qc_linear_rotation_loss_create(qc_linear_rotation_loss **out, const qc_tensor *x, const qc_tensor *w,
                                         const qc_quant_options *act, const qc_quant_options *weight)
{
    QC_CHECK_NOT_NULL(out);
    QC_TRY(check_inputs(x, w));
    qc_linear_rotation_loss *o = calloc(1, sizeof *o);
    if (o == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for the objective");
    o->in = x->dims[1];
    o->out = w->dims[0];
    int64_t n = x->dims[0];
    qc_status st = make_side(&o->act, x, act, "act");
    if (st == QC_OK) st = make_side(&o->weight, w, weight, "weight");
    if (st == QC_OK) {
        o->target = malloc((size_t)(n * o->out) * sizeof *o->target);
        o->error = malloc((size_t)(n * o->out) * sizeof *o->error);
        int64_t largest = n > o->out ? n : o->out;
        o->product = malloc((size_t)(largest * o->in) * sizeof *o->product);
        if (!o->target || !o->error || !o->product) st = QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for the objective");
    }
    if (st != QC_OK) {
        qc_linear_rotation_loss_free(o);
        return st;
    }
    qc__dgemm(1, 0, 1, n, o->out, o->in, 1.0, o->act.value, o->in, o->weight.value, o->in, 0.0, o->target, o->out);
    *out = o;
    return QC_OK;
}

/* s->rotated = Q(V) for V the f32 rounding of the side's value times R (V itself when not quantized). */
static qc_status rotate_side(qc_ctx *ctx, side *s, int64_t in, const double *r, int threads)
{
    qc__dgemm(threads, 0, 0, s->rows, in, in, 1.0, s->value, in, r, in, 0.0, s->rotated, in);
    size_t count = (size_t)(s->rows * in);
    for (size_t i = 0; i < count; i++) s->rounded[i] = (float)s->rotated[i];
    if (!s->quantized) {
        for (size_t i = 0; i < count; i++) s->rotated[i] = s->rounded[i];
        return QC_OK;
    }
    int64_t dims[2] = {s->rows, in};
    qc_tensor v, q, scale, zero_point;
    QC_TRY(qc_tensor_init(&v, s->rounded, QC_DT_F32, 2, dims, NULL));
    QC_TRY(qc_tensor_init(&q, s->quantized_value, QC_DT_F32, 2, dims, NULL));
    QC_TRY(qc_tensor_init(&scale, s->scale, QC_DT_F32, s->param_ndim, s->param_dims, NULL));
    QC_TRY(qc_tensor_init(&zero_point, s->zero_point, QC_DT_I32, s->param_ndim, s->param_dims, NULL));
    QC_TRY(qc_quant_choose_params(ctx, &scale, &zero_point, &v, &s->grid));
    QC_TRY(qc_fake_quantize(ctx, &q, &v, &scale, &zero_point, &s->grid));
    for (size_t i = 0; i < count; i++) s->rotated[i] = s->quantized_value[i];
    return QC_OK;
}

/* Whether the scale's dependence on V is differentiated: min-max and MSE grids with one scale per tensor
 * or per row (the groups whose extremes are easy to find); other grids count as the identity. */
static int differentiated(const side *s)
{
    const qc_quant_options *g = &s->grid;
    int per_row = g->granularity == QC_GRAN_CHANNEL && (g->axis == 0 || g->axis == -2);
    int scale = g->scale_method == QC_SCALE_MINMAX || g->scale_method == QC_SCALE_MSE;
    return s->quantized && scale && (per_row || g->granularity == QC_GRAN_TENSOR);
}

/* The backward pass of one group's fake quantization x' = (q - z) s, q = clamp(round(v / s) + z): round
 * counts as the identity, z as a constant, s as alpha times the min-max function of the group's extremes
 * (alpha = 1 for min-max grids; for MSE grids the chosen alpha, held constant: it only changes where the
 * search's best candidate does, so this is s's derivative almost everywhere). u [count] holds dL/dx' and
 * receives dL/dv. */
static void group_backward(double *u, const float *v, int64_t count, float scale, int32_t zero, int32_t qmin,
                           int32_t qmax, const qc_quant_options *g)
{
    double d_scale = 0.0;
    int64_t hi = 0, lo = 0;
    for (int64_t i = 0; i < count; i++) {
        float t = rintf(v[i] / scale) + (float)zero;
        int clamped = t < (float)qmin || t > (float)qmax;
        float q = clamped ? (t < (float)qmin ? (float)qmin : (float)qmax) : t;
        d_scale += u[i] * ((double)q - zero - (clamped ? 0.0 : (double)v[i] / scale));
        if (clamped) u[i] = 0.0;
        if (v[i] > v[hi]) hi = i;
        if (v[i] < v[lo]) lo = i;
    }
    double top = v[hi] > 0.0f ? v[hi] : 0.0, bottom = v[lo] < 0.0f ? v[lo] : 0.0;
    if (g->scale_method == QC_SCALE_MSE) {
        double minmax = g->symmetric ? fmax(top, -bottom) / (double)(qmax - zero)
                                     : (top - bottom) / (double)(qmax - qmin);
        d_scale = minmax > 0.0 ? d_scale * (double)scale / minmax : 0.0;
    }
    if (!g->symmetric) {
        double per_unit = d_scale / (double)(qmax - qmin);
        if (top > 0.0) u[hi] += per_unit;
        if (bottom < 0.0) u[lo] -= per_unit;
        return;
    }
    double per_unit = d_scale / (double)(qmax - zero); /* s = max(|lo|, |hi|) / (qmax - z) */
    if (top >= -bottom && top > 0.0) u[hi] += per_unit;
    else if (top < -bottom) u[lo] -= per_unit;
}

/* dL/dV from dL/dQ(V), in place in u [rows, in]. */
static void quantizer_backward(const side *s, int64_t in, double *u)
{
    if (!differentiated(s)) return;
    int32_t qmin, qmax;
    qc_quant_range(&qmin, &qmax, &s->grid);
    int per_row = s->grid.granularity == QC_GRAN_CHANNEL;
    int64_t groups = per_row ? s->rows : 1, length = per_row ? in : s->rows * in;
    for (int64_t g = 0; g < groups; g++)
        group_backward(u + g * length, s->rounded + g * length, length, s->scale[g], s->zero_point[g], qmin, qmax,
                       &s->grid);
}

static qc_status check_eval(const qc_linear_rotation_loss *o, qc_ctx *ctx, const qc_tensor *r, const double *loss,
                            const qc_tensor *grad)
{
    const char *function = "qc_linear_rotation_loss_eval";
    if (o == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'objective' is NULL");
    if (ctx == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'ctx' is NULL");
    if (loss == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'loss' is NULL");
    QC_TRY(qc__tensor_expect(r, function, "r", QC_DT_F64));
    if (r->ndim != 2 || r->dims[0] != o->in || r->dims[1] != o->in) {
        char shape[128];
        qc__shape_string(shape, sizeof shape, r->ndim, r->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'r' has shape %s; the layer needs [%lld, %lld]", shape,
                          (long long)o->in, (long long)o->in);
    }
    if (grad) {
        QC_TRY(qc__tensor_expect(grad, function, "grad", QC_DT_F64));
        QC_TRY(qc__tensor_same_shape(r, grad, function, "r", "grad"));
    }
    return qc__tensor_check_finite(r, function, "r");
}

qc_status qc_linear_rotation_loss_eval(void *objective, qc_ctx *ctx, const qc_tensor *r, double *loss, qc_tensor *grad)
{
    qc_linear_rotation_loss *o = objective;
    QC_TRY(check_eval(o, ctx, r, loss, grad));
    int threads = qc__ctx_threads(ctx);
    int64_t n = o->act.rows, in = o->in, out = o->out;
    QC_TRY(rotate_side(ctx, &o->act, in, r->data, threads));
    QC_TRY(rotate_side(ctx, &o->weight, in, r->data, threads));
    memcpy(o->error, o->target, (size_t)(n * out) * sizeof *o->error);
    qc__dgemm(threads, 0, 1, n, out, in, -1.0, o->act.rotated, in, o->weight.rotated, in, 1.0, o->error, out);
    double sum = 0.0;
    for (int64_t i = 0; i < n * out; i++) sum += o->error[i] * o->error[i];
    if (grad) {
        double *g = grad->data, c = -2.0 / (double)n;
        qc__dgemm(threads, 0, 0, n, in, out, 1.0, o->error, out, o->weight.rotated, in, 0.0, o->product, in);
        quantizer_backward(&o->act, in, o->product);
        qc__dgemm(threads, 1, 0, in, in, n, c, o->act.value, in, o->product, in, 0.0, g, in);
        qc__dgemm(threads, 1, 0, out, in, n, 1.0, o->error, out, o->act.rotated, in, 0.0, o->product, in);
        quantizer_backward(&o->weight, in, o->product);
        qc__dgemm(threads, 1, 0, in, in, out, c, o->weight.value, in, o->product, in, 1.0, g, in);
    }
    *loss = sum / (double)n;
    return QC_OK;
}
