/* Internal: the executor's session, values and the interface every op kernel implements. */
#ifndef QC_MODEL_EXEC_INTERNAL_H
#define QC_MODEL_EXEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "model_internal.h"

/* A value of the graph at run time: a C-contiguous tensor whose storage the session owns and reuses
 * (or borrows: bound inputs and initializers). */
typedef struct qce_value {
    const char *name;            /* borrowed from the model */
    qc_tensor tensor;
    void *storage;               /* owned; reused across runs while large enough */
    size_t capacity;
    int is_constant;             /* initializer: bound once, never written by kernels */
    int is_folded;               /* a Constant node's output, computed once when the session is planned */
    uint64_t generation;         /* counts replacements (qc_session_set_initializer) of a constant */
    int is_input;
    int is_bound;                /* holds a value in the current run */
    int keep;                    /* graph output or captured: readable after the run */
    const struct qce_value *outer; /* a name a subgraph reads from an enclosing graph: that graph's value
                                    * (borrowed), whose tensor it takes at the start of each run; else NULL */
} qce_value;

typedef struct qce_node qce_node;

/* Storage released by values after their last reader ran, handed to later outputs: a session's memory
 * is its largest set of values alive at once, not the sum of all of them. */
typedef struct qce_pool {
    void **buffers;
    size_t *capacities;
    size_t count, room;
} qce_pool;

/* How integer linear ops accumulate (qc_session_set_accumulator), and what they saw in the last run. */
typedef struct qce_accumulator {
    int bits;                    /* P; 0 for exact (int32 with an overflow error) */
    qc_accumulator_mode mode;
    qc_accumulator_stats stats;
    qc_integer_kernel_stats kernels; /* which kernels the fused layers ran on */
} qce_accumulator;

/* What a kernel sees: its node, its input values (NULL for an omitted optional input) and the session's
 * thread count. */
/* Data a kernel derives once from constant inputs (a dequantized or transposed weight) and keeps across
 * runs; rebuilt when one of those inputs is replaced. */
typedef struct qce_derived {
    void *data;
    size_t bytes;
    uint64_t generation;         /* the sum of its sources' generations when it was built */
    void (*release)(void *data); /* set by a kernel whose data owns more (NULL: nothing); called before the
                                  * data is rebuilt or freed */
} qce_derived;

typedef struct qce_call {
    const qce_node *node;
    qce_value **inputs;
    size_t num_inputs;
    qce_value **outputs;
    size_t num_outputs;
    int threads;
    int64_t opset;               /* the model's opset for the node's domain */
    qce_accumulator *accumulator; /* the session's; integer linear ops read and update it */
    qce_pool *pool;               /* the session's free storage */
    qce_derived *derived;         /* the node's (qce__derived) */
    qc_ctx *ctx;                  /* the session's (borrowed): ops that call libqcore take its threads and
                                   * kernel choice */
    qc_integer_kernels integer_kernels; /* the session's (qc_session_set_integer_kernels) */
} qce_call;

typedef qc_status (*qce_kernel)(const qce_call *call);

struct qce_node {
    const Onnx__NodeProto *proto;
    qce_kernel kernel;
    size_t *last_reads;          /* values this node reads last (in execution order), SIZE_MAX-ended */
    size_t *inputs;              /* value indices; SIZE_MAX for an omitted input */
    size_t *outputs;
    size_t *outer_reads;         /* values its subgraphs read from this graph, SIZE_MAX-ended; NULL: none */
    qc_session **subgraphs;      /* one per attribute of the proto: the plan of a GRAPH attribute, else NULL;
                                  * NULL when the node has no subgraph */
    size_t num_subgraphs;        /* entries of subgraphs, kept here as a session may outlive its model */
    int folded;                  /* a Constant node evaluated at planning: runs skip it */
    qce_derived derived;
    /* A MatMul or Gemm of dequantized operands run on integers (exec_fuse_qdq.c): its kernel, and the
     * values it reads instead of its inputs (QCE_FUSED_COUNT, SIZE_MAX for an absent one); NULL when the
     * node is not fused. Its derived data is kept apart from the float kernel's. */
    qce_kernel fused_kernel;
    size_t *fused_inputs;
    qce_derived fused_derived;
    int fused_away;              /* a QuantizeLinear or DequantizeLinear whose outputs only fused nodes read:
                                  * runs with integer kernels skip it */
};

/* What a fused node reads (its fused_inputs), in this order. */
enum {
    QCE_FUSED_X,                 /* the float activation the QuantizeLinear took */
    QCE_FUSED_Q_SCALE, QCE_FUSED_Q_ZERO,   /* its scale and zero point */
    QCE_FUSED_DQ_SCALE, QCE_FUSED_DQ_ZERO, /* the activation's DequantizeLinear's */
    QCE_FUSED_W, QCE_FUSED_W_SCALE, QCE_FUSED_W_ZERO, /* the weight's integer initializer and dequantization */
    QCE_FUSED_BIAS,              /* Gemm's C */
    QCE_FUSED_COUNT
};

