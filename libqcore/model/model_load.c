/* Loading: parse a ModelProto with protobuf-c (leaving large raw_data payloads in the mapped file, see
 * model_skeleton.c), then check it and index it so that inspection never meets a malformed item: every
 * initializer's bytes are resolved and their size checked here. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "model_internal.h"
#include "model_skeleton.h"


static const char *name_of(const Onnx__TensorProto *t)
{
    return t->name ? t->name : "";
}

/* Indices of the initializers sorted by name, for membership tests in O(log n). */
typedef struct sorted_names {
    const char **names;
    size_t count;
} sorted_names;

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int contains(const sorted_names *s, const char *name)
{
    return name && bsearch(&name, s->names, s->count, sizeof *s->names, compare_strings) != NULL;
}

static qc_status index_inputs(qc_model *m, const char *function)
{
    Onnx__GraphProto *g = m->proto->graph;
    sorted_names init = {malloc((g->n_initializer + 1) * sizeof(char *)), g->n_initializer};
    m->input_index = malloc((g->n_input + 1) * sizeof *m->input_index);
    if (init.names == NULL || m->input_index == NULL) {
        free(init.names);
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory to index %zu inputs", g->n_input);
    }
    for (size_t i = 0; i < g->n_initializer; i++) init.names[i] = name_of(g->initializer[i]);
    qsort(init.names, init.count, sizeof *init.names, compare_strings);
    m->num_inputs = 0;
    for (size_t i = 0; i < g->n_input; i++)
        if (!contains(&init, g->input[i]->name)) m->input_index[m->num_inputs++] = i; /* IR < 4 lists both */
    free(init.names);
    return QC_OK;
}

static qc_status check_graph(const Onnx__GraphProto *g, const char *function)
{
    for (size_t i = 0; i < g->n_node; i++)
        if (g->node[i]->op_type == NULL || g->node[i]->op_type[0] == '\0')
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "node %zu ('%s') has no op_type", i,
                               g->node[i]->name ? g->node[i]->name : "");
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name == NULL || g->initializer[i]->name[0] == '\0')
            return QCM_FAIL_IN(function, QC_ERR_FORMAT, "initializer %zu has no name", i);
    return QC_OK;
}

/* ---- borrowed raw_data ------------------------------------------------------------------------- */

static int is_borrowed(const qc_model *m, const void *bytes)
{
    uintptr_t p = (uintptr_t)bytes, base = (uintptr_t)m->source;
    return m->source != NULL && p >= base && p - base < m->source_size;
}

void qcm__free_bytes(qc_model *m, void *bytes)
{
    if (!is_borrowed(m, bytes)) free(bytes);
}

static void *allocate(void *model, size_t size)
{
    (void)model;
    return malloc(size);
}

static void release(void *model, void *bytes)
{
    qcm__free_bytes(model, bytes);
}

/* Where the source bytes come from, and whether the model may keep them. */
typedef struct source {
    const uint8_t *data;
    size_t size;
    int is_mapping;   /* the model takes the mapping over when it borrows from it */
    int taken;        /* set when it did: the model unmaps it, even if loading fails later */
} source;

/* Keeps the source for borrowed payloads: the mapping itself, or a copy of caller-owned bytes. */
static qc_status keep_source(qc_model *m, source *src, const char *function)
{
    if (src->is_mapping) {
        m->source = src->data;
        src->taken = 1;
    } else {
        unsigned char *copy = malloc(src->size);
        if (copy == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", src->size);
        memcpy(copy, src->data, src->size);
        m->source = copy;
    }
    m->source_size = src->size;
    m->source_is_mapping = src->is_mapping;
    return QC_OK;
}

static void attach_raw(qc_model *m, const qcm_skeleton *sk)
{
    Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < sk->num_raw; i++) {
        Onnx__TensorProto *t = g->initializer[sk->raw[i].initializer]; /* the skeleton kept every initializer */
        t->raw_data.data = (uint8_t *)m->source + sk->raw[i].offset;
        t->raw_data.len = sk->raw[i].length;
        t->has_raw_data = 1;
    }
}

