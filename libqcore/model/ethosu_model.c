/* The whole-model Ethos-U packer: every Conv/Gemm/MatMul whose weight is an int8/uint8 initializer read
 * through DequantizeLinear (a QDQ model) becomes an Ethos-U layer stream, packed through the public
 * qc_ethosu.h API as any user would. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "qcore/qc_ethosu.h"

struct qc_ethosu_model {
    qc_ethosu_model_layer *info;
    qc_ethosu_layer **packed;
    size_t count;
};

static const Onnx__NodeProto *producer(const Onnx__GraphProto *g, const char *value, const char *op_type)
{
    for (size_t i = 0; i < g->n_node; i++)
        if (g->node[i]->n_output > 0 && strcmp(g->node[i]->output[0], value) == 0)
            return strcmp(g->node[i]->op_type, op_type) == 0 ? g->node[i] : NULL;
    return NULL;
}

static const Onnx__NodeProto *consumer(const Onnx__GraphProto *g, const char *value, const char *op_type)
{
    for (size_t i = 0; i < g->n_node; i++)
        if (g->node[i]->n_input > 0 && strcmp(g->node[i]->input[0], value) == 0 &&
            strcmp(g->node[i]->op_type, op_type) == 0)
            return g->node[i];
    return NULL;
}

static long initializer_index(const qc_model *m, const char *name)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; name && name[0] && i < g->n_initializer; i++)
        if (strcmp(g->initializer[i]->name, name) == 0) return (long)i;
    return -1;
}

static int64_t int_attribute(const Onnx__NodeProto *n, const char *name, int64_t fallback)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i]->i;
    return fallback;
}

static const Onnx__AttributeProto *attribute(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

/* Element k of an initializer's bytes (unaligned views are read element-wise) as double. */
static double element(const qc_initializer_info *t, size_t k)
{
    switch (t->elem_type) {
    case QC_ONNX_INT8: return ((const int8_t *)t->data)[k];
    case QC_ONNX_UINT8: return ((const uint8_t *)t->data)[k];
    case QC_ONNX_INT32: {
        int32_t v;
        memcpy(&v, (const char *)t->data + 4 * k, 4);
        return v;
    }
    case QC_ONNX_FLOAT: {
        float v;
        memcpy(&v, (const char *)t->data + 4 * k, 4);
        return v;
    }
    }
    return NAN;
}

static size_t numel(const qc_initializer_info *t)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->dims[d];
    return n;
}

/* One layer being read: the node, its DequantizeLinear'd weight and the scales around it. */
typedef struct layer_source {
    const Onnx__NodeProto *node;
    qc_initializer_info w, w_scale, w_zero;
    int has_zero;
    int64_t axis;             /* DequantizeLinear's axis, normalized */
    int64_t o, h, wd, i;      /* OHWI */
    int transposed;           /* weight stored [in, out] (MatMul, Gemm without transB) */
    int depthwise, dilation_x, dilation_y, stride_x, stride_y;
    double x_scale, y_scale;  /* 0 when the activations are not quantized around the node */
} layer_source;

/* The weight stored at OHWI position (oc, ky, kx, ic), zero point subtracted. */
static int16_t weight_at(const layer_source *s, int64_t oc, int64_t ky, int64_t kx, int64_t ic)
{
    size_t k;
    if (strcmp(s->node->op_type, "Conv") == 0)
        k = (size_t)(((oc * s->i + ic) * s->h + ky) * s->wd + kx);  /* [O, I, kh, kw] */
    else if (s->transposed)
        k = (size_t)(ic * s->o + oc);  /* [in, out] */
    else
        k = (size_t)(oc * s->i + ic);  /* [out, in] */
    double zero = 0;
    if (s->has_zero) zero = element(&s->w_zero, numel(&s->w_zero) == 1 ? 0 : (size_t)oc);
    return (int16_t)(element(&s->w, k) - zero);
}

static qc_status fail_node(const Onnx__NodeProto *n, qc_status st, const char *function, const char *what)
{
    return QCM_FAIL_IN(function, st, "node '%s' (%s): %s", n->name && n->name[0] ? n->name : n->output[0],
                       n->op_type, what);
}

