/* Shape and data-movement ops: Reshape, Flatten, Transpose, Shape, Unsqueeze, Squeeze, Concat, Split,
 * Gather, Slice, Pad, Expand, ConstantOfShape, Range, Constant, Identity, Dropout (inference). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "ops/broadcast.h"
#include "ops/ops.h"

static size_t item_size(const qc_tensor *t)
{
    return (size_t)qc_dtype_bits(t->dtype) / 8;
}

/* Output 0 gets input 0's bytes under a new shape. */
static qc_status reshaped_copy(const qce_call *call, int ndim, const int64_t *dims)
{
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= dims[d];
    if (n != qce__numel(x))
        return qce__fail(call, QC_ERR_SHAPE, "cannot reshape %lld elements into %lld", (long long)qce__numel(x), (long long)n);
    int reused;
    QCE_TRY(qce__output_over_input(call, 0, 0, x->dtype, ndim, dims, &reused));
    if (n && call->outputs[0] && !reused) memmove(call->outputs[0]->tensor.data, x->data, (size_t)n * item_size(x));
    return QC_OK;
}

static qc_status op_identity(const qce_call *call)
{
    return qce__copy_input(call, 0, 0);
}

/* Dropout at inference: the data unchanged, and a mask (when asked for) of all true. Training mode draws
 * random masks, which no deterministic executor can reproduce. */
static qc_status op_dropout(const qce_call *call)
{
    if (call->num_inputs > 2 && call->inputs[2] && qce__load(&call->inputs[2]->tensor, 0) != 0)
        return qce__fail(call, QC_ERR_UNSUPPORTED, "training_mode = true (random dropout)");
    QCE_TRY(qce__copy_input(call, 0, 0));
    if (call->num_outputs < 2 || call->outputs[1] == NULL) return QC_OK;
    const qc_tensor *x = &call->inputs[0]->tensor;
    QCE_TRY(qce__output(call, 1, QC_DT_U8, x->ndim, x->dims));
    memset(call->outputs[1]->tensor.data, 1, (size_t)qce__numel(x));
    return QC_OK;
}

static qc_status op_reshape(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    int64_t shape[QC_MAX_DIMS];
    size_t count;
    QCE_TRY(qce__int_list(call, 1, shape, QC_MAX_DIMS, &count));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int allowzero = qce__attr_int(call, "allowzero", 0) != 0, inferred = -1;
    int64_t known = 1;
    for (size_t d = 0; d < count; d++) {
        if (shape[d] == 0 && !allowzero) {
            if ((int)d >= x->ndim) return qce__fail(call, QC_ERR_SHAPE, "shape[%zu] = 0 copies a dimension the input lacks", d);
            shape[d] = x->dims[d];
        }
        if (shape[d] == -1) {
            if (inferred >= 0) return qce__fail(call, QC_ERR_SHAPE, "more than one -1 in the shape");
            inferred = (int)d;
        } else if (shape[d] < 0) {
            return qce__fail(call, QC_ERR_SHAPE, "shape[%zu] = %lld is negative", d, (long long)shape[d]);
        } else {
            known *= shape[d];
        }
    }
    if (inferred >= 0) shape[inferred] = known ? qce__numel(x) / known : 0;
    return reshaped_copy(call, (int)count, shape);
}

static qc_status op_flatten(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t axis = qce__attr_int(call, "axis", 1);
    if (axis < 0) axis += x->ndim;
    if (axis < 0 || axis > x->ndim) return qce__fail(call, QC_ERR_INVALID_ARG, "axis is outside the input's axes");
    int64_t dims[2] = {1, 1};
    for (int d = 0; d < x->ndim; d++) dims[d >= axis] *= x->dims[d];
    return reshaped_copy(call, 2, dims);
}

/* Copies runs of `run` elements of `item` bytes; the size is a constant in each branch so that memcpy
 * becomes a move instead of a call. */
