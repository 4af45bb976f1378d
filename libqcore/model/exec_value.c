/* Session values: output shaping with storage reuse, attribute lookup and failure messages for kernels. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec_internal.h"

int64_t qce__numel(const qc_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->dims[d];
    return n;
}

qc_status qce__fail(const qce_call *call, qc_status status, const char *format, ...)
{
    char message[400];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    const Onnx__NodeProto *n = call->node->proto;
    return qcm__fail(status, "qc_session_run", "%s node '%s': %s", n->op_type, n->name ? n->name : "", message);
}

void qce__release(qce_pool *pool, qce_value *v)
{
    v->is_bound = 0;
    if (v->storage == NULL) return;
    if (pool->count == pool->room) {
        size_t room = pool->room ? 2 * pool->room : 16;
        void **buffers = realloc(pool->buffers, room * sizeof *buffers);
        if (buffers) pool->buffers = buffers;
        size_t *capacities = buffers ? realloc(pool->capacities, room * sizeof *capacities) : NULL;
        if (capacities) pool->capacities = capacities;
        if (!buffers || !capacities) return; /* no room to keep it: the value simply keeps its storage */
        pool->room = room;
    }
    pool->buffers[pool->count] = v->storage;
    pool->capacities[pool->count++] = v->capacity;
    v->storage = NULL;
    v->capacity = 0;
}

int qce__reserve(qce_value *v, size_t bytes)
{
    if (bytes <= v->capacity && v->storage != NULL) return 1;
    void *grown = realloc(v->storage, bytes ? bytes : 1);
    if (grown == NULL) return 0;
    v->storage = grown;
    v->capacity = bytes;
    return 1;
}

void qce__pool_free(qce_pool *pool)
{
    for (size_t i = 0; i < pool->count; i++) free(pool->buffers[i]);
    free(pool->buffers);
    free(pool->capacities);
    memset(pool, 0, sizeof *pool);
}

/* The smallest pooled buffer of at least `bytes`, swapped for v's own (which goes to the pool). */
static int take_from_pool(qce_pool *pool, qce_value *v, size_t bytes)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < pool->count; i++)
        if (pool->capacities[i] >= bytes && (best == SIZE_MAX || pool->capacities[i] < pool->capacities[best])) best = i;
    if (best == SIZE_MAX) return 0;
    void *buffer = pool->buffers[best];
    size_t capacity = pool->capacities[best];
    pool->buffers[best] = pool->buffers[--pool->count];
    pool->capacities[best] = pool->capacities[pool->count];
    if (v->storage) qce__release(pool, v);
    v->storage = buffer;
    v->capacity = capacity;
    return 1;
}

qc_status qce__output(const qce_call *call, size_t k, qc_dtype dtype, int ndim, const int64_t *dims)
{
    if (k >= call->num_outputs || call->outputs[k] == NULL) return QC_OK; /* an output nobody reads */
    qce_value *v = call->outputs[k];
    if (ndim > QC_MAX_DIMS) return qce__fail(call, QC_ERR_UNSUPPORTED, "output rank %d exceeds %d", ndim, QC_MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0) return qce__fail(call, QC_ERR_SHAPE, "output dimension %d is negative (%lld)", d, (long long)dims[d]);
        if (dims[d] && n > (uint64_t)INT64_MAX / 16 / (uint64_t)dims[d])
            return qce__fail(call, QC_ERR_OVERFLOW, "output shape is too large");
        n *= (uint64_t)dims[d];
    }
    size_t bytes = (size_t)((n * (uint64_t)qc_dtype_bits(dtype) + 7) / 8);
    if (bytes > v->capacity && !(call->pool && take_from_pool(call->pool, v, bytes)) && !qce__reserve(v, bytes))
        return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes of output", bytes);
    qc_status st = qc_tensor_init(&v->tensor, v->storage ? v->storage : (void *)v, dtype, ndim, dims, NULL);
    if (st != QC_OK) return qce__fail(call, st, "cannot shape the output");
    v->tensor.data = v->storage;
    v->is_bound = 1;
    return QC_OK;
}

