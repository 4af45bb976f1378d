/*
 * qc_model.h: ONNX models in and out (libqcore-onnx.so.1; link with `pkg-config --libs qcore-onnx`).
 *
 * A qc_model holds a parsed ONNX ModelProto. Strings and data views it hands out are borrowed: they stay
 * valid until the model is freed or the item they belong to is edited. Tensor data is exposed as raw
 * little-endian bytes in ONNX's layout (4-bit types two per byte, low nibble first), without copies
 * when the file stores it that way (raw_data, or external data, which is memory-mapped).
 *
 * Errors follow qc_core.h: a qc_status, and qc_last_error() naming the function, the argument and, for
 * files, the offending item (QC_ERR_FORMAT for malformed models, QC_ERR_IO for files that cannot be
 * read or written).
 */
#ifndef QC_MODEL_H
#define QC_MODEL_H

#include "qcore/qc_gpxq.h"
#include "qcore/qc_ethosu.h"
#include "qcore/qc_lq.h"
#include "qcore/qc_quant.h"
#include "qcore/qc_search.h"
#include "qcore/qc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(QC_BUILDING_ONNX_LIBRARY) && defined(__GNUC__)
#define QC_ONNX_API __attribute__((visibility("default")))
#else
#define QC_ONNX_API
#endif

/* ONNX TensorProto.DataType values (onnx.proto), including those newer than Debian's schema. */
typedef enum qc_onnx_type {
    QC_ONNX_UNDEFINED = 0,
    QC_ONNX_FLOAT = 1,
    QC_ONNX_UINT8 = 2,
    QC_ONNX_INT8 = 3,
    QC_ONNX_UINT16 = 4,
    QC_ONNX_INT16 = 5,
    QC_ONNX_INT32 = 6,
    QC_ONNX_INT64 = 7,
    QC_ONNX_STRING = 8,
    QC_ONNX_BOOL = 9,
    QC_ONNX_FLOAT16 = 10,
    QC_ONNX_DOUBLE = 11,
    QC_ONNX_UINT32 = 12,
    QC_ONNX_UINT64 = 13,
    QC_ONNX_COMPLEX64 = 14,
    QC_ONNX_COMPLEX128 = 15,
    QC_ONNX_BFLOAT16 = 16,
    QC_ONNX_FLOAT8E4M3FN = 17,
    QC_ONNX_FLOAT8E4M3FNUZ = 18,
    QC_ONNX_FLOAT8E5M2 = 19,
    QC_ONNX_FLOAT8E5M2FNUZ = 20,
    QC_ONNX_UINT4 = 21,
    QC_ONNX_INT4 = 22,
    QC_ONNX_FLOAT4E2M1 = 23,
    QC_ONNX_FLOAT8E8M0 = 24,
    QC_ONNX_UINT2 = 25,
    QC_ONNX_INT2 = 26
} qc_onnx_type;

/* Bits per element of an ONNX type (2 .. 128); 0 for STRING, UNDEFINED and unknown values. */
QC_ONNX_API int qc_onnx_type_bits(int32_t type);

/* The ONNX name ("FLOAT", "INT4", ...); "UNKNOWN" for other values. Static. */
QC_ONNX_API const char *qc_onnx_type_string(int32_t type);

typedef struct qc_model qc_model;

/* Loads an ONNX model file. The file is memory-mapped and initializers' raw_data stay in the mapping
 * (no copy: a model takes about its file's size in memory); external data files named by its
 * initializers (relative to the model's folder) are checked and memory-mapped. `out` receives a
 * model owned by the caller (qc_model_free). */
QC_ONNX_API qc_status qc_model_load(qc_model **out, const char *path);

/* Loads a model from `size` bytes at `data` (borrowed during the call; the model keeps a copy). External data is looked up
 * in `external_dir` (borrowed; NULL: a model with external data is an error). */
QC_ONNX_API qc_status qc_model_load_memory(qc_model **out, const void *data, size_t size, const char *external_dir);

/* Frees a model; NULL is accepted. */
QC_ONNX_API void qc_model_free(qc_model *model);

#define QC_MODEL_SAVE_OPTIONS_VERSION 1

typedef struct qc_model_save_options {
    uint32_t version;              /* QC_MODEL_SAVE_OPTIONS_VERSION */
    uint64_t external_threshold;   /* initializers of at least this many bytes go to the external data
                                      file; 0: everything stays inside the model file (default 0) */
    const char *external_file;     /* borrowed; file name in the model's folder; NULL: "<model file>.data" */
} qc_model_save_options;

#define QC_MODEL_SAVE_OPTIONS_INIT { QC_MODEL_SAVE_OPTIONS_VERSION, 0, NULL }

/* Writes the model to `path` atomically (a temporary file in the same folder, then a rename; an external
 * data file likewise, before the model): on failure nothing is left behind and an existing file at
 * `path` is untouched. Fields the schema does not know are written back as they were read. An IR version
 * above 10 is written as 10 (enough for ONNX opsets up to 21 and every type up to INT4) unless the model
 * imports a newer ONNX opset or an initializer uses a newer type. `opts` may be NULL for the defaults. */
QC_ONNX_API qc_status qc_model_save(const qc_model *model, const char *path, const qc_model_save_options *opts);

/* ---------------------------------------------------------------------------------------------
 * Inspection.
 */
typedef enum qc_model_item {
    QC_MODEL_INPUTS = 0,       /* graph inputs that are not initializers */
    QC_MODEL_OUTPUTS = 1,
    QC_MODEL_NODES = 2,
    QC_MODEL_INITIALIZERS = 3,
    QC_MODEL_OPSETS = 4,
    QC_MODEL_METADATA = 5
} qc_model_item;

/* How many items of a kind the model has (0 for a NULL model or an unknown kind). */
QC_ONNX_API size_t qc_model_count(const qc_model *model, qc_model_item kind);

/* ir_version, and the producer's name and version (borrowed; "" when absent). Any output may be NULL. */
QC_ONNX_API qc_status qc_model_header(const qc_model *model, int64_t *ir_version, const char **producer_name,
                                      const char **producer_version);

/* Opset i: its domain ("" for the default ONNX domain) and version. */
QC_ONNX_API qc_status qc_model_opset(const qc_model *model, size_t i, const char **domain, int64_t *version);

/* The version the model imports for `domain` ("" or "ai.onnx" for ONNX); 0 when it imports none. */
QC_ONNX_API int64_t qc_model_opset_version(const qc_model *model, const char *domain);

/* Metadata entry i (metadata_props): key and value, borrowed. */
QC_ONNX_API qc_status qc_model_metadata(const qc_model *model, size_t i, const char **key, const char **value);

/* A graph input or output. dims[d] is -1 where the file gives a symbolic (dim_params[d] then names it)
 * or no size. ndim is -1 when the rank is unknown. Ranks above QC_MAX_DIMS give QC_ERR_UNSUPPORTED. */
typedef struct qc_value_info {
    const char *name;
    int32_t elem_type;                       /* a qc_onnx_type; 0 when not a tensor */
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    const char *dim_params[QC_MAX_DIMS];     /* NULL when the dimension is not symbolic */
} qc_value_info;

/* Graph input i (initializers excluded; i < qc_model_count(model, QC_MODEL_INPUTS)), resp. graph output i,
 * into `out` (its strings borrowed from the model). QC_ERR_INVALID_ARG for NULL or an index out of range. */
QC_ONNX_API qc_status qc_model_input(const qc_model *model, size_t i, qc_value_info *out);
QC_ONNX_API qc_status qc_model_output(const qc_model *model, size_t i, qc_value_info *out);

/* Node i of the graph, in file order. inputs/outputs are arrays of borrowed names; an omitted optional
 * input is "". */
typedef struct qc_node_info {
    const char *name;
    const char *op_type;
    const char *domain;                      /* "" for the default ONNX domain */
    size_t num_inputs;
    const char *const *inputs;
    size_t num_outputs;
    const char *const *outputs;
    size_t num_attributes;
} qc_node_info;

/* Node i (i < qc_model_count(model, QC_MODEL_NODES)) into `out`. QC_ERR_INVALID_ARG for NULL or an index
 * out of range. */
QC_ONNX_API qc_status qc_model_node(const qc_model *model, size_t i, qc_node_info *out);

/* An initializer. `data` views its bytes (little-endian, ONNX layout; nbytes of them): a view into the
 * file or its external data when stored raw, else a conversion made once from the typed field and kept
 * with the model. A view into the file lies wherever the file put it, so it need not be aligned to the
 * element size: copy (or memcpy element-wise) before typed access. ONNX ranks above QC_MAX_DIMS give QC_ERR_UNSUPPORTED. */
typedef struct qc_initializer_info {
    const char *name;
    int32_t elem_type;
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    const void *data;
    size_t nbytes;
    int32_t is_external;                     /* 1 when the file keeps the bytes in external data */
} qc_initializer_info;

/* Initializer i (i < qc_model_count(model, QC_MODEL_INITIALIZERS)) into `out`. QC_ERR_INVALID_ARG for NULL
 * or an index out of range, QC_ERR_UNSUPPORTED for a rank above QC_MAX_DIMS. */
