/* qcore eval: a model run by qcore's executor on data, scored by top-1 accuracy against labels and/or by
 * its agreement with a reference model (mean cosine per sample, largest difference) on the same data. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char HELP[] =
    "usage: qcore eval MODEL.onnx --data INPUT=FILE [--labels FILE] [--reference REF.onnx] [options]\n"
    "\n"
    "Runs MODEL on the data with qcore's executor and prints JSON: top-1 accuracy of the first output against\n"
    "integer labels, and/or, against REF run on the same data, the mean cosine per sample and the largest\n"
    "absolute difference of the first output.\n"
    "\n"
    "      --data INPUT=FILE      data for graph input INPUT (.npy, IDX, TensorProto .pb); repeat per input\n"
    "      --labels FILE          integer class labels, one per sample\n"
    "      --reference FILE       the model to compare with (e.g. the float original)\n"
    "      --input-scale X        multiply float inputs by X\n"
    "      --samples N            samples evaluated (default: all)\n"
    "      --batch N              samples per run (default 256)\n"
    "      --latency N            also time N runs on one sample and report the median (batch-1 latency)\n"
    "      --threads N            threads (default: all cores)\n";

enum { MAX_DATA = 16 };

typedef struct scores {
    int64_t samples, correct;
    double cosine_sum, max_diff;
} scores;

typedef struct eval_options {
    const char *model, *labels, *reference;
    char *data[MAX_DATA];
    size_t num_data;
    double input_scale;
    long samples, batch, threads, latency_runs;
} eval_options;

/* Runs the session on samples [first, first + n); *out views the first output. */
static int run_batch(qc_session *s, const qc_model *m, const feed_set *f, int64_t first, int64_t n, qc_tensor *out)
{
    qc_tensor views[MAX_DATA];
    qc_value_info output;
    feeds_slice(f, first, n, views);
    qc_status st = QC_OK;
    for (size_t k = 0; st == QC_OK && k < f->count; k++) st = qc_session_set_input(s, f->names[k], &views[k]);
    if (st == QC_OK) st = qc_session_run(s);
    if (st == QC_OK) st = qc_model_output(m, 0, &output);
    if (st == QC_OK) st = qc_session_value(s, output.name, out);
    if (st == QC_OK && out->dtype != QC_DT_F32) return fail("eval", EXIT_FAILED, "the first output is not float32");
    return st == QC_OK ? EXIT_DONE : fail("eval", EXIT_FAILED, "%s", qc_last_error());
}

static void score_labels(scores *s, const qc_tensor *y, const qc_tensor *labels, int64_t first, int64_t n)
{
    int64_t classes = qc_tensor_numel(y) / n;
    for (int64_t i = 0; i < n; i++) {
        const float *row = (const float *)y->data + i * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++) best = row[c] > row[best] ? c : best;
        int64_t label = labels->dtype == QC_DT_U8 ? ((const uint8_t *)labels->data)[first + i]
                        : labels->dtype == QC_DT_I32 ? ((const int32_t *)labels->data)[first + i]
                                                     : ((const int64_t *)labels->data)[first + i];
        s->correct += best == label;
    }
}

static void score_reference(scores *s, const qc_tensor *y, const qc_tensor *ref, int64_t n)
{
    int64_t width = qc_tensor_numel(y) / n;
    for (int64_t i = 0; i < n; i++) {
        const float *a = (const float *)y->data + i * width, *b = (const float *)ref->data + i * width;
        double ab = 0, aa = 0, bb = 0;
        for (int64_t k = 0; k < width; k++) {
            ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
            s->max_diff = fmax(s->max_diff, fabs((double)a[k] - b[k]));
        }
        s->cosine_sum += aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb);
    }
}

