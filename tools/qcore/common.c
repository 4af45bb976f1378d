/* What the commands share: messages and exit codes, the context with its progress bar, the feeds (graph
 * inputs read from files), calibration, command lines, JSON strings and atomic output files. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int fail(const char *command, int code, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    fprintf(stderr, "qcore %s: ", command);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int parse_integer(const char *command, const char *text, long lo, long hi, const char *flag, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < lo || v > hi)
        return fail(command, EXIT_USAGE, "%s takes an integer in %ld..%ld, got '%s'", flag, lo, hi, text);
    *out = v;
    return EXIT_DONE;
}

int exit_code_of(qc_status status)
{
    return status == QC_ERR_IO || status == QC_ERR_FORMAT ? EXIT_INPUT : EXIT_FAILED;
}

/* A one-line bar on stderr, redrawn as the work advances. */
static int progress_bar(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user;
    int width = 30, filled = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\r%-24.24s [%.*s%*s] %llu/%llu", stage, filled, "##############################", width - filled, "",
            (unsigned long long)done, (unsigned long long)total);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
    return 0;
}

qc_status make_context(qc_ctx **ctx, int threads, int quiet)
{
    qc_status st = qc_ctx_create(ctx);
    if (st == QC_OK && threads > 0) st = qc_ctx_set_param(*ctx, QC_CTX_THREADS, threads);
    if (st == QC_OK && !quiet && isatty(STDERR_FILENO)) st = qc_ctx_set_progress(*ctx, progress_bar, NULL);
    return st;
}

static qc_dtype dtype_of_onnx(int32_t type)
{
    switch (type) {
    case QC_ONNX_FLOAT: return QC_DT_F32;
    case QC_ONNX_DOUBLE: return QC_DT_F64;
    case QC_ONNX_INT64: return QC_DT_I64;
    case QC_ONNX_INT32: return QC_DT_I32;
    case QC_ONNX_INT8: return QC_DT_I8;
    case QC_ONNX_UINT8: return QC_DT_U8;
    default: return (qc_dtype)0;
    }
}

static double element(const qc_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case QC_DT_F32: return ((const float *)t->data)[i];
    case QC_DT_F64: return ((const double *)t->data)[i];
    case QC_DT_I64: return (double)((const int64_t *)t->data)[i];
    case QC_DT_I32: return ((const int32_t *)t->data)[i];
    case QC_DT_I16: return ((const int16_t *)t->data)[i];
    case QC_DT_I8: return ((const int8_t *)t->data)[i];
    default: return ((const uint8_t *)t->data)[i];
    }
}

static void store(qc_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case QC_DT_F32: ((float *)t->data)[i] = (float)v; break;
    case QC_DT_F64: ((double *)t->data)[i] = v; break;
    case QC_DT_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    case QC_DT_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case QC_DT_I8: ((int8_t *)t->data)[i] = (int8_t)v; break;
    default: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    }
}

/* Whether the model fixes the input's shape (no symbolic or missing dimension) and the array has exactly
 * that shape: a state or a setting, fed whole to every batch rather than split into samples. */
