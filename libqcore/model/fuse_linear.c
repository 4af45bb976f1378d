/* Linear layers with constant weights, as the fusion transforms see them (fuse.h): discovery in the
 * graph, and their weight and bias in double. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "error.h"
#include "fuse.h"

qc_status qcm__find_node(const qc_model *m, const char *name, size_t *index, const char *function)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_node; i++)
        if (g->node[i]->name && strcmp(g->node[i]->name, name) == 0) {
            *index = i;
            return QC_OK;
        }
    return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'node': the graph has no node called '%.200s'", name);
}

size_t qcm__consumers(const qc_model *m, const char *name, size_t *first, int *is_output)
{
    const Onnx__GraphProto *g = m->proto->graph;
    size_t count = 0;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_input; k++)
            if (strcmp(g->node[i]->input[k], name) == 0) {
                if (count++ == 0 && first) *first = i;
                break;
            }
    if (is_output) {
        *is_output = 0;
        for (size_t i = 0; i < g->n_output; i++)
            if (g->output[i]->name && strcmp(g->output[i]->name, name) == 0) *is_output = 1;
    }
    return count;
}

size_t qcm__producer(const qc_model *m, const char *name)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (strcmp(g->node[i]->output[k], name) == 0) return i;
    return QCM_NONE;
}

static int64_t int_attribute(const Onnx__NodeProto *n, const char *name, int64_t fallback)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i]->i;
    return fallback;
}

static float float_attribute(const Onnx__NodeProto *n, const char *name, float fallback)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i]->f;
    return fallback;
}

/* A FLOAT initializer called `name` holding `count` values shaped [count] or [1, count]; its index or
 * QCM_NONE. */
static size_t constant_vector(const qc_model *m, const char *name, int64_t count)
{
    size_t i;
    qc_initializer_info info;
    if (qc_model_find_initializer(m, name, &i) != QC_OK) {
        qc_clear_error();
        return QCM_NONE;
    }
    if (qc_model_initializer(m, i, &info) != QC_OK || info.elem_type != QC_ONNX_FLOAT) return QCM_NONE;
    int shaped = (info.ndim == 1 && info.dims[0] == count) || (info.ndim == 2 && info.dims[0] == 1 && info.dims[1] == count);
    return shaped && qcm__consumers(m, name, NULL, NULL) == 1 ? i : QCM_NONE;
}

/* A MatMul's bias: the Add that is its output's only consumer, when its other input is a constant [out]. */
static void matmul_bias(const qc_model *m, qcm_linear *l)
{
    const Onnx__GraphProto *g = m->proto->graph;
    const char *y = g->node[l->node]->output[0];
    size_t add;
    int is_output;
    l->output = y;
    if (qcm__consumers(m, y, &add, &is_output) != 1 || is_output || strcmp(g->node[add]->op_type, "Add") != 0 ||
        g->node[add]->n_input != 2)
        return;
    const Onnx__NodeProto *a = g->node[add];
    const char *other = strcmp(a->input[0], y) == 0 ? a->input[1] : a->input[0];
    size_t bias = constant_vector(m, other, l->out);
    if (bias == QCM_NONE) return;
    l->bias = bias, l->bias_node = add, l->output = a->output[0];
}

static qc_status weight_of(const qc_model *m, qcm_linear *l, const char *name, const char *node, const char *function)
{
    qc_initializer_info info;
    if (qc_model_find_initializer(m, name, &l->weight) != QC_OK) {
        qc_clear_error();
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': its weight '%.200s' is not a constant "
                           "(initializer); only layers with constant weights can be rotated", node, name);
    }
    QCM_TRY(qc_model_initializer(m, l->weight, &info));
    if (info.elem_type != QC_ONNX_FLOAT || info.ndim != 2)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': its weight '%.200s' is %s of rank %d, not a "
                           "FLOAT matrix", node, name, qc_onnx_type_string(info.elem_type), (int)info.ndim);
    if (qcm__consumers(m, name, NULL, NULL) != 1)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': its weight '%.200s' is read by other nodes too, "
                           "which would change with it", node, name);
    l->in = info.dims[l->transposed ? 1 : 0];
    l->out = info.dims[l->transposed ? 0 : 1];
    return QC_OK;
}

