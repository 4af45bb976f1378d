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

#include "qcore/qc_ethosu.h"
#include "qcore/qc_quant.h"
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

QC_ONNX_API qc_status qc_session_accumulator_stats(const qc_session *session, qc_accumulator_stats *out);

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
