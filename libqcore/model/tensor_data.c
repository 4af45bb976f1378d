/* Initializer bytes: from raw_data, from memory-mapped external data, or converted once from the typed
 * repeated fields, always checked against the size the type and shape demand. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "model_internal.h"

qc_status qcm__tensor_nbytes(size_t *out, int32_t type, size_t ndim, const int64_t *dims, const char *what,
                             const char *function)
{
    int bits = qc_onnx_type_bits(type);
    if (bits == 0)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: element type %d (%s) has no fixed size", what, (int)type,
                           qc_onnx_type_string(type));
    uint64_t n = 1;
    for (size_t d = 0; d < ndim; d++) {
        if (dims[d] < 0)
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: dims[%zu] = %" PRId64 " is negative", what, d, dims[d]);
        if (dims[d] != 0 && n > (uint64_t)INT64_MAX / 128 / (uint64_t)dims[d])
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: the declared shape has more elements than can exist", what);
        n *= (uint64_t)dims[d];
    }
    *out = (size_t)((n * (uint64_t)bits + 7) / 8);
    return QC_OK;
}

static uint64_t element_count(const Onnx__TensorProto *t)
{
    uint64_t n = 1;
    for (size_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->dims[d];
    return n;
}

/* A typed field stored with exactly the layout ONNX's raw bytes would have: a view. `item` receives the
 * field's element size (complex numbers are two of them per value). */
static int typed_view(const Onnx__TensorProto *t, const void **data, size_t *count, size_t *item)
{
    switch (t->data_type) {
    case QC_ONNX_FLOAT: case QC_ONNX_COMPLEX64:
        *data = t->float_data, *count = t->n_float_data, *item = 4;
        return t->n_float_data > 0;
    case QC_ONNX_DOUBLE: case QC_ONNX_COMPLEX128:
        *data = t->double_data, *count = t->n_double_data, *item = 8;
        return t->n_double_data > 0;
    case QC_ONNX_INT64: *data = t->int64_data, *count = t->n_int64_data, *item = 8; return t->n_int64_data > 0;
    case QC_ONNX_INT32: *data = t->int32_data, *count = t->n_int32_data, *item = 4; return t->n_int32_data > 0;
    case QC_ONNX_UINT64: *data = t->uint64_data, *count = t->n_uint64_data, *item = 8; return t->n_uint64_data > 0;
    default: return 0;
    }
}

/* Narrow types kept one per int32_data entry (4-bit types: one packed byte per entry, as onnx writes
 * them), and UINT32 kept in uint64_data: converted into a new buffer. */
static qc_status convert_typed(qcm_tensor_bytes *b, const Onnx__TensorProto *t, size_t nbytes, const char *what,
                               const char *function)
{
    int bits = qc_onnx_type_bits(t->data_type);
    int from_uint64 = t->data_type == QC_ONNX_UINT32;
    if (!from_uint64 && bits > 16) return QC_OK; /* wider types never live in int32_data: "no data" */
    size_t have = from_uint64 ? t->n_uint64_data : t->n_int32_data;
    size_t width = bits <= 8 ? 1 : (size_t)bits / 8;
    size_t want = nbytes / width;
    if (have == 0) return QC_OK;
    if (have != want)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: %s holds %zu values, its shape needs %zu",
                           what, from_uint64 ? "uint64_data" : "int32_data", have, want);
    unsigned char *out = malloc(nbytes ? nbytes : 1);
    if (out == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", nbytes);
    for (size_t i = 0; i < want; i++) {
        uint64_t v = from_uint64 ? t->uint64_data[i] : (uint64_t)(uint32_t)t->int32_data[i];
        memcpy(out + i * width, &v, width); /* little-endian host: the low bytes */
    }
    b->owned = out;
    b->data = out;
    b->nbytes = nbytes;
    return QC_OK;
}

qc_status qcm__external_location(const Onnx__TensorProto *t, const char **location, uint64_t *offset,
                                 uint64_t *length, int *has_length, const char *function)
{
    *location = NULL;
    *offset = 0;
    *has_length = 0;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const char *key = t->external_data[i]->key, *value = t->external_data[i]->value;
        if (key == NULL || value == NULL) continue;
        uint64_t *target = strcmp(key, "offset") == 0 ? offset : strcmp(key, "length") == 0 ? length : NULL;
        if (strcmp(key, "location") == 0) *location = value;
        if (target == NULL) continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end != '\0' || value[0] == '-')
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "initializer '%s': external data %s '%.40s' is not a number",
                               t->name, key, value);
        *target = v;
        if (target == length) *has_length = 1;
    }
    if (*location == NULL || (*location)[0] == '\0')
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "initializer '%s': external data without a location", t->name);
    return QC_OK;
}