QC_ONNX_API qc_status qc_model_initializer(const qc_model *model, size_t i, qc_initializer_info *out);

/* Index of the initializer called `name`; QC_ERR_INVALID_ARG naming it when there is none. */
QC_ONNX_API qc_status qc_model_find_initializer(const qc_model *model, const char *name, size_t *index);

/* ---------------------------------------------------------------------------------------------
 * Editing. Edits change the model in memory; views handed out for an edited item become invalid.
 * Names are copied. A node's inputs may name values that do not exist yet; qc_model_sort reports what
 * stays unresolved.
 */

/* Replaces initializer `name` with a new type, shape and bytes (`nbytes` of `data`, copied; ONNX raw
 * layout, 4-bit types packed two per byte). QC_ERR_SHAPE when nbytes disagrees with type and shape. */
QC_ONNX_API qc_status qc_model_set_initializer(qc_model *model, const char *name, int32_t elem_type, int ndim,
                                               const int64_t *dims, const void *data, size_t nbytes);

/* Adds an initializer; QC_ERR_INVALID_ARG when a value called `name` already exists. */
QC_ONNX_API qc_status qc_model_add_initializer(qc_model *model, const char *name, int32_t elem_type, int ndim,
                                               const int64_t *dims, const void *data, size_t nbytes);

/* Appends a node. `domain` may be NULL or "" (ONNX), `name` may be NULL; inputs may be "" for omitted
 * optional ones. `index` (may be NULL) receives its position. */
QC_ONNX_API qc_status qc_model_add_node(qc_model *model, size_t *index, const char *op_type, const char *domain,
                                        const char *name, size_t num_inputs, const char *const *inputs,
                                        size_t num_outputs, const char *const *outputs);

typedef enum qc_attribute_kind {
    QC_ATTRIBUTE_FLOAT = 1,     /* values: float[1] */
    QC_ATTRIBUTE_INT = 2,       /* values: int64_t[1] */
    QC_ATTRIBUTE_STRING = 3,    /* values: char[count] */
    QC_ATTRIBUTE_FLOATS = 6,    /* values: float[count] */
    QC_ATTRIBUTE_INTS = 7       /* values: int64_t[count] */
} qc_attribute_kind;

/* Sets (adds or replaces) attribute `name` of node `node`; `values` are copied. */
QC_ONNX_API qc_status qc_model_set_attribute(qc_model *model, size_t node, const char *name, qc_attribute_kind kind,
                                             const void *values, size_t count);

/* Makes the model import `domain` ("" for ONNX) at least at `version` (never lowers it). */
QC_ONNX_API qc_status qc_model_require_opset(qc_model *model, const char *domain, int64_t version);

/* Quantizes value `name` in the graph, ONNX QDQ style, with the given parameters (scale f32 and zero
 * point i32, shaped as qc_quant_param_shape gives for `opts`; zero_point may be NULL for a symmetric
 * grid). An initializer is replaced by its integers (qc_quantize) and a DequantizeLinear that
 * recreates the name; any other value gets QuantizeLinear + DequantizeLinear in front of its
 * consumers. The integer type follows the grid: 8 bits INT8/UINT8, 4 bits INT4/UINT4, 16 bits
 * INT16/UINT16 (others: QC_ERR_UNSUPPORTED). The opset and IR version are raised as the format needs
 * (axis: opset 13; 4- and 16-bit types and block_size: opset 21, IR 10). */
QC_ONNX_API qc_status qc_model_insert_qdq(qc_model *model, qc_ctx *ctx, const char *name, const qc_tensor *scale,
                                          const qc_tensor *zero_point, const qc_quant_options *opts);

/* Puts the nodes in an order where each runs after the producers of its inputs (stable otherwise).
 * QC_ERR_FORMAT naming a node that reads a value nothing provides, or a cycle. */
QC_ONNX_API qc_status qc_model_sort(qc_model *model);

/* Removes nodes no graph output depends on, then initializers nothing reads. `removed_nodes` and
 * `removed_initializers` (either may be NULL) receive the counts. */
QC_ONNX_API qc_status qc_model_remove_dead(qc_model *model, size_t *removed_nodes, size_t *removed_initializers);

/* ---------------------------------------------------------------------------------------------
 * Rotations fused into the model (libqcore-onnx 1.1). Each transform keeps the model's float function:
 * a linear layer y = x W (+ b) here is a MatMul whose second input is a FLOAT initializer W [in, out]
 * (ONNX's layout), optionally followed by an Add of a constant b [out] as the MatMul output's only
 * reader, or a Gemm with transA = 0, alpha = beta = 1 and a constant B (transB = 1: stored [out, in])
 * and optional constant C [out]. Its weight must be read by that node alone (it changes in place).
 * Layers are named by their MatMul or Gemm node's name. Rotations are dense f32 or f64 matrices
 * (borrowed; make them with qc_random_orthogonal, qc_random_hadamard_matrix or qc_cayley_minimize),
 * checked to be orthogonal: max |R^T R - I| <= `tolerance`, 0 < tolerance < 1 (1e-4 suits f32 matrices).
 * Weights are transformed in double and stored back as FLOAT.
 * Errors (each naming the node or value): QC_ERR_INVALID_ARG (NULL, no such node, tolerance out of
 * range), QC_ERR_UNSUPPORTED (the node is not such a linear layer, its weight is not a constant or is
 * shared, a value that must be rotated is read by something else than the layers named, or is a graph
 * output), QC_ERR_SHAPE (R's size does not fit the layer), QC_ERR_DTYPE, QC_ERR_LAYOUT, QC_ERR_NUMERIC
 * (NaN or Inf in R, or R not orthogonal within the tolerance: the message gives max |R^T R - I|),
 * QC_ERR_OUT_OF_MEMORY. The checks come before any change; only a failed allocation can stop a transform
 * half way. */

/* Folds the scale of the normalization node `node` into the linear layers that read its output: a
 * LayerNormalization (axis -1) with constant scale gamma and optional shift beta, or a Mul by a constant
 * vector gamma over the last axis (RMS-style). Every reader of the output must be a linear layer taking
 * it as x; then W <- diag(gamma) W and b <- b + beta W (a reader without a bias cannot take a shift:
 * QC_ERR_UNSUPPORTED), and the node is left with gamma = 1 and beta = 0. gamma and beta must be
 * initializers read by this node alone. */
QC_ONNX_API qc_status qc_model_fold_norm(qc_model *model, const char *node);

/* Rotates the input side of layer `node` by R [in, in]: its weight becomes R^T W and its input x R. When
 * x is the output of another linear layer that this layer alone reads, x R is folded into that layer
 * (W_p <- W_p R, b_p <- b_p R); otherwise (e.g. after a post-LN model's LayerNormalization) a MatMul by
 * the constant R is inserted as an online rotation ("<x>_rotated", R stored in f32 as "<node>_rotation"),
 * shared with an earlier identical rotation of the same x, and the nodes are re-sorted. `online` (may be
 * NULL) receives 1 when nodes were inserted, 0 when R was folded. */
QC_ONNX_API qc_status qc_model_rotate_input(qc_model *model, const char *node, const qc_tensor *r, double tolerance,
                                            int *online);

/* Rotates the output side of layer `node` by R [out, out] (W <- W R, b <- b R) and, to match, the input
 * side of every reader of its output y (W_c <- R^T W_c): each reader must be a linear layer taking y as
 * its x, and y must not be a graph output. */
QC_ONNX_API qc_status qc_model_rotate_output(qc_model *model, const char *node, const qc_tensor *r, double tolerance);

/* Per-head rotations of an attention block, found from the graph: `node` is the output projection O,
 * whose input comes, through Reshape and Transpose nodes, from the attention product P V, whose V comes,
 * through Reshape and Transpose nodes, from the value projection, a linear layer. With B the block
 * diagonal of the heads' R_h [d, d] (`r`: [heads, d, d], or [d, d] for every head; heads = O's input
 * width / d), V's weight and bias become W_v B, b_v B and O's weight B^T W_o. The heads must be the
 * contiguous blocks of d columns of V's output (the layout a Reshape to [.., heads, d] gives); P V mixes
 * tokens within each head, so it commutes with B. Each value on the way must be read by the next node
 * alone. */
QC_ONNX_API qc_status qc_model_rotate_heads(qc_model *model, const char *node, const qc_tensor *r, double tolerance);

/* ---------------------------------------------------------------------------------------------
 * Executor: runs a model's graph in float32 on the CPU (BLAS for MatMul, Gemm and Conv), with the
 * context's threads. A session plans the graph once (order, kernels, buffers) and reuses its buffers
 * across runs. An op the executor does not cover is an error naming the op and its node.
 */
typedef struct qc_session qc_session;

/* Plans `model` (borrowed: it must outlive the session, and initializers are read from it until replaced)
 * with `ctx` (borrowed likewise). Errors: QC_ERR_UNSUPPORTED naming the first op without a kernel,
 * QC_ERR_FORMAT for a graph whose nodes read values nothing produces, or that has a cycle. */