qc_status qcm__linear(const qc_model *m, size_t node, qcm_linear *out, const char *function)
{
    const Onnx__NodeProto *n = m->proto->graph->node[node];
    qcm_linear l = {.node = node, .bias = QCM_NONE, .bias_node = QCM_NONE, .input = n->n_input ? n->input[0] : ""};
    int gemm = strcmp(n->op_type, "Gemm") == 0;
    if ((!gemm && strcmp(n->op_type, "MatMul") != 0) || (n->domain && n->domain[0]) || n->n_input < 2)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s' is a %s, not a MatMul or Gemm with a constant "
                           "weight", n->name, n->op_type);
    if (gemm && int_attribute(n, "transA", 0) != 0)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': a Gemm with transA = 1 is not supported", n->name);
    l.transposed = gemm && int_attribute(n, "transB", 0) != 0;
    QCM_TRY(weight_of(m, &l, n->input[1], n->name, function));
    if (!gemm) matmul_bias(m, &l);
    else {
        l.output = n->output[0];
        if (n->n_input > 2 && n->input[2][0]) {
            l.bias = constant_vector(m, n->input[2], l.out);
            if (l.bias == QCM_NONE)
                return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': its C input is not a constant [%lld] "
                                   "read by it alone", n->name, (long long)l.out);
            l.bias_node = node;
        }
        if (float_attribute(n, "alpha", 1.0f) != 1.0f || float_attribute(n, "beta", 1.0f) != 1.0f)
            return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s': a Gemm with alpha or beta other than 1 is "
                               "not supported", n->name);
    }
    *out = l;
    return QC_OK;
}

qc_status qcm__named_linear(const qc_model *m, const char *name, size_t *index, qcm_linear *out, const char *function)
{
    if (m == NULL) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'model' is NULL");
    if (name == NULL) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'node' is NULL");
    QCM_TRY(qcm__find_node(m, name, index, function));
    return qcm__linear(m, *index, out, function);
}

/* The initializer's values as doubles (its bytes may be unaligned: copied float by float). */
static void read_floats(const qc_model *m, size_t index, double *out, int64_t count)
{
    qc_initializer_info info;
    qc_model_initializer(m, index, &info);
    const unsigned char *bytes = info.data;
    for (int64_t i = 0; i < count; i++) {
        float v;
        memcpy(&v, bytes + 4 * i, sizeof v);
        out[i] = v;
    }
}

static qc_status write_floats(qc_model *m, size_t index, const double *values, int64_t count, const char *function)
{
    qc_initializer_info info;
    QCM_TRY(qc_model_initializer(m, index, &info));
    float *f = malloc((size_t)count * sizeof *f);
    char *name = strdup(info.name);
    if (!f || !name) {
        free(f), free(name);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %lld values", (long long)count);
    }
    for (int64_t i = 0; i < count; i++) f[i] = (float)values[i];
    int64_t dims[QC_MAX_DIMS];
    memcpy(dims, info.dims, sizeof dims);
    qc_status st = qc_model_set_initializer(m, name, QC_ONNX_FLOAT, info.ndim, dims, f, (size_t)count * sizeof *f);
    free(f), free(name);
    return st;
}

qc_status qcm__read_weight(const qc_model *m, const qcm_linear *l, double *w, const char *function)
{
    read_floats(m, l->weight, w, l->in * l->out);
    if (!l->transposed) return QC_OK;
    double *t = malloc((size_t)(l->in * l->out) * sizeof *t);
    if (t == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a weight");
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t i = 0; i < l->in; i++) t[i * l->out + o] = w[o * l->in + i];
    memcpy(w, t, (size_t)(l->in * l->out) * sizeof *t);
    free(t);
    return QC_OK;
}

qc_status qcm__write_weight(qc_model *m, const qcm_linear *l, const double *w, const char *function)
{
    if (!l->transposed) return write_floats(m, l->weight, w, l->in * l->out, function);
    double *t = malloc((size_t)(l->in * l->out) * sizeof *t);
    if (t == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a weight");
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t i = 0; i < l->in; i++) t[o * l->in + i] = w[i * l->out + o];
    qc_status st = write_floats(m, l->weight, t, l->in * l->out, function);
    free(t);
    return st;
}

void qcm__read_bias(const qc_model *m, const qcm_linear *l, double *b)
{
    if (l->bias == QCM_NONE) memset(b, 0, (size_t)l->out * sizeof *b);
    else read_floats(m, l->bias, b, l->out);
}

qc_status qcm__write_bias(qc_model *m, const qcm_linear *l, const double *b, const char *function)
{
    return write_floats(m, l->bias, b, l->out, function);
}

void qcm__dgemm(int trans_a, int64_t m, int64_t n, int64_t k, const double *a, const double *b, double *c)
{
#ifdef _OPENMP
    int saved = omp_get_max_threads(); /* OpenBLAS's OpenMP build sizes its team from this */
    omp_set_num_threads(1);
#endif
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, 1.0,
                a, (blasint)(trans_a ? m : k), b, (blasint)n, 0.0, c, (blasint)n);
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
}

