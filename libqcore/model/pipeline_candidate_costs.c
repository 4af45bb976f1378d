/* Costs of a search candidate besides its stored bytes: its Ethos-U stream size (the layer packed as Vela
 * packs it, qc_ethosu_pack_layer) and the layer's multiply-accumulates per sample (for bit-operations). */
#include <stdlib.h>

#include "error.h"
#include "pipeline_candidates.h"

/* Layer i's integer weights minus their zero points, in OHWI order (Conv [O, C, kh, kw] -> [O, kh, kw, C];
 * Gemm and MatMul [O, 1, 1, I]); NULL when a value is beyond the NPU's -255..255. */
static int16_t *ohwi_levels(const qcp_run *r, size_t i, int64_t shape[4])
{
    const qcp_layer *l = &r->p->layers[i];
    int64_t kh = l->conv ? l->dims[2] : 1, kw = l->conv && l->ndim > 3 ? l->dims[3] : 1, c = l->in / (kh * kw);
    shape[0] = l->out, shape[1] = kh, shape[2] = kw, shape[3] = c;
    int16_t *ohwi = malloc((size_t)(l->out * l->in) * sizeof *ohwi);
    int32_t qmin = 0, qmax = 0;
    qc_quant_range(&qmin, &qmax, &r->grid[i]);
    int32_t fixed = r->grid[i].is_signed ? 0 : (qmin + qmax + 1) / 2;
    for (int64_t o = 0; ohwi && o < l->out; o++)
        for (int64_t k = 0; k < l->in; k++) {
            int64_t p = qcp__param_index(&r->grid[i], o, k, l->in);
            int32_t v = r->levels[i][o * l->in + k] - (r->zero_point[i] ? r->zero_point[i][p] : fixed);
            if (v < -255 || v > 255) {
                free(ohwi);
                return NULL;
            }
            int64_t ch = k / (kh * kw), y = k / kw % kh, x = k % kw; /* k = (ch * kh + y) * kw + x */
            ohwi[((o * kh + y) * kw + x) * c + ch] = (int16_t)v;
        }
    return ohwi;
}

qc_status qcp__candidate_ethosu_bytes(const qcp_run *r, size_t i, int32_t config, int64_t *out)
{
    const qcp_layer *l = &r->p->layers[i];
    int64_t shape[4];
    *out = 0;
    int16_t *ohwi = ohwi_levels(r, i, shape);
    if (ohwi == NULL) return QC_OK; /* wider than the NPU's weights: no Ethos-U size */
    int64_t *scale = malloc((size_t)l->out * sizeof *scale);
    int32_t *shift = malloc((size_t)l->out * sizeof *shift);
    qc_ethosu_layer_options opts = QC_ETHOSU_LAYER_OPTIONS_INIT;
    opts.config = config;
    opts.traversal = l->conv ? QC_ETHOSU_TRAVERSAL_AUTO : QC_ETHOSU_DEPTH_FIRST; /* as the model packer */
    opts.ifm_bits = r->r->activation_bits > 8 ? 16 : 8;
    qc_ethosu_layer *packed = NULL;
    qc_status st = scale && shift ? QC_OK : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (int64_t o = 0; st == QC_OK && o < l->out; o++) scale[o] = 1 << 30, shift[o] = 30; /* sizes do not depend on them */
    if (st == QC_OK) st = qc_ethosu_pack_layer(&packed, ohwi, shape, NULL, scale, shift, &opts);
    const uint8_t *data;
    size_t size = 0;
    if (st == QC_OK) st = qc_ethosu_layer_stream(&data, &size, packed);
    if (st == QC_OK) *out = (int64_t)size;
    qc_ethosu_layer_free(packed);
    free(ohwi), free(scale), free(shift);
    return st;
}

/* Samples in a batch: the first graph input's leading dimension. */
static int64_t batch_samples(const qcp_batch *b)
{
    return b->values[0].ndim > 0 ? b->values[0].dims[0] : 1;
}

qc_status qcp__candidate_macs(qcp_run *r, qcp_candidates *c)
{
    const qcp_batch *b = &r->p->batches[0];
    QCM_TRY(qcp__float_session(r));
    for (size_t t = 0; t < c->num_layers; t++) QCM_TRY(qc_session_capture(r->fp, r->p->layers[c->layers[t]].input));
    QCM_TRY(qcp__bind_batch(r->fp, b));
    QCM_TRY(qc_session_run(r->fp));
    for (size_t t = 0; t < c->num_layers; t++) {
        const qcp_layer *l = &r->p->layers[c->layers[t]];
        qc_tensor v, rows;
        float *owned = NULL;
        QCM_TRY(qcp__value_of(r->fp, b, l->input, &v));
        qc_status st = qcp__layer_rows(r->p, c->layers[t], &v, &rows, &owned, r->function);
        free(owned);
        QCM_TRY(st);
        c->macs[t] = (double)rows.dims[0] / (double)batch_samples(b) * (double)l->in * (double)l->out;
    }
    return QC_OK;
}
