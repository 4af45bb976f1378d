/* Control flow: If runs the branch its condition picks (planned with the node, exec_subgraph.c); the
 * branch's outputs become the node's. */
#include <string.h>

#include "ops/ops.h"

/* A branch of the call, checked against the node: no inputs, as many outputs as the node. */
static qc_status branch(const qce_call *call, const char *name, qc_session **out)
{
    *out = qce__subgraph(call, name);
    if (*out == NULL) return qce__fail(call, QC_ERR_FORMAT, "the %s attribute (a graph) is missing", name);
    const Onnx__GraphProto *g = (*out)->graph;
    if (g->n_input > 0) return qce__fail(call, QC_ERR_FORMAT, "%s takes %zu inputs (If branches take none)", name, g->n_input);
    if (g->n_output != call->num_outputs)
        return qce__fail(call, QC_ERR_FORMAT, "%s has %zu outputs, the node %zu", name, g->n_output, call->num_outputs);
    return QC_OK;
}

/* Output k of the call becomes the branch's value `from`: its storage is handed over when the branch
 * owns it, copied when it is borrowed (an enclosing graph's value, a constant, or one already handed
 * over to an earlier output of the same name). */
static qc_status take_output(const qce_call *call, size_t k, qce_value *from)
{
    if (call->outputs[k] == NULL) return QC_OK;
    if (!from->is_bound) return qce__fail(call, QC_ERR_INTERNAL, "branch output '%s' has no value", from->name);
    if (from->storage != NULL && from->storage == from->tensor.data) return qce__move_value(call->outputs[k], from);
    const qc_tensor *t = &from->tensor;
    QCE_TRY(qce__output(call, k, t->dtype, t->ndim, t->dims));
    size_t bytes;
    if (qc_tensor_nbytes(&bytes, t) != QC_OK) return qce__fail(call, QC_ERR_INTERNAL, "bad branch output");
    if (bytes) memcpy(call->outputs[k]->tensor.data, t->data, bytes);
    return QC_OK;
}

static qc_status op_if(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, 0, QCE_DT(QC_DT_U8))); /* the executor holds BOOL as u8 */
    const qc_tensor *cond = &call->inputs[0]->tensor;
    if (qce__numel(cond) != 1)
        return qce__fail(call, QC_ERR_SHAPE, "the condition must hold one element, it holds %lld", (long long)qce__numel(cond));
    qc_session *then_branch, *else_branch;
    QCE_TRY(branch(call, "then_branch", &then_branch)); /* both checked, whichever runs */
    QCE_TRY(branch(call, "else_branch", &else_branch));
    qc_session *taken = *(const uint8_t *)cond->data ? then_branch : else_branch;
    QCE_TRY(qce__run_graph(taken, call->threads));
    for (size_t k = 0; k < call->num_outputs; k++) {
        size_t v = qce__value_index(taken, taken->graph->output[k]->name ? taken->graph->output[k]->name : "");
        if (v == SIZE_MAX) return qce__fail(call, QC_ERR_FORMAT, "branch output %zu has no name", k);
        QCE_TRY(take_output(call, k, &taken->values[v]));
    }
    return QC_OK;
}

const qce_op qce__control_ops[] = {
    {"If", op_if},
    {NULL, NULL},
};
