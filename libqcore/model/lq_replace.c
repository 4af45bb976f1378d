/* qc_model_lq_replace: every fully-connected layer of a pipeline's model replaced by an ai.qcore.LQGemm
 * node fitted on the calibration batches, layer after layer, each seeing the earlier ones replaced
 * (qc_model.h). The fitting is qc_lq.h's public functions; the onnxruntime export is lq_export.c. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "lq_replace_internal.h"
#include "model_internal.h"

/* One replacement's working state. */
typedef struct lq_run {
    qc_pipeline *p;
    const qc_lq_replace_options *o;
    qc_model *qmodel;            /* the result, edited layer by layer */
    qc_session *fp;              /* the source model, every replaced layer's input captured (refit only) */
    qclq_layer *layers;          /* the fully-connected layers, in graph order */
    size_t count;
    qc_lq_replace_result result;
    /* The last layer's inputs from the model replaced so far, kept for the next layer when it reads the same
     * value (attention's Q, K and V): replacing a layer changes only what comes after it. */
    const char *rows_of;         /* the value (a layer's input name), or NULL */
    float *x;                    /* [rows, in] */
    int64_t rows, *rows_per_batch;
} lq_run;

qc_status qc_lq_replace_options_init(qc_lq_replace_options *opts, unsigned version)
{
    QCM_CHECK_NOT_NULL(opts);
    if (version == 0 || version > QC_LQ_REPLACE_OPTIONS_VERSION)
        return QCM_FAIL(QC_ERR_VERSION, "argument 'version': %u is not an options version this library knows (1..%d)",
                        version, QC_LQ_REPLACE_OPTIONS_VERSION);
    memset(opts, 0, sizeof *opts);
    opts->version = version;
    opts->weight_bits = 2, opts->input_bits = 2, opts->refit = 1, opts->refit_ridge = 1e-4;
    if (version >= 2) opts->code_rounds = -1, opts->assign_damping = 0.01;
    return qc_lq_options_init(&opts->fit, QC_LQ_OPTIONS_VERSION);
}

/* The caller's options as the latest version: fields its version lacks keep what that version did. */
static void options_upgrade(qc_lq_replace_options *out, const qc_lq_replace_options *in)
{
    size_t known = in->version >= 2 ? sizeof *out : offsetof(qc_lq_replace_options, code_rounds);
    memset(out, 0, sizeof *out);
    memcpy(out, in, known);
    if (in->version < 2) out->code_rounds = 0, out->assign_damping = 0.01;
    if (out->code_rounds < 0) out->code_rounds = out->weight_bits <= 2 ? 2 : 0;
}

static qc_status check_options(const qc_lq_replace_options *o, const char *function)
{
    if (o->version == 0 || o->version > QC_LQ_REPLACE_OPTIONS_VERSION)
        return QCM_FAIL_IN(function, QC_ERR_VERSION, "argument 'opts': version %u is not one this library knows (1..%d)",
                           o->version, QC_LQ_REPLACE_OPTIONS_VERSION);
    if (o->weight_bits < 1 || o->weight_bits > QC_LQ_MAX_BITS || o->input_bits < 1 || o->input_bits > QC_LQ_MAX_BITS)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': weight_bits = %d and input_bits = %d must be in 1..%d",
                           o->weight_bits, o->input_bits, QC_LQ_MAX_BITS);
    if (o->refit != 0 && o->refit != 1) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': refit = %d (0 or 1)", o->refit);
    if (!(o->refit_ridge >= 0 && o->refit_ridge <= 1e6))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': refit_ridge = %g is outside 0..1e6", o->refit_ridge);
    if (o->version >= 2 && (o->code_rounds < -1 || o->code_rounds > 16))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': code_rounds = %d is outside -1..16", o->code_rounds);
    if (o->version >= 2 && !(o->assign_damping > 0 && o->assign_damping <= 1))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': assign_damping = %g is outside (0, 1]",
                           o->assign_damping);
    return QC_OK;
}