static qc_status resolve_external(qc_model *m, qcm_tensor_bytes *b, const Onnx__TensorProto *t, size_t nbytes,
                                  const char *function)
{
    const char *location;
    uint64_t offset, length = 0;
    int has_length;
    QCM_TRY(qcm__external_location(t, &location, &offset, &length, &has_length, function));
    if (has_length && length != nbytes)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "initializer '%s': external length %" PRIu64 " but its shape needs %zu bytes",
                           t->name, length, nbytes);
    const qcm_mapping *map;
    QCM_TRY(qcm__map_external(m, location, &map, function));
    if (offset > map->size || nbytes > map->size - offset)
        return QCM_FAIL_IN(function, QC_ERR_FORMAT,
                           "initializer '%s': bytes %" PRIu64 "..%" PRIu64 " lie beyond the end of '%s' (%zu bytes)", t->name,
                           offset, offset + nbytes, location, map->size);
    b->data = map->data + offset;
    b->nbytes = nbytes;
    return QC_OK;
}

qc_status qcm__tensor_bytes(qcm_tensor_bytes *b, const Onnx__TensorProto *t, qc_model *m, const char *what,
                            const char *function)
{
    if (t->data_type == QC_ONNX_STRING) {
        b->resolved = 1; /* strings have no byte view */
        return QC_OK;
    }
    size_t nbytes;
    QCM_TRY(qcm__tensor_nbytes(&nbytes, t->data_type, t->n_dims, t->dims, what, function));
    const void *view;
    size_t count, item;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        if (m == NULL) return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: external data is not allowed here", what);
        QCM_TRY(resolve_external(m, b, t, nbytes, function));
    } else if (t->has_raw_data) {
        if (t->raw_data.len != nbytes)
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: raw_data has %zu bytes, its type and shape need %zu", what,
                               t->raw_data.len, nbytes);
        b->data = t->raw_data.data;
        b->nbytes = nbytes;
    } else if (typed_view(t, &view, &count, &item)) {
        if (count * item != nbytes)
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: holds %zu values, its shape needs %" PRIu64, what, count,
                               element_count(t));
        b->data = view;
        b->nbytes = nbytes;
    } else {
        QCM_TRY(convert_typed(b, t, nbytes, what, function));
        if (b->data == NULL && nbytes > 0)
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "%s: no data for its %zu bytes", what, nbytes);
    }
    b->resolved = 1;
    return QC_OK;
}

qc_status qcm__initializer_bytes(qc_model *m, size_t i, const char *function)
{
    qcm_tensor_bytes *b = &m->bytes[i];
    if (b->resolved) return QC_OK;
    const Onnx__TensorProto *t = m->proto->graph->initializer[i];
    char what[160];
    snprintf(what, sizeof what, "initializer '%.120s'", t->name);
    return qcm__tensor_bytes(b, t, m, what, function);
}

/* External locations must stay inside the model's folder: relative, without "..". */
static qc_status check_location(const char *location, const char *function)
{
    if (location[0] == '/' || strcmp(location, "..") == 0 || strncmp(location, "../", 3) == 0 ||
        strstr(location, "/../") != NULL || (strlen(location) >= 3 && strcmp(location + strlen(location) - 3, "/..") == 0))
        return QCM_FAIL_IN(function, QC_ERR_FORMAT, "external data location '%.80s' leaves the model's folder", location);
    return QC_OK;
}

static qc_status map_file(qcm_mapping *map, const char *path, const char *function)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return QCM_FAIL_IN(function, QC_ERR_IO, "cannot open external data '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return QCM_FAIL_IN(function, QC_ERR_IO, "external data '%s' is not a regular file", path);
    }
    map->size = (size_t)st.st_size;
    map->data = NULL;
    if (map->size) {
        void *p = mmap(NULL, map->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return QCM_FAIL_IN(function, QC_ERR_IO, "cannot map external data '%s': %s", path, strerror(errno));
        }
        map->data = p;
    }
    close(fd);
    return QC_OK;
}

qc_status qcm__map_external(qc_model *m, const char *location, const qcm_mapping **out, const char *function)
{
    for (size_t i = 0; i < m->num_mappings; i++)
        if (strcmp(m->mappings[i].location, location) == 0) {
            *out = &m->mappings[i];
            return QC_OK;
        }
    if (m->external_dir == NULL)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                           "the model keeps data in external file '%.80s' but no folder was given to find it", location);
    QCM_TRY(check_location(location, function));
    qcm_mapping *grown = realloc(m->mappings, (m->num_mappings + 1) * sizeof *grown);
    if (grown == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a mapping");
    m->mappings = grown;
    qcm_mapping *map = &m->mappings[m->num_mappings];
    size_t len = strlen(m->external_dir) + 1 + strlen(location) + 1;
    map->path = malloc(len);
    map->location = strdup(location);
    qc_status st = map->path && map->location ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a path");
    if (st == QC_OK) {
        snprintf(map->path, len, "%s/%s", m->external_dir, location);
        st = map_file(map, map->path, function);
    }
    if (st != QC_OK) {
        free(map->path);
        free(map->location);
        return st;
    }
    m->num_mappings++;
    *out = map;
    return QC_OK;
}
