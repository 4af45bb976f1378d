/* Zero-copy loading. protobuf-c copies every bytes field it unpacks, so parsing a model whose weights
 * sit in raw_data would hold them twice (the mapped file and the copies). Before parsing, this walks the
 * protobuf wire format down to ModelProto.graph.initializer[k].raw_data only, writes a skeleton of the
 * message without those payloads, and records where each payload lies in the source; the loader parses
 * the skeleton and points each TensorProto's raw_data back into the source.
 *
 * Only the common layout is handled (one graph field, at most one raw_data per initializer, no groups);
 * anything else makes the caller parse the source as it is, so protobuf-c stays the judge of validity. */
#include <stdlib.h>
#include <string.h>

#include "model_skeleton.h"

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

/* Payloads smaller than this are left in the skeleton: borrowing them saves nothing worth the entry. */
#define BORROW_MIN_BYTES 64

typedef struct wire_field {
    uint32_t number;
    int type;
    const uint8_t *start;   /* tag */
    const uint8_t *payload; /* LEN fields: the bytes after the length */
    size_t payload_len;
    const uint8_t *end;     /* one past the field */
} wire_field;

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *value = v;
            return 1;
        }
    }
    return 0;
}

/* Reads the field at *p, advancing past it; 0 for malformed or unsupported (group) fields. */
static int next_field(const uint8_t **p, const uint8_t *end, wire_field *f)
{
    uint64_t tag, len;
    f->start = *p;
    if (!read_varint(p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) return 0;
    f->number = (uint32_t)(tag >> 3);
    f->type = (int)(tag & 7);
    size_t left = (size_t)(end - *p);
    switch (f->type) {
    case WIRE_VARINT:
        if (!read_varint(p, end, &len)) return 0;
        break;
    case WIRE_FIXED64:
    case WIRE_FIXED32: {
        size_t n = f->type == WIRE_FIXED64 ? 8 : 4;
        if (left < n) return 0;
        *p += n;
        break;
    }
    case WIRE_LEN:
        if (!read_varint(p, end, &len) || len > (uint64_t)(end - *p)) return 0;
        f->payload = *p;
        f->payload_len = (size_t)len;
        *p += len;
        break;
    default:
        return 0;
    }
    f->end = *p;
    return 1;
}

/* Output that only counts when `out` is NULL, so one walk both sizes and writes the skeleton. */
typedef struct emitter {
    uint8_t *out;
    size_t size;
} emitter;

static void emit_bytes(emitter *e, const uint8_t *bytes, size_t n)
{
    if (e->out && n) memcpy(e->out + e->size, bytes, n);
    e->size += n;
}

static void emit_varint(emitter *e, uint64_t v)
{
    uint8_t buf[10];
    size_t n = 0;
    do {
        buf[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) buf[n] |= 0x80;
        n++;
    } while (v);
    emit_bytes(e, buf, n);
}

/* Field numbers, taken from the generated descriptors rather than restated. */
typedef struct field_numbers {
    uint32_t model_graph, graph_initializer, tensor_raw_data;
} field_numbers;

/* The walk's state: the source, the payloads found (recorded only while writing) and the initializer
 * count, both restarted by each pass over the graph. */
typedef struct walk {
    const uint8_t *source;
    field_numbers fields;
    qcm_borrowed_raw *raw;
    size_t num_raw;
    size_t initializers;
} walk;

/* Writes a TensorProto without a large raw_data; *borrowed receives that field (NULL if none). */
static int emit_tensor(walk *w, const uint8_t *p, const uint8_t *end, emitter *e, wire_field *borrowed)
{
    borrowed->payload = NULL;
    int raw_fields = 0;
    wire_field f;
    while (p < end) {
        if (!next_field(&p, end, &f)) return 0;
        if (f.number == w->fields.tensor_raw_data) {
            if (f.type != WIRE_LEN || ++raw_fields > 1) return 0; /* repeated raw_data: protobuf-c keeps the last */
            if (f.payload_len >= BORROW_MIN_BYTES) {
                *borrowed = f;
                continue;
            }
        }
        emit_bytes(e, f.start, (size_t)(f.end - f.start));
    }
    return 1;
}

/* Writes one graph.initializer field with its TensorProto rewritten (sized first, then written). */
static int emit_initializer(walk *w, const wire_field *f, emitter *e)
{
    wire_field borrowed;
    emitter sizing = {NULL, 0};
    if (!emit_tensor(w, f->payload, f->payload + f->payload_len, &sizing, &borrowed)) return 0;
    emit_varint(e, ((uint64_t)f->number << 3) | WIRE_LEN);
    emit_varint(e, sizing.size);
    emit_tensor(w, f->payload, f->payload + f->payload_len, e, &borrowed);
    if (borrowed.payload) {
        if (e->out)
            w->raw[w->num_raw] = (qcm_borrowed_raw){w->initializers, (size_t)(borrowed.payload - w->source),
                                                    borrowed.payload_len};
        w->num_raw++;
    }
    w->initializers++;
    return 1;
}

static int emit_graph(walk *w, const uint8_t *p, const uint8_t *end, emitter *e)
{
    w->num_raw = w->initializers = 0;
    wire_field f;
    while (p < end) {
        if (!next_field(&p, end, &f)) return 0;
        if (f.number == w->fields.graph_initializer && f.type == WIRE_LEN) {
            if (!emit_initializer(w, &f, e)) return 0;
        } else {
            emit_bytes(e, f.start, (size_t)(f.end - f.start));
        }
    }
    return 1;
}

/* One walk over the ModelProto; counts only when e->out is NULL. */
static int emit_model(walk *w, const uint8_t *data, size_t size, emitter *e)
{
    const uint8_t *p = data, *end = data + size;
    int graphs = 0;
    wire_field f;
    while (p < end) {
        if (!next_field(&p, end, &f)) return 0;
        if (f.number != w->fields.model_graph || f.type != WIRE_LEN) {
            emit_bytes(e, f.start, (size_t)(f.end - f.start));
            continue;
        }
        if (++graphs > 1) return 0; /* repeated graph fields merge: protobuf-c's business */
        emitter sizing = {NULL, 0};
        if (!emit_graph(w, f.payload, f.payload + f.payload_len, &sizing)) return 0;
        emit_varint(e, ((uint64_t)f.number << 3) | WIRE_LEN);
        emit_varint(e, sizing.size);
        emit_graph(w, f.payload, f.payload + f.payload_len, e);
    }
    return 1;
}

static uint32_t field_number(const ProtobufCMessageDescriptor *d, const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(d, name)->id;
}

int qcm__skeleton_build(qcm_skeleton *sk, const uint8_t *data, size_t size)
{
    walk w = {data, {field_number(&onnx__model_proto__descriptor, "graph"),
                     field_number(&onnx__graph_proto__descriptor, "initializer"),
                     field_number(&onnx__tensor_proto__descriptor, "raw_data")},
              NULL, 0, 0};
    emitter sizing = {NULL, 0};
    if (!emit_model(&w, data, size, &sizing) || w.num_raw == 0) return 0;
    size_t num_raw = w.num_raw;
    sk->bytes = malloc(sizing.size ? sizing.size : 1);
    sk->raw = malloc(num_raw * sizeof *sk->raw);
    if (sk->bytes == NULL || sk->raw == NULL) {
        qcm__skeleton_free(sk);
        return -1;
    }
    w.raw = sk->raw;
    emitter out = {sk->bytes, 0};
    emit_model(&w, data, size, &out); /* same walk as the sizing one: cannot fail now */
    sk->size = out.size;
    sk->num_raw = w.num_raw;
    return 1;
}

void qcm__skeleton_free(qcm_skeleton *sk)
{
    free(sk->bytes);
    free(sk->raw);
    sk->bytes = NULL;
    sk->raw = NULL;
    sk->size = sk->num_raw = 0;
}
