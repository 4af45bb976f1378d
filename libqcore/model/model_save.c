/* Saving: the parsed model is packed again by protobuf-c (so fields unknown to the schema go back out as
 * they came in), through shallow copies that move large initializers to an external data file or bring
 * external ones back inside. The model itself is never modified. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "file_atomic.h"
#include "model_internal.h"

enum { EXTERNAL_ALIGNMENT = 4096 };

/* What saving changes in one initializer's copy. */
typedef struct saved_initializer {
    Onnx__TensorProto copy;
    Onnx__StringStringEntryProto entries[3];
    Onnx__StringStringEntryProto *entry_pointers[3];
    char offset_text[24], length_text[24];
} saved_initializer;

typedef struct save_plan {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__TensorProto **initializers;
    saved_initializer *saved;
    qcm_file_piece *pieces;      /* external data file contents */
    size_t num_pieces;
} save_plan;

static void clear_data_fields(Onnx__TensorProto *t)
{
    t->has_raw_data = 0;
    t->raw_data.len = 0;
    t->raw_data.data = NULL;
    t->n_float_data = t->n_int32_data = t->n_int64_data = t->n_double_data = t->n_uint64_data = 0;
    t->n_string_data = 0;
    t->n_external_data = 0;
    t->has_data_location = 0;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
}

static void make_external(saved_initializer *s, const qcm_tensor_bytes *b, const char *file, size_t offset)
{
    clear_data_fields(&s->copy);
    snprintf(s->offset_text, sizeof s->offset_text, "%zu", offset);
    snprintf(s->length_text, sizeof s->length_text, "%zu", b->nbytes);
    const char *keys[3] = {"location", "offset", "length"};
    const char *values[3] = {file, s->offset_text, s->length_text};
    for (int k = 0; k < 3; k++) {
        Onnx__StringStringEntryProto init = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
        s->entries[k] = init;
        s->entries[k].key = (char *)keys[k];
        s->entries[k].value = (char *)values[k];
        s->entry_pointers[k] = &s->entries[k];
    }
    s->copy.n_external_data = 3;
    s->copy.external_data = s->entry_pointers;
    s->copy.has_data_location = 1;
    s->copy.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

static void make_inline(saved_initializer *s, const qcm_tensor_bytes *b)
{
    clear_data_fields(&s->copy);
    s->copy.has_raw_data = 1;
    s->copy.raw_data.data = (uint8_t *)b->data;
    s->copy.raw_data.len = b->nbytes;
}

/* onnxruntime accepts IR versions up to what it was built with, and IR 10 covers opsets up to 21 and
 * every type qcore writes (INT4/UINT4 included); a newer declared version is lowered to 10 unless the
 * model imports a newer ONNX opset or an initializer uses a type IR 10 lacks (FLOAT4E2M1 and later). */
static int64_t saved_ir_version(const qc_model *m)
{
    const Onnx__GraphProto *g = m->proto->graph;
    int64_t ir = m->proto->has_ir_version ? m->proto->ir_version : 0;
    if (ir <= 10 || qc_model_opset_version(m, "") > 21) return ir;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->data_type > QC_ONNX_INT4) return ir;
    return 10;
}

static qc_status plan_save(save_plan *p, const qc_model *m, uint64_t threshold, const char *file, const char *function)
{
    const Onnx__GraphProto *g = m->proto->graph;
    size_t n = g->n_initializer;
    p->model = *m->proto;
    p->model.ir_version = saved_ir_version(m);
    p->graph = *g;
    p->model.graph = &p->graph;
    p->initializers = malloc((n + 1) * sizeof *p->initializers);
    p->saved = malloc((n + 1) * sizeof *p->saved);
    p->pieces = malloc((n + 1) * sizeof *p->pieces);
    p->num_pieces = 0;
    if (!p->initializers || !p->saved || !p->pieces)
        return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory to plan %zu initializers", n);
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        const qcm_tensor_bytes *b = &m->bytes[i];
        saved_initializer *s = &p->saved[i];
        s->copy = *t;
        int was_external = t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        int has_bytes = t->data_type != QC_ONNX_STRING;
        if (has_bytes && threshold > 0 && b->nbytes >= threshold) {
            make_external(s, b, file, offset);
            p->pieces[p->num_pieces++] = (qcm_file_piece){b->data, b->nbytes, offset};
            offset += (b->nbytes + EXTERNAL_ALIGNMENT - 1) / EXTERNAL_ALIGNMENT * EXTERNAL_ALIGNMENT;
        } else if (has_bytes && was_external) {
            make_inline(s, b);
        }
        p->initializers[i] = &s->copy;
    }
    p->graph.initializer = p->initializers;
    return QC_OK;
}