/* A scalar float initializer behind a DequantizeLinear/QuantizeLinear node's scale, or 0. */
static double scalar_scale(const qc_model *m, const Onnx__NodeProto *qdq)
{
    qc_initializer_info t;
    long k = qdq && qdq->n_input > 1 ? initializer_index(m, qdq->input[1]) : -1;
    if (k < 0 || qc_model_initializer(m, (size_t)k, &t) != QC_OK || t.elem_type != QC_ONNX_FLOAT || numel(&t) != 1)
        return 0;
    return element(&t, 0);
}

/* Reads node n as a layer; *found = 0 when it is not one (its weight is not a DequantizeLinear'd
 * integer initializer). */
static qc_status read_layer(layer_source *s, int *found, const qc_model *m, const Onnx__NodeProto *n,
                            const char *function)
{
    const Onnx__GraphProto *g = m->proto->graph;
    memset(s, 0, sizeof *s);
    *found = 0;
    s->node = n;
    const Onnx__NodeProto *dq = n->n_input > 1 ? producer(g, n->input[1], "DequantizeLinear") : NULL;
    long kw = dq ? initializer_index(m, dq->input[0]) : -1;
    if (kw < 0) return QC_OK;
    QCM_TRY(qc_model_initializer(m, (size_t)kw, &s->w));
    if (s->w.elem_type != QC_ONNX_INT8 && s->w.elem_type != QC_ONNX_UINT8) return QC_OK;
    long ks = dq->n_input > 1 ? initializer_index(m, dq->input[1]) : -1;
    if (ks < 0) return fail_node(n, QC_ERR_UNSUPPORTED, function, "the weight's scale is not an initializer");
    QCM_TRY(qc_model_initializer(m, (size_t)ks, &s->w_scale));
    long kz = dq->n_input > 2 ? initializer_index(m, dq->input[2]) : -1;
    if ((s->has_zero = kz >= 0)) QCM_TRY(qc_model_initializer(m, (size_t)kz, &s->w_zero));
    s->axis = int_attribute(dq, "axis", 1);
    if (s->axis < 0) s->axis += s->w.ndim;
    *found = 1;

    int is_conv = strcmp(n->op_type, "Conv") == 0;
    s->dilation_x = s->dilation_y = 1;
    s->stride_x = s->stride_y = 1;
    if (is_conv) {
        if (s->w.ndim != 4) return fail_node(n, QC_ERR_UNSUPPORTED, function, "only 2-D convolutions are packed");
        s->o = s->w.dims[0];
        s->i = s->w.dims[1];
        s->h = s->w.dims[2];
        s->wd = s->w.dims[3];
        int64_t group = int_attribute(n, "group", 1);
        s->depthwise = group > 1 && s->i == 1 && group == s->o;
        if (group > 1 && !s->depthwise)
            return fail_node(n, QC_ERR_UNSUPPORTED, function, "grouped (not depthwise) convolutions have no Ethos-U order");
        const Onnx__AttributeProto *dil = attribute(n, "dilations");
        if (dil && dil->n_ints == 2) {
            s->dilation_y = (int)dil->ints[0];
            s->dilation_x = (int)dil->ints[1];
        }
        const Onnx__AttributeProto *str = attribute(n, "strides");
        if (str && str->n_ints == 2) {
            s->stride_y = (int)str->ints[0];
            s->stride_x = (int)str->ints[1];
        }
        if (s->dilation_x < 1 || s->dilation_x > 2 || s->dilation_y < 1 || s->dilation_y > 2)
            return fail_node(n, QC_ERR_UNSUPPORTED, function, "Ethos-U weights take dilations of 1 or 2 only");
    } else {
        if (s->w.ndim != 2) return fail_node(n, QC_ERR_UNSUPPORTED, function, "the weight is not a matrix");
        s->transposed = strcmp(n->op_type, "MatMul") == 0 || int_attribute(n, "transB", 0) == 0;
        s->o = s->w.dims[s->transposed ? 1 : 0];
        s->i = s->w.dims[s->transposed ? 0 : 1];
        s->h = s->wd = 1;
    }
    /* Per-channel parameters must run along the output axis, and zero points match the scales (as
     * DequantizeLinear requires), so that every read below stays inside them. */
    size_t channels = numel(&s->w_scale);
    int64_t out_axis = s->transposed ? 1 : 0;
    if (channels != 1 && ((int64_t)channels != s->o || s->axis != out_axis))
        return fail_node(n, QC_ERR_UNSUPPORTED, function, "the weight's scales are neither per tensor nor per output channel");
    if (s->has_zero && numel(&s->w_zero) != channels)
        return fail_node(n, QC_ERR_FORMAT, function, "the weight's zero point and scale differ in size");
    s->x_scale = scalar_scale(m, producer(g, n->input[0], "DequantizeLinear"));
    s->y_scale = scalar_scale(m, consumer(g, n->output[0], "QuantizeLinear"));
    return QC_OK;
}

