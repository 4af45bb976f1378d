/* The pipeline's linear layers: MatMul and Gemm nodes whose weight is a FLOAT matrix initializer read by
 * that node alone (a shared weight cannot take two layers' quantizations). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "pipeline_internal.h"

/* The FLOAT initializer `name` with min_dims .. max_dims dimensions, all positive; NULL otherwise. */
static const Onnx__TensorProto *float_weight(const Onnx__GraphProto *g, const char *name, size_t min_dims,
                                             size_t max_dims)
{
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        if (strcmp(t->name, name) != 0) continue;
        if (t->data_type != QC_ONNX_FLOAT || t->n_dims < min_dims || t->n_dims > max_dims) return NULL;
        for (size_t d = 0; d < t->n_dims; d++)
            if (t->dims[d] <= 0) return NULL;
        return t;
    }
    return NULL;
}

static int64_t int_attribute(const Onnx__NodeProto *n, const char *name, int64_t fallback)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i]->i;
    return fallback;
}

/* Layer of node n, if it is one: 1 and *out filled (names still borrowed), else 0. Grouped convolutions
 * (depthwise among them) are left alone: their weight is not one [out, in] matrix over shared inputs. */
static int as_layer(const Onnx__GraphProto *g, const Onnx__NodeProto *n, qcp_layer *out)
{
    int matmul = strcmp(n->op_type, "MatMul") == 0, gemm = strcmp(n->op_type, "Gemm") == 0;
    int conv = strcmp(n->op_type, "Conv") == 0;
    if ((n->domain && n->domain[0]) || !(matmul || gemm || conv) || n->n_input < 2 || n->input[0][0] == '\0') return 0;
    if ((gemm && int_attribute(n, "transA", 0) != 0) || (conv && int_attribute(n, "group", 1) != 1)) return 0;
    const Onnx__TensorProto *w = conv ? float_weight(g, n->input[1], 3, 5) : float_weight(g, n->input[1], 2, 2);
    if (w == NULL || qcm__reader_count(g, n->input[1]) != 1) return 0;
    out->conv = conv;
    out->transposed = conv || (gemm && int_attribute(n, "transB", 0) != 0);
    out->op_type = matmul ? "MatMul" : gemm ? "Gemm" : "Conv";
    out->ndim = (int32_t)w->n_dims;
    int64_t rest = 1;
    for (size_t d = 0; d < w->n_dims; d++) out->dims[d] = w->dims[d], rest *= d > 0 ? w->dims[d] : 1;
    out->in = out->transposed ? rest : w->dims[0];
    out->out = out->transposed ? w->dims[0] : w->dims[1];
    out->weight = n->input[1];
    out->input = n->input[0];
    out->node = n->name ? n->name : "";
    return 1;
}

static qc_status keep_copies(qcp_layer *l, const char *function)
{
    l->weight = strdup(l->weight);
    l->input = strdup(l->input);
    l->node = strdup(l->node);
    if (!l->weight || !l->input || !l->node) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    return QC_OK;
}

qc_status qcp__find_layers(qc_pipeline *p, const char *function)
{
    const Onnx__GraphProto *g = p->model->proto->graph;
    size_t *order = malloc((g->n_node ? g->n_node : 1) * sizeof *order);
    p->layers = calloc(g->n_node ? g->n_node : 1, sizeof *p->layers);
    if (order == NULL || p->layers == NULL) {
        free(order);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    qc_status st = qcm__graph_order(g, order, 0, function);
    for (size_t k = 0; st == QC_OK && k < g->n_node; k++) {
        qcp_layer l = {0};
        if (!as_layer(g, g->node[order[k]], &l)) continue;
        l.node_index = order[k];
        p->layers[p->num_layers++] = l;
        st = keep_copies(&p->layers[p->num_layers - 1], function);
    }
    free(order);
    if (st == QC_OK && p->num_layers == 0)
        st = QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                         "the model has no linear layer (MatMul, Gemm or Conv with a FLOAT initializer as weight)");
    return st;
}

void qcp__free_layers(qc_pipeline *p)
{
    for (size_t i = 0; i < p->num_layers; i++) free(p->layers[i].weight), free(p->layers[i].input), free(p->layers[i].node);
    free(p->layers);
    p->layers = NULL;
    p->num_layers = 0;
}