static int is_whole(const qc_value_info *input, const qc_tensor *a)
{
    if (input->ndim != a->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (input->dims[d] != a->dims[d]) return 0; /* a symbolic dimension is -1 */
    return 1;
}

/* The array as the input wants it: its element type, times `scale` when float, and its declared sample
 * shape when the file's samples hold as many elements (whole arrays keep their shape). */
static int convert(qc_tensor *out, const char *command, const qc_value_info *input, const qc_tensor *a, double scale,
                   int64_t max_samples, int whole)
{
    qc_dtype dtype = dtype_of_onnx(input->elem_type);
    if (dtype == 0) return fail(command, EXIT_FAILED, "input '%s' is %s; feeds of that type are not supported", input->name,
                                qc_onnx_type_string(input->elem_type));
    if (!whole && (a->ndim < 1 || a->dims[0] < 1))
        return fail(command, EXIT_INPUT, "the data for '%s' has no samples", input->name);
    int64_t in_file = whole ? 1 : a->dims[0], per_sample = qc_tensor_numel(a) / in_file;
    int64_t samples = max_samples > 0 && max_samples < in_file ? max_samples : in_file, n = samples * per_sample;
    int64_t declared = 1;
    for (int d = 1; d < input->ndim; d++) declared = input->dims[d] > 0 && declared > 0 ? declared * input->dims[d] : -1;
    int reshape = !whole && input->ndim >= 1 && declared == per_sample;
    int64_t dims[QC_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) dims[d] = a->dims[d];
    if (!whole) dims[0] = samples;
    for (int d = 1; reshape && d < input->ndim; d++) dims[d] = input->dims[d];
    void *data = malloc((size_t)n * (size_t)(qc_dtype_bits(dtype) / 8) + 1);
    if (data == NULL || qc_tensor_init(out, data, dtype, reshape ? input->ndim : a->ndim, dims, NULL) != QC_OK) {
        free(data);
        return fail(command, EXIT_FAILED, "no memory for the data of '%s'", input->name);
    }
    int is_float = dtype == QC_DT_F32 || dtype == QC_DT_F64;
    for (int64_t i = 0; i < n; i++) store(out, i, element(a, i) * (is_float ? scale : 1.0));
    return EXIT_DONE;
}

static int find_input(const qc_model *model, const char *name, qc_value_info *out)
{
    for (size_t i = 0; i < qc_model_count(model, QC_MODEL_INPUTS); i++)
        if (qc_model_input(model, i, out) == QC_OK && strcmp(out->name, name) == 0) return 1;
    return 0;
}

static int read_one(feed_set *f, const char *command, const qc_model *model, const char *spec, double scale,
                    int64_t max_samples)
{
    const char *eq = strchr(spec, '=');
    if (eq == NULL || eq == spec || eq[1] == '\0')
        return fail(command, EXIT_USAGE, "--data takes NAME=FILE (a graph input and its data file), got '%s'", spec);
    size_t k = f->count++;
    f->names[k] = strndup(spec, (size_t)(eq - spec));
    if (f->names[k] == NULL) return fail(command, EXIT_FAILED, "no memory");
    qc_value_info input;
    if (!find_input(model, f->names[k], &input))
        return fail(command, EXIT_USAGE, "the model has no graph input '%s' (see qcore inspect)", f->names[k]);
    qc_status st = qc_array_load(&f->arrays[k], eq + 1, QC_ARRAY_AUTO);
    if (st != QC_OK) return fail(command, exit_code_of(st), "%s", qc_last_error());
    const qc_tensor *a = qc_array_tensor(f->arrays[k]);
    f->whole[k] = (unsigned char)is_whole(&input, a);
    int code = convert(&f->tensors[k], command, &input, a, scale, max_samples, f->whole[k]);
    if (code != EXIT_DONE || f->whole[k]) return code;
    int64_t samples = f->tensors[k].dims[0];
    if (f->samples && samples != f->samples)
        return fail(command, EXIT_INPUT, "'%s' holds %lld samples, the other data %lld", eq + 1, (long long)samples,
                    (long long)f->samples);
    f->samples = samples;
    return EXIT_DONE;
}

int feeds_read(feed_set *f, const char *command, const qc_model *model, char **specs, size_t count, double scale,
               int64_t max_samples)
{
    memset(f, 0, sizeof *f);
    f->names = calloc(count + 1, sizeof *f->names);
    f->arrays = calloc(count + 1, sizeof *f->arrays);
    f->tensors = calloc(count + 1, sizeof *f->tensors);
    f->whole = calloc(count + 1, 1);
    if (!f->names || !f->arrays || !f->tensors || !f->whole) return fail(command, EXIT_FAILED, "no memory");
    for (size_t k = 0; k < count; k++) {
        int code = read_one(f, command, model, specs[k], scale, max_samples);
        if (code != EXIT_DONE) return code;
    }
    for (size_t i = 0; i < qc_model_count(model, QC_MODEL_INPUTS); i++) {
        qc_value_info input;
        size_t k = 0;
        if (qc_model_input(model, i, &input) != QC_OK) continue;
        while (k < f->count && strcmp(f->names[k], input.name) != 0) k++;
        if (k == f->count) return fail(command, EXIT_USAGE, "no --data for graph input '%s'", input.name);
    }
    if (f->samples == 0) f->samples = 1; /* every input whole: one run */
    return EXIT_DONE;
}

void feeds_free(feed_set *f)
{
    for (size_t k = 0; k < f->count; k++) {
        free(f->names[k]);
        qc_array_free(f->arrays[k]);
        free(f->tensors[k].data);
    }
    free(f->names), free(f->arrays), free(f->tensors), free(f->whole);
}

void feeds_slice(const feed_set *f, int64_t first, int64_t n, qc_tensor *views)
{
    for (size_t k = 0; k < f->count; k++) {
        const qc_tensor *t = &f->tensors[k];
        views[k] = *t;
        if (f->whole[k]) continue;
        int64_t per_sample = qc_tensor_numel(t) / t->dims[0];
        views[k].dims[0] = n;
        views[k].data = (char *)t->data + (size_t)(first * per_sample) * (size_t)(qc_dtype_bits(t->dtype) / 8);
    }
}

int parse_positive(const char *command, const char *flag, const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (*end || end == text || !(v > 0) || !isfinite(v))
        return fail(command, EXIT_USAGE, "%s takes a positive number, got '%s'", flag, text);
    *out = v;
    return EXIT_DONE;
}

int name_index(const char *const *names, int first, int last, const char *text)
{
    for (int k = first; k <= last; k++)
        if (strcmp(text, names[k]) == 0) return k;
    return -1;
}

int parse_scale(const char *command, const char *text, double *out)
{
    return parse_positive(command, "--input-scale", text, out);
}

int parse_ethosu_config(const char *command, const char *flag, const char *text, int last, int32_t *out)
{
    char names[512] = "";
    for (int c = QC_ETHOSU_U55_32; c <= last; c++) {
        const char *name = qc_ethosu_config_string((qc_ethosu_config)c);
        if (strcmp(text, name) == 0) {
            *out = c;
            return EXIT_DONE;
        }
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", c > QC_ETHOSU_U55_32 ? ", " : "", name);
    }
    return fail(command, EXIT_USAGE, "unknown %s '%s' (%s)", flag, text, names);
}

int add_feed_spec(const char *command, char **specs, size_t *count, const char *spec)
{
    if (*count == MAX_FEEDS) return fail(command, EXIT_USAGE, "at most %d --data", MAX_FEEDS);
    specs[(*count)++] = (char *)spec;
    return EXIT_DONE;
}

/* Adds the first `samples` samples of the feeds to the pipeline, `batch` samples per batch. */
static int add_batches(const char *command, qc_pipeline *p, const feed_set *f, long samples, long batch)
{
    int64_t total = f->samples < samples ? f->samples : samples;
    qc_tensor views[MAX_FEEDS];
    for (int64_t first = 0; first < total; first += batch) {
        int64_t n = total - first < batch ? total - first : batch;
        feeds_slice(f, first, n, views);
        qc_status st = qc_pipeline_add_batch(p, f->count, (const char *const *)f->names, views);
        if (st != QC_OK) return fail(command, exit_code_of(st), "%s", qc_last_error());
    }
    return EXIT_DONE;
}

int calibration_open(calibration *c, const char *command, const char *model, char **specs, size_t count, double scale,
                     long samples, long batch, qc_ctx *ctx)
{
    memset(c, 0, sizeof *c);
    qc_status st = qc_model_load(&c->model, model);
    int code = st == QC_OK ? feeds_read(&c->feeds, command, c->model, specs, count, scale, samples)
                           : fail(command, exit_code_of(st), "%s", qc_last_error());
    if (code == EXIT_DONE && (st = qc_pipeline_create(&c->pipeline, c->model, ctx)) != QC_OK)
        code = fail(command, st == QC_ERR_UNSUPPORTED ? EXIT_FAILED : exit_code_of(st), "%s", qc_last_error());
    if (code == EXIT_DONE) code = add_batches(command, c->pipeline, &c->feeds, samples, batch);
    return code;
}

void calibration_close(calibration *c)
{
    qc_pipeline_free(c->pipeline);
    feeds_free(&c->feeds);
    qc_model_free(c->model);
    memset(c, 0, sizeof *c);
}

int parse_command_line(const char *command, int argc, char **argv, const struct option *options, const char *help,
                       option_fn apply, void *state, const char **model)
{
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", options, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return -1;
        }
        if (c == '?') return fail(command, EXIT_USAGE, "see qcore %s --help", command);
        int code = apply(state, c, optarg);
        if (code != EXIT_DONE) return code;
    }
    if (optind != argc - 1) return fail(command, EXIT_USAGE, "give one model file (see qcore %s --help)", command);
    *model = argv[optind];
    return EXIT_DONE;
}

