/* One layer of a pipeline run: its weight as W [out, in], quantized by the recipe's method from the
 * collected statistics, and put back into the quantized-path session so that later layers see it. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "pipeline_internal.h"

qc_status qcp__weight(const qc_pipeline *p, size_t i, float *w, const char *function)
{
    const qcp_layer *l = &p->layers[i];
    size_t index;
    qc_initializer_info info;
    QCM_TRY(qc_model_find_initializer(p->model, l->weight, &index));
    QCM_TRY(qc_model_initializer(p->model, index, &info));
    if (info.nbytes != (size_t)(l->in * l->out) * sizeof(float))
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "weight '%s' holds %zu bytes, not %lld floats", l->weight, info.nbytes,
                           (long long)(l->in * l->out));
    if (l->transposed) { /* stored [out, in] (Conv: [out, channels, kernel...], the same memory) */
        memcpy(w, info.data, info.nbytes); /* the view may be misaligned: bytes, not floats */
        return QC_OK;
    }
    const unsigned char *bytes = info.data;
    for (int64_t k = 0; k < l->in; k++) /* stored [in, out] */
        for (int64_t o = 0; o < l->out; o++) memcpy(&w[o * l->in + k], bytes + (size_t)(k * l->out + o) * sizeof(float), sizeof(float));
    return QC_OK;
}

void qcp__to_onnx_layout(const qcp_layer *l, const float *w, float *onnx)
{
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t k = 0; k < l->in; k++) onnx[l->transposed ? o * l->in + k : k * l->out + o] = w[o * l->in + k];
}

int64_t qcp__tile(const qcp_run *r, size_t i)
{
    return r->r->gpxq.tile_size >= r->p->layers[i].in ? 0 : r->r->gpxq.tile_size;
}

int64_t qcp__param_index(const qc_quant_options *grid, int64_t o, int64_t k, int64_t in)
{
    switch (grid->granularity) {
    case QC_GRAN_CHANNEL: return o;
    case QC_GRAN_GROUP: return o * ((in + grid->group_size - 1) / grid->group_size) + k / grid->group_size;
    default: return 0;
    }
}

typedef struct layer_buffers {
    qc_tensor w, q, scale, zero_point, dequantized;
} layer_buffers;

static qc_status allocate(qcp_run *r, size_t i, layer_buffers *t)
{
    const qcp_layer *l = &r->p->layers[i];
    const qc_quant_options *grid = &r->grid[i];
    int64_t dims[2] = {l->out, l->in}, pdims[QC_MAX_DIMS];
    int32_t pndim;
    size_t n = (size_t)(l->out * l->in);
    float *w = malloc(n * sizeof *w);
    r->levels[i] = malloc(n * sizeof(int32_t));
    r->dequantized[i] = malloc(n * sizeof(float));
    if (!w || !r->levels[i] || !r->dequantized[i]) {
        free(w);
        return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s'", l->weight);
    }
    QCM_TRY(qc_tensor_init(&t->w, w, QC_DT_F32, 2, dims, NULL));
    QCM_TRY(qcp__weight(r->p, i, w, r->function));
    QCM_TRY(qc_tensor_init(&t->q, r->levels[i], QC_DT_I32, 2, dims, NULL));
    QCM_TRY(qc_tensor_init(&t->dequantized, r->dequantized[i], QC_DT_F32, 2, dims, NULL));
    QCM_TRY(qc_quant_param_shape(&pndim, pdims, &t->w, grid));
    int64_t np = 1;
    for (int d = 0; d < pndim; d++) np *= pdims[d];
    r->scale[i] = malloc((size_t)np * sizeof(float));
    if (!grid->symmetric) r->zero_point[i] = malloc((size_t)np * sizeof(int32_t));
    if (!r->scale[i] || (!grid->symmetric && !r->zero_point[i]))
        return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s'", l->weight);
    QCM_TRY(qc_tensor_init(&t->scale, r->scale[i], QC_DT_F32, pndim, pdims, NULL));
    if (!grid->symmetric) QCM_TRY(qc_tensor_init(&t->zero_point, r->zero_point[i], QC_DT_I32, pndim, pdims, NULL));
    return QC_OK;
}

