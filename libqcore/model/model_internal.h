/* Internal: the model handle and the helpers its parts share. */
#ifndef QC_MODEL_INTERNAL_H
#define QC_MODEL_INTERNAL_H

#include <stddef.h>

#include "onnx.pb-c.h"
#include "qcore/qc_model.h"

/* A read-only memory mapping of a whole file. */
typedef struct qcm_mapping {
    char *location;                   /* as the model names it */
    char *path;
    const unsigned char *data;
    size_t size;
} qcm_mapping;

/* Where an initializer's bytes are, once resolved: a view (into the parsed message, a typed repeated
 * field of matching layout, or an external mapping), or a conversion owned by the model. */
typedef struct qcm_tensor_bytes {
    const void *data;
    size_t nbytes;
    void *owned;
    int resolved;
} qcm_tensor_bytes;

struct qc_model {
    Onnx__ModelProto *proto;
    const unsigned char *source;      /* the mapped file or a copy of the loaded bytes, when initializers'
                                       * raw_data point into it (model_skeleton.c); else NULL */
    size_t source_size;
    int source_is_mapping;
    ProtobufCAllocator allocator;     /* frees the parsed message except the bytes borrowed from source */
    char *external_dir;               /* where external data files are looked up; NULL: none allowed */
    qcm_mapping *mappings;            /* external data files, mapped once each */
    size_t num_mappings;
    qcm_tensor_bytes *bytes;          /* one per graph initializer */
    size_t *input_index;              /* graph.input entries that are not initializers */
    size_t num_inputs;
};

/* Frees bytes of the parsed message (raw_data borrowed from the source is left alone). */
void qcm__free_bytes(qc_model *m, void *bytes);

/* The expected byte count of a tensor of this type and shape; QC_ERR_FORMAT (naming `what`) for
 * negative dims, unknown types or a count that overflows. */
qc_status qcm__tensor_nbytes(size_t *out, int32_t type, size_t ndim, const int64_t *dims, const char *what,
                             const char *function);

/* Resolves a TensorProto's bytes into b, checking their size against its type and shape; `what` names
 * it in messages. External data needs a model to resolve its location (m may be NULL otherwise). */
qc_status qcm__tensor_bytes(qcm_tensor_bytes *b, const Onnx__TensorProto *t, qc_model *m, const char *what,
                            const char *function);

/* Resolves initializer i's bytes (see qcm_tensor_bytes), checking their size against the shape. */
qc_status qcm__initializer_bytes(qc_model *model, size_t i, const char *function);

/* Maps the external data file `location` (validated: relative, inside external_dir). */
qc_status qcm__map_external(qc_model *model, const char *location, const qcm_mapping **out, const char *function);

/* A dependency order of g's nodes (indices into g->node, n_node of them), stable for ordered graphs; a
 * node comes after the producers of its inputs and of what its subgraphs read from g. QC_ERR_FORMAT naming
 * a node that reads a missing value, or a cycle. In a `nested` graph (a subgraph), names that no node of g
 * produces come from enclosing graphs and are never missing. */
qc_status qcm__graph_order(const Onnx__GraphProto *g, size_t *order, int nested, const char *function);

/* The names that node n's subgraphs (If branches, recursively) read from outside themselves: sorted,
 * without repeats, `*count` of them in `*names` (malloc'd, NULL when none; the strings are n's). */
qc_status qcm__outer_reads(const Onnx__NodeProto *n, const char ***names, size_t *count, const char *function);

/* Whether the graph has a value (initializer, graph input or node output) called `name`. */
int qcm__value_exists(const qc_model *m, const char *name);

/* Whether `domain` names the default ONNX operator set: NULL, "" or "ai.onnx". */
int qcm__is_onnx_domain(const char *domain);

/* Raises the model's opset and IR version to what QuantizeLinear/DequantizeLinear need for grid `o`
 * stored as ONNX integer `type` (axis: opset 13; 4- and 16-bit types, blocks: opset 21 and IR 10). */
qc_status qcm__require_qdq_format(qc_model *m, const qc_quant_options *o, int32_t type);

/* Raises the model's IR version to at least `version`. */
void qcm__require_ir_version(qc_model *m, int64_t version);

/* Rewrites the nodes of every graph for the default domain's opset going from `from` to `to`: attributes
 * that became inputs in between become int64 initializers (opset_upgrade.c). */
qc_status qcm__upgrade_opset(qc_model *m, int64_t from, int64_t to, const char *function);

/* Removes initializer i (and a graph input of the same name, as IR < 4 lists them). */
void qcm__remove_initializer(qc_model *m, size_t i);

/* A value name not used yet: base (its first 200 bytes) + suffix, numbered when taken, written into
 * out[size]; size >= 256 and suffix shorter than 40 bytes. */
void qcm__fresh_name(char *out, size_t size, const qc_model *m, const char *base, const char *suffix);

/* Room for a value name qcm__fresh_name makes, or one read from a model to build others from. */
typedef char qcm_value_name[320];

/* How many node inputs and graph outputs of g read `name`. */
size_t qcm__reader_count(const Onnx__GraphProto *g, const char *name);

/* Reads a TensorProto's external_data entries. */
qc_status qcm__external_location(const Onnx__TensorProto *t, const char **location, uint64_t *offset,
                                 uint64_t *length, int *has_length, const char *function);

/* Packs node `node` of `model` alone as qc_model_pack_ethosu would: *out holds that layer, or no layer
 * when the node is not one (its weight is not an int8/uint8 initializer read through DequantizeLinear). */
qc_status qcm__ethosu_pack_node(qc_ethosu_model **out, const qc_model *model, size_t node,
                                const qc_ethosu_layer_options *opts, const char *function);

#endif
