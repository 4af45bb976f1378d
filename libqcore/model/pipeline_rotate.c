/* Rotations in a recipe (qc_model.h, recipe version 3): the pipeline's model copied, its norms folded, its
 * attention heads rotated (version 4, pipeline_rotate_heads.c) and its linear layers' inputs rotated; the
 * recipe then runs on that copy through an inner pipeline, the online rotations kept in float, and its reports are mapped back to the pipeline's own layers by weight name
 * (rotations keep the weights' names). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec_internal.h"
#include "model_internal.h"
#include "pipeline_internal.h"
#include "qcore/qc_rotate.h"

void qcp__rotated_free(qcp_rotated *r)
{
    qc_pipeline_free(r->inner);
    qc_model_free(r->model);
    free(r->norm_folded), free(r->rotated), free(r->online), free(r->heads_rotated), free(r->unrotated);
    for (size_t k = 0; k < r->num_extra; k++) free(r->extra[k]);
    free(r->extra);
    *r = (qcp_rotated){0};
}

void qcp__rotated_clear(qc_pipeline *p)
{
    qcp__rotated_free(&p->rotated);
}

int qcp__does_not_qualify(qc_status st)
{
    return st == QC_ERR_UNSUPPORTED || st == QC_ERR_SHAPE || st == QC_ERR_DTYPE || st == QC_ERR_LAYOUT;
}

/* Folds every LayerNormalization and Mul that qc_model_fold_norm accepts; marks the layers reading one. */
static qc_status fold_norms(const qc_pipeline *p, qcp_rotated *r)
{
    for (size_t i = 0; i < r->model->proto->graph->n_node; i++) {
        const Onnx__NodeProto *n = r->model->proto->graph->node[i];
        int norm = strcmp(n->op_type, "LayerNormalization") == 0 || strcmp(n->op_type, "Mul") == 0;
        if (!norm || n->name == NULL || n->name[0] == '\0' || n->n_output < 1) continue;
        qc_status st = qc_model_fold_norm(r->model, n->name);
        if (qcp__does_not_qualify(st)) continue; /* not a foldable norm: it stays */
        QCM_TRY(st);
        for (size_t l = 0; l < p->num_layers; l++) r->norm_folded[l] |= strcmp(p->layers[l].input, n->output[0]) == 0;
    }
    return QC_OK;
}

static int rotatable(const qcp_layer *l)
{
    return !l->conv && l->node[0] != '\0';
}

