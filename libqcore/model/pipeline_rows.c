/* A layer's inputs as rows of `in` features, the view OPTQ, GPFQ and the report take: the value itself
 * for MatMul and Gemm, im2col rows (one per output pixel, features ordered as the weight's
 * [channels, kernel...]) for Conv, through the executor's own window code. */
#include <stdlib.h>

#include "error.h"
#include "exec_internal.h"
#include "model_internal.h"
#include "ops/window.h"
#include "pipeline_internal.h"

static qc_status conv_rows(const qc_pipeline *p, const qcp_layer *l, const qc_tensor *x, qc_tensor *rows, float **owned,
                           const char *function)
{
    qce_node node = {.proto = p->model->proto->graph->node[l->node_index]};
    qce_call call = {.node = &node, .threads = 1};
    window w;
    if (x->ndim != l->ndim || x->dims[1] != l->dims[1])
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "the input of convolution '%s' does not have %lld channels", l->weight,
                           (long long)l->dims[1]);
    QCM_TRY(qce__window_init(&call, &w, x, l->dims + 2, 0));
    int64_t pixels = qce__window_pixels(&w), image = qc_tensor_numel(x) / x->dims[0], n = x->dims[0] * pixels;
    float *columns = malloc((size_t)(l->in * pixels) * sizeof *columns);
    *owned = malloc((size_t)(n * l->in) * sizeof **owned);
    if (columns == NULL || *owned == NULL) {
        free(columns);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for the im2col rows of '%s'", l->weight);
    }
    for (int64_t b = 0; b < x->dims[0]; b++) {
        qce__im2col(columns, (const float *)x->data + b * image, x->dims[1], &w);
        for (int64_t f = 0; f < l->in; f++)
            for (int64_t px = 0; px < pixels; px++) (*owned)[(b * pixels + px) * l->in + f] = columns[f * pixels + px];
    }
    free(columns);
    int64_t dims[2] = {n, l->in};
    return qc_tensor_init(rows, *owned, QC_DT_F32, 2, dims, NULL);
}

qc_status qcp__layer_rows(const qc_pipeline *p, size_t i, const qc_tensor *v, qc_tensor *rows, float **owned,
                          const char *function)
{
    const qcp_layer *l = &p->layers[i];
    *owned = NULL;
    if (v->dtype != QC_DT_F32)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "the input of layer '%s' is %s; the pipeline quantizes float32 layers",
                           l->weight, qc_dtype_string(v->dtype));
    if (l->conv) return conv_rows(p, l, v, rows, owned, function);
    if (v->ndim < 1 || v->dims[v->ndim - 1] != l->in)
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "the input of layer '%s' does not end in %lld features", l->weight,
                           (long long)l->in);
    int64_t dims[2] = {qc_tensor_numel(v) / l->in, l->in};
    return qc_tensor_init(rows, v->data, QC_DT_F32, 2, dims, NULL);
}