static int evaluate(const eval_options *o, qc_ctx *ctx, const qc_model *m, const qc_model *ref, const feed_set *f,
                    const qc_tensor *labels, scores *s)
{
    qc_session *session = NULL, *reference = NULL;
    qc_status st = qc_session_create(&session, m, ctx);
    if (st == QC_OK && ref) st = qc_session_create(&reference, ref, ctx);
    int code = st == QC_OK ? EXIT_DONE : fail("eval", EXIT_FAILED, "%s", qc_last_error());
    int64_t total = o->samples > 0 && o->samples < f->samples ? o->samples : f->samples;
    for (int64_t first = 0; code == EXIT_DONE && first < total; first += o->batch) {
        int64_t n = total - first < o->batch ? total - first : o->batch;
        qc_tensor y, yr;
        code = run_batch(session, m, f, first, n, &y);
        if (code == EXIT_DONE && labels) score_labels(s, &y, labels, first, n);
        if (code == EXIT_DONE && reference) code = run_batch(reference, ref, f, first, n, &yr);
        if (code == EXIT_DONE && reference && qc_tensor_numel(&yr) != qc_tensor_numel(&y))
            code = fail("eval", EXIT_USAGE, "the reference's first output has another shape");
        if (code == EXIT_DONE && reference) score_reference(s, &y, &yr, n);
        s->samples += n;
        qc_ctx_report_progress(ctx, "evaluating", (uint64_t)(first + n), (uint64_t)total);
    }
    qc_session_free(reference);
    qc_session_free(session);
    return code;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median wall time of `runs` runs on the first sample, in milliseconds. */
static int latency(const eval_options *o, qc_ctx *ctx, const qc_model *m, const feed_set *f, double *ms)
{
    qc_session *session = NULL;
    double *times = malloc((size_t)o->latency_runs * sizeof *times);
    qc_status st = times ? qc_session_create(&session, m, ctx) : QC_ERR_OUT_OF_MEMORY;
    int code = st == QC_OK ? EXIT_DONE : fail("eval", EXIT_FAILED, "%s", qc_last_error());
    qc_tensor y;
    if (code == EXIT_DONE) code = run_batch(session, m, f, 0, 1, &y); /* warm-up: buffers and derived data */
    for (long k = 0; code == EXIT_DONE && k < o->latency_runs; k++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        code = run_batch(session, m, f, 0, 1, &y);
        clock_gettime(CLOCK_MONOTONIC, &b);
        times[k] = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
    }
    if (code == EXIT_DONE) {
        qsort(times, (size_t)o->latency_runs, sizeof *times, by_value);
        *ms = times[o->latency_runs / 2];
    }
    free(times);
    qc_session_free(session);
    return code;
}

static const struct option LONG[] = {
    {"data", required_argument, 0, 'd'}, {"labels", required_argument, 0, 'l'}, {"reference", required_argument, 0, 'r'},
    {"input-scale", required_argument, 0, 'S'}, {"samples", required_argument, 0, 'n'}, {"batch", required_argument, 0, 'b'},
    {"threads", required_argument, 0, 't'}, {"latency", required_argument, 0, 'L'}, {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

static int parse(eval_options *o, int argc, char **argv)
{
    o->batch = 256, o->input_scale = 1.0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(HELP, stdout); return -1;
        case 'd':
            if (o->num_data == MAX_DATA) return fail("eval", EXIT_USAGE, "at most %d --data", MAX_DATA);
            o->data[o->num_data++] = optarg;
            break;
        case 'l': o->labels = optarg; break;
        case 'r': o->reference = optarg; break;
        case 'S': o->input_scale = strtod(optarg, NULL); break;
        case 'n': o->samples = strtol(optarg, NULL, 10); break;
        case 'b': o->batch = strtol(optarg, NULL, 10); break;
        case 't': o->threads = strtol(optarg, NULL, 10); break;
        case 'L': o->latency_runs = strtol(optarg, NULL, 10); break;
        default: return fail("eval", EXIT_USAGE, "see qcore eval --help");
        }
    }
    if (optind != argc - 1) return fail("eval", EXIT_USAGE, "give one model file (see qcore eval --help)");
    o->model = argv[optind];
    if (o->num_data == 0) return fail("eval", EXIT_USAGE, "data is required: --data INPUT=FILE");
    if (!o->labels && !o->reference) return fail("eval", EXIT_USAGE, "give --labels, --reference or both");
    if (o->batch < 1 || o->samples < 0 || o->threads < 0 || o->latency_runs < 0 || o->latency_runs > 100000 ||
        !(o->input_scale > 0))
        return fail("eval", EXIT_USAGE, "--batch must be >= 1, --samples, --threads and --latency (<= 100000) >= 0, "
                                        "--input-scale > 0");
    return EXIT_DONE;
}

static int load(const char *path, qc_model **m)
{
    qc_status st = qc_model_load(m, path);
    return st == QC_OK ? EXIT_DONE : fail("eval", exit_code_of(st), "%s", qc_last_error());
}

int cmd_eval(int argc, char **argv)
{
    eval_options o = {0};
    int code = parse(&o, argc, argv);
    if (code != EXIT_DONE) return code < 0 ? EXIT_DONE : code;
    qc_model *model = NULL, *ref = NULL;
    qc_array *labels = NULL;
    qc_ctx *ctx = NULL;
    feed_set feeds = {0};
    scores s = {0};
    code = load(o.model, &model);
    if (code == EXIT_DONE && o.reference) code = load(o.reference, &ref);
    if (code == EXIT_DONE) code = feeds_read(&feeds, "eval", model, o.data, o.num_data, o.input_scale, o.samples);
    qc_status st = QC_OK;
    if (code == EXIT_DONE && o.labels && (st = qc_array_load(&labels, o.labels, QC_ARRAY_AUTO)) != QC_OK)
        code = fail("eval", exit_code_of(st), "%s", qc_last_error());
    const qc_tensor *lt = labels ? qc_array_tensor(labels) : NULL;
    if (code == EXIT_DONE && lt && (qc_tensor_numel(lt) < feeds.samples ||
                                    (lt->dtype != QC_DT_U8 && lt->dtype != QC_DT_I32 && lt->dtype != QC_DT_I64)))
        code = fail("eval", EXIT_INPUT, "'%s' must hold an integer label (u8, i32 or i64) per sample", o.labels);
    if (code == EXIT_DONE && make_context(&ctx, (int)o.threads, 0) != QC_OK) code = fail("eval", EXIT_FAILED, "%s", qc_last_error());
    if (code == EXIT_DONE) code = evaluate(&o, ctx, model, ref, &feeds, lt, &s);
    double ms = 0;
    if (code == EXIT_DONE && o.latency_runs > 0) code = latency(&o, ctx, model, &feeds, &ms);
    if (code == EXIT_DONE) {
        printf("{\"model\": \"%s\", \"samples\": %lld", o.model, (long long)s.samples);
        if (lt) printf(", \"accuracy\": %.6f", (double)s.correct / (double)s.samples);
        if (ref) printf(", \"reference\": \"%s\", \"mean_cosine\": %.6f, \"max_abs_diff\": %.6g", o.reference,
                        s.cosine_sum / (double)s.samples, s.max_diff);
        if (o.latency_runs > 0) printf(", \"batch1_latency_ms\": %.4f", ms);
        printf("}\n");
    }
    qc_ctx_free(ctx);
    qc_array_free(labels);
    feeds_free(&feeds);
    qc_model_free(ref);
    qc_model_free(model);
    return code;
}