QC_ONNX_API qc_status qc_session_create(qc_session **out, const qc_model *model, qc_ctx *ctx);

/* Frees a session; NULL is accepted. */
QC_ONNX_API void qc_session_free(qc_session *session);

/* Binds graph input `name` to `value` (borrowed until the next run returns; C-contiguous). Its dtype
 * must match the input's element type and its shape the declared dims (symbolic dims take any size). */
QC_ONNX_API qc_status qc_session_set_input(qc_session *session, const char *name, const qc_tensor *value);

/* Replaces initializer `name` with a copy of `value` (same dtype and shape), for every later run,
 * without reloading the model. */
QC_ONNX_API qc_status qc_session_set_initializer(qc_session *session, const char *name, const qc_tensor *value);

/* Keeps intermediate value `name` after each run so that qc_session_value can read it (graph outputs
 * are always kept). */
QC_ONNX_API qc_status qc_session_capture(qc_session *session, const char *name);

/* Runs the graph on the bound inputs. */
QC_ONNX_API qc_status qc_session_run(qc_session *session);

/* A view of value `name` (a graph output or a captured value) from the last run, valid until the next
 * run or qc_session_free. */
QC_ONNX_API qc_status qc_session_value(const qc_session *session, const char *name, qc_tensor *out);

/* How the integer linear ops (MatMulInteger, QLinearMatMul) accumulate their dot products. */
typedef enum qc_accumulator_mode {
    QC_ACCUMULATE_EXACT = 0,     /* int32 as ONNX specifies; a sum beyond int32 is an error */
    QC_ACCUMULATE_WRAP = 1,      /* a P-bit two's-complement register: each partial sum wraps around */
    QC_ACCUMULATE_SATURATE = 2   /* a P-bit register that clamps each partial sum to its range */
} qc_accumulator_mode;

/* Simulates a P-bit accumulator (`bits` = P in 2..32; ignored for EXACT) in later runs. Each dot product
 * adds its terms in order of the reduction index into the register. */
QC_ONNX_API qc_status qc_session_set_accumulator(qc_session *session, int bits, qc_accumulator_mode mode);

/* What the integer linear ops of the last run saw. */
typedef struct qc_accumulator_stats {
    uint64_t dot_products;           /* dot products computed */
    uint64_t overflowing_products;   /* of them, those whose partial sums left the P-bit range at least once */
    uint64_t overflow_events;        /* partial sums outside the range, over all dot products */
    int64_t max_abs_partial_sum;     /* the largest |partial sum| of the exact arithmetic */
} qc_accumulator_stats;

/* The counts of the last run into `out` (zeros before any run). QC_ERR_INVALID_ARG for NULL. */
QC_ONNX_API qc_status qc_session_accumulator_stats(const qc_session *session, qc_accumulator_stats *out);

/* How later runs execute uniform quantized linear layers. A MatMul or Gemm (transA = 0) runs on integers
 * when its activation is DequantizeLinear(QuantizeLinear(x)) with one constant scale and zero point each
 * (int8, uint8, int4 or uint4) and its weight DequantizeLinear of a constant 2-D int8, uint8, int4 or
 * uint4 initializer with one scale or one per output column (no block_size), and the reduced dimension K
 * padded to a multiple of 64 is at most 65535. x is quantized once, as QuantizeLinear does; the sums
 * sum_k (x_q - x_zero)(w_q - w_zero) are taken exactly in int32, or through the session's simulated
 * accumulator (qc_session_set_accumulator, counted in its statistics as MatMulInteger's), then
 * y = x_scale * w_scale * sum (Gemm: alpha * that + beta * C) in float. The exact sums come from one of
 * two kernels, which give the same integers and so the same output bits:
 *   - qc_int8_gemm (VNNI or AVX2), for any codes;
 *   - the bit-serial kernels (qc_bitserial_layer on AND-popcounts), when the weights' codes span at most
 *     4 bits (Kw, fixed per session) and the run's input codes at most 4 (Ka; a Clip in front of the
 *     QuantizeLinear narrows them): each of the Kw x Ka plane pairs reads the operands as bits.
 * The result differs from the float path by float rounding only. Q/DQ nodes whose outputs only such
 * layers read are then skipped, unless one of their outputs is a graph output or captured. */
typedef enum qc_integer_kernels {
    QC_INTEGER_KERNELS_OFF = 0,      /* dequantized, in float, as the graph says (the reference) */
    QC_INTEGER_KERNELS_AUTO = 1,     /* integers; bit-serial where it measured faster, else int8 (the
                                      * default): Kw Ka = 1 always; with n O >= 2^20 weights also
                                      * Kw Ka <= 16 for one row and Kw Ka <= 4 up to 8 rows */
    QC_INTEGER_KERNELS_INT8 = 2,     /* integers, always on qc_int8_gemm */
    QC_INTEGER_KERNELS_BITSERIAL = 3 /* integers, bit-serial wherever Kw, Ka <= 4, else int8 */
} qc_integer_kernels;

/* Sets how later runs execute uniform quantized linear layers (above). Since libqcore-onnx 1.4.
 * QC_ERR_INVALID_ARG for a NULL session or a value outside qc_integer_kernels. */
QC_ONNX_API qc_status qc_session_set_integer_kernels(qc_session *session, qc_integer_kernels kernels);

/* What the integer-run linear layers of the last run ran on: a layer counts once per run. */
typedef struct qc_integer_kernel_stats {
    uint64_t int8_layers;      /* exact sums on qc_int8_gemm */
    uint64_t bitserial_layers; /* exact sums on the bit-serial kernels */
    uint64_t simulated_layers; /* sums through the simulated P-bit accumulator */
} qc_integer_kernel_stats;

/* The counts of the last run into `out` (zeros before any run). Since libqcore-onnx 1.4.
 * QC_ERR_INVALID_ARG for NULL. */
QC_ONNX_API qc_status qc_session_integer_kernel_stats(const qc_session *session, qc_integer_kernel_stats *out);

/* ---------------------------------------------------------------------------------------------
 * The ai.qcore domain (since libqcore-onnx 1.2; a model imports opset "ai.qcore" version 1).
 *
 * LQGemm: a fully-connected layer whose weights and inputs are learned non-uniform (LQ) levels
 * (qc_lq.h), run on the bit-serial kernels (qc_kernels.h; the GEMV for one row) with the session's
 * context (its threads and kernel set), which encode X into bit-planes on their input side:
 *     Y[..., o] = sum_k level_x(X[..., k]) level_w(o, k) (+ B[o])
 * computed exactly as qc_bitserial_gemm: integer dot products of the planes, scaled in double per output.
 * Inputs:
 *   0 X         FLOAT [..., n], rank >= 1, finite; every row of n values is encoded alone;
 *   1 W_planes  W's codes as bit-planes, bit j of the code of W[o, k] in plane j, element k's bit at bit
 *               k & 7 of byte k >> 3 of the plane row, every bit past element n zero; in one of two forms:
 *               UINT8 [O, Kw, ceil(n / 8)], dense (what qc_model_lq_replace writes: the smallest file), or
 *               INT64 [O, Kw, qc_lq_plane_words(n)], qc_lq_pack's words as they are (the same bytes in
 *               little-endian order, zero-padded to whole 512-bit rows). A constant dense W_planes is
 *               widened to the kernels' rows once per session;
 *   2 W_basis   FLOAT [O, Kw], Kw in 1..4: one basis per output channel;
 *   3 X_basis   FLOAT [Ka], Ka in 1..4: one basis for the whole input;
 *   4 B         FLOAT [O] (optional).
 * Attributes: x_signed (INT, default 0: X's code bits mean 0/1, QC_LQ_UNSIGNED, for inputs after a ReLU;
 * 1: -1/+1, QC_LQ_SIGNED) and w_signed (INT, default 1: -1/+1; 0: 0/1). Output 0: Y FLOAT [..., O].
 * Errors name the node: QC_ERR_SHAPE (shapes above), QC_ERR_DTYPE, QC_ERR_INVALID_ARG (attributes other
 * than 0 or 1; a plane bit set past element n), QC_ERR_NUMERIC (NaN or Inf in X, a basis or B).
 */

/* ---------------------------------------------------------------------------------------------
 * Calibration and evaluation data: arrays read from files.
 */
typedef enum qc_array_format {
    QC_ARRAY_AUTO = 0,          /* from the content: .npy magic, gzip or IDX header, else TensorProto */
    QC_ARRAY_NPY = 1,           /* numpy .npy, header versions 1.0, 2.0 and 3.0 */
    QC_ARRAY_IDX = 2,           /* IDX (as MNIST and Fashion-MNIST ship), plain or gzip-compressed */
    QC_ARRAY_TENSOR_PROTO = 3   /* a serialized ONNX TensorProto (.pb, as ONNX test data sets are) */
} qc_array_format;

/* A tensor read from a file, owning its data. */
typedef struct qc_array qc_array;

/* Reads the file at `path` in `format`. Element types: those of qc_dtype (f32, f64, i8, u8, i16, i32,
 * i64, and int4/uint4 for TensorProto); others give QC_ERR_UNSUPPORTED naming the type. Data is
 * converted to the host's byte order and to C order (Fortran-ordered .npy files). Malformed files give
 * QC_ERR_FORMAT; declared sizes are checked against the file before anything is allocated. */