static void copy_run(uint8_t *out, const uint8_t *in, size_t item, int64_t run)
{
    size_t bytes = item * (size_t)run;
    if (run > 1) memcpy(out, in, bytes);
    else if (item == 4) memcpy(out, in, 4);
    else if (item == 8) memcpy(out, in, 8);
    else if (item == 2) memcpy(out, in, 2);
    else memcpy(out, in, bytes);
}

/* out[i0..] = in permuted: output axis d walks input axis perm[d]. When the last axis stays last, whole
 * rows are copied at once (attention's head split and merge). */
static void permute(uint8_t *out, const uint8_t *in, size_t item, int ndim, const int64_t *dims,
                    const int64_t *in_strides, const int *perm)
{
    int64_t n = 1, index[QC_MAX_DIMS] = {0}, offset = 0;
    for (int d = 0; d < ndim; d++) n *= dims[d];
    int keeps_last = ndim > 0 && perm[ndim - 1] == ndim - 1;
    int64_t run = keeps_last ? dims[ndim - 1] : 1;
    int walked = keeps_last ? ndim - 1 : ndim; /* the axes stepped through one run at a time */
    for (int64_t i = 0; run > 0 && i < n; i += run) {
        copy_run(out + i * item, in + offset * item, item, run);
        for (int d = walked - 1; d >= 0; d--) {
            offset += in_strides[perm[d]];
            if (++index[d] < dims[d]) break;
            offset -= in_strides[perm[d]] * dims[d];
            index[d] = 0;
        }
    }
}

static qc_status op_transpose(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    const int64_t *perm_attr;
    size_t given = qce__attr_ints(call, "perm", &perm_attr);
    int perm[QC_MAX_DIMS], seen[QC_MAX_DIMS] = {0};
    if (given && given != (size_t)x->ndim) return qce__fail(call, QC_ERR_INVALID_ARG, "perm has %zu entries for rank %d", given, x->ndim);
    for (int d = 0; d < x->ndim; d++) {
        perm[d] = given ? (int)perm_attr[d] : x->ndim - 1 - d;
        if (perm[d] < 0 || perm[d] >= x->ndim || seen[perm[d]]++)
            return qce__fail(call, QC_ERR_INVALID_ARG, "perm is not a permutation of the axes");
    }
    int64_t dims[QC_MAX_DIMS], in_strides[QC_MAX_DIMS], stride = 1;
    for (int d = x->ndim - 1; d >= 0; d--) in_strides[d] = stride, stride *= x->dims[d];
    for (int d = 0; d < x->ndim; d++) dims[d] = x->dims[perm[d]];
    QCE_TRY(qce__output(call, 0, x->dtype, x->ndim, dims));
    permute(call->outputs[0]->tensor.data, x->data, item_size(x), x->ndim, dims, in_strides, perm);
    return QC_OK;
}

static qc_status op_shape(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t start = qce__attr_int(call, "start", 0), end = qce__attr_int(call, "end", x->ndim);
    if (start < 0) start += x->ndim;
    if (end < 0) end += x->ndim;
    start = start < 0 ? 0 : start > x->ndim ? x->ndim : start;
    end = end < start ? start : end > x->ndim ? x->ndim : end;
    int64_t n = end - start;
    QCE_TRY(qce__output(call, 0, QC_DT_I64, 1, &n));
    for (int64_t d = 0; d < n; d++) ((int64_t *)call->outputs[0]->tensor.data)[d] = x->dims[start + d];
    return QC_OK;
}

static qc_status op_size(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    QCE_TRY(qce__output(call, 0, QC_DT_I64, 0, NULL));
    *(int64_t *)call->outputs[0]->tensor.data = qce__numel(&call->inputs[0]->tensor);
    return QC_OK;
}

/* The axes of Unsqueeze/Squeeze: an attribute before opset 13, an optional input since. */
static qc_status axes_of(const qce_call *call, int64_t *axes, size_t *count)
{
    if (call->opset >= 13) {
        *count = 0;
        if (call->num_inputs > 1 && call->inputs[1]) QCE_TRY(qce__int_list(call, 1, axes, QC_MAX_DIMS, count));
        return QC_OK;
    }
    const int64_t *values;
    *count = qce__attr_ints(call, "axes", &values);
    if (*count > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "too many axes");
    qce__copy_ints(axes, values, *count);
    return QC_OK;
}