/* A plan of one graph: the model's, or a subgraph's (an If branch), which then reads names it does not
 * define from its parent's values and shares the top session's accumulator and storage pool. */
struct qc_session {
    const qc_model *model;
    qc_ctx *ctx;
    const Onnx__GraphProto *graph;
    qc_session *parent;          /* the plan of the enclosing graph; NULL for the model's graph */
    qce_value *values;
    size_t num_values;
    qce_node *nodes;             /* in execution order */
    size_t num_nodes;
    qce_accumulator accumulator;
    qce_pool pool;
    qc_integer_kernels integer_kernels; /* fused nodes run on integers unless OFF (the top session's
                                         * counts for its subgraphs) */
};

/* Plans s->graph (model, ctx, graph and parent set): its values, nodes and their order. */
qc_status qce__plan(qc_session *s);

/* Runs the planned nodes of s in order, after taking the current tensors of the values read from
 * enclosing graphs. */
/* The context's thread count with 0 ("all cores") resolved to the cores, as libqcore resolves it: ops
 * choose their algorithm (e.g. splitting a product by columns) from the count, so an unresolved 0 would
 * give other roundings than the same number of threads given explicitly. */
qc_status qce__ctx_threads(const qc_ctx *ctx, int *threads);

qc_status qce__run_graph(qc_session *s, int threads);

/* Runs one node of s: binds its inputs and outputs into `slots` (room for both), calls its kernel and
 * releases the values it is the last to touch. */
qc_status qce__run_node(qc_session *s, qce_node *node, int threads, qce_value **slots);

/* Plans the subgraphs of node (of session s), and which of s's values they read. */
qc_status qce__plan_subgraphs(qc_session *s, qce_node *node);

/* Finds the MatMul and Gemm nodes of s that can run on integers and the Q/DQ nodes they make
 * unnecessary (exec_fuse_qdq.c). After constant folding: their constants must be known. */
qc_status qce__plan_integer_linear(qc_session *s);

/* The fused kernel of a MatMul or Gemm (ops/qdq_linear.c). */
qc_status qce__qdq_linear(const qce_call *call);

/* Frees what qce__plan_subgraphs made for node. */
void qce__free_subgraphs(qce_node *node);

/* The plan of the call's GRAPH attribute `name`, or NULL when the node has none. */
qc_session *qce__subgraph(const qce_call *call, const char *name);

/* Gives v's storage to the pool (v keeps no value). */
void qce__release(qce_pool *pool, qce_value *v);

/* Grows v's own storage to at least `bytes` (realloc); 0 when there is no memory. */
int qce__reserve(qce_value *v, size_t bytes);

/* Frees every buffer of the pool. */
void qce__pool_free(qce_pool *pool);

/* Index of the value called `name` (values are sorted by name), or SIZE_MAX. */
size_t qce__value_index(const qc_session *s, const char *name);

/* qc_dtype of an ONNX element type the executor holds (BOOL as u8); 0 when it holds none. */
int qce__dtype_of_onnx(int32_t type);

/* The kernel for (domain, op_type), or NULL. */
qce_kernel qce__find_kernel(const char *domain, const char *op_type);

/* `bytes` of the node's derived data, kept while inputs `sources` (count of them) stay the same
 * constants; *fresh is 1 when the kernel must (re)fill it. NULL when a source is not a constant (derive
 * per run instead) or there is no memory (then qc_last_error is set and *fresh is -1). */
void *qce__derived(const qce_call *call, size_t bytes, const size_t *sources, size_t count, int *fresh);

/* Shapes the output k of a call to dtype and dims, reusing its storage when large enough. */
qc_status qce__output(const qce_call *call, size_t k, qc_dtype dtype, int ndim, const int64_t *dims);

/* As qce__output, but when input `in` dies at this node (its last reader, and not an input, constant,
 * kept or outer value) and holds as many elements of `dtype`, output k takes over its storage instead:
 * elementwise kernels then work in place and reshapes copy nothing. *reused tells which happened (the
 * input's tensor still views the same bytes during the call). */
qc_status qce__output_over_input(const qce_call *call, size_t k, size_t in, qc_dtype dtype, int ndim,
                                 const int64_t *dims, int *reused);

/* A failure of the call's node: "<op> node '<name>': <message>", reported as qc_session_run's. */
qc_status qce__fail(const qce_call *call, qc_status status, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* Attributes of the call's node, with defaults when absent. */
int64_t qce__attr_int(const qce_call *call, const char *name, int64_t fallback);
float qce__attr_float(const qce_call *call, const char *name, float fallback);
/* An INTS attribute: its count (0 when absent) and values (borrowed). */
size_t qce__attr_ints(const qce_call *call, const char *name, const int64_t **values);
const Onnx__AttributeProto *qce__attr(const qce_call *call, const char *name);

/* Checks that input k is present with one of the dtypes (a bit mask of 1 << qc_dtype). */
qc_status qce__expect_input(const qce_call *call, size_t k, unsigned dtypes);
#define QCE_DT(d) (1u << (d))

/* Element count of a tensor. */
int64_t qce__numel(const qc_tensor *t);

#endif