/* Bias (int32 through DequantizeLinear, or an int32 initializer), scale and shift per output channel. */
static qc_status channel_params(const layer_source *s, const qc_model *m, int64_t *bias, int64_t *scale, int32_t *shift,
                                const char *function)
{
    const Onnx__GraphProto *g = m->proto->graph;
    const Onnx__NodeProto *n = s->node;
    const char *bias_name = n->n_input > 2 ? n->input[2] : NULL;
    const Onnx__NodeProto *bdq = bias_name && bias_name[0] ? producer(g, bias_name, "DequantizeLinear") : NULL;
    long kb = initializer_index(m, bdq ? bdq->input[0] : bias_name);
    qc_initializer_info b;
    int have_bias = kb >= 0 && qc_model_initializer(m, (size_t)kb, &b) == QC_OK && b.elem_type == QC_ONNX_INT32 &&
                    (int64_t)numel(&b) == s->o;
    for (int64_t c = 0; c < s->o; c++) {
        bias[c] = have_bias ? (int64_t)element(&b, (size_t)c) : 0;
        double ws = element(&s->w_scale, numel(&s->w_scale) == 1 ? 0 : (size_t)c);
        /* Vela's int8 rule in double; without quantized activations around the node, the weight scale. */
        double sc = s->x_scale > 0 && s->y_scale > 0 ? (s->x_scale * ws) / s->y_scale : ws;
        if (!(sc >= 0) || !isfinite(sc))
            return fail_node(n, QC_ERR_NUMERIC, function, "a channel's requantization scale is negative or not finite");
        QCM_TRY(qc_ethosu_quantise_scale(&scale[c], &shift[c], sc));
    }
    return QC_OK;
}

static qc_status pack_one(qc_ethosu_model *p, const layer_source *s, const qc_model *m,
                          const qc_ethosu_layer_options *base, const char *function)
{
    size_t count = (size_t)(s->o * s->h * s->wd * s->i);
    int16_t *w = malloc(count * sizeof *w);
    int64_t *bias = malloc((size_t)s->o * sizeof *bias), *scale = malloc((size_t)s->o * sizeof *scale);
    int32_t *shift = malloc((size_t)s->o * sizeof *shift);
    qc_status st = QC_OK;
    if (!w || !bias || !scale || !shift) st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a layer");
    for (int64_t oc = 0; st == QC_OK && oc < s->o; oc++)
        for (int64_t ky = 0; ky < s->h; ky++)
            for (int64_t kx = 0; kx < s->wd; kx++)
                for (int64_t ic = 0; ic < s->i; ic++)
                    w[((oc * s->h + ky) * s->wd + kx) * s->i + ic] = weight_at(s, oc, ky, kx, ic);
    if (st == QC_OK) st = channel_params(s, m, bias, scale, shift, function);
    /* A version-1 caller's struct ends before the U85 fields: those keep their defaults. */
    qc_ethosu_layer_options o = QC_ETHOSU_LAYER_OPTIONS_INIT;
    memcpy(&o, base, base->version >= 2 ? sizeof o : offsetof(qc_ethosu_layer_options, weight_format));
    if (o.version == 1) o.version = 2;   /* the defaults filled in, so that the strides below are read */
    o.depthwise = s->depthwise;
    /* Strides matter only to U85's part-kernel-first and depthwise orders (up to 3; larger ones keep 1,
     * which Regor would decompose). */
    o.stride_x = s->stride_x <= 3 ? s->stride_x : 1;
    o.stride_y = s->stride_y <= 3 ? s->stride_y : 1;
    o.dilation_x = s->dilation_x;
    o.dilation_y = s->dilation_y;
    /* Vela traverses fully connected layers depth-first, convolutions by its utilization rule. */
    o.traversal = strcmp(s->node->op_type, "Conv") == 0 ? QC_ETHOSU_TRAVERSAL_AUTO : QC_ETHOSU_DEPTH_FIRST;
    int64_t shape[4] = {s->o, s->h, s->wd, s->i};
    qc_ethosu_layer *packed = NULL;
    if (st == QC_OK) st = qc_ethosu_pack_layer(&packed, w, shape, bias, scale, shift, &o);
    if (st == QC_OK) {
        qc_ethosu_model_layer *info = &p->info[p->count];
        memset(info, 0, sizeof *info);
        info->node = s->node->name && s->node->name[0] ? s->node->name : s->node->output[0];
        info->op_type = s->node->op_type;
        info->weight = s->w.name;
        memcpy(info->shape, shape, sizeof shape);
        info->depthwise = s->depthwise;
        info->weights = (int64_t)count;
        const uint8_t *data;
        size_t size, nr;
        const qc_ethosu_range *r;
        qc_ethosu_layer_stream(&data, &size, packed);
        qc_ethosu_layer_ranges(&r, &nr, packed);
        info->stream_bytes = (int64_t)size;
        for (size_t k = 0; k < nr; k++) {
            info->weight_bytes += r[k].weight_bytes;
            info->scale_bytes += r[k].scale_bytes;
        }
        p->packed[p->count++] = packed;
    }
    free(w);
    free(bias);
    free(scale);
    free(shift);
    return st;
}