static qc_status op_unsqueeze(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t axes[QC_MAX_DIMS], dims[QC_MAX_DIMS];
    size_t count;
    QCE_TRY(axes_of(call, axes, &count));
    int ndim = x->ndim + (int)count, inserted[QC_MAX_DIMS + 1] = {0};
    if (ndim > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "the result's rank %d exceeds %d", ndim, QC_MAX_DIMS);
    for (size_t i = 0; i < count; i++) {
        int a;
        QCE_TRY(qce__axis(call, axes[i], ndim, &a));
        if (inserted[a]++) return qce__fail(call, QC_ERR_INVALID_ARG, "axis %d is repeated", a);
    }
    for (int d = 0, k = 0; d < ndim; d++) dims[d] = inserted[d] ? 1 : x->dims[k++];
    return reshaped_copy(call, ndim, dims);
}

static qc_status op_squeeze(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t axes[QC_MAX_DIMS], dims[QC_MAX_DIMS];
    size_t count;
    QCE_TRY(axes_of(call, axes, &count));
    int drop[QC_MAX_DIMS] = {0}, ndim = 0;
    for (size_t i = 0; i < count; i++) {
        int a;
        QCE_TRY(qce__axis(call, axes[i], x->ndim, &a));
        if (x->dims[a] != 1) return qce__fail(call, QC_ERR_SHAPE, "axis %d has extent %lld, not 1", a, (long long)x->dims[a]);
        drop[a] = 1;
    }
    for (int d = 0; d < x->ndim; d++)
        if (!(count ? drop[d] : x->dims[d] == 1)) dims[ndim++] = x->dims[d];
    return reshaped_copy(call, ndim, dims);
}

static qc_status op_concat(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *first = &call->inputs[0]->tensor;
    int axis;
    QCE_TRY(qce__axis(call, qce__attr_int(call, "axis", 0), first->ndim, &axis));
    int64_t dims[QC_MAX_DIMS];
    memcpy(dims, first->dims, sizeof dims);
    dims[axis] = 0;
    for (size_t k = 0; k < call->num_inputs; k++) {
        QCE_TRY(qce__expect_input(call, k, QCE_DT(first->dtype)));
        const qc_tensor *t = &call->inputs[k]->tensor;
        for (int d = 0; d < first->ndim; d++)
            if (t->ndim != first->ndim || (d != axis && t->dims[d] != first->dims[d]))
                return qce__fail(call, QC_ERR_SHAPE, "input %zu does not match input 0 outside the axis", k);
        dims[axis] += t->dims[axis];
    }
    QCE_TRY(qce__output(call, 0, first->dtype, first->ndim, dims));
    int64_t outer = 1, inner = item_size(first);
    for (int d = 0; d < axis; d++) outer *= dims[d];
    for (int d = axis + 1; d < first->ndim; d++) inner *= dims[d];
    uint8_t *out = call->outputs[0]->tensor.data;
    for (int64_t o = 0, written = 0; o < outer; o++)
        for (size_t k = 0; k < call->num_inputs; k++) {
            const qc_tensor *t = &call->inputs[k]->tensor;
            int64_t bytes = t->dims[axis] * inner;
            if (bytes > 0) memcpy(out + written, (const uint8_t *)t->data + o * bytes, (size_t)bytes);
            written += bytes;
        }
    return QC_OK;
}