static void free_plan(save_plan *p)
{
    free(p->initializers);
    free(p->saved);
    free(p->pieces);
}

/* The external data file's name: the option, else "<model file name>.data"; a bare file name other than
 * the model's own. */
static qc_status external_name(char *out, size_t size, const char *path, const qc_model_save_options *o,
                               const char *function)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *name = o->external_file;
    if (name != NULL && (name[0] == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
                         strcmp(name, base) == 0))
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                           "argument 'opts': external_file '%.80s' must be a file name in the model's folder, other than "
                           "the model's own", name);
    int n = name ? snprintf(out, size, "%s", name) : snprintf(out, size, "%s.data", base);
    if (n < 0 || (size_t)n >= size)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s': the external data file name is too long (%s)",
                           name ? "opts" : "path", name ? "external_file" : "the model's name plus .data");
    return QC_OK;
}

/* path's folder joined with `name`. */
static char *sibling_path(const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    char *out = malloc(dir + strlen(name) + 1);
    if (out) {
        memcpy(out, path, dir);
        strcpy(out + dir, name);
    }
    return out;
}

static qc_status write_model(char **temp, const save_plan *p, const char *path, const char *function)
{
    size_t size = onnx__model_proto__get_packed_size(&p->model);
    uint8_t *buffer = malloc(size ? size : 1);
    if (buffer == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %zu bytes", size);
    size_t packed = onnx__model_proto__pack(&p->model, buffer);
    qcm_file_piece piece = {buffer, packed, 0};
    qc_status st = qcm__write_temporary(temp, path, &piece, 1, function);
    free(buffer);
    return st;
}

static qc_status refuse_folder(const char *path, const char *function)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return QCM_FAIL_IN(function, QC_ERR_IO, "cannot write '%s': it is a folder", path);
    return QC_OK;
}

qc_status qc_model_save(const qc_model *m, const char *path, const qc_model_save_options *opts)
{
    QCM_CHECK_NOT_NULL(m);
    QCM_CHECK_NOT_NULL(path);
    qc_model_save_options defaults = QC_MODEL_SAVE_OPTIONS_INIT;
    if (opts == NULL) opts = &defaults;
    if (opts->version == 0 || opts->version > QC_MODEL_SAVE_OPTIONS_VERSION)
        return QCM_FAIL(QC_ERR_VERSION, "argument 'opts': version = %u is unknown (this library knows 1..%d)",
                        (unsigned)opts->version, QC_MODEL_SAVE_OPTIONS_VERSION);
    char file[256];
    QCM_TRY(external_name(file, sizeof file, path, opts, __func__));
    /* Both files are written in full before either replaces anything, and the data is renamed first so
     * that a reader of the new model finds its data. A target that is a folder would fail the model's
     * rename after the data's, so it is refused before anything is written. */
    QCM_TRY(refuse_folder(path, __func__));
    save_plan plan;
    char *data_path = NULL, *data_temp = NULL, *model_temp = NULL;
    qc_status st = plan_save(&plan, m, opts->external_threshold, file, __func__);
    if (st == QC_OK && plan.num_pieces > 0) {
        data_path = sibling_path(path, file);
        if (data_path) st = refuse_folder(data_path, __func__);
        if (st == QC_OK) st = data_path ? qcm__write_temporary(&data_temp, data_path, plan.pieces, plan.num_pieces, __func__)
                       : QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a path");
    }
    if (st == QC_OK) st = write_model(&model_temp, &plan, path, __func__);
    if (st == QC_OK && data_temp) {
        st = qcm__commit(data_temp, data_path, __func__);
        free(data_temp);
        data_temp = NULL;
    }
    if (st == QC_OK) {
        st = qcm__commit(model_temp, path, __func__);
        free(model_temp);
        model_temp = NULL;
    }
    qcm__discard(data_temp);
    qcm__discard(model_temp);
    free(data_temp), free(model_temp), free(data_path);
    free_plan(&plan);
    return st;
}
