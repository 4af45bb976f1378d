/* Per-head rotations in a recipe (qc_model.h, recipe version 4): every attention block of the pipeline's
 * model found from the graph as qc_model_rotate_heads finds it, its head size read from a float run of the
 * first calibration batch (the graph computes it from shapes at run time), and its heads rotated on the
 * rotated copy before the input rotations. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuse.h"
#include "pipeline_internal.h"

/* Head h of block a draws stream HEAD_STREAMS + 2^16 a + h: far from the input rotations' streams 0, 1, ...,
 * so that those draws are the same with and without head rotations. */
#define HEAD_STREAMS (UINT64_C(1) << 32)
#define MAX_HEADS (1 << 16)

/* An attention block: its O and V projections (outer layer indices) and its product P V (borrowed from
 * the pipeline's model). */
typedef struct attention {
    size_t o, v;
    const char *product;
    int64_t head_size;
} attention;

static size_t layer_of_weight(const qc_pipeline *p, const char *weight)
{
    size_t i = 0;
    while (i < p->num_layers && strcmp(p->layers[i].weight, weight) != 0) i++;
    return i;
}

/* Layer i as an output projection: its block in *a, 0 when it is none. */
static int output_projection(const qc_pipeline *p, size_t i, attention *a, const char *function)
{
    const qcp_layer *l = &p->layers[i];
    size_t index;
    qcm_linear o, v;
    if (l->conv || l->node[0] == '\0' || qcm__named_linear(p->model, l->node, &index, &o, function) != QC_OK) return 0;
    if (qcm__attention(p->model, &o, &a->product, &v, function) != QC_OK) return 0;
    a->o = i, a->v = layer_of_weight(p, p->model->proto->graph->initializer[v.weight]->name), a->head_size = 0;
    return a->v < p->num_layers;
}

static qc_status find_blocks(const qc_pipeline *p, attention **out, size_t *count, const char *function)
{
    *count = 0;
    *out = malloc((p->num_layers + 1) * sizeof **out);
    if (*out == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < p->num_layers; i++) *count += output_projection(p, i, &(*out)[*count], function);
    if (*count == 0)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                           "recipe field 'rotate_heads': the model has no attention block (a named MatMul or Gemm whose input "
                           "comes through Reshape and Transpose from an attention product P V, V from a linear layer)");
    return QC_OK;
}

/* Each block's head size: the last dimension of P V in a float run of the first batch. */
static qc_status head_sizes(const qc_pipeline *p, attention *a, size_t count, const char *function)
{
    qc_session *s = NULL;
    qc_status st = qc_session_create(&s, p->model, p->ctx);
    for (size_t k = 0; st == QC_OK && k < count; k++) st = qc_session_capture(s, a[k].product);
    if (st == QC_OK) st = qcp__bind_batch(s, &p->batches[0]);
    if (st == QC_OK) st = qc_session_run(s);
    for (size_t k = 0; st == QC_OK && k < count; k++) {
        qc_tensor y;
        st = qc_session_value(s, a[k].product, &y);
        int64_t d = st == QC_OK && y.ndim > 0 ? y.dims[y.ndim - 1] : 0, width = p->layers[a[k].o].in;
        if (st == QC_OK && (d < 1 || width % d != 0 || width / d >= MAX_HEADS))
            st = QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                             "recipe field 'rotate_heads': the attention before '%s' has heads of %lld values, which do not "
                             "split its width %lld into fewer than %d heads", p->layers[a[k].o].node, (long long)d,
                             (long long)width, MAX_HEADS);
        a[k].head_size = d;
    }
    qc_session_free(s);
    return st;
}

/* Block b's R_h [heads, d, d], or *drawn = 0 when the kind has no d x d matrix. */
static qc_status draw_heads(qc_ctx *ctx, qc_rotation_kind kind, const attention *a, int64_t width, size_t b, float **out,
                            int *drawn, const char *function)
{
    int64_t d = a->head_size, heads = width / d;
    float *all = malloc((size_t)(width * d) * sizeof *all);
    if (all == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    *drawn = 1;
    for (int64_t h = 0; *drawn && h < heads; h++) {
        qc_tensor r;
        qc_status st = qcp__draw_rotation(ctx, kind, d, HEAD_STREAMS + ((uint64_t)b << 16) + (uint64_t)h, &r, drawn, function);
        if (st != QC_OK) {
            free(all);
            return st;
        }
        if (*drawn) memcpy(all + h * d * d, r.data, (size_t)(d * d) * sizeof *all);
        if (*drawn) free(r.data);
    }
    if (*drawn) *out = all;
    else free(all);
    return QC_OK;
}

static qc_status rotate_block(const qc_pipeline *p, qcp_rotated *r, qc_ctx *ctx, const attention *a, size_t b,
                              const char *function)
{
    int64_t width = p->layers[a->o].in, d = a->head_size;
    float *heads = NULL;
    int drawn = 0;
    QCM_TRY(draw_heads(ctx, r->kind, a, width, b, &heads, &drawn, function));
    if (!drawn) return QC_OK; /* no Hadamard matrix of the head size: these heads stay */
    qc_tensor all;
    qc_status st = qc_tensor_init(&all, heads, QC_DT_F32, 3, (int64_t[]){width / d, d, d}, NULL);
    if (st == QC_OK) st = qc_model_rotate_heads(r->model, p->layers[a->o].node, &all, QCP_ROTATION_TOLERANCE);
    free(heads);
    if (qcp__does_not_qualify(st)) return QC_OK; /* e.g. a V weight another node reads too */
    QCM_TRY(st);
    r->heads_rotated[a->v] = 1, r->heads_rotated[a->o] = 2;
    return QC_OK;
}

qc_status qcp__rotate_heads(const qc_pipeline *p, qcp_rotated *r, qc_ctx *ctx, const char *function)
{
    attention *blocks = NULL;
    size_t count = 0, rotated = 0;
    qc_status st = find_blocks(p, &blocks, &count, function);
    if (st == QC_OK) st = head_sizes(p, blocks, count, function);
    for (size_t b = 0; st == QC_OK && b < count; b++) {
        st = rotate_block(p, r, ctx, &blocks[b], b, function);
        rotated += r->heads_rotated[blocks[b].o] != 0;
    }
    if (st == QC_OK && rotated == 0)
        st = QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                         "recipe field 'rotate_heads': no attention block's heads could be rotated (heads of %lld values%s)",
                         (long long)blocks[0].head_size, r->kind == QC_ROTATION_HADAMARD ? ", which have no Hadamard construction" : "");
    free(blocks);
    return st;
}