static const Onnx__AttributeProto *attribute(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

static int float_attribute_is_one(const Onnx__NodeProto *n, const char *name)
{
    const Onnx__AttributeProto *a = attribute(n, name);
    return a == NULL || a->f == 1.0f;
}

/* Whether pipeline layer i is fully connected (qc_model.h), and its bias (the Gemm's C) in *bias. */
static int fully_connected(const qc_pipeline *p, size_t i, const char **bias)
{
    const qcp_layer *l = &p->layers[i];
    const Onnx__NodeProto *n = p->model->proto->graph->node[l->node_index];
    *bias = NULL;
    if (l->conv) return 0;
    if (strcmp(l->op_type, "MatMul") == 0) return 1;
    if (!float_attribute_is_one(n, "alpha") || !float_attribute_is_one(n, "beta")) return 0;
    if (n->n_input < 3 || n->input[2][0] == '\0') return 1;
    size_t index;
    qc_initializer_info c;
    if (qc_model_find_initializer(p->model, n->input[2], &index) != QC_OK || qc_model_initializer(p->model, index, &c) != QC_OK)
        return 0;
    /* one value per output: [O] or [1, O] (a [M, 1] or [M, O] C is not a bias) */
    int row = (c.ndim == 1 && c.dims[0] == l->out) || (c.ndim == 2 && c.dims[0] == 1 && c.dims[1] == l->out);
    *bias = n->input[2];
    return c.elem_type == QC_ONNX_FLOAT && row;
}

static qc_status find_layers(lq_run *r, const char *function)
{
    r->layers = calloc(r->p->num_layers, sizeof *r->layers);
    if (r->layers == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < r->p->num_layers; i++) {
        const char *bias;
        if (!fully_connected(r->p, i, &bias)) {
            r->result.kept++;
            continue;
        }
        r->layers[r->count++] = (qclq_layer){.layer = i, .bias = bias};
    }
    if (r->count == 0)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "the model has no fully-connected layer (MatMul, or Gemm with "
                                                         "alpha = beta = 1 and a constant C [O] or [1, O])");
    return QC_OK;
}

/* The float session over the source model, with every replaced layer's input kept. */
static qc_status float_session(lq_run *r)
{
    QCM_TRY(qc_session_create(&r->fp, r->p->model, r->p->ctx));
    for (size_t k = 0; k < r->count; k++) QCM_TRY(qc_session_capture(r->fp, r->p->layers[r->layers[k].layer].input));
    return QC_OK;
}

/* Batch b's value of layer l's input from the last run of s, checked to be FLOAT [..., in]; *rows of it. */
static qc_status layer_input(const qc_session *s, const qcp_batch *b, const qcp_layer *l, qc_tensor *v, int64_t *rows,
                             const char *function)
{
    QCM_TRY(qcp__value_of(s, b, l->input, v));
    if (v->dtype != QC_DT_F32 || v->ndim < 1 || v->dims[v->ndim - 1] != l->in || !qc_tensor_is_contiguous(v))
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "layer '%s': its input '%s' is not a contiguous FLOAT [..., %lld]",
                           l->weight, l->input, (long long)l->in);
    *rows = qc_tensor_numel(v) / l->in;
    return QC_OK;
}

/* Every row of layer l's input over the batches, from the model as replaced so far: *x [*rows, in]
 * (malloc'd), *rows_per_batch[b] (malloc'd). */
static qc_status replaced_inputs(lq_run *r, const qcp_layer *l, float **x, int64_t *rows, int64_t **rows_per_batch,
                                 const char *function)
{
    qc_session *s = NULL;
    qc_status st = qc_session_create(&s, r->qmodel, r->p->ctx);
    if (st == QC_OK) st = qc_session_capture(s, l->input);
    *x = NULL, *rows = 0;
    *rows_per_batch = calloc(r->p->num_batches, sizeof **rows_per_batch);
    if (st == QC_OK && *rows_per_batch == NULL) st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t b = 0; st == QC_OK && b < r->p->num_batches; b++) {
        qc_tensor v;
        int64_t n = 0;
        st = qcp__bind_batch(s, &r->p->batches[b]);
        if (st == QC_OK) st = qc_session_run(s);
        if (st == QC_OK) st = layer_input(s, &r->p->batches[b], l, &v, &n, function);
        float *grown = st == QC_OK ? realloc(*x, (size_t)((*rows + n) * l->in + 1) * sizeof(float)) : NULL;
        if (st == QC_OK && grown == NULL)
            st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s's inputs", l->weight);
        if (st != QC_OK) break;
        *x = grown;
        memcpy(*x + *rows * l->in, v.data, (size_t)(n * l->in) * sizeof(float));
        (*rows_per_batch)[b] = n;
        *rows += n;
    }
    qc_session_free(s);
    return st;
}

