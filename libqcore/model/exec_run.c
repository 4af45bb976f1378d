/* Running a session: binding inputs and replacement initializers, executing the planned nodes in order
 * with the context's threads, and reading outputs and captured values. */
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "error.h"
#include "exec_internal.h"

static qc_status find(const qc_session *s, const char *name, size_t *index, const char *function)
{
    *index = qce__value_index(s, name);
    if (*index == SIZE_MAX)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'name': the graph has no value '%.120s'", name);
    return QC_OK;
}

/* The tensor type graph input `name` declares, or NULL when it declares none. */
static const Onnx__TypeProto__Tensor *declared_type(const qc_session *s, const char *name)
{
    const Onnx__GraphProto *g = s->model->proto->graph;
    for (size_t i = 0; i < g->n_input; i++) {
        if (g->input[i]->name == NULL || strcmp(g->input[i]->name, name) != 0) continue;
        const Onnx__TypeProto *type = g->input[i]->type;
        return type && type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? type->tensor_type : NULL;
    }
    return NULL;
}

static qc_status check_declared(const Onnx__TypeProto__Tensor *type, const char *name, const qc_tensor *value,
                                const char *function)
{
    if (type == NULL) return QC_OK;
    int want = qce__dtype_of_onnx(type->elem_type);
    if (want && (qc_dtype)want != value->dtype)
        return QCM_FAIL_IN(function, QC_ERR_DTYPE, "argument 'value': input '%s' takes %s, got %s", name,
                           qc_onnx_type_string(type->elem_type), qc_dtype_string(value->dtype));
    const Onnx__TensorShapeProto *shape = type->shape;
    if (shape == NULL) return QC_OK;
    if (shape->n_dim == 0 && qc_tensor_numel(value) == 1) return QC_OK; /* a one-element scalar */
    if ((size_t)value->ndim != shape->n_dim)
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "argument 'value': input '%s' has rank %zu, got %d", name, shape->n_dim,
                           (int)value->ndim);
    for (size_t d = 0; d < shape->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = shape->dim[d];
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dim->dim_value != value->dims[d])
            return QCM_FAIL_IN(function, QC_ERR_SHAPE, "argument 'value': input '%s' needs dims[%zu] = %lld, got %lld", name,
                               d, (long long)dim->dim_value, (long long)value->dims[d]);
    }
    return QC_OK;
}

qc_status qc_session_set_input(qc_session *s, const char *name, const qc_tensor *value)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(name);
    QCM_TRY(qc_tensor_check(value, "value"));
    size_t i;
    QCM_TRY(find(s, name, &i, __func__));
    if (!s->values[i].is_input)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': '%.120s' is not a graph input", name);
    if (!qc_tensor_is_contiguous(value)) return QCM_FAIL(QC_ERR_LAYOUT, "argument 'value': must be C-contiguous");
    const Onnx__TypeProto__Tensor *type = declared_type(s, name);
    QCM_TRY(check_declared(type, name, value, __func__));
    s->values[i].tensor = *value;
    if (type && type->shape && type->shape->n_dim == 0) s->values[i].tensor.ndim = 0; /* [1] for a declared scalar */
    s->values[i].is_bound = 1;
    return QC_OK;
}

qc_status qc_session_set_initializer(qc_session *s, const char *name, const qc_tensor *value)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(name);
    QCM_TRY(qc_tensor_check(value, "value"));
    size_t i;
    QCM_TRY(find(s, name, &i, __func__));
    qce_value *v = &s->values[i];
    if (!v->is_constant || v->is_folded)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': '%.120s' is not an initializer", name);
    int same = v->tensor.dtype == value->dtype && v->tensor.ndim == value->ndim;
    for (int d = 0; same && d < value->ndim; d++) same = v->tensor.dims[d] == value->dims[d];
    if (!same)
        return QCM_FAIL(QC_ERR_SHAPE, "argument 'value': initializer '%.120s' keeps its dtype (%s) and shape", name,
                        qc_dtype_string(v->tensor.dtype));
    if (!qc_tensor_is_contiguous(value)) return QCM_FAIL(QC_ERR_LAYOUT, "argument 'value': must be C-contiguous");
    size_t bytes;
    QCM_TRY(qc_tensor_nbytes(&bytes, value));
    if (!qce__reserve(v, bytes)) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", bytes);
    if (bytes) memcpy(v->storage, value->data, bytes);
    v->tensor.data = v->storage;
    v->generation++; /* data derived from it is stale */
    return QC_OK;
}

qc_status qc_session_capture(qc_session *s, const char *name)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(name);
    size_t i;
    QCM_TRY(find(s, name, &i, __func__));
    s->values[i].keep = 1;
    return QC_OK;
}

/* The session of the model's graph, whose accumulator and storage pool its subgraphs share. */
static qc_session *top(qc_session *s)
{
    while (s->parent) s = s->parent;
    return s;
}