static qc_status op_gather(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    QCE_TRY(qce__expect_input(call, 1, QCE_DT(QC_DT_I64) | QCE_DT(QC_DT_I32)));
    const qc_tensor *x = &call->inputs[0]->tensor, *idx = &call->inputs[1]->tensor;
    int axis;
    QCE_TRY(qce__axis(call, qce__attr_int(call, "axis", 0), x->ndim, &axis));
    int ndim = x->ndim - 1 + idx->ndim;
    if (ndim > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "the result's rank exceeds %d", QC_MAX_DIMS);
    int64_t dims[QC_MAX_DIMS], outer = 1, inner = item_size(x);
    int k = 0;
    for (int d = 0; d < axis; d++) dims[k++] = x->dims[d], outer *= x->dims[d];
    for (int d = 0; d < idx->ndim; d++) dims[k++] = idx->dims[d];
    for (int d = axis + 1; d < x->ndim; d++) dims[k++] = x->dims[d], inner *= x->dims[d];
    QCE_TRY(qce__output(call, 0, x->dtype, ndim, dims));
    int64_t count = qce__numel(idx), extent = x->dims[axis];
    uint8_t *out = call->outputs[0]->tensor.data;
    for (int64_t j = 0; j < count; j++) {
        int64_t i = (int64_t)qce__load(idx, j);
        if (i < -extent || i >= extent)
            return qce__fail(call, QC_ERR_INVALID_ARG, "index %lld is outside [-%lld, %lld)", (long long)i, (long long)extent,
                             (long long)extent);
        if (i < 0) i += extent;
        for (int64_t o = 0; o < outer; o++)
            memcpy(out + (o * count + j) * inner, (const uint8_t *)x->data + (o * extent + i) * inner, (size_t)inner);
    }
    return QC_OK;
}