static qc_status fit_input(lq_run *r, qclq_layer *f, const float *x, int64_t values)
{
    f->x_code = QC_LQ_UNSIGNED;
    for (int64_t i = 0; i < values; i++)
        if (x[i] < 0) {
            f->x_code = QC_LQ_SIGNED;
            break;
        }
    qc_tensor xt, basis;
    int64_t x_dims[2] = {1, values}, b_dims[2] = {1, r->o->input_bits};
    QCM_TRY(qc_tensor_init(&xt, (void *)x, QC_DT_F32, 2, x_dims, NULL));
    QCM_TRY(qc_tensor_init(&basis, f->x_basis, QC_DT_F32, 2, b_dims, NULL));
    return qc_lq_fit(r->p->ctx, &basis, NULL, NULL, &xt, f->x_code, &r->o->fit);
}

/* H and G of GPFQ over the batches: the float model's inputs against the levels of the replaced model's
 * inputs x (rows_per_batch of them per batch). */
static qc_status gpfq_stats(lq_run *r, const qclq_layer *f, const float *x, const int64_t *rows_per_batch,
                            qc_gpxq_stats *stats, const char *function)
{
    const qcp_layer *l = &r->p->layers[f->layer];
    int64_t in = l->in, first = 0, basis_dims[2] = {1, r->o->input_bits};
    qc_tensor basis;
    QCM_TRY(qc_tensor_init(&basis, (void *)f->x_basis, QC_DT_F32, 2, basis_dims, NULL));
    qc_status st = QC_OK;
    for (size_t b = 0; st == QC_OK && b < r->p->num_batches; b++) {
        int64_t n = rows_per_batch[b], dims[2] = {n, in}, got = 0;
        uint8_t *codes = malloc((size_t)(n * in + 1));
        float *levels = malloc((size_t)(n * in + 1) * sizeof(float));
        qc_tensor xq, ct, lt, xf, v;
        st = codes && levels ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s'", l->weight);
        if (st == QC_OK) st = qcp__bind_batch(r->fp, &r->p->batches[b]);
        if (st == QC_OK) st = qc_session_run(r->fp);
        if (st == QC_OK) st = layer_input(r->fp, &r->p->batches[b], l, &v, &got, function);
        if (st == QC_OK && got != n)
            st = QCM_FAIL_IN(function, QC_ERR_SHAPE, "layer '%s': %lld input rows in the float model, %lld in the replaced one",
                             l->weight, (long long)got, (long long)n);
        if (st == QC_OK) st = qc_tensor_init(&xq, (void *)(x + first * in), QC_DT_F32, 2, dims, NULL);
        if (st == QC_OK) st = qc_tensor_init(&ct, codes, QC_DT_U8, 2, dims, NULL);
        if (st == QC_OK) st = qc_tensor_init(&lt, levels, QC_DT_F32, 2, dims, NULL);
        if (st == QC_OK) st = qc_tensor_init(&xf, v.data, QC_DT_F32, 2, dims, NULL);
        if (st == QC_OK) st = qc_lq_encode(r->p->ctx, &ct, &xq, &basis, f->x_code);
        if (st == QC_OK) st = qc_lq_decode(r->p->ctx, &lt, &ct, &basis, f->x_code);
        if (st == QC_OK) st = qc_gpxq_stats_add(r->p->ctx, stats, &xf, &lt);
        free(codes), free(levels);
        first += n;
    }
    return st;
}

