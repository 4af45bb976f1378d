/* Editing a parsed model in place. The protobuf-c message owns everything through malloc (protobuf-c's
 * default allocator), so new strings, arrays and messages are malloc'd and freed with it. The index of
 * initializer bytes (qc_model.bytes) is kept in step with the graph's initializer array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"

static char *copy_string(const char *s)
{
    return strdup(s ? s : "");
}

/* Grows a protobuf-c pointer array by one slot. */
static int grow(void ***array, size_t count)
{
    void **p = realloc(*array, (count + 1) * sizeof *p);
    if (p == NULL) return 0;
    *array = p;
    return 1;
}

int qcm__value_exists(const qc_model *m, const char *name)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return 1;
    for (size_t i = 0; i < g->n_input; i++)
        if (g->input[i]->name && strcmp(g->input[i]->name, name) == 0) return 1;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (strcmp(g->node[i]->output[k], name) == 0) return 1;
    return 0;
}

size_t qcm__reader_count(const Onnx__GraphProto *g, const char *name)
{
    size_t count = 0;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_input; k++) count += strcmp(g->node[i]->input[k], name) == 0;
    for (size_t i = 0; i < g->n_output; i++) count += strcmp(g->output[i]->name, name) == 0;
    return count;
}

/* The base is cut to 200 bytes so that the suffix and the number always fit in 256: a name truncated at
 * the end would repeat for every number, and the search would never end. */
void qcm__fresh_name(char *out, size_t size, const qc_model *m, const char *base, const char *suffix)
{
    snprintf(out, size, "%.200s%s", base, suffix);
    for (int k = 1; qcm__value_exists(m, out); k++) snprintf(out, size, "%.200s%s_%d", base, suffix, k);
}

/* ---- initializers ------------------------------------------------------------------------------- */

static void clear_tensor_data(qc_model *m, Onnx__TensorProto *t)
{
    free(t->float_data), free(t->int32_data), free(t->int64_data), free(t->double_data), free(t->uint64_data);
    t->float_data = NULL, t->int32_data = NULL, t->int64_data = NULL, t->double_data = NULL, t->uint64_data = NULL;
    t->n_float_data = t->n_int32_data = t->n_int64_data = t->n_double_data = t->n_uint64_data = 0;
    for (size_t i = 0; i < t->n_external_data; i++) onnx__string_string_entry_proto__free_unpacked(t->external_data[i], NULL);
    free(t->external_data);
    t->external_data = NULL, t->n_external_data = 0;
    t->has_data_location = 0, t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
    qcm__free_bytes(m, t->raw_data.data);
    t->raw_data.data = NULL, t->raw_data.len = 0, t->has_raw_data = 0;
}

/* Fills t with type, shape and a copy of the bytes, after checking they agree. */
static qc_status fill_tensor(qc_model *m, Onnx__TensorProto *t, int32_t type, int ndim, const int64_t *dims, const void *data,
                             size_t nbytes, const char *function)
{
    if (ndim < 0 || (ndim > 0 && dims == NULL))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'dims' does not give ndim = %d extents", ndim);
    size_t want;
    QCM_TRY(qcm__tensor_nbytes(&want, type, (size_t)ndim, dims, "argument 'elem_type'/'dims'", function));
    if (want != nbytes)
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "argument 'nbytes': %zu, but %s of this shape takes %zu bytes", nbytes,
                           qc_onnx_type_string(type), want);
    if (nbytes > 0 && data == NULL) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'data' is NULL");
    uint8_t *bytes = malloc(nbytes ? nbytes : 1);
    int64_t *shape = malloc((size_t)(ndim ? ndim : 1) * sizeof *shape);
    if (!bytes || !shape) {
        free(bytes), free(shape);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", nbytes);
    }
    if (nbytes) memcpy(bytes, data, nbytes);
    if (ndim) memcpy(shape, dims, (size_t)ndim * sizeof *shape);
    clear_tensor_data(m, t);
    free(t->dims);
    t->dims = shape, t->n_dims = (size_t)ndim;
    t->data_type = type, t->has_data_type = 1;
    t->raw_data.data = bytes, t->raw_data.len = nbytes, t->has_raw_data = 1;
    return QC_OK;
}

static void forget_bytes(qc_model *m, size_t i)
{
    free(m->bytes[i].owned);
    memset(&m->bytes[i], 0, sizeof m->bytes[i]);
}