qc_status qcp__draw_rotation(qc_ctx *ctx, qc_rotation_kind kind, int64_t n, uint64_t stream, qc_tensor *r, int *drawn,
                             const char *function)
{
    int64_t dims[2] = {n, n}, factor = 0;
    *drawn = 0;
    if (kind == QC_ROTATION_HADAMARD && qc_hadamard_factor(&factor, n) != QC_OK) return QC_OK;
    float *data = malloc((size_t)(n * n) * sizeof *data);
    if (data == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a %lld-wide rotation", (long long)n);
    qc_status st = qc_tensor_init(r, data, QC_DT_F32, 2, dims, NULL);
    if (st == QC_OK) st = kind == QC_ROTATION_HAAR ? qc_random_orthogonal(ctx, r, stream) : qc_random_hadamard_matrix(ctx, r, stream);
    if (st != QC_OK) free(data);
    *drawn = st == QC_OK;
    return st;
}

/* Layers j >= first reading layer first's input, each rotated by R where it qualifies. */
static qc_status rotate_readers(const qc_pipeline *p, qcp_rotated *r, size_t first, const qc_tensor *rot, int *done)
{
    for (size_t j = first; j < p->num_layers; j++) {
        const qcp_layer *l = &p->layers[j];
        if (done[j] || !rotatable(l) || strcmp(l->input, p->layers[first].input) != 0) continue;
        done[j] = 1;
        if (rot == NULL || r->unrotated[j]) continue;
        int online = 0;
        qc_status st = qc_model_rotate_input(r->model, l->node, rot, QCP_ROTATION_TOLERANCE, &online);
        if (qcp__does_not_qualify(st)) continue;
        QCM_TRY(st);
        r->rotated[j] = 1, r->online[j] = online;
    }
    return QC_OK;
}

/* One rotation per value the rotatable layers read (stream k for the k-th value in graph order). */
static qc_status rotate_inputs(const qc_pipeline *p, qcp_rotated *r, qc_ctx *ctx, const char *function)
{
    int *done = calloc(p->num_layers, sizeof *done);
    if (done == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    qc_status st = QC_OK;
    uint64_t stream = 0;
    for (size_t i = 0; st == QC_OK && i < p->num_layers; i++) {
        if (done[i] || !rotatable(&p->layers[i])) continue;
        qc_tensor rot;
        int drawn = 0;
        st = qcp__draw_rotation(ctx, r->kind, p->layers[i].in, stream++, &rot, &drawn, function);
        if (st == QC_OK) st = rotate_readers(p, r, i, drawn ? &rot : NULL, done);
        if (drawn) free(rot.data);
    }
    free(done);
    return st;
}

/* A context for the draws: the pipeline's threads, the recipe's seed. */
static qc_status rotation_context(const qc_pipeline *p, uint64_t seed, qc_ctx **ctx)
{
    int threads = 0;
    QCM_TRY(qce__ctx_threads(p->ctx, &threads));
    QCM_TRY(qc_ctx_create(ctx));
    qc_status st = qc_ctx_set_param(*ctx, QC_CTX_THREADS, threads);
    if (st == QC_OK) st = qc_ctx_set_param(*ctx, QC_CTX_SEED, (int64_t)seed);
    return st;
}

/* The inner pipeline over the rotated model, with copies of the batches, and its extra layers' names. */
static qc_status inner_pipeline(qc_pipeline *p, qcp_rotated *r, const char *function)
{
    QCM_TRY(qc_pipeline_create(&r->inner, r->model, p->ctx));
    for (size_t b = 0; b < p->num_batches; b++)
        QCM_TRY(qc_pipeline_add_batch(r->inner, p->batches[b].count, (const char *const *)p->batches[b].names,
                                      p->batches[b].values));
    r->extra = calloc(r->inner->num_layers, sizeof *r->extra);
    if (r->extra == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t j = 0; j < r->inner->num_layers; j++) {
        if (qcp__layer_named(p, r->inner->layers[j].weight) < p->num_layers) continue;
        if ((r->extra[r->num_extra++] = strdup(r->inner->layers[j].weight)) == NULL)
            return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    return QC_OK;
}

static qc_status check_rotated(const qc_pipeline *p, const qcp_rotated *r, const char *function)
{
    for (size_t i = 0; i < p->num_layers; i++)
        if (r->rotated[i] || r->unrotated[i]) return QC_OK; /* none rotated by the recipe's own choice is no error */
    return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                       "recipe field 'rotation': no layer of the model can be rotated (rotations apply to the inputs of "
                       "named MatMul and Gemm layers with a constant weight read by them alone%s; Conv layers are not rotated)",
                       r->kind == QC_ROTATION_HADAMARD ? ", of widths with a Hadamard construction" : "");
}

/* Whether layer i's weight is in the recipe's unrotated (version 5; a checked recipe). */
static int left_unrotated(const qc_pipeline *p, const qc_recipe *rc, size_t i)
{
    return rc->version >= 5 && qcp__name_index(rc->unrotated, rc->num_unrotated, p->layers[i].weight) < rc->num_unrotated;
}

/* Whether the kept rotated copy was built for this recipe's rotation, heads and unrotated layers. */
static int rotated_matches(const qc_pipeline *p, const qc_recipe *rc, const qcp_rotated *r)
{
    if (r->inner == NULL || r->kind != rc->rotation || r->seed != rc->rotation_seed ||
        r->heads != (rc->version >= 4 && rc->rotate_heads))
        return 0;
    for (size_t i = 0; i < p->num_layers; i++)
        if (r->unrotated[i] != left_unrotated(p, rc, i)) return 0;
    return 1;
}

qc_status qcp__rotated_build(qc_pipeline *p, const qc_recipe *rc, qcp_rotated *r, const char *function)
{
    qcp__rotated_free(r);
    size_t n = p->num_layers;
    r->kind = rc->rotation, r->seed = rc->rotation_seed, r->heads = rc->version >= 4 && rc->rotate_heads;
    r->norm_folded = calloc(n, sizeof *r->norm_folded);
    r->rotated = calloc(n, sizeof *r->rotated);
    r->online = calloc(n, sizeof *r->online);
    r->heads_rotated = calloc(n, sizeof *r->heads_rotated);
    r->unrotated = calloc(n, sizeof *r->unrotated);
    qc_ctx *ctx = NULL;
    qc_status st = r->norm_folded && r->rotated && r->online && r->heads_rotated && r->unrotated
                       ? qc_model_clone(&r->model, p->model)
                       : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; st == QC_OK && i < n; i++) r->unrotated[i] = left_unrotated(p, rc, i);
    if (st == QC_OK) st = fold_norms(p, r);
    if (st == QC_OK) st = rotation_context(p, rc->rotation_seed, &ctx);
    if (st == QC_OK && r->heads) st = qcp__rotate_heads(p, r, ctx, function); /* before O's input rotation hides P V */
    if (st == QC_OK) st = rotate_inputs(p, r, ctx, function);
    qc_ctx_free(ctx);
    if (st == QC_OK) st = check_rotated(p, r, function);
    if (st == QC_OK) st = inner_pipeline(p, r, function);
    if (st != QC_OK) qcp__rotated_free(r);
    return st;
}

qc_status qcp__rotated_recipe(const qcp_rotated *r, const qc_recipe *rc, qc_recipe *out, const char ***keep,
                              const char *function)
{
    *out = *rc;
    out->rotation = QC_ROTATION_NONE, out->ethosu_config = 0;
    if (out->version >= 4) out->rotate_heads = 0;
    if (out->version >= 5) out->num_unrotated = 0, out->unrotated = NULL;
    *keep = malloc((rc->num_keep_float + r->num_extra + 1) * sizeof **keep);
    if (*keep == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t k = 0; k < rc->num_keep_float; k++) (*keep)[k] = rc->keep_float[k];
    for (size_t k = 0; k < r->num_extra; k++) (*keep)[rc->num_keep_float + k] = r->extra[k];
    out->keep_float = *keep, out->num_keep_float = rc->num_keep_float + r->num_extra;
    return QC_OK;
}

/* The inner reports of the outer layers, with their rotation fields. */
static qc_status map_reports(const qc_pipeline *p, const qcp_rotated *r, qc_layer_report *reports, const char *function)
{
    for (size_t i = 0; i < p->num_layers; i++) {
        size_t j = qcp__layer_named(r->inner, p->layers[i].weight);
        if (j == r->inner->num_layers) /* rotations keep layers and names: a broken invariant, not bad input */
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "layer '%s' is no layer of the rotated model", p->layers[i].weight);
        reports[i] = r->inner->reports[j];
        reports[i].weight = p->layers[i].weight;
        reports[i].norm_folded = r->norm_folded[i];
        reports[i].rotated = r->rotated[i];
        reports[i].rotation_online = r->online[i];
        reports[i].heads_rotated = r->heads_rotated[i];
    }
    return QC_OK;
}

qc_status qcp__run_rotated(qc_pipeline *p, const qc_recipe *rc, qc_model **out, qc_layer_report *reports,
                           const char *function)
{
    qcp_rotated *r = &p->rotated;
    if (!rotated_matches(p, rc, r)) QCM_TRY(qcp__rotated_build(p, rc, r, function));
    qc_recipe inner;
    const char **keep = NULL;
    qc_status st = qcp__rotated_recipe(r, rc, &inner, &keep, function);
    if (st == QC_OK) st = qc_pipeline_run(r->inner, &inner, out);
    free(keep);
    if (st == QC_OK && (st = map_reports(p, r, reports, function)) != QC_OK) {
        qc_model_free(*out);
        *out = NULL;
    }
    return st;
}