/* Output-aware weight bases from GPFQ statistics (qc_lq_refit_output). */
static qc_status refit(lq_run *r, qclq_layer *f, const float *x, const int64_t *rows_per_batch, qc_tensor *w,
                       qc_tensor *codes, qc_tensor *basis, const char *function)
{
    const qcp_layer *l = &r->p->layers[f->layer];
    qc_gpxq_stats *stats = NULL;
    double *h = malloc((size_t)(l->in * l->in) * sizeof(double)), *g = malloc((size_t)(l->in * l->in) * sizeof(double));
    int64_t dims[2] = {l->in, l->in};
    qc_tensor ht, gt;
    qc_status st = h && g ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s'", l->weight);
    if (st == QC_OK && r->fp == NULL) st = float_session(r);
    if (st == QC_OK) st = qc_gpxq_stats_create(&stats, QC_GPXQ_GPFQ, l->in);
    if (st == QC_OK) st = gpfq_stats(r, f, x, rows_per_batch, stats, function);
    if (st == QC_OK) st = qc_tensor_init(&ht, h, QC_DT_F64, 2, dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&gt, g, QC_DT_F64, 2, dims, NULL);
    if (st == QC_OK) st = qc_gpxq_stats_hessian(&ht, stats);
    if (st == QC_OK) st = qc_gpxq_stats_cross(&gt, stats);
    if (st == QC_OK) st = qc_lq_refit_output(r->p->ctx, basis, codes, basis, w, &ht, &gt, QC_LQ_SIGNED, r->o->refit_ridge);
    for (int32_t k = 0; st == QC_OK && k < r->o->code_rounds; k++) {
        st = qc_lq_assign_codes(r->p->ctx, codes, NULL, w, basis, &ht, &gt, QC_LQ_SIGNED, r->o->assign_damping);
        if (st == QC_OK) st = qc_lq_refit_output(r->p->ctx, basis, codes, basis, w, &ht, &gt, QC_LQ_SIGNED, r->o->refit_ridge);
    }
    qc_gpxq_stats_free(stats);
    free(h), free(g);
    return st;
}

/* W's bases and codes (QEM, then the refit when asked for). */
static qc_status fit_weight(lq_run *r, qclq_layer *f, const float *x, const int64_t *rows_per_batch, const char *function)
{
    const qcp_layer *l = &r->p->layers[f->layer];
    int kw = r->o->weight_bits;
    float *w = malloc((size_t)(l->out * l->in) * sizeof(float));
    f->w_basis = malloc((size_t)(l->out * kw) * sizeof(float));
    f->codes = malloc((size_t)(l->out * l->in));
    if (!w || !f->w_basis || !f->codes) {
        free(w);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s'", l->weight);
    }
    int64_t w_dims[2] = {l->out, l->in}, b_dims[2] = {l->out, kw};
    qc_tensor wt, bt, ct;
    qc_status st = qcp__weight(r->p, f->layer, w, function);
    if (st == QC_OK) st = qc_tensor_init(&wt, w, QC_DT_F32, 2, w_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&bt, f->w_basis, QC_DT_F32, 2, b_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&ct, f->codes, QC_DT_U8, 2, w_dims, NULL);
    if (st == QC_OK) st = qc_lq_fit(r->p->ctx, &bt, NULL, NULL, &wt, QC_LQ_SIGNED, &r->o->fit);
    if (st == QC_OK) st = qc_lq_encode(r->p->ctx, &ct, &wt, &bt, QC_LQ_SIGNED);
    if (st == QC_OK && r->o->refit) st = refit(r, f, x, rows_per_batch, &wt, &ct, &bt, function);
    free(w);
    return st;
}