/* An empty packed model with room for `capacity` layers, or NULL. */
static qc_ethosu_model *packed_model(size_t capacity)
{
    qc_ethosu_model *p = calloc(1, sizeof *p);
    if (p) p->info = calloc(capacity, sizeof *p->info);
    if (p) p->packed = calloc(capacity, sizeof *p->packed);
    if (p && p->info && p->packed) return p;
    qc_ethosu_model_free(p);
    return NULL;
}

/* Packs node i into p when it is a layer. */
static qc_status pack_node(qc_ethosu_model *p, const qc_model *model, size_t i, const qc_ethosu_layer_options *opts,
                           const char *function)
{
    const Onnx__NodeProto *n = model->proto->graph->node[i];
    if (strcmp(n->op_type, "Conv") && strcmp(n->op_type, "Gemm") && strcmp(n->op_type, "MatMul")) return QC_OK;
    layer_source s;
    int found;
    QCM_TRY(read_layer(&s, &found, model, n, function));
    return found ? pack_one(p, &s, model, opts, function) : QC_OK;
}

qc_status qcm__ethosu_pack_node(qc_ethosu_model **out, const qc_model *model, size_t node,
                                const qc_ethosu_layer_options *opts, const char *function)
{
    *out = packed_model(1);
    if (*out == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate the packed model");
    qc_status st = pack_node(*out, model, node, opts, function);
    if (st != QC_OK) {
        qc_ethosu_model_free(*out);
        *out = NULL;
    }
    return st;
}

qc_status qc_model_pack_ethosu(qc_ethosu_model **out, const qc_model *model, const qc_ethosu_layer_options *opts)
{
    QCM_CHECK_NOT_NULL(out);
    QCM_CHECK_NOT_NULL(model);
    QCM_CHECK_NOT_NULL(opts);
    const Onnx__GraphProto *g = model->proto->graph;
    qc_ethosu_model *p = packed_model(g->n_node + 1);
    if (p == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot allocate the packed model");
    qc_status st = QC_OK;
    for (size_t i = 0; st == QC_OK && i < g->n_node; i++) st = pack_node(p, model, i, opts, __func__);
    if (st != QC_OK) {
        qc_ethosu_model_free(p);
        return st;
    }
    *out = p;
    return QC_OK;
}

size_t qc_ethosu_model_count(const qc_ethosu_model *packed)
{
    return packed ? packed->count : 0;
}

qc_status qc_ethosu_model_layer_info(const qc_ethosu_model *packed, size_t i, qc_ethosu_model_layer *out,
                                     const qc_ethosu_layer **layer)
{
    QCM_CHECK_NOT_NULL(packed);
    QCM_CHECK_NOT_NULL(out);
    if (i >= packed->count)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'i' is %zu; the model has %zu packed layers", i, packed->count);
    *out = packed->info[i];
    if (layer) *layer = packed->packed[i];
    return QC_OK;
}

void qc_ethosu_model_free(qc_ethosu_model *packed)
{
    if (packed == NULL) return;
    for (size_t i = 0; i < packed->count; i++) qc_ethosu_layer_free(packed->packed[i]);
    free(packed->packed);
    free(packed->info);
    free(packed);
}