QC_ONNX_API qc_status qc_array_load(qc_array **out, const char *path, qc_array_format format);

/* The same from `size` bytes at `data` (borrowed). */
QC_ONNX_API qc_status qc_array_parse(qc_array **out, const void *data, size_t size, qc_array_format format);

/* The array as a C-contiguous tensor view, valid until qc_array_free. */
QC_ONNX_API const qc_tensor *qc_array_tensor(const qc_array *array);

/* The tensor's name (TensorProto files), or "". Borrowed. */
QC_ONNX_API const char *qc_array_name(const qc_array *array);

/* Frees an array; NULL is accepted. */
QC_ONNX_API void qc_array_free(qc_array *array);

/* ---------------------------------------------------------------------------------------------
 * Whole-model pipeline: every linear layer of a model quantized by one recipe, from calibration data.
 *
 * A linear layer is a MatMul whose second input is a FLOAT initializer of rank 2 ([in, out]), a Gemm
 * (transA = 0) whose B is one ([in, out], or [out, in] with transB = 1), or a Conv (group = 1) with a FLOAT
 * initializer weight [out, channels, kernel...], read by no other node. Its weight is handled as
 * W [out, in] whatever the ONNX layout (a Conv's in = channels x kernel size, its inputs the im2col rows);
 * the recipe's grid uses that view (axis 0: per output channel; per-group: axis 1, groups along the
 * inputs; not for Conv weights).
 *
 * qc_pipeline_run, for a recipe:
 *   1. runs the calibration batches through the float model and records each layer input's range;
 *   2. with activation_bits > 0, quantizes every layer input per tensor: QuantizeLinear/DequantizeLinear
 *      read by the quantized layers only (other readers of the value, such as a residual connection, keep
 *      the float value); unsigned [0, 2^N - 1] when the input was never negative in step 1, else signed
 *      [-2^(N-1), 2^(N-1) - 1] with the scale of its largest magnitude; zero point 0 either way, so the
 *      integer dot products are those AXE bounds. N other than 4, 8 and 16 is held in the next wider ONNX
 *      integer type after a Clip to the N-bit range;
 *   3. goes through the layers in graph order, grouping layers that read the same value: runs the batches
 *      through the model as quantized so far (sequential = 1) or once through the model with only its
 *      activations quantized (sequential = 0), collects each group's statistics (qc_gpxq_stats; GPFQ also
 *      runs the float model for X), and quantizes each weight with the recipe's method;
 *   4. stores each weight as integers + DequantizeLinear (an N-bit grid is stored in the ONNX integer
 *      type that holds it: INT4/UINT4 up to 4 bits, INT8/UINT8 up to 8, INT16/UINT16 up to 16; an LQ layer's
 *      as codes + GatherElements, see "LQ weights in a recipe"), so that onnxruntime runs the result, and
 *      reports per layer.
 * Step 1's ranges are kept until qc_pipeline_add_batch changes the batches.
 * The input model is not changed; the result is a new model.
 */
typedef struct qc_pipeline qc_pipeline;

/* Finds the linear layers of `model` (borrowed: it must outlive the pipeline and not be edited while it
 * lives) and prepares a pipeline using `ctx` (borrowed likewise). `out` receives a handle owned by the
 * caller (qc_pipeline_free). A model without linear layers is QC_ERR_UNSUPPORTED. */
QC_ONNX_API qc_status qc_pipeline_create(qc_pipeline **out, const qc_model *model, qc_ctx *ctx);

/* Frees a pipeline; NULL is accepted. */
QC_ONNX_API void qc_pipeline_free(qc_pipeline *pipeline);

/* A linear layer, in graph order. Strings are borrowed from the pipeline. */
typedef struct qc_layer_info {
    const char *weight;        /* the weight initializer's name */
    const char *node;          /* the node's name ("" when it has none) */
    const char *op_type;       /* "MatMul", "Gemm" or "Conv" */
    const char *input;         /* the value the weight multiplies */
    int64_t in_features;
    int64_t out_features;
} qc_layer_info;

/* How many linear layers the pipeline found, and layer i (0 .. count - 1). */
QC_ONNX_API size_t qc_pipeline_layer_count(const qc_pipeline *pipeline);
QC_ONNX_API qc_status qc_pipeline_layer(const qc_pipeline *pipeline, size_t i, qc_layer_info *out);

/* Adds a calibration batch: a value for every graph input of the model (`names[k]` and `values[k]`, k <
 * count; copied). Dtypes and shapes are checked as qc_session_set_input checks them, when a run uses them. */
QC_ONNX_API qc_status qc_pipeline_add_batch(qc_pipeline *pipeline, size_t count, const char *const *names,
                                            const qc_tensor *values);

/* The method a layer's weight is quantized with. */
typedef enum qc_layer_method {
    QC_METHOD_RTN = 1,    /* round to nearest (qc_rtn; with AXE: RTN+AXE) */
    QC_METHOD_OPTQ = 2,   /* qc_optq on H from the layer's (quantized) inputs */
    QC_METHOD_GPFQ = 3    /* qc_gpfq on H~ and G from the quantized and the float model's inputs */
} qc_layer_method;

#define QC_RECIPE_VERSION 5

/* Rotations a recipe fuses into the model before calibration (recipe version 3; see "Rotations in a
 * recipe" below). */
typedef enum qc_rotation_kind {
    QC_ROTATION_NONE = 0,
    QC_ROTATION_HAAR = 1,       /* qc_random_orthogonal */
    QC_ROTATION_HADAMARD = 2    /* qc_random_hadamard_matrix (widths with a Hadamard construction only) */
} qc_rotation_kind;

/* One layer's own weight width (recipe version 2): a mixed-precision configuration, such as one point of a
 * qc_model_search front. */
typedef struct qc_layer_format {
    const char *weight;           /* the layer's weight initializer (borrowed) */
    int32_t weight_bits;          /* 2..16: the recipe's weight grid at this width; 0: the weight stays float
                                     while its input is quantized like every other layer's (unlike
                                     keep_float, which keeps the whole layer in float) */
} qc_layer_format;

/* A recipe. Initialise with qc_recipe_init; later versions only append fields. */
typedef struct qc_recipe {
    uint32_t version;             /* QC_RECIPE_VERSION */
    qc_layer_method method;       /* default QC_METHOD_OPTQ */
    qc_quant_options weights;     /* the weight grid on W [out, in] (default: 8 bits, signed, symmetric,
                                     per output channel: granularity QC_GRAN_CHANNEL, axis 0) */
    qc_gpxq_options gpxq;         /* damping, act-order, blocks, AXE (accumulator_bits, tile_size,
                                     soft_threshold); input_bits and input_signed are set per layer from
                                     the activation quantization (with activation_bits = 0, AXE is refused);
                                     a tile_size of at least a layer's row length means the whole row */
    int32_t activation_bits;      /* N of every layer input, 2..16; 0: activations stay float (default 8) */
    int32_t sequential;           /* 1: statistics from the model as quantized so far (default 1); 0: from
                                     one pass over the model with only its activations quantized, kept
                                     by the pipeline for later runs with the same activation_bits,
                                     statistics (OPTQ's or GPFQ's), report_rows and keep_float, so that
                                     a sweep over widths, tiles or grids runs the model once */
    size_t num_keep_float;        /* weights kept in float (partial quantization): their layers are neither */
    const char *const *keep_float;/* quantized nor have their inputs quantized (names borrowed) */
    int32_t report_bits;          /* P at which the report counts overflows on real inputs; 0: the
                                     recipe's accumulator_bits, or 32 when AXE is off (default 0) */
    int64_t report_rows;          /* calibration rows per layer given to the accumulator simulation and the
                                     output error (default 1024; 1 .. 2^31 - 1) */
    /* version 2 */
    size_t num_layer_formats;     /* per-layer weight widths overriding weights.bits (default none); a weight */
    const qc_layer_format *layer_formats; /* named at most once, never also in keep_float (borrowed) */
    qc_scale_method activation_scale; /* each quantized layer input's per-tensor scale (default
                                     QC_SCALE_MINMAX); see "Activation scales" below */
    double activation_percentile; /* QC_SCALE_PERCENTILE: p in (50, 100] (default 99.99) */
    int32_t activation_mse_steps; /* QC_SCALE_MSE: candidate clips, 2..10000 (default 200) */
    double activation_mse_min_ratio; /* QC_SCALE_MSE: the smallest clip ratio, in (0, 1) (default 0.01) */
    /* version 3 (libqcore-onnx 1.3) */
    qc_rotation_kind rotation;    /* rotations fused into the model before calibration (default
                                     QC_ROTATION_NONE) */
    uint64_t rotation_seed;       /* the rotations' draws: the QC_CTX_SEED of a context of their own (default 0) */
    int32_t ethosu_config;        /* a qc_ethosu_config: the quantized model is packed for that NPU (Vela's
                                     packing, qc_model_pack_ethosu's rules, default layer options) and each
                                     layer's stream reported; 0 (default): not packed */
    /* version 4 (libqcore-onnx 1.4) */
    int32_t rotate_heads;         /* 1: also rotate every attention block's heads (V and O projections) by
                                     the recipe's rotation kind and seed; needs a rotation (default 0) */
    /* version 5 (libqcore-onnx 1.5) */
    size_t num_lq_layers;         /* layers whose weights are LQ (learned non-uniform levels, weight_bits = */
    const qc_layer_format *lq_layers; /* K in 1..4), see "LQ weights in a recipe" below (default none); a
                                     weight is named at most once across keep_float, layer_formats and
                                     lq_layers (borrowed) */
    size_t num_unrotated;         /* weights whose layers' inputs the recipe's rotation leaves as they are */
    const char *const *unrotated; /* (a per-layer choice, such as a search's; names borrowed, each a layer's
                                     weight named once; needs a rotation; default none) */
} qc_recipe;