/* Node `node` of m becomes LQGemm over `inputs` (same name and output; its attributes replaced). */
static qc_status become_lq_gemm(qc_model *m, size_t node, const char *const *inputs, size_t count, int x_signed,
                                const char *function)
{
    Onnx__NodeProto *n = m->proto->graph->node[node];
    char **names = calloc(count, sizeof *names), *op = strdup("LQGemm"), *domain = strdup("ai.qcore");
    int ok = names && op && domain;
    for (size_t k = 0; ok && k < count; k++) ok = (names[k] = strdup(inputs[k])) != NULL;
    if (!ok) {
        for (size_t k = 0; names && k < count; k++) free(names[k]);
        free(names), free(op), free(domain);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    for (size_t k = 0; k < n->n_input; k++) free(n->input[k]);
    for (size_t k = 0; k < n->n_attribute; k++) onnx__attribute_proto__free_unpacked(n->attribute[k], NULL);
    free(n->input), free(n->attribute), free(n->op_type), free(n->domain);
    n->input = names, n->n_input = count;
    n->attribute = NULL, n->n_attribute = 0;
    n->op_type = op, n->domain = domain;
    int64_t x_flag = x_signed, w_flag = 1;
    QCM_TRY(qc_model_set_attribute(m, node, "x_signed", QC_ATTRIBUTE_INT, &x_flag, 1));
    return qc_model_set_attribute(m, node, "w_signed", QC_ATTRIBUTE_INT, &w_flag, 1);
}

/* f's codes as LQGemm's dense W_planes (UINT8 [O, Kw, ceil(n / 8)]): qc_lq_pack's words, each plane row cut
 * to the bytes that hold its n bits (the words' little-endian bytes, so the bit order is unchanged). */
static qc_status dense_planes(lq_run *r, const qclq_layer *f, uint8_t *out, const char *function)
{
    const qcp_layer *l = &r->p->layers[f->layer];
    int64_t kw = r->o->weight_bits, words = qc_lq_plane_words(l->in), bytes = (l->in + 7) / 8;
    int64_t plane_dims[3] = {l->out, kw, words}, code_dims[2] = {l->out, l->in};
    uint64_t *planes = malloc((size_t)(l->out * kw * words) * sizeof(uint64_t));
    if (planes == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s'", l->weight);
    qc_tensor pt, ct;
    qc_status st = qc_tensor_init(&pt, planes, QC_DT_I64, 3, plane_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&ct, f->codes, QC_DT_U8, 2, code_dims, NULL);
    if (st == QC_OK) st = qc_lq_pack(r->p->ctx, &pt, &ct);
    for (int64_t row = 0; st == QC_OK && row < l->out * kw; row++)
        memcpy(out + row * bytes, planes + row * words, (size_t)bytes);
    free(planes);
    return st;
}

/* Adds f's planes and bases to r->qmodel, turns its node into LQGemm and drops W. */
static qc_status put_layer(lq_run *r, const qclq_layer *f, const char *function)
{
    const qcp_layer *l = &r->p->layers[f->layer];
    int kw = r->o->weight_bits, ka = r->o->input_bits;
    int64_t plane_dims[3] = {l->out, kw, (l->in + 7) / 8};
    int64_t basis_dims[2] = {l->out, kw}, x_dims[1] = {ka};
    size_t plane_bytes = (size_t)(l->out * kw * plane_dims[2]);
    uint8_t *planes = malloc(plane_bytes);
    if (planes == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for layer '%s'", l->weight);
    qcm_value_name plane_name, basis_name, x_name;
    qc_status st = dense_planes(r, f, planes, function);
    qcm__fresh_name(plane_name, sizeof plane_name, r->qmodel, l->weight, "_lq_planes");
    if (st == QC_OK) st = qc_model_add_initializer(r->qmodel, plane_name, QC_ONNX_UINT8, 3, plane_dims, planes, plane_bytes);
    free(planes);
    qcm__fresh_name(basis_name, sizeof basis_name, r->qmodel, l->weight, "_lq_basis");
    if (st == QC_OK)
        st = qc_model_add_initializer(r->qmodel, basis_name, QC_ONNX_FLOAT, 2, basis_dims, f->w_basis,
                                      (size_t)(l->out * kw) * sizeof(float));
    qcm__fresh_name(x_name, sizeof x_name, r->qmodel, l->weight, "_lq_input_basis");
    if (st == QC_OK) st = qc_model_add_initializer(r->qmodel, x_name, QC_ONNX_FLOAT, 1, x_dims, f->x_basis, (size_t)ka * sizeof(float));
    if (st != QC_OK) return st;
    const char *inputs[5] = {l->input, plane_name, basis_name, x_name, f->bias};
    QCM_TRY(become_lq_gemm(r->qmodel, l->node_index, inputs, f->bias ? 5 : 4, f->x_code == QC_LQ_SIGNED, function));
    size_t weight;
    QCM_TRY(qc_model_find_initializer(r->qmodel, l->weight, &weight));
    qcm__remove_initializer(r->qmodel, weight);
    int64_t bias_values = f->bias ? l->out : 0;
    r->result.replaced++;
    r->result.lq_bytes += (int64_t)plane_bytes + 4 * (l->out * kw + ka + bias_values);
    r->result.float_bytes += 4 * (l->out * l->in + bias_values);
    return QC_OK;
}

/* r->x: layer l's inputs, collected unless the previous layer read the same value. */
static qc_status inputs_of(lq_run *r, const qcp_layer *l, const char *function)
{
    if (r->rows_of && strcmp(r->rows_of, l->input) == 0) return QC_OK;
    free(r->x), free(r->rows_per_batch);
    r->x = NULL, r->rows_per_batch = NULL, r->rows_of = NULL;
    QCM_TRY(replaced_inputs(r, l, &r->x, &r->rows, &r->rows_per_batch, function));
    r->rows_of = l->input;
    return QC_OK;
}

static qc_status replace_layer(lq_run *r, qclq_layer *f, const char *function)
{
    const qcp_layer *l = &r->p->layers[f->layer];
    qc_status st = inputs_of(r, l, function);
    if (st == QC_OK) st = fit_input(r, f, r->x, r->rows * l->in);
    if (st == QC_OK) st = fit_weight(r, f, r->x, r->rows_per_batch, function);
    if (st == QC_OK) st = put_layer(r, f, function);
    if (st != QC_OK && strstr(qc_last_error(), l->weight) == NULL)
        return QCM_FAIL_IN(function, st, "layer '%s': %s", l->weight, qc_last_error());
    return st;
}

static void run_free(lq_run *r)
{
    for (size_t k = 0; r->layers && k < r->count; k++) free(r->layers[k].w_basis), free(r->layers[k].codes);
    free(r->layers);
    free(r->x), free(r->rows_per_batch);
    qc_session_free(r->fp);
    qc_model_free(r->qmodel);
}

static qc_status replace_all(lq_run *r, qc_model **ort_out, const char *function)
{
    QCM_TRY(find_layers(r, function));
    QCM_TRY(qc_model_clone(&r->qmodel, r->p->model));
    QCM_TRY(qc_model_require_opset(r->qmodel, "ai.qcore", 1));
    for (size_t k = 0; k < r->count; k++) {
        QCM_TRY(replace_layer(r, &r->layers[k], function));
        QCM_TRY(qc_ctx_report_progress(r->p->ctx, "replacing layers", k + 1, r->count));
    }
    if (ort_out == NULL) return QC_OK;
    return qclq__export_ort(ort_out, r->p, r->layers, r->count, r->o->input_bits, r->o->weight_bits, function);
}

qc_status qc_model_lq_replace(qc_model **out, qc_model **ort_out, qc_lq_replace_result *result, qc_pipeline *pipeline,
                              const qc_lq_replace_options *opts)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    if (ort_out) *ort_out = NULL;
    QCM_CHECK_NOT_NULL(pipeline);
    if (result && (result->version == 0 || result->version > QC_LQ_REPLACE_RESULT_VERSION))
        return QCM_FAIL(QC_ERR_VERSION, "argument 'result': version %u is not one this library knows (1..%d)",
                        result->version, QC_LQ_REPLACE_RESULT_VERSION);
    qc_lq_replace_options defaults;
    if (opts == NULL) {
        QCM_TRY(qc_lq_replace_options_init(&defaults, QC_LQ_REPLACE_OPTIONS_VERSION));
        opts = &defaults;
    }
    QCM_TRY(check_options(opts, __func__));
    qc_lq_replace_options latest;
    options_upgrade(&latest, opts);
    if (pipeline->num_batches == 0)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'pipeline': no calibration batch (qc_pipeline_add_batch)");
    lq_run r = {.p = pipeline, .o = &latest, .result = QC_LQ_REPLACE_RESULT_INIT};
    qc_status st = replace_all(&r, ort_out, __func__);
    if (st == QC_OK) {
        *out = r.qmodel, r.qmodel = NULL;
        if (result) *result = r.result;
    } else if (ort_out) {
        qc_model_free(*ort_out), *ort_out = NULL;
    }
    run_free(&r);
    return st;
}