/* Slice: starts, ends, axes, steps as inputs (opset >= 10) or attributes (before). */
static qc_status slice_params(const qce_call *call, int64_t *starts, int64_t *ends, int64_t *axes, int64_t *steps,
                              size_t *count)
{
    size_t n_ends, n_axes = 0, n_steps = 0;
    if (call->opset >= 10) {
        QCE_TRY(qce__int_list(call, 1, starts, QC_MAX_DIMS, count));
        QCE_TRY(qce__int_list(call, 2, ends, QC_MAX_DIMS, &n_ends));
        if (call->num_inputs > 3 && call->inputs[3]) QCE_TRY(qce__int_list(call, 3, axes, QC_MAX_DIMS, &n_axes));
        if (call->num_inputs > 4 && call->inputs[4]) QCE_TRY(qce__int_list(call, 4, steps, QC_MAX_DIMS, &n_steps));
    } else {
        const int64_t *v;
        *count = qce__attr_ints(call, "starts", &v);
        if (*count > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "too many axes");
        qce__copy_ints(starts, v, *count);
        n_ends = qce__attr_ints(call, "ends", &v);
        if (n_ends > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "too many axes");
        qce__copy_ints(ends, v, n_ends);
        n_axes = qce__attr_ints(call, "axes", &v);
        if (n_axes > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "too many axes");
        qce__copy_ints(axes, v, n_axes);
    }
    if (n_ends != *count || (n_axes && n_axes != *count) || (n_steps && n_steps != *count))
        return qce__fail(call, QC_ERR_INVALID_ARG, "starts, ends, axes and steps differ in length");
    for (size_t i = 0; i < *count; i++) {
        if (!n_axes) axes[i] = (int64_t)i;
        if (!n_steps) steps[i] = 1;
        if (steps[i] == 0) return qce__fail(call, QC_ERR_INVALID_ARG, "a step is 0");
    }
    return QC_OK;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static qc_status op_slice(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t starts[QC_MAX_DIMS], ends[QC_MAX_DIMS], axes[QC_MAX_DIMS], steps[QC_MAX_DIMS];
    size_t count;
    QCE_TRY(slice_params(call, starts, ends, axes, steps, &count));
    int64_t first[QC_MAX_DIMS], step[QC_MAX_DIMS], dims[QC_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) first[d] = 0, step[d] = 1, dims[d] = x->dims[d];
    for (size_t i = 0; i < count; i++) {
        int a;
        QCE_TRY(qce__axis(call, axes[i], x->ndim, &a));
        int64_t extent = x->dims[a], s = starts[i], e = ends[i];
        if (s < 0) s += extent;
        if (e < 0) e += extent;
        if (steps[i] > 0) {
            s = clamp64(s, 0, extent), e = clamp64(e, 0, extent);
            dims[a] = e > s ? (e - s + steps[i] - 1) / steps[i] : 0;
        } else {
            s = clamp64(s, 0, extent - 1), e = clamp64(e, -1, extent - 1);
            dims[a] = s > e ? (s - e - steps[i] - 1) / -steps[i] : 0;
        }
        first[a] = s, step[a] = steps[i];
    }
    QCE_TRY(qce__output(call, 0, x->dtype, x->ndim, dims));
    int64_t strides[QC_MAX_DIMS], stride = 1, index[QC_MAX_DIMS] = {0}, n = 1;
    for (int d = x->ndim - 1; d >= 0; d--) strides[d] = stride, stride *= x->dims[d], n *= dims[d];
    size_t item = item_size(x);
    uint8_t *out = call->outputs[0]->tensor.data;
    /* With step 1 on the last axis, whole rows of the output are contiguous in x: one copy per row. */
    int rows_only = x->ndim > 0 && step[x->ndim - 1] == 1, top = rows_only ? x->ndim - 1 : x->ndim;
    int64_t run = rows_only ? dims[x->ndim - 1] : 1;
    for (int64_t i = 0; run > 0 && i < n / run; i++) {
        int64_t offset = 0;
        for (int d = 0; d < x->ndim; d++) offset += (first[d] + index[d] * step[d]) * strides[d];
        memcpy(out + i * run * item, (const uint8_t *)x->data + offset * item, (size_t)run * item);
        for (int d = top - 1; d >= 0 && ++index[d] == dims[d]; d--) index[d] = 0;
    }
    return QC_OK;
}

static qc_status op_expand(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int64_t shape[QC_MAX_DIMS];
    size_t count;
    QCE_TRY(qce__int_list(call, 1, shape, QC_MAX_DIMS, &count));
    qc_tensor target = {.dtype = x->dtype, .ndim = (int32_t)count};
    for (size_t d = 0; d < count; d++) target.dims[d] = shape[d];
    const qc_tensor *pair[2] = {x, &target};
    qce_broadcast bc;
    QCE_TRY(qce__broadcast_init(&bc, call, pair, 2));
    QCE_TRY(qce__output(call, 0, x->dtype, bc.ndim, bc.dims));
    size_t item = item_size(x);
    int64_t n = qce__numel(&call->outputs[0]->tensor);
    uint8_t *out = call->outputs[0]->tensor.data;
    enum { STEP = 1024 };
    for (int64_t firstel = 0; firstel < n; firstel += STEP) {
        int64_t m = n - firstel < STEP ? n - firstel : STEP, ox[STEP], ot[STEP], *offsets[3] = {ox, ot, NULL};
        qce__broadcast_offsets(&bc, firstel, m, offsets);
        for (int64_t j = 0; j < m; j++) memcpy(out + (firstel + j) * item, (const uint8_t *)x->data + ox[j] * item, item);
    }
    return QC_OK;
}

/* A TensorProto attribute (Constant's value, ConstantOfShape's value) as bytes of an executor dtype. */
static qc_status tensor_attribute(const qce_call *call, const Onnx__TensorProto *t, qc_dtype *dtype,
                                  qcm_tensor_bytes *bytes)
{
    int d = qce__dtype_of_onnx(t->data_type);
    if (d == 0 || d == QC_DT_INT4 || d == QC_DT_UINT4)
        return qce__fail(call, QC_ERR_UNSUPPORTED, "a tensor attribute of type %s", qc_onnx_type_string(t->data_type));
    *dtype = (qc_dtype)d;
    memset(bytes, 0, sizeof *bytes);
    if (qcm__tensor_bytes(bytes, t, NULL, "tensor attribute", "qc_session_run") != QC_OK)
        return qce__fail(call, QC_ERR_FORMAT, "its tensor attribute is malformed");
    return QC_OK;
}

static qc_status op_constant(const qce_call *call)
{
    const Onnx__AttributeProto *a = qce__attr(call, "value");
    if (a && a->t) {
        qc_dtype dtype;
        qcm_tensor_bytes b;
        QCE_TRY(tensor_attribute(call, a->t, &dtype, &b));
        if (a->t->n_dims > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "rank above %d", QC_MAX_DIMS);
        qc_status st = qce__output(call, 0, dtype, (int)a->t->n_dims, a->t->dims);
        if (st == QC_OK && b.nbytes) memcpy(call->outputs[0]->tensor.data, b.data, b.nbytes);
        free(b.owned);
        return st;
    }
    if ((a = qce__attr(call, "value_float")) != NULL) {
        QCE_TRY(qce__output(call, 0, QC_DT_F32, 0, NULL));
        *(float *)call->outputs[0]->tensor.data = a->f;
        return QC_OK;
    }
    if ((a = qce__attr(call, "value_int")) != NULL) {
        QCE_TRY(qce__output(call, 0, QC_DT_I64, 0, NULL));
        *(int64_t *)call->outputs[0]->tensor.data = a->i;
        return QC_OK;
    }
    if ((a = qce__attr(call, "value_ints")) != NULL || (a = qce__attr(call, "value_floats")) != NULL) {
        int ints = a->n_ints > 0 || a->n_floats == 0;
        int64_t n = (int64_t)(ints ? a->n_ints : a->n_floats);
        QCE_TRY(qce__output(call, 0, ints ? QC_DT_I64 : QC_DT_F32, 1, &n));
        if (n > 0) memcpy(call->outputs[0]->tensor.data, ints ? (void *)a->ints : (void *)a->floats, (size_t)n * (ints ? 8 : 4));
        return QC_OK;
    }
    return qce__fail(call, QC_ERR_UNSUPPORTED, "only value, value_float(s) and value_int(s) constants are supported");
}

static qc_status op_constant_of_shape(const qce_call *call)
{
    int64_t shape[QC_MAX_DIMS];
    size_t count;
    QCE_TRY(qce__int_list(call, 0, shape, QC_MAX_DIMS, &count));
    qc_dtype dtype = QC_DT_F32;
    double value = 0.0;
    const Onnx__AttributeProto *a = qce__attr(call, "value");
    if (a && a->t) {
        qcm_tensor_bytes b;
        QCE_TRY(tensor_attribute(call, a->t, &dtype, &b));
        qc_tensor one = {.data = (void *)b.data, .dtype = dtype, .ndim = 0};
        if (b.nbytes) value = qce__load(&one, 0);
        free(b.owned);
    }
    QCE_TRY(qce__output(call, 0, dtype, (int)count, shape));
    qc_tensor *y = &call->outputs[0]->tensor;
    for (int64_t i = 0; i < qce__numel(y); i++) qce__store(y, i, value);
    return QC_OK;
}

static qc_status op_range(const qce_call *call)
{
    for (size_t k = 0; k < 3; k++)
        QCE_TRY(qce__expect_input(call, k, QCE_DT(QC_DT_F32) | QCE_DT(QC_DT_I64) | QCE_DT(QC_DT_I32)));
    const qc_tensor *t = &call->inputs[0]->tensor;
    double start = qce__load(t, 0), limit = qce__load(&call->inputs[1]->tensor, 0),
           delta = qce__load(&call->inputs[2]->tensor, 0);
    if (delta == 0) return qce__fail(call, QC_ERR_INVALID_ARG, "delta is 0");
    double span = ceil((limit - start) / delta);
    int64_t n = span > 0 ? (int64_t)span : 0;
    QCE_TRY(qce__output(call, 0, t->dtype, 1, &n));
    for (int64_t i = 0; i < n; i++) qce__store(&call->outputs[0]->tensor, i, start + (double)i * delta);
    return QC_OK;
}

/* Split: sizes from the `split` input (opset >= 13) or attribute, else equal parts (num_outputs or the
 * output count), the last part smaller when the axis does not divide. */
static qc_status op_split(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    int axis;
    QCE_TRY(qce__axis(call, qce__attr_int(call, "axis", 0), x->ndim, &axis));
    int64_t sizes[64];
    size_t count = call->num_outputs;
    if (count > 64) return qce__fail(call, QC_ERR_UNSUPPORTED, "more than 64 outputs");
    const int64_t *attr;
    size_t given = call->opset >= 13 ? 0 : qce__attr_ints(call, "split", &attr);
    if (call->opset >= 13 && call->num_inputs > 1 && call->inputs[1]) QCE_TRY(qce__int_list(call, 1, sizes, 64, &given));
    else qce__copy_ints(sizes, attr, given < 64 ? given : 64);
    if (given && given != count) return qce__fail(call, QC_ERR_INVALID_ARG, "split gives %zu sizes for %zu outputs", given, count);
    int64_t extent = x->dims[axis], total = 0;
    for (size_t k = 0; k < count; k++) {
        if (!given) sizes[k] = k + 1 < count ? (extent + (int64_t)count - 1) / (int64_t)count : extent - total;
        if (sizes[k] < 0) return qce__fail(call, QC_ERR_INVALID_ARG, "split size %zu is negative", k);
        total += sizes[k];
    }
    if (total != extent) return qce__fail(call, QC_ERR_SHAPE, "split sizes add up to %lld, the axis has %lld", (long long)total,
                                          (long long)extent);
    int64_t outer = 1, inner = (int64_t)item_size(x);
    for (int d = 0; d < axis; d++) outer *= x->dims[d];
    for (int d = axis + 1; d < x->ndim; d++) inner *= x->dims[d];
    for (size_t k = 0, start = 0; k < count; start += (size_t)sizes[k], k++) {
        int64_t dims[QC_MAX_DIMS];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = sizes[k];
        QCE_TRY(qce__output(call, k, x->dtype, x->ndim, dims));
        if (call->outputs[k] == NULL || sizes[k] == 0) continue;
        uint8_t *out = call->outputs[k]->tensor.data;
        for (int64_t o = 0; o < outer; o++)
            memcpy(out + o * sizes[k] * inner, (const uint8_t *)x->data + (o * extent + (int64_t)start) * inner,
                   (size_t)(sizes[k] * inner));
    }
    return QC_OK;
}

typedef enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE } pad_mode;