static qc_status run_method(qcp_run *r, size_t i, layer_buffers *t, const qc_gpxq_stats *stats, qc_gpxq_result *result)
{
    const qcp_layer *l = &r->p->layers[i];
    qc_gpxq_options opts = r->r->gpxq;
    opts.input_bits = r->act_scale[i] > 0 ? r->r->activation_bits : opts.input_bits;
    opts.input_signed = r->act_signed[i];
    opts.tile_size = qcp__tile(r, i);
    const qc_quant_options *grid = &r->grid[i];
    qc_tensor *zp = grid->symmetric ? NULL : &t->zero_point;
    if (r->r->method == QC_METHOD_RTN)
        return qc_rtn(r->p->ctx, &t->q, &t->scale, zp, &t->dequantized, result, &t->w, grid, &opts);
    int64_t dims[2] = {l->in, l->in};
    size_t n = (size_t)(l->in * l->in);
    double *h = malloc(n * sizeof *h), *g = r->r->method == QC_METHOD_GPFQ ? malloc(n * sizeof *g) : NULL;
    qc_tensor th, tg;
    qc_status st = h && (g || r->r->method != QC_METHOD_GPFQ) ? QC_OK
                                                               : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = qc_tensor_init(&th, h, QC_DT_F64, 2, dims, NULL);
    if (st == QC_OK) st = qc_gpxq_stats_hessian(&th, stats);
    if (st == QC_OK && g) st = qc_tensor_init(&tg, g, QC_DT_F64, 2, dims, NULL);
    if (st == QC_OK && g) st = qc_gpxq_stats_cross(&tg, stats);
    if (st == QC_OK)
        st = g ? qc_gpfq(r->p->ctx, &t->q, &t->scale, zp, &t->dequantized, result, &t->w, &th, &tg, grid, &opts)
               : qc_optq(r->p->ctx, &t->q, &t->scale, zp, &t->dequantized, result, &t->w, &th, grid, &opts);
    free(h), free(g);
    return st;
}

