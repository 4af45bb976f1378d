/* Internal: what the fusion transforms (fuse_*.c) share: finding a linear layer with constant weights in
 * the graph, reading and writing its weight and bias in ONNX's [in, out] orientation in double, and
 * walking the graph's producers and consumers. */
#ifndef QC_MODEL_FUSE_H
#define QC_MODEL_FUSE_H

#include <stdint.h>

#include "model_internal.h"

#define QCM_NONE ((size_t)-1)

/* A linear layer y = x W (+ b): a MatMul whose second input is a FLOAT initializer [in, out], with an
 * optional Add of a constant [out] (or [1, out]) as the MatMul output's only consumer; or a Gemm with
 * transA = 0 and a constant B ([in, out], or [out, in] with transB = 1) and optional constant C. */
typedef struct qcm_linear {
    size_t node;          /* the MatMul or Gemm */
    size_t weight;        /* initializer index of W */
    int transposed;       /* W is stored [out, in] (Gemm transB = 1) */
    int64_t in, out;
    size_t bias;          /* initializer index of b ([out] values), or QCM_NONE */
    size_t bias_node;     /* the Add holding b (the Gemm itself for C), or QCM_NONE */
    const char *input;    /* x (borrowed from the model) */
    const char *output;   /* y: the bias Add's output when there is one */
} qcm_linear;

/* Index of the node called `name`; QC_ERR_INVALID_ARG naming it (on behalf of `function`) when none. */
qc_status qcm__find_node(const qc_model *m, const char *name, size_t *index, const char *function);

/* Reads node `node` as a linear layer; QC_ERR_UNSUPPORTED naming the node and the reason otherwise
 * (another op, a weight that is not a FLOAT initializer of rank 2, a weight other nodes read too). */
qc_status qcm__linear(const qc_model *m, size_t node, qcm_linear *out, const char *function);

/* qcm__find_node then qcm__linear; NULL model or name give QC_ERR_INVALID_ARG naming 'model' or 'node'. */
qc_status qcm__named_linear(const qc_model *m, const char *name, size_t *index, qcm_linear *out, const char *function);

/* The number of nodes reading `name`, the first of them in *first (may be NULL), and whether it is a
 * graph output (*is_output, may be NULL). */
size_t qcm__consumers(const qc_model *m, const char *name, size_t *first, int *is_output);

/* Every reader of `value` as a linear layer taking it as x of width `width` (with a bias when
 * `need_bias`), checked before anything changes: *layers (malloc'd, the caller frees) gets *count of them.
 * QC_ERR_UNSUPPORTED naming the first reader that is not such a layer, or a value that is a graph output
 * or read by nothing. */
qc_status qcm__readers(const qc_model *m, const char *value, int64_t width, int need_bias, qcm_linear **layers,
                       size_t *count, const char *function);

/* The node producing `name`, or QCM_NONE (graph inputs, initializers). */
size_t qcm__producer(const qc_model *m, const char *name);

/* 1 when `value` is the output y of a linear layer (its MatMul, Gemm or bias Add), read into *out. */
int qcm__linear_producing(const qc_model *m, const char *value, qcm_linear *out);

/* W [in, out] (row-major, double) of the layer into w (in * out doubles). */
qc_status qcm__read_weight(const qc_model *m, const qcm_linear *l, double *w, const char *function);

/* Writes w [in, out] back as the layer's FLOAT weight, in its stored orientation. */
qc_status qcm__write_weight(qc_model *m, const qcm_linear *l, const double *w, const char *function);

/* The bias [out] into b (zeros when the layer has none). */
void qcm__read_bias(const qc_model *m, const qcm_linear *l, double *b);

/* Writes b [out] back as the layer's bias, which must exist. */
qc_status qcm__write_bias(qc_model *m, const qcm_linear *l, const double *b, const char *function);

/* c [m, n] = op(a) [m, k] b [k, n], op = transpose when trans_a; row-major doubles, one BLAS thread (the
 * matrices are one layer's weights, and the result must not depend on the machine's threads). */
void qcm__dgemm(int trans_a, int64_t m, int64_t n, int64_t k, const double *a, const double *b, double *c);

/* A rotation argument: `r` (f32 or f64, C-contiguous, [n, n] finite) with max |R^T R - I| <= tolerance
 * (0 < tolerance < 1), copied into *out (n * n doubles, malloc'd, the caller frees). QC_ERR_SHAPE when n
 * differs from `n` (when n > 0), QC_ERR_NUMERIC naming the deviation otherwise. */
qc_status qcm__rotation(double **out, const qc_tensor *r, int64_t n, double tolerance, const char *function);

/* The attention whose output projection is layer o: o's input comes, through Reshape and Transpose nodes
 * each read by the next alone, from the product P V (a MatMul read by that path alone; its output value in
 * *product, borrowed, may be NULL), and V, likewise, from the linear layer *v of o's input width.
 * QC_ERR_UNSUPPORTED naming o's node and the step that is missing otherwise. */
qc_status qcm__attention(const qc_model *m, const qcm_linear *o, const char **product, qcm_linear *v, const char *function);

#endif