qc_status qc_model_set_initializer(qc_model *m, const char *name, int32_t type, int ndim, const int64_t *dims,
                                   const void *data, size_t nbytes)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_CHECK_NOT_NULL(name);
    size_t i;
    QCM_TRY(qc_model_find_initializer(m, name, &i));
    QCM_TRY(fill_tensor(m, m->proto->graph->initializer[i], type, ndim, dims, data, nbytes, __func__));
    forget_bytes(m, i);
    return qcm__initializer_bytes(m, i, __func__);
}

qc_status qc_model_add_initializer(qc_model *m, const char *name, int32_t type, int ndim, const int64_t *dims,
                                   const void *data, size_t nbytes)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_CHECK_NOT_NULL(name);
    if (name[0] == '\0' || qcm__value_exists(m, name))
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': '%.120s' is empty or names an existing value", name);
    Onnx__GraphProto *g = m->proto->graph;
    Onnx__TensorProto *t = malloc(sizeof *t);
    qcm_tensor_bytes *bytes = realloc(m->bytes, (g->n_initializer + 1) * sizeof *bytes);
    if (bytes) m->bytes = bytes;
    if (!t || !bytes || !grow((void ***)&g->initializer, g->n_initializer)) {
        free(t);
        return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for an initializer");
    }
    onnx__tensor_proto__init(t);
    t->name = copy_string(name);
    qc_status st = t->name ? fill_tensor(m, t, type, ndim, dims, data, nbytes, __func__)
                           : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a name");
    if (st != QC_OK) {
        onnx__tensor_proto__free_unpacked(t, NULL);
        return st;
    }
    size_t i = g->n_initializer++;
    g->initializer[i] = t;
    memset(&m->bytes[i], 0, sizeof m->bytes[i]);
    return qcm__initializer_bytes(m, i, __func__);
}

/* ---- nodes and attributes ---------------------------------------------------------------------- */

static char **copy_names(size_t n, const char *const *names)
{
    char **out = calloc(n + 1, sizeof *out);
    for (size_t k = 0; out && k < n; k++)
        if ((out[k] = copy_string(names[k])) == NULL) {
            for (size_t j = 0; j < k; j++) free(out[j]);
            free(out);
            return NULL;
        }
    return out;
}

qc_status qc_model_add_node(qc_model *m, size_t *index, const char *op_type, const char *domain, const char *name,
                            size_t num_inputs, const char *const *inputs, size_t num_outputs, const char *const *outputs)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_CHECK_NOT_NULL(op_type);
    if (op_type[0] == '\0') return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'op_type' is empty");
    if ((num_inputs && !inputs) || (num_outputs && !outputs) || num_outputs == 0)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "arguments 'inputs'/'outputs': missing names (a node needs an output)");
    for (size_t k = 0; k < num_inputs; k++)
        if (inputs[k] == NULL) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'inputs': entry %zu is NULL", k);
    for (size_t k = 0; k < num_outputs; k++)
        if (outputs[k] == NULL || outputs[k][0] == '\0' || qcm__value_exists(m, outputs[k]))
            return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'outputs': entry %zu ('%.80s') is empty or names an existing value",
                            k, outputs[k] ? outputs[k] : "");
    Onnx__GraphProto *g = m->proto->graph;
    Onnx__NodeProto *n = malloc(sizeof *n);
    if (n == NULL || !grow((void ***)&g->node, g->n_node)) {
        free(n);
        return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a node");
    }
    onnx__node_proto__init(n);
    n->op_type = copy_string(op_type);
    n->domain = copy_string(domain);
    n->name = copy_string(name);
    n->input = copy_names(num_inputs, inputs), n->n_input = num_inputs;
    n->output = copy_names(num_outputs, outputs), n->n_output = num_outputs;
    if (!n->op_type || !n->domain || !n->name || !n->input || !n->output) {
        onnx__node_proto__free_unpacked(n, NULL);
        return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a node");
    }
    g->node[g->n_node] = n;
    if (index) *index = g->n_node;
    g->n_node++;
    return QC_OK;
}