/* The input index that output index o (in padded coordinates) reads along one axis, or -1 for the
 * constant. */
static int64_t pad_source(int64_t o, int64_t begin, int64_t extent, pad_mode mode)
{
    int64_t i = o - begin;
    if (i >= 0 && i < extent) return i;
    if (mode == PAD_CONSTANT || extent == 0) return -1;
    if (mode == PAD_EDGE) return i < 0 ? 0 : extent - 1;
    int64_t period = 2 * (extent - 1); /* reflect, without repeating the edge */
    if (period == 0) return 0;
    i = ((i % period) + period) % period;
    return i < extent ? i : period - i;
}

static qc_status pad_params(const qce_call *call, const qc_tensor *x, int64_t *begin, int64_t *end, double *value)
{
    int64_t pads[2 * QC_MAX_DIMS], axes[QC_MAX_DIMS];
    size_t n_pads, n_axes = 0;
    if (call->opset >= 11) {
        QCE_TRY(qce__int_list(call, 1, pads, 2 * QC_MAX_DIMS, &n_pads));
        if (call->num_inputs > 2 && call->inputs[2] && qce__numel(&call->inputs[2]->tensor) > 0)
            *value = qce__load(&call->inputs[2]->tensor, 0);
        if (call->num_inputs > 3 && call->inputs[3]) QCE_TRY(qce__int_list(call, 3, axes, QC_MAX_DIMS, &n_axes));
    } else {
        const int64_t *v;
        n_pads = qce__attr_ints(call, "pads", &v);
        if (n_pads > 2 * QC_MAX_DIMS) return qce__fail(call, QC_ERR_INVALID_ARG, "too many pads");
        qce__copy_ints(pads, v, n_pads);
        *value = qce__attr_float(call, "value", 0.0f);
    }
    size_t count = n_axes ? n_axes : (size_t)x->ndim;
    if (n_pads != 2 * count) return qce__fail(call, QC_ERR_INVALID_ARG, "pads has %zu entries for %zu axes", n_pads, count);
    for (int d = 0; d < x->ndim; d++) begin[d] = end[d] = 0;
    for (size_t i = 0; i < count; i++) {
        int a = (int)i;
        if (n_axes) QCE_TRY(qce__axis(call, axes[i], x->ndim, &a));
        begin[a] = pads[i], end[a] = pads[count + i];
    }
    return QC_OK;
}