/* LQ weights in a recipe (version 5). The weight W [out, in] of each layer in lq_layers, with K its
 * weight_bits, becomes weight-only non-uniform levels: one basis per output channel, fitted by qc_lq_fit
 * (QC_LQ_SIGNED, QEM with the default qc_lq_options) on that channel's float row, each weight encoded to
 * its nearest level (qc_lq_encode) and decoded back (qc_lq_decode). The levels depend on W alone, so a
 * model search's LQ candidate and qc_pipeline_run give the same weights bit for bit (in sequential runs
 * too: later layers see the levels, as they see a uniform layer's weights). The layer's input is quantized
 * as the recipe says, like every other layer's. In the result the weight is written with standard ONNX
 * ops (opset 21, which every qcore QDQ model already imports for its 4-bit types), read by the layer's
 * node in place of the float initializer:
 *     W = GatherElements(table, Cast<INT64>(codes), axis)         (+ Reshape for a Conv)
 * codes "<W>_lq_codes" UINT4 (each code below 2^K, two per byte) and table "<W>_lq_table" FLOAT holding each
 * channel's 2^K levels by code (qc_lq_decode's values): for a weight stored [in, out] (MatMul, Gemm with
 * transB = 0) codes [in, out], table [2^K, out], axis 0; for one stored [out, in] (Gemm transB = 1) or a
 * Conv (codes [out, channels x kernel], Reshape to its shape "<W>_lq_shape") codes [out, in], table
 * [out, 2^K], axis 1. qcore's executor and onnxruntime run it (UINT2 codes would halve K <= 2 but need
 * opset 25 and a 2-bit tensor type qc_tensor has not; the bit-planes of LQGemm are not a standard op). The report gives weight_bits = K, lq = 1,
 * weight_bytes = out x (K ceil(in / 8) + 4 K) (bit-planes and float32 bases, as LQGemm stores them; the
 * UINT4 codes take out x ceil(in / 2) bytes in the file), output_error as for every layer, and no
 * accumulator figures (the levels are not integers: accumulator_bits, report_bits and simulation stay 0).
 * AXE (gpxq.accumulator_bits) with LQ layers is QC_ERR_INVALID_ARG (it bounds integer dot products, which
 * LQ layers have none of); with ethosu_config an LQ layer is not packed and its ethosu_reason says so. */

/* Rotations in a recipe (version 3). With rotation != QC_ROTATION_NONE a run works on a rotated copy of
 * the model, whose float function is the model's (up to float rounding):
 *   1. every LayerNormalization, and every Mul by a constant vector, whose output only linear layers read
 *      has its scale folded into them (qc_model_fold_norm);
 *   2. for each value that MatMul or Gemm layers (not Conv) read, in graph order (k = 0, 1, ...), one
 *      rotation R [in, in] is drawn with stream k from a context seeded with rotation_seed, and every such
 *      layer reading it is rotated by it (qc_model_rotate_input: folded into the producing layer when it
 *      is a linear layer read by that layer alone, else an online rotation: a float MatMul by R);
 *   3. the online rotations' MatMuls stay in float and are not pipeline layers (nor reported); the
 *      rotated layers keep their weights' names, so keep_float and layer_formats name them as before.
 * Layers that cannot be rotated (a Conv, a node without a name, a weight read elsewhere, a width without a
 * Hadamard construction) stay as they are (qc_layer_report.rotated = 0). A model where no layer can be
 * rotated is QC_ERR_UNSUPPORTED. The rotated model, with a copy of the calibration batches, is kept by the
 * pipeline for later runs with the same rotation and seed (until qc_pipeline_add_batch).
 *
 * Per-head rotations in a recipe (version 4). With rotate_heads = 1 (and a rotation), between steps 1 and 2
 * every attention block's heads are rotated as qc_model_rotate_heads does: each MatMul or Gemm layer whose
 * input comes, through Reshape and Transpose nodes, from an attention product P V with V from a linear
 * layer (found from the graph, in graph order a = 0, 1, ...) is an output projection O; the head size d is
 * the last dimension of P V in a float run of the first calibration batch, heads = O's input width / d; head
 * h's R_h [d, d] of the recipe's kind is drawn with stream 2^32 + 2^16 a + h from the rotations' context.
 * V's weight and bias become W_v B and b_v B and O's weight B^T W_o (B = blockdiag(R_h)); step 2 then
 * rotates O's input as any other. qc_layer_report.heads_rotated marks V (1) and O (2). A model with no
 * such block, or whose head size has no matrix of the kind, is QC_ERR_UNSUPPORTED naming 'rotate_heads';
 * rotate_heads without a rotation is QC_ERR_INVALID_ARG.
 *
 * Layers left unrotated (recipe version 5). A layer whose weight is in `unrotated` is skipped in step 2:
 * its input and weight stay as step 1 left them (a folded norm scale still applies), while the other
 * layers reading the same value are rotated as before, by the same R (the draws' stream numbers do not
 * depend on `unrotated`). Its report has rotated = 0. Head rotations (version 4) are not affected.
 *
 * Ethos-U packing in a recipe (version 3). With ethosu_config set, each quantized layer of the result is
 * packed alone by qc_model_pack_ethosu's rules (int8/uint8 weights: weight widths 5..8); the report gives
 * its encoded weight, bias/scale and stream bytes, exactly what qc_model_pack_ethosu (qcore pack-ethosu)
 * gives for the saved model. A layer that cannot be packed (kept in float, a float weight, weights of 4
 * bits or fewer, stored as INT4, or above 8 bits, stored as INT16, or a node the packer refuses) is not an
 * error: its report says why in ethosu_reason. */

/* Activation scales (recipe version 2). A layer input is quantized per tensor with zero point 0: unsigned
 * (levels 0..2^N-1) when the float model never gave a negative value there over the calibration batches,
 * else signed (levels -2^(N-1)..2^(N-1)-1); scale = t / qmax for a clip t. With
 *   QC_SCALE_MINMAX      t = max |x| over the batches (the behaviour of recipe version 1);
 * the other two read a histogram of the float model's values of that input over the batches, with
 * QC_PIPELINE_HISTOGRAM_BINS equal bins over [min, max] (a second pass over the batches; the memory per
 * input is the bins only), each bin's count taken as spread uniformly over the bin:
 *   QC_SCALE_PERCENTILE  t = the activation_percentile-th percentile of |x| in that histogram;
 *   QC_SCALE_MSE         t = alpha * max |x| for the alpha in {m + (1 - m) i / (steps - 1), i = 0..steps-1}
 *                        (m = activation_mse_min_ratio, steps = activation_mse_steps) with the least
 *                        expected squared error of x - scale * clamp(round(x / scale), qmin, qmax) over the
 *                        histogram; ties go to the larger alpha.
 * The histograms are kept with the input ranges until the batches change. */
#define QC_PIPELINE_HISTOGRAM_BINS 4096

/* Fills `recipe` with the defaults of `version` (QC_ERR_VERSION for 0 or a newer version). */
QC_ONNX_API qc_status qc_recipe_init(qc_recipe *recipe, unsigned version);

#define QC_LAYER_REPORT_VERSION 4

