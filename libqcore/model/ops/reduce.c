/* Reductions over a set of axes: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL1,
 * ReduceL2, ReduceSumSquare. Axes come
 * from an attribute, or from an input (ReduceSum since opset 13, the others since 18). */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

typedef enum { R_MEAN, R_SUM, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_SUM_SQUARE } reduce_kind;

static qc_status reduce(const qce_call *call, reduce_kind kind, int64_t axes_input_since)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t axes[QC_MAX_DIMS];
    size_t count = 0;
    if (call->opset >= axes_input_since) {
        if (call->num_inputs > 1 && call->inputs[1]) QCE_TRY(qce__int_list(call, 1, axes, QC_MAX_DIMS, &count));
    } else {
        const int64_t *v;
        count = qce__attr_ints(call, "axes", &v);
        if (count > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "too many axes");
        qce__copy_ints(axes, v, count);
    }
    int keep = qce__attr_int(call, "keepdims", 1) != 0, reduced[QC_MAX_DIMS] = {0};
    if (count == 0 && qce__attr_int(call, "noop_with_empty_axes", 0)) return qce__copy_input(call, 0, 0);
    for (size_t i = 0; i < count; i++) {
        int a;
        QCE_TRY(qce__axis(call, axes[i], x->ndim, &a));
        reduced[a] = 1;
    }
    int64_t dims[QC_MAX_DIMS], out_index_stride[QC_MAX_DIMS];
    int ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (count == 0) reduced[d] = 1;
        if (!reduced[d] || keep) dims[ndim++] = reduced[d] ? 1 : x->dims[d];
    }
    QCE_TRY(qce__output(call, 0, QC_DT_F32, ndim, dims));
    float *y = call->outputs[0]->tensor.data;
    int64_t out_n = qce__numel(&call->outputs[0]->tensor), stride = 1;
    for (int d = x->ndim - 1; d >= 0; d--) { /* where each input axis moves in the output */
        out_index_stride[d] = reduced[d] ? 0 : stride;
        if (!reduced[d]) stride *= x->dims[d];
    }
    double init = kind == R_MAX ? -INFINITY : kind == R_MIN ? INFINITY : kind == R_PROD ? 1.0 : 0.0;
    for (int64_t i = 0; i < out_n; i++) y[i] = (float)init;
    int64_t n = qce__numel(x), index[QC_MAX_DIMS] = {0}, out = 0, group = n / (out_n ? out_n : 1);
    const float *in = x->data;
    for (int64_t i = 0; i < n; i++) {
        float v = in[i];
        switch (kind) {
        case R_MEAN: case R_SUM: y[out] += v; break;
        case R_MAX: y[out] = fmaxf(y[out], v); break;
        case R_MIN: y[out] = fminf(y[out], v); break;
        case R_PROD: y[out] *= v; break;
        case R_L1: y[out] += fabsf(v); break;
        case R_L2: case R_SUM_SQUARE: y[out] += v * v; break;
        }
        for (int d = x->ndim - 1; d >= 0; d--) {
            out += out_index_stride[d];
            if (++index[d] < x->dims[d]) break;
            out -= out_index_stride[d] * x->dims[d];
            index[d] = 0;
        }
    }
    for (int64_t i = 0; i < out_n; i++) {
        if (kind == R_MEAN) y[i] /= (float)(group ? group : 1);
        if (kind == R_L2) y[i] = sqrtf(y[i]);
    }
    return QC_OK;
}

static qc_status op_reduce_mean(const qce_call *call) { return reduce(call, R_MEAN, 18); }
static qc_status op_reduce_sum(const qce_call *call) { return reduce(call, R_SUM, 13); }
static qc_status op_reduce_max(const qce_call *call) { return reduce(call, R_MAX, 18); }
static qc_status op_reduce_min(const qce_call *call) { return reduce(call, R_MIN, 18); }
static qc_status op_reduce_prod(const qce_call *call) { return reduce(call, R_PROD, 18); }
static qc_status op_reduce_l1(const qce_call *call) { return reduce(call, R_L1, 18); }
static qc_status op_reduce_l2(const qce_call *call) { return reduce(call, R_L2, 18); }
static qc_status op_reduce_sum_square(const qce_call *call) { return reduce(call, R_SUM_SQUARE, 18); }

const qce_op qce__reduce_ops[] = {
    {"ReduceMean", op_reduce_mean}, {"ReduceSum", op_reduce_sum}, {"ReduceMax", op_reduce_max},
    {"ReduceMin", op_reduce_min}, {"ReduceProd", op_reduce_prod}, {"ReduceL1", op_reduce_l1},
    {"ReduceL2", op_reduce_l2}, {"ReduceSumSquare", op_reduce_sum_square}, {NULL, NULL},
};
