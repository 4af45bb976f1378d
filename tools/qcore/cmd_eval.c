/* qcore eval: a model run by qcore's executor on data, scored by top-1 accuracy against labels and/or by
 * its fidelity to a reference model (cosine, squared error, agreement of decisions) on the same data. */
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
    "Runs MODEL on the data with qcore's executor and prints JSON: top-1 accuracy of the scored output against\n"
    "integer labels, and/or its fidelity to REF run on the same data: per sample the cosine of the two output\n"
    "rows (mean_cosine), the mean squared difference (mse), the fraction of samples deciding alike (agreement:\n"
    "the same top-1 class, or for one value per sample the same side of 0.5) and the largest difference.\n"
    "An input whose shape the model fixes (an LSTM state, a sample rate) may be given whole: its file then\n"
    "holds exactly that shape and is fed with every batch.\n"
    "\n"
    "      --data INPUT=FILE      data for graph input INPUT (.npy, IDX, TensorProto .pb); repeat per input\n"
    "      --labels FILE          integer class labels, one per sample\n"
    "      --reference FILE       the model to compare with (e.g. the float original)\n"
    "      --output NAME          the graph output scored (default: the first)\n"
    "      --metric M             cosine (default), mse or agreement: the figure reported as \"fidelity\"\n"
    "      --input-scale X        multiply float inputs by X\n"
    "      --samples N            samples evaluated (default: all)\n"
    "      --batch N              samples per run (default 256)\n"
    "      --latency N            also time N runs on one sample and report the median (batch-1 latency)\n"
    "      --threads N            threads (default: all cores)\n";

typedef struct eval_options {
    const char *model, *labels, *reference, *output;
    char *data[MAX_FEEDS];
    size_t num_data;
    metric metric;
    double input_scale;
    long samples, batch, threads, latency_runs;
} eval_options;

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One run on the first sample (the whole of whole feeds). */
static qc_status run_first(qc_session *s, const feed_set *f)
{
    qc_tensor views[MAX_FEEDS];
    feeds_slice(f, 0, 1, views);
    qc_status st = QC_OK;
    for (size_t k = 0; st == QC_OK && k < f->count; k++) st = qc_session_set_input(s, f->names[k], &views[k]);
    return st == QC_OK ? qc_session_run(s) : st;
}

/* The median wall time of `runs` runs on the first sample, in milliseconds. */
static int latency(const eval_options *o, qc_ctx *ctx, const qc_model *m, const feed_set *f, double *ms)
{
    qc_session *session = NULL;
    double *times = malloc((size_t)o->latency_runs * sizeof *times);
    qc_status st = times ? qc_session_create(&session, m, ctx) : QC_ERR_OUT_OF_MEMORY;
    if (st == QC_OK) st = run_first(session, f); /* warm-up: buffers and derived data */
    for (long k = 0; st == QC_OK && k < o->latency_runs; k++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        st = run_first(session, f);
        clock_gettime(CLOCK_MONOTONIC, &b);
        times[k] = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) * 1e-6;
    }
    if (st == QC_OK) {
        qsort(times, (size_t)o->latency_runs, sizeof *times, by_value);
        *ms = times[o->latency_runs / 2];
    }
    free(times);
    qc_session_free(session);
    return st == QC_OK ? EXIT_DONE : fail("eval", EXIT_FAILED, "%s", qc_last_error());
}

static const struct option LONG[] = {
    {"data", required_argument, 0, 'd'}, {"labels", required_argument, 0, 'l'}, {"reference", required_argument, 0, 'r'},
    {"input-scale", required_argument, 0, 'S'}, {"samples", required_argument, 0, 'n'}, {"batch", required_argument, 0, 'b'},
    {"threads", required_argument, 0, 't'}, {"latency", required_argument, 0, 'L'}, {"help", no_argument, 0, 'h'},
    {"output", required_argument, 0, 'O'}, {"metric", required_argument, 0, 'M'}, {0, 0, 0, 0}};

static int parse(eval_options *o, int argc, char **argv)
{
    o->batch = 256, o->input_scale = 1.0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", LONG, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(HELP, stdout); return -1;
        case 'd':
            if (o->num_data == MAX_FEEDS) return fail("eval", EXIT_USAGE, "at most %d --data", MAX_FEEDS);
            o->data[o->num_data++] = optarg;
            break;
        case 'l': o->labels = optarg; break;
        case 'r': o->reference = optarg; break;
        case 'S': o->input_scale = strtod(optarg, NULL); break;
        case 'n': o->samples = strtol(optarg, NULL, 10); break;
        case 'b': o->batch = strtol(optarg, NULL, 10); break;
        case 't': o->threads = strtol(optarg, NULL, 10); break;
        case 'L': o->latency_runs = strtol(optarg, NULL, 10); break;
        case 'O': o->output = optarg; break;
        case 'M':
            if (metric_parse("eval", optarg, &o->metric) != EXIT_DONE) return EXIT_USAGE;
            break;
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
    if (code == EXIT_DONE && o.labels) code = labels_read("eval", o.labels, feeds.samples, &labels);
    const qc_tensor *lt = labels ? qc_array_tensor(labels) : NULL;
    if (code == EXIT_DONE && make_context(&ctx, (int)o.threads, 0) != QC_OK) code = fail("eval", EXIT_FAILED, "%s", qc_last_error());
    score_job job = {model, ref, lt, o.output, o.samples, o.batch};
    if (code == EXIT_DONE) code = score_models(&s, "eval", ctx, &job, &feeds);
    double ms = 0;
    if (code == EXIT_DONE && o.latency_runs > 0) code = latency(&o, ctx, model, &feeds, &ms);
    if (code == EXIT_DONE) {
        printf("{\"model\": ");
        json_string(stdout, o.model);
        printf(", \"samples\": %lld", (long long)s.samples);
        if (lt) printf(", \"accuracy\": %.6f", (double)s.correct / (double)s.samples);
        if (ref) {
            printf(", \"reference\": ");
            json_string(stdout, o.reference);
            printf(", ");
            print_fidelity(stdout, &s, o.metric);
        }
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