/* Unpacks the source into m->proto, through a skeleton when raw_data payloads can stay in the source. */
static qc_status unpack(qc_model *m, source *src, const char *function)
{
    qcm_skeleton sk;
    int built = qcm__skeleton_build(&sk, src->data, src->size);
    if (built < 0) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory to parse %zu bytes", src->size);
    m->proto = built ? onnx__model_proto__unpack(NULL, sk.size, sk.bytes)
                     : onnx__model_proto__unpack(NULL, src->size, src->data);
    qc_status st = QC_OK;
    if (m->proto == NULL)
        st = QCM_FAIL_IN(function, QC_ERR_FORMAT,
                         "not an ONNX model: the %zu bytes do not parse as a ModelProto (truncated or corrupt?)", src->size);
    else if (m->proto->graph == NULL)
        st = QCM_FAIL_IN(function, QC_ERR_FORMAT, "the model has no graph");
    if (st == QC_OK && built) st = keep_source(m, src, function);
    if (st == QC_OK && built) attach_raw(m, &sk);
    if (built) qcm__skeleton_free(&sk);
    return st;
}

static qc_status model_from_source(qc_model **out, source *src, const char *external_dir, const char *function)
{
    if (src->size == 0) return QCM_FAIL_IN(function, QC_ERR_FORMAT, "the model is empty (0 bytes)");
    qc_model *m = calloc(1, sizeof *m);
    if (m == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a model");
    m->allocator = (ProtobufCAllocator){allocate, release, m};
    qc_status st = unpack(m, src, function);
    if (st == QC_OK && external_dir != NULL && (m->external_dir = strdup(external_dir)) == NULL)
        st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for a path");
    if (st == QC_OK) st = check_graph(m->proto->graph, function);
    if (st == QC_OK) st = index_inputs(m, function);
    size_t n = st == QC_OK ? m->proto->graph->n_initializer : 0;
    if (st == QC_OK && (m->bytes = calloc(n + 1, sizeof *m->bytes)) == NULL)
        st = QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory to index %zu initializers", n);
    for (size_t i = 0; st == QC_OK && i < n; i++) st = qcm__initializer_bytes(m, i, function);
    if (st != QC_OK) {
        qc_model_free(m);
        return st;
    }
    *out = m;
    return QC_OK;
}

qc_status qc_model_load_memory(qc_model **out, const void *data, size_t size, const char *external_dir)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    if (size > 0) QCM_CHECK_NOT_NULL(data);
    source src = {data, size, 0, 0};
    return model_from_source(out, &src, external_dir, __func__);
}

/* The folder part of `path` ("." when there is none), newly allocated. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

/* Puts the file's name into the last error: "qc_model_load: 'm.onnx': <what was wrong>". */
static void name_file_in_error(const char *path)
{
    char message[512];
    const char *rest = strstr(qc_last_error(), ": ");
    snprintf(message, sizeof message, "qc_model_load: '%.200s': %s", path, rest ? rest + 2 : qc_last_error());
    qc_error_set(QC_ERR_FORMAT, message);
}

qc_status qc_model_load(qc_model **out, const char *path)
{
    QCM_CHECK_NOT_NULL(out);
    QCM_CHECK_NOT_NULL(path);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return QCM_FAIL(QC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st_buf;
    if (fstat(fd, &st_buf) != 0 || !S_ISREG(st_buf.st_mode)) {
        close(fd);
        return QCM_FAIL(QC_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)st_buf.st_size;
    void *data = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (data == MAP_FAILED) return QCM_FAIL(QC_ERR_IO, "cannot map '%s' (%zu bytes): %s", path, size, strerror(errno));
    char *dir = folder_of(path);
    source src = {data, size, 1, 0};
    qc_status status = dir ? model_from_source(out, &src, dir, __func__)
                           : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a path");
    free(dir);
    if (data && !src.taken) munmap(data, size);
    if (status == QC_ERR_FORMAT) name_file_in_error(path);
    return status;
}

void qc_model_free(qc_model *m)
{
    if (m == NULL) return;
    if (m->bytes && m->proto)
        for (size_t i = 0; i < m->proto->graph->n_initializer; i++) free(m->bytes[i].owned);
    free(m->bytes);
    for (size_t i = 0; i < m->num_mappings; i++) {
        if (m->mappings[i].size) munmap((void *)m->mappings[i].data, m->mappings[i].size);
        free(m->mappings[i].path);
        free(m->mappings[i].location);
    }
    free(m->mappings);
    free(m->input_index);
    free(m->external_dir);
    if (m->proto) onnx__model_proto__free_unpacked(m->proto, &m->allocator);
    if (m->source_is_mapping && m->source) munmap((void *)m->source, m->source_size);
    else free((void *)m->source);
    free(m);
}