int check_calibration_command(const char *command, const char *output, size_t num_data)
{
    if (output == NULL) return fail(command, EXIT_USAGE, "-o OUT.onnx is required");
    if (num_data == 0) return fail(command, EXIT_USAGE, "calibration data is required: --data INPUT=FILE");
    return EXIT_DONE;
}

void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        if ((unsigned char)*s < 0x20) fprintf(out, "\\u%04x", *s);
        else fputc(*s, out);
    }
    fputc('"', out);
}

int atomic_open(atomic_file *a, const char *command, const char *path)
{
    size_t len = strlen(path) + sizeof ".tmp-XXXXXX";
    a->path = path, a->f = NULL, a->temp = malloc(len);
    if (a->temp == NULL) return fail(command, EXIT_FAILED, "no memory");
    snprintf(a->temp, len, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(a->temp);
    if (fd >= 0) a->f = fdopen(fd, "wb");
    if (a->f == NULL) {
        int code = fail(command, EXIT_FAILED, "cannot create a file next to '%s': %s", path, strerror(errno));
        if (fd >= 0) close(fd), unlink(a->temp);
        free(a->temp), a->temp = NULL;
        return code;
    }
    return EXIT_DONE;
}

int atomic_close(atomic_file *a, const char *command)
{
    /* mkstemp creates 0600; an output is an ordinary file others may read. */
    int failed = fflush(a->f) != 0 || ferror(a->f) || fchmod(fileno(a->f), 0644) != 0 || fsync(fileno(a->f)) != 0;
    int saved = errno;
    if (fclose(a->f) != 0 && !failed) failed = 1, saved = errno;
    a->f = NULL;
    if (!failed) return EXIT_DONE;
    atomic_discard(a);
    return fail(command, EXIT_FAILED, "cannot write '%s': %s", a->path, strerror(saved));
}

int atomic_commit(atomic_file *a, const char *command)
{
    int code = rename(a->temp, a->path) == 0 ? EXIT_DONE
                                              : fail(command, EXIT_FAILED, "cannot write '%s': %s", a->path, strerror(errno));
    if (code != EXIT_DONE) unlink(a->temp);
    free(a->temp), a->temp = NULL;
    return code;
}

void atomic_discard(atomic_file *a)
{
    if (a->f) fclose(a->f), a->f = NULL;
    if (a->temp) unlink(a->temp);
    free(a->temp), a->temp = NULL;
}
