/* qc_model_fold_norm (qc_model.h): a normalization's scale gamma (and LayerNormalization's shift beta)
 * moved into the linear layers that read its output, y = (n gamma + beta) W = n (diag(gamma) W) + beta W,
 * after which the normalization is left with gamma = 1 and beta = 0. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fuse.h"

/* The normalization's constants: gamma (initializer index), beta (or QCM_NONE) and the width. */
typedef struct norm_constants {
    size_t gamma, beta;
    int64_t width;
} norm_constants;

/* A FLOAT initializer called `name` that only one node reads, as a vector of its element count. */
static qc_status constant_of(const qc_model *m, const char *name, size_t *index, int64_t *count, const char *node,
                             const char *function)
{
    qc_initializer_info info;
    if (qc_model_find_initializer(m, name, index) != QC_OK) {
        qc_clear_error();
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': '%.200s' is not a constant (initializer)", node, name);
    }
    QCM_TRY(qc_model_initializer(m, *index, &info));
    int64_t n = 1;
    for (int32_t d = 0; d < info.ndim; d++) n *= info.dims[d];
    if (info.elem_type != QC_ONNX_FLOAT || info.ndim < 1 || n != info.dims[info.ndim - 1] || qcm__consumers(m, name, NULL, NULL) != 1)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': '%.200s' must be a FLOAT vector over the last "
                           "axis that this node alone reads", node, name);
    *count = n;
    return QC_OK;
}

static qc_status norm_of(const qc_model *m, const Onnx__NodeProto *n, norm_constants *c, const char *function)
{
    c->beta = QCM_NONE;
    if (strcmp(n->op_type, "LayerNormalization") == 0 && n->n_input >= 2) {
        for (size_t i = 0; i < n->n_attribute; i++)
            if (strcmp(n->attribute[i]->name, "axis") == 0 && n->attribute[i]->i != -1)
                return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': only axis = -1 is folded", n->name);
        QCM_TRY(constant_of(m, n->input[1], &c->gamma, &c->width, n->name, function));
        int64_t width;
        if (n->n_input >= 3 && n->input[2][0]) QCM_TRY(constant_of(m, n->input[2], &c->beta, &width, n->name, function));
        if (c->beta != QCM_NONE && width != c->width)
            return QCM_FAIL_IN(function, QC_ERR_SHAPE, "node '%.200s': scale and bias widths differ", n->name);
        return QC_OK;
    }
    if (strcmp(n->op_type, "Mul") == 0 && n->n_input == 2) {
        size_t i;
        int k = qc_model_find_initializer(m, n->input[1], &i) == QC_OK ? 1 : 0;
        qc_clear_error();
        return constant_of(m, n->input[k], &c->gamma, &c->width, n->name, function);
    }
    return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s' is a %s, not a LayerNormalization or a Mul by a "
                       "constant vector", n->name, n->op_type);
}

/* One reader: W <- diag(gamma) W, b <- b + beta W. */
static qc_status fold_into(qc_model *m, const qcm_linear *l, const double *gamma, const double *beta, const char *function)
{
    size_t count = (size_t)(l->in * l->out);
    double *w = malloc(count * sizeof *w), *b = malloc((size_t)l->out * sizeof *b);
    qc_status st = w && b ? qcm__read_weight(m, l, w, function) : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK && beta) {
        qcm__read_bias(m, l, b);
        for (int64_t i = 0; i < l->in; i++)
            for (int64_t o = 0; o < l->out; o++) b[o] += beta[i] * w[i * l->out + o];
        st = qcm__write_bias(m, l, b, function);
    }
    for (int64_t i = 0; st == QC_OK && i < l->in; i++)
        for (int64_t o = 0; o < l->out; o++) w[i * l->out + o] *= gamma[i];
    if (st == QC_OK) st = qcm__write_weight(m, l, w, function);
    free(w), free(b);
    return st;
}

/* Sets initializer `index` (a vector of `width`) to `value` everywhere. */
static qc_status fill_constant(qc_model *m, size_t index, int64_t width, double value, const char *function)
{
    qc_initializer_info info;
    QCM_TRY(qc_model_initializer(m, index, &info));
    float *f = malloc((size_t)width * sizeof *f);
    char *name = strdup(info.name);
    qc_status st = f && name ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (int64_t i = 0; st == QC_OK && i < width; i++) f[i] = (float)value;
    int64_t dims[QC_MAX_DIMS];
    memcpy(dims, info.dims, sizeof dims);
    if (st == QC_OK) st = qc_model_set_initializer(m, name, QC_ONNX_FLOAT, info.ndim, dims, f, (size_t)width * sizeof *f);
    free(f), free(name);
    return st;
}

static qc_status read_vector(const qc_model *m, size_t index, double *out, int64_t width)
{
    qc_initializer_info info;
    QCM_TRY(qc_model_initializer(m, index, &info));
    for (int64_t i = 0; i < width; i++) {
        float v;
        memcpy(&v, (const unsigned char *)info.data + 4 * i, sizeof v);
        out[i] = v;
    }
    return QC_OK;
}

qc_status qc_model_fold_norm(qc_model *model, const char *node)
{
    QCM_CHECK_NOT_NULL(model);
    QCM_CHECK_NOT_NULL(node);
    size_t index, count = 0;
    norm_constants c;
    qcm_linear *layers = NULL;
    QCM_TRY(qcm__find_node(model, node, &index, __func__));
    const Onnx__NodeProto *n = model->proto->graph->node[index];
    QCM_TRY(norm_of(model, n, &c, __func__));
    QCM_TRY(qcm__readers(model, n->output[0], c.width, c.beta != QCM_NONE, &layers, &count, __func__));
    double *gamma = malloc((size_t)c.width * sizeof *gamma), *beta = malloc((size_t)c.width * sizeof *beta);
    qc_status st = gamma && beta ? read_vector(model, c.gamma, gamma, c.width) : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK && c.beta != QCM_NONE) st = read_vector(model, c.beta, beta, c.width);
    for (size_t i = 0; st == QC_OK && i < count; i++)
        st = fold_into(model, &layers[i], gamma, c.beta != QCM_NONE ? beta : NULL, __func__);
    if (st == QC_OK) st = fill_constant(model, c.gamma, c.width, 1.0, __func__);
    if (st == QC_OK && c.beta != QCM_NONE) st = fill_constant(model, c.beta, c.width, 0.0, __func__);
    free(gamma), free(beta), free(layers);
    return st;
}