/* What the last run did to layer i. The caller sets `version`. */
typedef struct qc_layer_report {
    uint32_t version;                 /* QC_LAYER_REPORT_VERSION */
    int32_t quantized;                /* 0: kept in float (then only `weight` and `weight_bytes` are set) */
    const char *weight;               /* borrowed from the pipeline */
    int32_t weight_bits;
    int32_t input_bits;               /* 0 when the input stays float */
    int32_t input_signed;
    double input_scale;
    int64_t weight_bytes;             /* stored size: ceil(numel * bits / 8) + 4 bytes per scale (and per
                                         zero point of an asymmetric grid); float32 size when kept */
    double output_error;              /* |X~ W^T - X~ Q^T|_F / |X~ W^T|_F over report rows (X~: the
                                         layer's quantized inputs), Q the dequantized weights */
    int32_t accumulator_bits;         /* the widest (row, tile) need of the integer weights for the input
                                         range (qc_accum_bits_needed; tiles of gpxq.tile_size) */
    int32_t report_bits;              /* the P the simulation below used */
    qc_accum_sim simulation;          /* the integer dot products of the report rows (wrapping and
                                         saturating P-bit registers, tiles of gpxq.tile_size) */
    qc_gpxq_result gpxq;              /* damping used, retries, dead inputs */
    /* version 2 (libqcore-onnx 1.3): filled by recipes of version 3 */
    int32_t norm_folded;              /* 1: a normalization's scale in front of the input was folded into W */
    int32_t rotated;                  /* 1: the layer's input was rotated (the recipe's rotation) */
    int32_t rotation_online;          /* 1: by an online rotation (a float MatMul in front); 0: folded */
    int32_t ethosu_packed;            /* 1: packed for the recipe's ethosu_config (the bytes below) */
    const char *ethosu_reason;        /* with ethosu_config, why the layer was not packed (borrowed from
                                         the pipeline, valid until its next run); else NULL */
    int64_t ethosu_weight_bytes;      /* qc_ethosu_model_layer's weight_bytes, scale_bytes and */
    int64_t ethosu_scale_bytes;       /* stream_bytes of the layer */
    int64_t ethosu_stream_bytes;
    /* version 3 (libqcore-onnx 1.4): filled by recipes of version 4 */
    int32_t heads_rotated;            /* the recipe's rotate_heads: 1: an attention's V projection, whose
                                         output heads were rotated (W_v B); 2: its O projection (B^T W_o);
                                         0: neither */
    /* version 4 (libqcore-onnx 1.5): filled by recipes of version 5 */
    int32_t lq;                       /* 1: the weight is LQ levels (recipe lq_layers; weight_bits is K; see
                                         "LQ weights in a recipe"); 0: a uniform grid or float */
} qc_layer_report;

/* Runs `recipe` (NULL: the defaults) on the calibration batches (at least one) and gives the quantized
 * model in `out` (owned by the caller, qc_model_free). Progress goes to ctx's callback (one step per
 * layer), and the callback may cancel (QC_ERR_CANCELLED, nothing returned). Errors: QC_ERR_INVALID_ARG
 * (no batches; recipe fields out of range, naming them; a keep_float name that is no layer's weight;
 * AXE with float activations), QC_ERR_VERSION, QC_ERR_SINGULAR (an OPTQ factorization that failed after
 * every retry, naming the layer), and the errors of the executor and of qc_optq/qc_gpfq/qc_rtn, with the
 * layer named. */
QC_ONNX_API qc_status qc_pipeline_run(qc_pipeline *pipeline, const qc_recipe *recipe, qc_model **out);

/* The last successful run's report for layer i, as out->version (set by the caller) defines it. */
QC_ONNX_API qc_status qc_pipeline_report(const qc_pipeline *pipeline, size_t i, qc_layer_report *out);

/* A deep copy of `model` (a new handle owned by the caller; the copy keeps its own bytes). */
QC_ONNX_API qc_status qc_model_clone(qc_model **out, const qc_model *model);

/* ---------------------------------------------------------------------------------------------
 * Mixed precision over a model (since libqcore-onnx 1.2): which width each layer's weight gets. A model
 * search quantizes every layer not in the recipe's keep_float at every candidate width once (one pass of
 * statistics, the recipe's method, grid, activation bits and AXE), then evaluates configurations (one
 * candidate index per searched layer) on evaluation batches with qcore's executor: the candidates' weights
 * are swapped into one session, the model is never reloaded. Activations are quantized as the recipe
 * says in every configuration; a width of 0 keeps that weight float (partial quantization of the
 * weights). The metric is top-1 accuracy when the batches carry labels, else the mean cosine similarity
 * of each sample's output to the float model's (the options' output, by default the first graph output).
 * A recipe with a rotation (version 3, and its head rotations, version 4) is honoured as qc_pipeline_run
 * honours it: the search rotates a copy of the model once, before the candidates are quantized, and
 * evaluates the rotated quantized model (the online rotations in float); the float reference stays the
 * unrotated model. qc_model_search_recipe keeps the rotation, its seed and rotate_heads, so that
 * qc_pipeline_run of a configuration's recipe with sequential = 0 gives the weights the search evaluated.
 */
typedef struct qc_model_search qc_model_search;

#define QC_MODEL_SEARCH_OPTIONS_VERSION 3

/* What a model search space gets as each candidate's proxy (since libqcore-onnx 1.4). */
typedef enum qc_model_proxy {
    QC_MODEL_PROXY_LAYER = 0, /* the layer's own squared relative output error at that width
                                 (qc_model_candidate.output_error squared): no extra model run */
    QC_MODEL_PROXY_MODEL = 1, /* the model's: that weight alone at that width (every other weight float,
                                 activations as the recipe says), run on calibration batches at create (or
                                 on evaluation batches: qc_model_search_measure_proxy), the squared
                                 relative error of the evaluated output against the same model with every
                                 weight float, each sample's (output row's) error taken to the nearest
                                 non-negative multiple of its reference row, as the metric (top-1 class,
                                 cosine) ignores such a scale (since libqcore-onnx 1.5.1; before, to the
                                 row itself); one executor pass per candidate and batch */
    QC_MODEL_PROXY_MODEL_SCALED = 2 /* the model's at the lowest uniform integer width only, each other
                                 width's scaled by the layer's own ratio across widths (layer error at that
                                 width squared over the layer error at the lowest, squared): one pass per
                                 layer and batch; on MiniLM as predictive as QC_MODEL_PROXY_MODEL, at a fifth
                                 of its passes with five integer widths. LQ candidates are measured, one
                                 pass each (since libqcore-onnx 1.5.1; before, scaled like the widths): a
                                 learned-levels fit errs otherwise than a grid, so the widths' ratio does
                                 not carry over to them */
} qc_model_proxy;

typedef struct qc_model_search_options {
    uint32_t version;             /* QC_MODEL_SEARCH_OPTIONS_VERSION */
    const qc_recipe *recipe;      /* the base recipe (borrowed during create; NULL: qc_recipe_init's); its
                                     sequential flag, layer formats, lq_layers and ethosu_config are ignored, its
                                     rotation (version 3) honoured */
    size_t num_widths;            /* candidate weight widths, each 0 (float) or 2..16, distinct */
    const int32_t *widths;        /* (default: 0, 8, 6, 4, 3, 2) */
    const char *output;           /* the graph output the metric reads (default NULL: the first one) */
    int32_t ethosu_config;        /* a qc_ethosu_config: each candidate's Ethos-U stream size is measured
                                     (qc_ethosu_pack_layer, Vela's packing); 0 (default): not measured */
    /* version 2 (libqcore-onnx 1.4); a version-1 struct gets QC_MODEL_PROXY_LAYER */
    int32_t proxy;                /* a qc_model_proxy (default QC_MODEL_PROXY_MODEL_SCALED) */
    size_t proxy_batches;         /* the model proxies: the first N calibration batches (default 0: all) */
    /* version 3 (libqcore-onnx 1.5) */
    size_t num_lq_bits;           /* LQ candidates: each K in 1..4, distinct (default none). Each searched */
    const int32_t *lq_bits;       /* layer's candidates are then the widths in order, followed by one LQ
                                     candidate per K: its weight quantized as a recipe's lq_layers entry
                                     of K ("LQ weights in a recipe"), activations as the recipe says; bytes
                                     out x (K ceil(in / 8) + 4 K); bit_operations MACs x K x input bits;
                                     ethosu_bytes 0 (not packable); output_error as every candidate's.
                                     Refused with AXE in the recipe (QC_ERR_INVALID_ARG) */
    int32_t rotation_choice;      /* 1: with the recipe's rotation, each layer it rotates online may also be
                                     left unrotated (see "Rotation per layer" below); 0 (default): not */
} qc_model_search_options;

/* Rotation per layer (options version 3, rotation_choice = 1). Besides its candidates in the rotated model
 * (the widths, then the LQ bits: C of them), each searched layer whose input the recipe's rotation rotates
 * online gets an unrotated twin of every candidate but the float weight: candidate C + k is the k-th
 * non-float candidate with the layer in the recipe's `unrotated` (recipe version 5), quantized as
 * qc_pipeline_run quantizes such a layer (from one pass over the model with norms folded and no layer
 * rotated). Layers rotated by folding into the layer before, and layers the rotation cannot rotate, have
 * the C candidates alone (qc_model_search_space gives each layer its own candidate count). The
 * configuration's recipe names the layers whose twins it chose in `unrotated`. The evaluation model gives
 * each twinned layer a second path from the rotation's input x, through x's own quantizer from that pass
 * (with quantized activations), to a copy of the layer; the two outputs are added, and the path not chosen
 * holds a zero weight (and bias), so either choice is evaluated exactly (each twinned layer costs two
 * products per evaluation and a second copy of its weight). The choice needs a recipe rotation and a recipe without its own
 * unrotated list (QC_ERR_INVALID_ARG otherwise). Costs: a twin's bytes are its width's; the online rotations are not counted,
 * as qc_layer_report does not count them. Proxies: the layer proxy is the twin's own layer error; a model
 * proxy is its rotated sibling's, scaled by the ratio of their squared layer errors. A configuration's
 * recipe, run with sequential = 0, reproduces the evaluated weights up to the float rounding of the
 * statistics, which the partly rotated model computes in other coordinates. */

