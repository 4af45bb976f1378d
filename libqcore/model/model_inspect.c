/* Inspection: borrowed views of the parsed model's header, opsets, metadata, graph inputs and outputs,
 * nodes and initializers. */
#include <string.h>

#include "error.h"
#include "model_internal.h"

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

size_t qc_model_count(const qc_model *m, qc_model_item kind)
{
    if (m == NULL) return 0;
    const Onnx__GraphProto *g = m->proto->graph;
    switch (kind) {
    case QC_MODEL_INPUTS: return m->num_inputs;
    case QC_MODEL_OUTPUTS: return g->n_output;
    case QC_MODEL_NODES: return g->n_node;
    case QC_MODEL_INITIALIZERS: return g->n_initializer;
    case QC_MODEL_OPSETS: return m->proto->n_opset_import;
    case QC_MODEL_METADATA: return m->proto->n_metadata_props;
    }
    return 0;
}

static qc_status check_index(const qc_model *m, qc_model_item kind, size_t i, const char *what, const char *function)
{
    if (m == NULL) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'model' is NULL");
    size_t n = qc_model_count(m, kind);
    if (i >= n) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'i': %zu, but the model has %zu %s", i, n, what);
    return QC_OK;
}

qc_status qc_model_header(const qc_model *m, int64_t *ir_version, const char **producer_name,
                          const char **producer_version)
{
    QCM_CHECK_NOT_NULL(m);
    if (ir_version) *ir_version = m->proto->has_ir_version ? m->proto->ir_version : 0;
    if (producer_name) *producer_name = or_empty(m->proto->producer_name);
    if (producer_version) *producer_version = or_empty(m->proto->producer_version);
    return QC_OK;
}

qc_status qc_model_opset(const qc_model *m, size_t i, const char **domain, int64_t *version)
{
    QCM_TRY(check_index(m, QC_MODEL_OPSETS, i, "opsets", __func__));
    const Onnx__OperatorSetIdProto *o = m->proto->opset_import[i];
    if (domain) *domain = or_empty(o->domain);
    if (version) *version = o->has_version ? o->version : 0;
    return QC_OK;
}

int qcm__is_onnx_domain(const char *d)
{
    return d == NULL || d[0] == '\0' || strcmp(d, "ai.onnx") == 0;
}

int64_t qc_model_opset_version(const qc_model *m, const char *domain)
{
    if (m == NULL) return 0;
    for (size_t i = 0; i < m->proto->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->proto->opset_import[i];
        int same = qcm__is_onnx_domain(domain) ? qcm__is_onnx_domain(o->domain) : o->domain && strcmp(o->domain, domain) == 0;
        if (same) return o->has_version ? o->version : 0;
    }
    return 0;
}

qc_status qc_model_metadata(const qc_model *m, size_t i, const char **key, const char **value)
{
    QCM_TRY(check_index(m, QC_MODEL_METADATA, i, "metadata entries", __func__));
    const Onnx__StringStringEntryProto *e = m->proto->metadata_props[i];
    if (key) *key = or_empty(e->key);
    if (value) *value = or_empty(e->value);
    return QC_OK;
}

static qc_status fill_value_info(qc_value_info *out, const Onnx__ValueInfoProto *v, const char *function)
{
    memset(out, 0, sizeof *out);
    out->name = or_empty(v->name);
    out->ndim = -1;
    const Onnx__TypeProto *type = v->type;
    if (type == NULL || type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) return QC_OK;
    const Onnx__TypeProto__Tensor *tensor = type->tensor_type;
    out->elem_type = tensor->has_elem_type ? tensor->elem_type : 0;
    if (tensor->shape == NULL) return QC_OK;
    if (tensor->shape->n_dim > QC_MAX_DIMS)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "value '%s' has rank %zu; qcore handles at most %d", out->name,
                           tensor->shape->n_dim, QC_MAX_DIMS);
    out->ndim = (int32_t)tensor->shape->n_dim;
    for (int d = 0; d < out->ndim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tensor->shape->dim[d];
        int known = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        out->dims[d] = known ? dim->dim_value : -1;
        out->dim_params[d] = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? dim->dim_param : NULL;
    }
    return QC_OK;
}

qc_status qc_model_input(const qc_model *m, size_t i, qc_value_info *out)
{
    QCM_TRY(check_index(m, QC_MODEL_INPUTS, i, "inputs", __func__));
    QCM_CHECK_NOT_NULL(out);
    return fill_value_info(out, m->proto->graph->input[m->input_index[i]], __func__);
}

qc_status qc_model_output(const qc_model *m, size_t i, qc_value_info *out)
{
    QCM_TRY(check_index(m, QC_MODEL_OUTPUTS, i, "outputs", __func__));
    QCM_CHECK_NOT_NULL(out);
    return fill_value_info(out, m->proto->graph->output[i], __func__);
}

qc_status qc_model_node(const qc_model *m, size_t i, qc_node_info *out)
{
    QCM_TRY(check_index(m, QC_MODEL_NODES, i, "nodes", __func__));
    QCM_CHECK_NOT_NULL(out);
    const Onnx__NodeProto *n = m->proto->graph->node[i];
    out->name = or_empty(n->name);
    out->op_type = or_empty(n->op_type);
    out->domain = qcm__is_onnx_domain(n->domain) ? "" : n->domain;
    out->num_inputs = n->n_input;
    out->inputs = (const char *const *)n->input;
    out->num_outputs = n->n_output;
    out->outputs = (const char *const *)n->output;
    out->num_attributes = n->n_attribute;
    return QC_OK;
}

qc_status qc_model_initializer(const qc_model *m, size_t i, qc_initializer_info *out)
{
    QCM_TRY(check_index(m, QC_MODEL_INITIALIZERS, i, "initializers", __func__));
    QCM_CHECK_NOT_NULL(out);
    const Onnx__TensorProto *t = m->proto->graph->initializer[i];
    if (t->n_dims > QC_MAX_DIMS)
        return QCM_FAIL(QC_ERR_UNSUPPORTED, "initializer '%s' has rank %zu; qcore handles at most %d", t->name, t->n_dims,
                        QC_MAX_DIMS);
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->elem_type = t->data_type;
    out->ndim = (int32_t)t->n_dims;
    for (size_t d = 0; d < t->n_dims; d++) out->dims[d] = t->dims[d];
    out->data = m->bytes[i].data;
    out->nbytes = m->bytes[i].nbytes;
    out->is_external = t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    return QC_OK;
}

qc_status qc_model_find_initializer(const qc_model *m, const char *name, size_t *index)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_CHECK_NOT_NULL(name);
    QCM_CHECK_NOT_NULL(index);
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) {
            *index = i;
            return QC_OK;
        }
    return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'name': the model has no initializer '%.120s'", name);
}