static qc_status fill_attribute(Onnx__AttributeProto *a, qc_attribute_kind kind, const void *values, size_t count)
{
    size_t item = kind == QC_ATTRIBUTE_STRING ? 1 : kind == QC_ATTRIBUTE_FLOAT || kind == QC_ATTRIBUTE_FLOATS ? 4 : 8;
    void *copy = malloc(count * item + 1);
    if (copy == NULL) return QCM_FAIL_IN("qc_model_set_attribute", QC_ERR_OUT_OF_MEMORY, "no memory");
    if (count) memcpy(copy, values, count * item);
    a->type = (Onnx__AttributeProto__AttributeType)kind, a->has_type = 1;
    switch (kind) {
    case QC_ATTRIBUTE_FLOAT: a->f = *(const float *)values, a->has_f = 1, free(copy); break;
    case QC_ATTRIBUTE_INT: a->i = *(const int64_t *)values, a->has_i = 1, free(copy); break;
    case QC_ATTRIBUTE_STRING: a->s.data = copy, a->s.len = count, a->has_s = 1; break;
    case QC_ATTRIBUTE_FLOATS: a->floats = copy, a->n_floats = count; break;
    case QC_ATTRIBUTE_INTS: a->ints = copy, a->n_ints = count; break;
    }
    return QC_OK;
}

qc_status qc_model_set_attribute(qc_model *m, size_t node, const char *name, qc_attribute_kind kind, const void *values,
                                 size_t count)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_CHECK_NOT_NULL(name);
    Onnx__GraphProto *g = m->proto->graph;
    if (node >= g->n_node) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'node': %zu, but the model has %zu nodes", node, g->n_node);
    int scalar = kind == QC_ATTRIBUTE_FLOAT || kind == QC_ATTRIBUTE_INT;
    if (kind != QC_ATTRIBUTE_FLOAT && kind != QC_ATTRIBUTE_INT && kind != QC_ATTRIBUTE_STRING &&
        kind != QC_ATTRIBUTE_FLOATS && kind != QC_ATTRIBUTE_INTS)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'kind': unknown attribute kind %d", (int)kind);
    if ((scalar && count != 1) || (count && values == NULL))
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'count': %zu values for a %s attribute", count, scalar ? "scalar" : "list");
    Onnx__NodeProto *n = g->node[node];
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0) { /* replaced: drop the old one */
            onnx__attribute_proto__free_unpacked(n->attribute[i], NULL);
            n->attribute[i] = n->attribute[--n->n_attribute];
            break;
        }
    Onnx__AttributeProto *a = malloc(sizeof *a);
    if (a == NULL || !grow((void ***)&n->attribute, n->n_attribute)) {
        free(a);
        return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for an attribute");
    }
    onnx__attribute_proto__init(a);
    a->name = copy_string(name);
    qc_status st = a->name ? fill_attribute(a, kind, values, count) : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st != QC_OK) {
        onnx__attribute_proto__free_unpacked(a, NULL);
        return st;
    }
    n->attribute[n->n_attribute++] = a;
    return QC_OK;
}

/* ---- opsets ------------------------------------------------------------------------------------ */

qc_status qc_model_require_opset(qc_model *m, const char *domain, int64_t version)
{
    QCM_CHECK_NOT_NULL(m);
    const char *d = domain ? domain : "";
    Onnx__ModelProto *p = m->proto;
    for (size_t i = 0; i < p->n_opset_import; i++) {
        Onnx__OperatorSetIdProto *o = p->opset_import[i];
        const char *od = o->domain ? o->domain : "";
        int is_onnx = qcm__is_onnx_domain(d);
        if (strcmp(od, d) != 0 && !(is_onnx && qcm__is_onnx_domain(od))) continue;
        if (is_onnx && o->has_version && o->version < version) QCM_TRY(qcm__upgrade_opset(m, o->version, version, __func__));
        if (!o->has_version || o->version < version) o->version = version, o->has_version = 1;
        return QC_OK;
    }
    Onnx__OperatorSetIdProto *o = malloc(sizeof *o);
    if (o == NULL || !grow((void ***)&p->opset_import, p->n_opset_import)) {
        free(o);
        return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for an opset");
    }
    onnx__operator_set_id_proto__init(o);
    o->domain = copy_string(d);
    o->version = version, o->has_version = 1;
    p->opset_import[p->n_opset_import++] = o;
    return o->domain ? QC_OK : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
}

void qcm__require_ir_version(qc_model *m, int64_t version)
{
    if (!m->proto->has_ir_version || m->proto->ir_version < version) m->proto->ir_version = version, m->proto->has_ir_version = 1;
}