/* Fills `opts` with the defaults of `version` (QC_ERR_VERSION for 0 or a version newer than the library's;
 * QC_ERR_INVALID_ARG for NULL). */
QC_ONNX_API qc_status qc_model_search_options_init(qc_model_search_options *opts, unsigned version);

/* Quantizes the candidates from the pipeline's calibration batches (progress through the pipeline's ctx).
 * The pipeline must outlive the search. */
QC_ONNX_API qc_status qc_model_search_create(qc_model_search **out, qc_pipeline *pipeline,
                                             const qc_model_search_options *opts);
QC_ONNX_API void qc_model_search_free(qc_model_search *search);

/* Adds an evaluation batch (copied): values for every graph input, and `labels` (int64 [samples], one
 * class per row of the first output) or NULL. Either every batch has labels or none has. A batch without
 * labels gets its float reference output here (one run of the float model, which the ctx's progress
 * callback may cancel). A batch is refused, and the search left as it was, for a NaN in a float input
 * (QC_ERR_NUMERIC naming the input, value, element and batch; an Inf is taken, as an additive mask may
 * hold -Inf), for NaN or Inf in the float model's output on a batch without labels (QC_ERR_NUMERIC naming
 * the output, value, element and batch), and for a label below 0, or not below the output's class count
 * (its columns) once a run has given it: a model proxy (at create or qc_model_search_measure_proxy), or
 * an evaluation; until then qc_model_search_evaluate refuses it (QC_ERR_INVALID_ARG naming label, sample
 * and batch). */
QC_ONNX_API qc_status qc_model_search_add_batch(qc_model_search *search, size_t count, const char *const *names,
                                                const qc_tensor *values, const qc_tensor *labels);

/* The searched layers (the pipeline's layers not kept in float), their candidates and each candidate's
 * cost and single-layer proxy. */
QC_ONNX_API size_t qc_model_search_layer_count(const qc_model_search *search);

typedef struct qc_model_candidate {
    size_t pipeline_layer;        /* the layer's index in qc_pipeline_layer */
    const char *weight;           /* borrowed from the pipeline */
    int32_t weight_bits;          /* 0: float; K for an LQ candidate (qc_model_search_candidate_lq_bits) */
    int64_t bytes;                /* stored size, as qc_layer_report.weight_bytes */
    double output_error;          /* qc_layer_report.output_error of this layer alone at this width */
    int64_t ethosu_bytes;         /* its Ethos-U weight and scale stream (0: not measured, a float weight,
                                     or weights beyond the NPU's -255..255) */
    double bit_operations;        /* per sample: multiply-accumulates x weight bits x input bits (32 for
                                     a float weight or input) */
} qc_model_candidate;

/* Candidate `candidate` of searched layer `layer` into `out`: an index into the options' widths, then its
 * LQ bits, then (rotation_choice) the unrotated twins. QC_ERR_INVALID_ARG for NULL or an index out of range. */
QC_ONNX_API qc_status qc_model_search_candidate(const qc_model_search *search, size_t layer, uint32_t candidate,
                                                qc_model_candidate *out);

/* Whether candidate `candidate` of searched layer `layer` is LQ: *out = K (its LQ bits) for an LQ
 * candidate, 0 for a uniform width or the float weight (since libqcore-onnx 1.5; qc_model_candidate has no
 * version to say it). QC_ERR_INVALID_ARG for NULL or an index out of range. */
QC_ONNX_API qc_status qc_model_search_candidate_lq_bits(const qc_model_search *search, size_t layer,
                                                        uint32_t candidate, int32_t *out);
/* Searched layer `layer`'s candidate count: the options' widths, and with rotation_choice its unrotated
 * twins (since libqcore-onnx 1.5); 0 for NULL or a layer out of range. */
QC_ONNX_API size_t qc_model_search_candidate_count(const qc_model_search *search, size_t layer);

/* Whether candidate `candidate` of searched layer `layer` has the layer's input rotated (1: a rotated
 * search's candidate of a layer its rotation rotates; 0: an unrotated twin, a layer the rotation does not
 * rotate, or a search without rotation) into `out` (since libqcore-onnx 1.5). QC_ERR_INVALID_ARG for NULL
 * or an index out of range. */
QC_ONNX_API qc_status qc_model_search_candidate_rotated(const qc_model_search *search, size_t layer, uint32_t candidate,
                                                        int32_t *out);

/* The proxy the search's space gives candidate `candidate` of searched layer `layer` (the options' proxy,
 * or the last qc_model_search_measure_proxy's: the layer's or the model's squared relative output error)
 * into `out` (since libqcore-onnx 1.4). QC_ERR_INVALID_ARG for NULL or an index out of range. */
QC_ONNX_API qc_status qc_model_search_proxy(const qc_model_search *search, size_t layer, uint32_t candidate,
                                            double *out);

/* Measures the search's proxy again, as `proxy` (a qc_model_proxy) says, on the first `batches` (0: all)
 * of the search's evaluation batches instead of the calibration batches (since libqcore-onnx 1.6): the
 * candidates were fitted on the calibration data (OPTQ's statistics), so an error measured there misses what
 * a layer loses on data it was not fitted on, which is what the metric sees. On all-MiniLM-L6-v2 (OPTQ, 64
 * calibration sentences) the last block's attention output and FFN2 lose 6-7 times more on held-out
 * sentences than on the calibration ones, the first blocks' layers about as much, and qcore's search
 * finds better fronts from it (benchmarks/search_accuracy.py, README). QC_MODEL_PROXY_MODEL_SCALED still
 * scales the other widths (and rotation_choice twins) by the layers' own error ratios, which come from
 * the calibration data. Create the search with QC_MODEL_PROXY_LAYER (no pass at create), add the
 * evaluation batches, then call this; the passes cost one executor run per layer (per candidate for
 * QC_MODEL_PROXY_MODEL) over the batches taken, so a batch or two is the usual choice.
 * QC_MODEL_PROXY_LAYER (batches 0) drops a model proxy. Until the next call, qc_model_search_proxy,
 * qc_model_search_space and qc_model_search_run use this proxy (a space made before keeps the proxies it
 * was given, while qc_model_search_run chooses its prior width by the search's current proxy). Progress
 * goes to the pipeline's ctx ("model-level proxies"), which may cancel; an error or a cancel keeps the
 * proxy the search had. Errors: QC_ERR_INVALID_ARG (no evaluation batch, more batches than added, a proxy
 * that is no qc_model_proxy, batches with the layer proxy), QC_ERR_CANCELLED, QC_ERR_OUT_OF_MEMORY and
 * the executor's. */
QC_ONNX_API qc_status qc_model_search_measure_proxy(qc_model_search *search, int32_t proxy, size_t batches);

/* The metric of configuration `choice` (one candidate index per searched layer) on the first
 * ceil(fraction * batches) evaluation batches (0 < fraction <= 1). A sample whose evaluated output row
 * holds NaN, or +Inf with labels, or any Inf without, scores 0 (a wrong answer; the cosine of an all-zero
 * output): no single class or direction can be read from it, and the metric stays finite (a NaN would
 * poison qc_model_search_run's surrogate). A -Inf class score (a log-probability that underflowed) is
 * read as any other.
 * With labels: QC_ERR_SHAPE unless the output has one row per sample, QC_ERR_INVALID_ARG for a label not
 * below the output's columns (naming label, sample and batch). */
QC_ONNX_API qc_status qc_model_search_evaluate(qc_model_search *search, const uint32_t *choice, double fraction,
                                               double *metric);

/* What a model search space counts as a configuration's cost. */
typedef enum qc_model_cost {
    QC_MODEL_COST_BYTES = 0,          /* stored weight bytes (qc_model_candidate.bytes) */
    QC_MODEL_COST_BIT_OPERATIONS = 1, /* bit-operations per sample */
    QC_MODEL_COST_ETHOSU_BYTES = 2    /* Ethos-U streams (needs ethosu_config); a float weight counts its
                                         float bytes, as it would stay with the CPU */
} qc_model_cost;

/* A qc_search.h space over the searched layers (tensor t = searched layer t, candidate c = width c):
 * costs as `cost` says, proxies qc_model_search_proxy's (the options' or the last measured), labels
 * "weight:w4" / "weight:float" / "weight:lq2" (an LQ candidate of K = 2). The caller owns it
 * (qc_search_space_free) and may add ties, forbidden combinations, a check or other costs before
 * searching. */
QC_ONNX_API qc_status qc_model_search_space(const qc_model_search *search, qc_model_cost cost, qc_search_space **out);

/* Runs a qc_search over `space` (one tensor per searched layer) with `opts`, each configuration evaluated
 * by qc_model_search_evaluate at the search's fidelity (the fraction of evaluation batches); progress
 * through the pipeline's ctx. `out` receives the finished search (qc_search_front, qc_search_write_json;
 * qc_search_free). A failed evaluation stops the search with its error. */
QC_ONNX_API qc_status qc_model_search_run(qc_model_search *search, const qc_search_space *space,
                                          const qc_search_options *opts, qc_search **out);