static qc_status orthogonality(const double *r, int64_t n, double tolerance, const char *function)
{
    double *p = malloc((size_t)(n * n) * sizeof *p);
    if (p == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for R^T R");
    qcm__dgemm(1, n, n, n, r, r, p);
    double worst = 0.0;
    for (int64_t i = 0; i < n * n; i++) worst = fmax(worst, fabs(p[i] - (i / n == i % n ? 1.0 : 0.0)));
    free(p);
    if (worst <= tolerance) return QC_OK;
    return QCM_FAIL_IN(function, QC_ERR_NUMERIC, "argument 'r' is not orthogonal: max |R^T R - I| = %.3g exceeds the "
                       "tolerance %.3g", worst, tolerance);
}

qc_status qcm__rotation(double **out, const qc_tensor *r, int64_t n, double tolerance, const char *function)
{
    if (r == NULL) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'r' is NULL");
    if (!(tolerance > 0.0 && tolerance < 1.0))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'tolerance' = %g is outside (0, 1)", tolerance);
    if (qc_tensor_check(r, "r") != QC_OK) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "%s", qc_last_error());
    if (r->dtype != QC_DT_F32 && r->dtype != QC_DT_F64)
        return QCM_FAIL_IN(function, QC_ERR_DTYPE, "argument 'r' must be f32 or f64");
    if (!qc_tensor_is_contiguous(r)) return QCM_FAIL_IN(function, QC_ERR_LAYOUT, "argument 'r' must be C-contiguous");
    if (r->ndim != 2 || r->dims[0] != r->dims[1] || (n > 0 && r->dims[0] != n) || r->dims[0] < 1)
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "argument 'r' must be [%lld, %lld] for this layer, got %d-D [%lld, ...]",
                           (long long)n, (long long)n, (int)r->ndim, (long long)(r->ndim ? r->dims[0] : 0));
    int64_t size = r->dims[0], count = size * size;
    double *copy = malloc((size_t)count * sizeof *copy);
    if (copy == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for R");
    for (int64_t i = 0; i < count; i++) {
        copy[i] = r->dtype == QC_DT_F32 ? (double)((const float *)r->data)[i] : ((const double *)r->data)[i];
        if (!isfinite(copy[i])) {
            free(copy);
            return QCM_FAIL_IN(function, QC_ERR_NUMERIC, "argument 'r' has a NaN or Inf at flat index %lld", (long long)i);
        }
    }
    qc_status st = orthogonality(copy, size, tolerance, function);
    if (st != QC_OK) free(copy);
    else *out = copy;
    return st;
}

qc_status qcm__readers(const qc_model *m, const char *value, int64_t width, int need_bias, qcm_linear **layers,
                       size_t *count, const char *function)
{
    int is_output;
    size_t n = qcm__consumers(m, value, NULL, &is_output);
    if (is_output || n == 0)
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "value '%.200s' is %s, so its readers cannot undo the change",
                           value, is_output ? "a graph output" : "read by no node");
    const Onnx__GraphProto *g = m->proto->graph;
    qcm_linear *out = malloc(n * sizeof *out);
    if (out == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    size_t found = 0;
    qc_status st = QC_OK;
    for (size_t i = 0; st == QC_OK && i < g->n_node && found < n; i++) {
        int reads = 0;
        for (size_t k = 0; k < g->node[i]->n_input; k++) reads |= strcmp(g->node[i]->input[k], value) == 0;
        if (!reads) continue;
        st = qcm__linear(m, i, &out[found], function);
        if (st == QC_OK && (strcmp(out[found].input, value) != 0 || out[found].in != width))
            st = QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s' reads '%.200s' other than as its input x of "
                             "width %lld", g->node[i]->name, value, (long long)width);
        if (st == QC_OK && need_bias && out[found].bias == QCM_NONE)
            st = QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "node '%.200s' has no constant bias to take the shift",
                             g->node[i]->name);
        found++;
    }
    if (st != QC_OK) free(out);
    else *layers = out, *count = found;
    return st;
}

int qcm__linear_producing(const qc_model *m, const char *value, qcm_linear *out)
{
    const Onnx__GraphProto *g = m->proto->graph;
    size_t p = qcm__producer(m, value);
    if (p != QCM_NONE && strcmp(g->node[p]->op_type, "Add") == 0) /* a bias: the layer is behind one input */
        for (size_t k = 0; k < g->node[p]->n_input; k++) {
            size_t behind = qcm__producer(m, g->node[p]->input[k]);
            if (behind != QCM_NONE && strcmp(g->node[behind]->op_type, "MatMul") == 0) {
                p = behind;
                break;
            }
        }
    if (p == QCM_NONE || qcm__linear(m, p, out, "") != QC_OK) {
        qc_clear_error();
        return 0;
    }
    return strcmp(out->output, value) == 0;
}