/* Whether input `in`'s storage is free for an output to take: this node reads it last and nothing else
 * (caller, later runs, enclosing graphs) will look at it. */
static int input_dies_here(const qce_call *call, size_t in)
{
    const qce_value *v = in < call->num_inputs ? call->inputs[in] : NULL;
    if (v == NULL || v->keep || v->is_constant || v->is_input || v->outer || v->storage == NULL ||
        v->tensor.data != v->storage)
        return 0;
    size_t index = call->node->inputs[in];
    for (const size_t *last = call->node->last_reads; *last != SIZE_MAX; last++)
        if (*last == index) return 1;
    return 0;
}

qc_status qce__output_over_input(const qce_call *call, size_t k, size_t in, qc_dtype dtype, int ndim,
                                 const int64_t *dims, int *reused)
{
    *reused = 0;
    qce_value *out = k < call->num_outputs ? call->outputs[k] : NULL;
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= dims[d];
    if (out == NULL || !input_dies_here(call, in) || call->inputs[in]->tensor.dtype != dtype ||
        qc_tensor_numel(&call->inputs[in]->tensor) != n)
        return qce__output(call, k, dtype, ndim, dims);
    qce_value *v = call->inputs[in];
    if (out->storage != NULL) qce__release(call->pool, out); /* its old buffer serves later outputs */
    free(out->storage);                                         /* (unless the pool had no room for it) */
    out->storage = v->storage, out->capacity = v->capacity;
    v->storage = NULL, v->capacity = 0; /* v->tensor still views the bytes until the node is done */
    *reused = 1;
    return qce__output(call, k, dtype, ndim, dims);
}

void *qce__derived(const qce_call *call, size_t bytes, const size_t *sources, size_t count, int *fresh)
{
    *fresh = 0;
    uint64_t generation = 0;
    for (size_t i = 0; i < count; i++) {
        const qce_value *v = sources[i] < call->num_inputs ? call->inputs[sources[i]] : NULL;
        if (v == NULL) continue; /* an omitted optional input */
        if (!v->is_constant) return NULL;
        generation += v->generation;
    }
    qce_derived *d = call->derived;
    if (d->data != NULL && d->bytes == bytes && d->generation == generation) return d->data;
    if (d->data != NULL && d->release != NULL) d->release(d->data);
    d->release = NULL;
    void *grown = realloc(d->data, bytes ? bytes : 1);
    if (grown == NULL) {
        *fresh = -1;
        qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes of derived weights", bytes);
        return NULL;
    }
    d->data = grown, d->bytes = bytes, d->generation = generation;
    *fresh = 1;
    return d->data;
}

const Onnx__AttributeProto *qce__attr(const qce_call *call, const char *name)
{
    const Onnx__NodeProto *n = call->node->proto;
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

int64_t qce__attr_int(const qce_call *call, const char *name, int64_t fallback)
{
    const Onnx__AttributeProto *a = qce__attr(call, name);
    return a && a->has_i ? a->i : fallback;
}

float qce__attr_float(const qce_call *call, const char *name, float fallback)
{
    const Onnx__AttributeProto *a = qce__attr(call, name);
    return a && a->has_f ? a->f : fallback;
}

size_t qce__attr_ints(const qce_call *call, const char *name, const int64_t **values)
{
    const Onnx__AttributeProto *a = qce__attr(call, name);
    *values = a ? a->ints : NULL;
    return a ? a->n_ints : 0;
}

qc_status qce__expect_input(const qce_call *call, size_t k, unsigned dtypes)
{
    if (k >= call->num_inputs || call->inputs[k] == NULL)
        return qce__fail(call, QC_ERR_INVALID_ARG, "input %zu is missing", k);
    qc_dtype d = call->inputs[k]->tensor.dtype;
    if (!(dtypes & QCE_DT(d)))
        return qce__fail(call, QC_ERR_DTYPE, "input %zu ('%s') has dtype %s, which this op does not take", k,
                         call->inputs[k]->name, qc_dtype_string(d));
    return QC_OK;
}