/* Later layers must see this one quantized (sequential runs): its dequantized weight replaces the float one. */
qc_status qcp__replace_in_session(qcp_run *r, size_t i)
{
    const qcp_layer *l = &r->p->layers[i];
    float *onnx = malloc((size_t)(l->out * l->in) * sizeof *onnx);
    if (onnx == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    qcp__to_onnx_layout(l, r->dequantized[i], onnx);
    qc_tensor t;
    qc_status st = qc_tensor_init(&t, onnx, QC_DT_F32, l->ndim, l->dims, NULL);
    if (st == QC_OK) st = qc_session_set_initializer(r->quantized, l->weight, &t);
    free(onnx);
    return st;
}

void qcp__release_layer(qcp_run *r, size_t i)
{
    free(r->levels[i]), free(r->scale[i]), free(r->zero_point[i]), free(r->dequantized[i]);
    r->levels[i] = NULL, r->zero_point[i] = NULL, r->dequantized[i] = NULL, r->scale[i] = NULL;
}

qc_status qcp__quantize_layer(qcp_run *r, size_t i, const qc_gpxq_stats *stats)
{
    layer_buffers t;
    qc_gpxq_result result = QC_GPXQ_RESULT_INIT;
    qc_status st = allocate(r, i, &t);
    if (st == QC_OK) st = run_method(r, i, &t, stats, &result);
    free(t.w.data);
    if (st == QC_OK && r->r->sequential) st = qcp__replace_in_session(r, i);
    if (st == QC_OK) st = qcp__report_layer(r, i, &result);
    if (st != QC_OK && st != QC_ERR_CANCELLED)
        return QCM_FAIL_IN(r->function, st, "layer '%s': %s", r->p->layers[i].weight, qc_last_error());
    return st;
}

/* ONNX layout export of layer i's parameters: the grid on the stored tensor, in a container ONNX has. */
static qc_quant_options export_grid(const qcp_run *r, size_t i)
{
    const qcp_layer *l = &r->p->layers[i];
    qc_quant_options g = r->grid[i];
    g.bits = g.bits <= 4 ? 4 : g.bits <= 8 ? 8 : 16;
    g.symmetric = 0; /* zero points are always given explicitly: a container's own would differ */
    if (g.granularity == QC_GRAN_CHANNEL) g.axis = l->transposed ? 0 : 1;
    if (g.granularity == QC_GRAN_GROUP) g.axis = l->transposed ? 1 : 0;
    return g;
}

/* The grid's fixed zero point (symmetric grids): 0 when signed, mid-range when unsigned. */
static int32_t fixed_zero_point(const qc_quant_options *grid)
{
    int32_t qmin = 0, qmax = 0;
    qc_quant_range(&qmin, &qmax, grid);
    return grid->is_signed ? 0 : (qmin + qmax + 1) / 2;
}

/* Index into the stored layout's parameters of W [out, in]'s element (o, k). */
static int64_t stored_param_index(const qc_quant_options *g, const qcp_layer *l, int64_t o, int64_t k)
{
    if (g->granularity != QC_GRAN_GROUP || l->transposed) return qcp__param_index(g, o, k, l->in);
    return (k / g->group_size) * l->out + o; /* [in, out] with groups along axis 0: parameters [in / g, out] */
}

static qc_status export_layer(qcp_run *r, size_t i)
{
    const qcp_layer *l = &r->p->layers[i];
    qc_quant_options g = export_grid(r, i);
    int64_t pd[QC_MAX_DIMS];
    int32_t pn;
    size_t n = (size_t)(l->out * l->in);
    float *onnx = malloc(n * sizeof *onnx), *scale = NULL;
    int32_t *zp = NULL;
    qc_tensor tw, ts, tz;
    qc_status st = onnx ? QC_OK : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) qcp__to_onnx_layout(l, r->dequantized[i], onnx);
    if (st == QC_OK) st = qc_tensor_init(&tw, onnx, QC_DT_F32, l->ndim, l->dims, NULL);
    if (st == QC_OK) st = qc_quant_param_shape(&pn, pd, &tw, &g);
    int64_t np = 1;
    for (int d = 0; st == QC_OK && d < pn; d++) np *= pd[d];
    if (st == QC_OK && (scale = malloc((size_t)np * sizeof *scale)) && (zp = malloc((size_t)np * sizeof *zp))) {
        /* parameters of W [out, in] element (o, k) go where the stored layout's grid looks them up */
        for (int64_t o = 0; o < l->out; o++)
            for (int64_t k = 0; k < l->in; k++) {
                int64_t src = qcp__param_index(&r->grid[i], o, k, l->in), dst = stored_param_index(&g, l, o, k);
                scale[dst] = r->scale[i][src];
                zp[dst] = r->zero_point[i] ? r->zero_point[i][src] : fixed_zero_point(&r->grid[i]);
            }
    } else if (st == QC_OK) st = QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = qc_tensor_init(&ts, scale, QC_DT_F32, pn, pd, NULL);
    if (st == QC_OK) st = qc_tensor_init(&tz, zp, QC_DT_I32, pn, pd, NULL);
    if (st == QC_OK) st = qc_model_set_initializer(r->qmodel, l->weight, QC_ONNX_FLOAT, l->ndim, l->dims, onnx, n * sizeof *onnx);
    if (st == QC_OK) st = qc_model_insert_qdq(r->qmodel, r->p->ctx, l->weight, &ts, &tz, &g);
    free(onnx), free(scale), free(zp);
    return st;
}

qc_status qcp__export_weights(qcp_run *r)
{
    for (size_t i = 0; i < r->p->num_layers; i++) {
        if (r->keep[i] || r->float_weight[i]) continue;
        qc_status st = r->lq_bits[i] ? qcp__export_lq_layer(r, i) : export_layer(r, i);
        if (st != QC_OK) return QCM_FAIL_IN(r->function, st, "layer '%s': %s", r->p->layers[i].weight, qc_last_error());
    }
    return QC_OK;
}
