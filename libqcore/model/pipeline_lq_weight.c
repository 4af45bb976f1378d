/* LQ weights in a pipeline run or a model search (qc_model.h, "LQ weights in a recipe"): weight-only
 * learned non-uniform levels, one QEM basis per output channel. One function makes them for both, so that
 * a search's LQ candidate and the recipe that names it give the same weights bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pipeline_internal.h"

int64_t qcp__lq_bytes(int64_t out, int64_t in, int32_t k)
{
    return out * (k * ((in + 7) / 8) + 4 * (int64_t)k);
}

qc_status qcp__lq_weight(qc_ctx *ctx, const float *w, int64_t out, int64_t in, int32_t k, float *levels, uint8_t *codes,
                         float *basis, const char *function)
{
    int64_t w_dims[2] = {out, in}, b_dims[2] = {out, k};
    uint8_t *c = codes ? codes : malloc((size_t)(out * in));
    float *b = basis ? basis : malloc((size_t)(out * k) * sizeof *b);
    qc_tensor wt, bt, ct, lt;
    qc_status st = c && b ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = qc_tensor_init(&wt, (void *)w, QC_DT_F32, 2, w_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&bt, b, QC_DT_F32, 2, b_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&ct, c, QC_DT_U8, 2, w_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&lt, levels, QC_DT_F32, 2, w_dims, NULL);
    if (st == QC_OK) st = qc_lq_fit(ctx, &bt, NULL, NULL, &wt, QC_LQ_SIGNED, NULL);
    if (st == QC_OK) st = qc_lq_encode(ctx, &ct, &wt, &bt, QC_LQ_SIGNED);
    if (st == QC_OK) st = qc_lq_decode(ctx, &lt, &ct, &bt, QC_LQ_SIGNED);
    if (c != codes) free(c);
    if (b != basis) free(b);
    return st;
}

/* r->dequantized[i] (levels), r->levels[i] (codes) and r->scale[i] (bases) of layer i. */
static qc_status lq_levels(qcp_run *r, size_t i)
{
    const qcp_layer *l = &r->p->layers[i];
    size_t n = (size_t)(l->out * l->in);
    float *w = malloc(n * sizeof *w);
    uint8_t *codes = malloc(n);
    r->dequantized[i] = malloc(n * sizeof(float));
    r->levels[i] = malloc(n * sizeof(int32_t));
    r->scale[i] = malloc((size_t)(l->out * r->lq_bits[i]) * sizeof(float));
    qc_status st = w && codes && r->dequantized[i] && r->levels[i] && r->scale[i]
                       ? qcp__weight(r->p, i, w, r->function)
                       : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK)
        st = qcp__lq_weight(r->p->ctx, w, l->out, l->in, r->lq_bits[i], r->dequantized[i], codes, r->scale[i], r->function);
    for (size_t k = 0; st == QC_OK && k < n; k++) r->levels[i][k] = codes[k];
    free(w), free(codes);
    return st;
}

qc_status qcp__quantize_lq_layer(qcp_run *r, size_t i)
{
    qc_status st = lq_levels(r, i);
    if (st == QC_OK && r->r->sequential) st = qcp__replace_in_session(r, i);
    if (st == QC_OK) st = qcp__report_lq_layer(r, i);
    if (st != QC_OK && st != QC_ERR_CANCELLED)
        return QCM_FAIL_IN(r->function, st, "layer '%s': %s", r->p->layers[i].weight, qc_last_error());
    return st;
}