static qc_status op_pad(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, ~0u));
    const qc_tensor *x = &call->inputs[0]->tensor;
    const Onnx__AttributeProto *m = qce__attr(call, "mode");
    pad_mode mode = PAD_CONSTANT;
    if (m && m->s.len == 7 && memcmp(m->s.data, "reflect", 7) == 0) mode = PAD_REFLECT;
    else if (m && m->s.len == 4 && memcmp(m->s.data, "edge", 4) == 0) mode = PAD_EDGE;
    else if (m && !(m->s.len == 8 && memcmp(m->s.data, "constant", 8) == 0))
        return qce__fail(call, QC_ERR_UNSUPPORTED, "pad mode '%.*s'", (int)m->s.len, (const char *)m->s.data);
    int64_t begin[QC_MAX_DIMS], end[QC_MAX_DIMS], dims[QC_MAX_DIMS], strides[QC_MAX_DIMS], stride = 1;
    double value = 0.0;
    QCE_TRY(pad_params(call, x, begin, end, &value));
    for (int d = x->ndim - 1; d >= 0; d--) {
        dims[d] = x->dims[d] + begin[d] + end[d];
        if (dims[d] < 0) return qce__fail(call, QC_ERR_SHAPE, "pads remove more than axis %d holds", d);
        if (mode == PAD_REFLECT && (begin[d] >= x->dims[d] || end[d] >= x->dims[d]) && (begin[d] > 0 || end[d] > 0))
            return qce__fail(call, QC_ERR_INVALID_ARG, "reflect pads must be smaller than axis %d", d);
        strides[d] = stride, stride *= x->dims[d];
    }
    QCE_TRY(qce__output(call, 0, x->dtype, x->ndim, dims));
    qc_tensor *y = &call->outputs[0]->tensor;
    int64_t n = qce__numel(y), index[QC_MAX_DIMS] = {0};
    size_t item = item_size(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t offset = 0;
        for (int d = 0; d < x->ndim && offset >= 0; d++) {
            int64_t src = pad_source(index[d], begin[d], x->dims[d], mode);
            offset = src < 0 ? -1 : offset + src * strides[d];
        }
        if (offset < 0) qce__store(y, i, value);
        else memcpy((uint8_t *)y->data + i * item, (const uint8_t *)x->data + offset * item, item);
        for (int d = x->ndim - 1; d >= 0 && ++index[d] == dims[d]; d--) index[d] = 0;
    }
    return QC_OK;
}

const qce_op qce__shape_ops[] = {
    {"Identity", op_identity}, {"Dropout", op_dropout}, {"Reshape", op_reshape}, {"Flatten", op_flatten},
    {"Transpose", op_transpose}, {"Shape", op_shape}, {"Size", op_size}, {"Unsqueeze", op_unsqueeze},
    {"Squeeze", op_squeeze}, {"Concat", op_concat}, {"Split", op_split}, {"Gather", op_gather},
    {"Slice", op_slice}, {"Pad", op_pad},
    {"Expand", op_expand}, {"Constant", op_constant}, {"ConstantOfShape", op_constant_of_shape},
    {"Range", op_range}, {NULL, NULL},
};