/* The base recipe with layer formats for `choice` (LQ candidates in lq_layers, the others in
 * layer_formats), ready for qc_pipeline_run (its strings and format arrays are owned by the search and
 * valid until the next call or qc_model_search_free). */
QC_ONNX_API qc_status qc_model_search_recipe(qc_model_search *search, const uint32_t *choice, qc_recipe *out);

/* ---------------------------------------------------------------------------------------------
 * LQ layers in a model (since libqcore-onnx 1.2): every fully-connected layer of the pipeline's model
 * replaced by an ai.qcore.LQGemm node (above), fitted post-training on the pipeline's calibration batches.
 *
 * A fully-connected layer is a pipeline layer (qc_pipeline_layer) that is a MatMul, or a Gemm with alpha =
 * beta = 1 and no C or a constant FLOAT C [O] or [1, O]; other layers (Conv, other Gemms) stay as they are.
 * In graph order, for each such layer with weight W [O, n]:
 *   1. its inputs X are taken from the model as replaced so far (earlier layers already LQ), every row of
 *      every batch; codes are QC_LQ_UNSIGNED when no input was negative, else QC_LQ_SIGNED;
 *   2. X's basis (Ka entries, one for the layer): qc_lq_fit on all of X's values as one row;
 *   3. W's bases (Kw entries per output channel, QC_LQ_SIGNED): qc_lq_fit on W, then qc_lq_encode; with
 *      `refit`, qc_lq_refit_output from GPFQ statistics of the float model's inputs and the levels of X,
 *      so that each output channel fits the float model's outputs and absorbs earlier layers' errors;
 *      then `code_rounds` times (options version 2; refit only): the codes re-chosen for the output error
 *      (qc_lq_assign_codes with `assign_damping`) and the bases refitted to them again;
 *   4. the node becomes LQGemm (same name and output; W_planes "<W>_lq_planes" in its dense UINT8 form,
 *      W_basis "<W>_lq_basis", X_basis "<W>_lq_input_basis", B the Gemm's C), and W is removed.
 * The onnxruntime export (`ort_out`) computes the same function with standard ONNX ops (the model's
 * opsets unchanged): each replaced layer keeps its node, its weight holds W's levels (qc_lq_decode, in its
 * own ONNX layout), and its input goes through the input quantizer written as
 *     Gather(levels, Cast<INT64>(Sum over t of Cast<FLOAT>(Not(Less(X, lower_t))))),
 * where `levels` are X's 2^Ka sorted levels as FLOAT and lower_t the smallest FLOAT above threshold t
 * (so that x >= lower_t exactly when x > t: qc_lq.h's rule, a value on a threshold takes the lower
 * level). It differs from the LQGemm model by the float rounding of the product only.
 */
#define QC_LQ_REPLACE_OPTIONS_VERSION 2

typedef struct qc_lq_replace_options {
    uint32_t version;          /* QC_LQ_REPLACE_OPTIONS_VERSION */
    int32_t weight_bits;       /* Kw, 1..4 (default 2) */
    int32_t input_bits;        /* Ka, 1..4 (default 2) */
    int32_t refit;             /* 1 (default): output-aware weight bases (step 3); 0: QEM alone */
    double refit_ridge;        /* qc_lq_refit_output's ridge, finite, 0..1e6 (default 1e-4) */
    qc_lq_options fit;         /* QEM of weights and inputs (default QC_LQ_OPTIONS_INIT) */
    /* version 2 */
    int32_t code_rounds;       /* output-aware code rounds after the refit, 0..16, or -1 (the default): 2
                                  when weight_bits <= 2, else 0 (version 1: 0). At 3 bits and more QEM's
                                  nearest-level codes did as well or better on held-out data (README) */
    double assign_damping;     /* qc_lq_assign_codes' damping ratio, (0, 1] (default 0.01) */
} qc_lq_replace_options;

/* Fills `opts` with the defaults of `version` (QC_ERR_VERSION for 0 or a version newer than the library's;
 * QC_ERR_INVALID_ARG for NULL). */
QC_ONNX_API qc_status qc_lq_replace_options_init(qc_lq_replace_options *opts, unsigned version);

#define QC_LQ_REPLACE_RESULT_VERSION 1

/* What a replacement did. The caller sets `version` (QC_LQ_REPLACE_RESULT_INIT). */
typedef struct qc_lq_replace_result {
    uint32_t version;          /* QC_LQ_REPLACE_RESULT_VERSION */
    int64_t replaced;          /* layers replaced */
    int64_t kept;              /* pipeline layers left as they were (not fully-connected) */
    int64_t lq_bytes;          /* the replaced layers as stored: Kw ceil(n / 8) bytes of bit-planes per
                                  output channel (the dense W_planes), float32 bases and biases */
    int64_t float_bytes;       /* the same layers' float32 weights and biases */
} qc_lq_replace_result;

#define QC_LQ_REPLACE_RESULT_INIT { QC_LQ_REPLACE_RESULT_VERSION, 0, 0, 0, 0 }

/* Replaces the fully-connected layers of the pipeline's model (the model is not changed) from its
 * calibration batches (at least one). `out` receives the LQGemm model and `ort_out` (may be NULL) the
 * onnxruntime export, both owned by the caller (qc_model_free); `result` may be NULL; `opts` NULL for the
 * defaults. Progress goes to the pipeline's ctx (one step per layer; the callback may cancel). Errors:
 * QC_ERR_INVALID_ARG (no batches, options out of range), QC_ERR_VERSION, QC_ERR_UNSUPPORTED (no
 * fully-connected layer), QC_ERR_NUMERIC (NaN or Inf in a layer's inputs, naming the layer), and the
 * executor's and qc_lq_*'s errors with the layer named. Nothing is returned on failure. */
QC_ONNX_API qc_status qc_model_lq_replace(qc_model **out, qc_model **ort_out, qc_lq_replace_result *result,
                                          qc_pipeline *pipeline, const qc_lq_replace_options *opts);

/* ---------------------------------------------------------------------------------------------
 * Ethos-U packing of a quantized model (since libqcore-onnx 1.1). Every Conv (2-D, group 1 or depthwise,
 * dilations 1 or 2), Gemm and MatMul whose weight is an int8 or uint8 initializer read through
 * DequantizeLinear (per tensor, or per output channel) becomes one layer stream of qc_ethosu_pack_layer:
 * weights minus their zero points in OHWI order (Conv [O, I, kh, kw]; Gemm [O, I] with transB, else
 * [I, O]; MatMul [I, O]); bias from an int32 initializer (directly or through DequantizeLinear), else 0;
 * per-channel scale x_scale * w_scale / y_scale (double, Vela's int8 rule) when the node's input comes from
 * a DequantizeLinear and its output goes to a QuantizeLinear with scalar scale initializers, else w_scale,
 * through qc_ethosu_quantise_scale; Vela's traversal choice for convolutions, depth-first for Gemm/MatMul.
 * Nodes whose weight is not such an initializer (float weights, activations) are not layers. `opts` gives
 * the configuration, OFM block depth, IFM bits and bricks (its depthwise, traversal and dilation fields
 * are taken from each node). QC_ERR_UNSUPPORTED names a node that cannot be packed (grouped convolution,
 * other dilations, scales neither per tensor nor per channel).
 */
typedef struct qc_ethosu_model qc_ethosu_model;

/* One packed layer. Strings are borrowed from the model, which must outlive the packed model. */
typedef struct qc_ethosu_model_layer {
    const char *node;          /* the node's name, or its first output's when unnamed */
    const char *op_type;
    const char *weight;        /* the integer weight initializer */
    int64_t shape[4];          /* OHWI */
    int64_t depthwise;
    int64_t weights;           /* weights: the original size in bytes at one byte each (int8) */
    int64_t weight_bytes;      /* encoded weight streams, all cores */
    int64_t scale_bytes;       /* bias/scale entries (10 bytes per channel), before padding */
    int64_t stream_bytes;      /* the whole layer stream (entries, padding, weights) */
} qc_ethosu_model_layer;

/* Packs `model` (borrowed; must outlive the result). `out` receives the packed model, owned by the caller
 * (qc_ethosu_model_free). */
QC_ONNX_API qc_status qc_model_pack_ethosu(qc_ethosu_model **out, const qc_model *model,
                                          const qc_ethosu_layer_options *opts);

/* The number of packed layers (0 for NULL). */
QC_ONNX_API size_t qc_ethosu_model_count(const qc_ethosu_model *packed);

/* Layer i's report into `out`, and when `layer` is not NULL its stream (owned by the packed model; read it
 * with qc_ethosu_layer_stream and qc_ethosu_layer_ranges). */
QC_ONNX_API qc_status qc_ethosu_model_layer_info(const qc_ethosu_model *packed, size_t i, qc_ethosu_model_layer *out,
                                                 const qc_ethosu_layer **layer);

/* Frees a packed model; NULL is accepted. */
QC_ONNX_API void qc_ethosu_model_free(qc_ethosu_model *packed);

#ifdef __cplusplus
}
#endif

#endif /* QC_MODEL_H */