qc_status qce__run_node(qc_session *s, qce_node *node, int threads, qce_value **slots)
{
    const Onnx__NodeProto *p = node->proto;
    int fused = node->fused_inputs && top(s)->integer_kernels;
    size_t n_in = fused ? QCE_FUSED_COUNT : p->n_input;
    const size_t *inputs = fused ? node->fused_inputs : node->inputs;
    qce_call call = {node, slots, n_in, slots + n_in, p->n_output, threads,
                     qc_model_opset_version(s->model, p->domain), &top(s)->accumulator, &top(s)->pool,
                     fused ? &node->fused_derived : &node->derived, s->ctx, top(s)->integer_kernels};
    for (size_t k = 0; k < n_in; k++) {
        slots[k] = inputs[k] == SIZE_MAX ? NULL : &s->values[inputs[k]];
        if (slots[k] && !slots[k]->is_bound)
            return QCM_FAIL_IN("qc_session_run", QC_ERR_INVALID_ARG, "graph input '%s' (read by node '%s') is not set",
                               slots[k]->name, p->name ? p->name : "");
    }
    for (size_t k = 0; k < p->n_output; k++) slots[n_in + k] = node->outputs[k] == SIZE_MAX ? NULL : &s->values[node->outputs[k]];
    QCM_TRY((fused ? node->fused_kernel : node->kernel)(&call));
    for (const size_t *v = node->last_reads; *v != SIZE_MAX; v++) { /* values nobody reads any more */
        qce_value *value = &s->values[*v];
        if (!value->keep && !value->is_constant && !value->is_input) qce__release(call.pool, value);
    }
    return QC_OK;
}

/* Whether this run skips the Q/DQ nodes that only fused nodes read: with integer kernels, unless one of
 * their outputs was captured after planning (it must then be computed, and what it reads with it). */
static int skips_fused_away(const qc_session *s)
{
    if (!top((qc_session *)s)->integer_kernels) return 0;
    for (size_t i = 0; i < s->num_nodes; i++) {
        const qce_node *node = &s->nodes[i];
        for (size_t k = 0; node->fused_away && k < node->proto->n_output; k++)
            if (node->outputs[k] != SIZE_MAX && s->values[node->outputs[k]].keep) return 0;
    }
    return 1;
}

qc_status qce__run_graph(qc_session *s, int threads)
{
    size_t most = 1;
    for (size_t i = 0; i < s->num_nodes; i++) {
        const qce_node *node = &s->nodes[i];
        size_t n = (node->fused_inputs && node->proto->n_input < QCE_FUSED_COUNT ? QCE_FUSED_COUNT : node->proto->n_input) +
                   node->proto->n_output;
        if (n > most) most = n;
    }
    int skip = skips_fused_away(s);
    qce_value **slots = malloc(most * sizeof *slots);
    if (slots == NULL) return QCM_FAIL_IN("qc_session_run", QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t v = 0; v < s->num_values; v++) {
        qce_value *value = &s->values[v];
        if (!value->is_constant && !value->is_input) value->is_bound = 0;
        if (value->outer) value->tensor = value->outer->tensor, value->is_bound = value->outer->is_bound;
    }
    qc_status st = QC_OK;
    for (size_t i = 0; i < s->num_nodes && st == QC_OK; i++)
        if (!s->nodes[i].folded && !(skip && s->nodes[i].fused_away)) st = qce__run_node(s, &s->nodes[i], threads, slots);
    free(slots);
    return st;
}

qc_status qce__ctx_threads(const qc_ctx *ctx, int *threads)
{
    int64_t n = 0;
    QCM_TRY(qc_ctx_get_param(ctx, QC_CTX_THREADS, &n));
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
#endif
    *threads = n > 0 ? (int)n : 1;
    return QC_OK;
}

qc_status qc_session_run(qc_session *s)
{
    QCM_CHECK_NOT_NULL(s);
    int threads = 1;
    QCM_TRY(qce__ctx_threads(s->ctx, &threads));
    memset(&s->accumulator.stats, 0, sizeof s->accumulator.stats);
    memset(&s->accumulator.kernels, 0, sizeof s->accumulator.kernels);
    qc_status st = qce__run_graph(s, threads);
    for (size_t v = 0; v < s->num_values; v++)
        if (s->values[v].is_input) s->values[v].is_bound = 0; /* inputs are borrowed for one run */
    return st;
}

qc_status qc_session_value(const qc_session *s, const char *name, qc_tensor *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(name);
    QCM_CHECK_NOT_NULL(out);
    size_t i;
    QCM_TRY(find(s, name, &i, __func__));
    const qce_value *v = &s->values[i];
    if (!v->keep && !v->is_constant)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': '%.120s' is neither a graph output nor captured", name);
    if (!v->is_bound) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': '%.120s' has no value yet (run first)", name);
    *out = v->tensor;
    return QC_OK;
}

qc_status qc_session_set_accumulator(qc_session *s, int bits, qc_accumulator_mode mode)
{
    QCM_CHECK_NOT_NULL(s);
    if (mode != QC_ACCUMULATE_EXACT && mode != QC_ACCUMULATE_WRAP && mode != QC_ACCUMULATE_SATURATE)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'mode': unknown accumulator mode %d", (int)mode);
    if (mode != QC_ACCUMULATE_EXACT && (bits < 2 || bits > 32))
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'bits': %d is outside 2..32", bits);
    s->accumulator.bits = mode == QC_ACCUMULATE_EXACT ? 0 : bits;
    s->accumulator.mode = mode;
    return QC_OK;
}

qc_status qc_session_set_integer_kernels(qc_session *s, qc_integer_kernels kernels)
{
    QCM_CHECK_NOT_NULL(s);
    if (kernels < QC_INTEGER_KERNELS_OFF || kernels > QC_INTEGER_KERNELS_BITSERIAL)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'kernels': %d is not a qc_integer_kernels", (int)kernels);
    s->integer_kernels = kernels;
    return QC_OK;
}

qc_status qc_session_integer_kernel_stats(const qc_session *s, qc_integer_kernel_stats *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(out);
    *out = s->accumulator.kernels;
    return QC_OK;
}

qc_status qc_session_accumulator_stats(const qc_session *s, qc_accumulator_stats *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(out);
    *out = s->accumulator.stats;
    return QC_OK;
}
