/* qcore lq: every fully-connected layer of a model replaced by the LQ layer (qc_model_lq_replace), written
 * as an ai.qcore model and, on request, as its onnxruntime export. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char HELP[] =
    "usage: qcore lq MODEL.onnx -o OUT.onnx --data INPUT=FILE [options]\n"
    "\n"
    "Replaces every fully-connected layer (MatMul, or Gemm with alpha = beta = 1, with a constant float\n"
    "weight) of MODEL by a learned non-uniform quantized layer (ai.qcore.LQGemm: weight bit-planes and\n"
    "per-channel bases, input basis, run on qcore's bit-serial kernels), fitted on calibration data run\n"
    "through the net: each layer on the inputs the model gives with the earlier layers already replaced.\n"
    "Data files: .npy, IDX (gzip or not) or TensorProto .pb; samples along axis 0; one --data per input.\n"
    "\n"
    "  -o, --output FILE          the LQ model (ai.qcore ops; run it with qcore eval)\n"
    "      --export-ort FILE      also the same layers in standard ONNX ops (dequantized weight levels, the\n"
    "                             input quantizer as Less/Not/Sum/Gather) for onnxruntime\n"
    "      --data INPUT=FILE      calibration data for graph input INPUT (repeat for each input)\n"
    "      --input-scale X        multiply float inputs by X (e.g. 0.00392156862745098 for 0..255 pixels)\n"
    "      --weight-bits K        weight bits (bases per output channel), 1..4 (default 2)\n"
    "      --act-bits K           input bits (one basis per layer), 1..4 (default 2)\n"
    "      --no-refit             weight bases by QEM alone (default: refitted to the layer's outputs)\n"
    "      --code-rounds N        after the refit, N rounds of weight codes re-chosen for the layer's\n"
    "                             output error (OPTQ's rounding on the LQ levels), each followed by a\n"
    "                             refit; 0..16 (default: 2 at 1-2 weight bits, else 0, which keeps\n"
    "                             QEM's nearest-level codes)\n"
    "      --samples N            calibration samples used (default 4096)\n"
    "      --batch N              samples per executor run (default 256)\n"
    "      --threads N            threads (default: all cores)\n"
    "  -q, --quiet                no progress bar\n"
    "Both files are written atomically: on failure neither is written and existing files are untouched.\n";

enum { MAX_DATA = MAX_FEEDS };

typedef struct options {
    const char *model, *output, *ort;
    char *data[MAX_DATA];
    size_t num_data;
    double input_scale;
    long samples, batch, threads;
    int quiet;
    qc_lq_replace_options lq;
} options;

static const struct option LONG[] = {
    {"output", required_argument, 0, 'o'}, {"export-ort", required_argument, 0, 'E'}, {"data", required_argument, 0, 'd'},
    {"input-scale", required_argument, 0, 'S'}, {"weight-bits", required_argument, 0, 'w'},
    {"act-bits", required_argument, 0, 'a'}, {"no-refit", no_argument, 0, 'N'}, {"samples", required_argument, 0, 'n'},
    {"code-rounds", required_argument, 0, 'R'},
    {"batch", required_argument, 0, 'b'}, {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};

static int apply(void *state, int c, const char *arg)
{
    options *o = state;
    long v = 0;
    int code = EXIT_DONE;
    switch (c) {
    case 'o': o->output = arg; break;
    case 'E': o->ort = arg; break;
    case 'd': code = add_feed_spec("lq", o->data, &o->num_data, arg); break;
    case 'S': code = parse_scale("lq", arg, &o->input_scale); break;
    case 'w': code = parse_integer("lq", arg, 1, QC_LQ_MAX_BITS, "--weight-bits", &v), o->lq.weight_bits = (int32_t)v; break;
    case 'a': code = parse_integer("lq", arg, 1, QC_LQ_MAX_BITS, "--act-bits", &v), o->lq.input_bits = (int32_t)v; break;
    case 'N': o->lq.refit = 0; break;
    case 'R': code = parse_integer("lq", arg, 0, 16, "--code-rounds", &v), o->lq.code_rounds = (int32_t)v; break;
    case 'n': code = parse_integer("lq", arg, 1, 1L << 30, "--samples", &o->samples); break;
    case 'b': code = parse_integer("lq", arg, 1, 1L << 20, "--batch", &o->batch); break;
    case 't': code = parse_integer("lq", arg, 0, 1024, "--threads", &o->threads); break;
    case 'q': o->quiet = 1; break;
    default: return EXIT_USAGE;
    }
    return code;
}

/* EXIT_DONE, -1 after --help, or the exit code of a wrong command line. */
static int parse(options *o, int argc, char **argv)
{
    if (qc_lq_replace_options_init(&o->lq, QC_LQ_REPLACE_OPTIONS_VERSION) != QC_OK)
        return fail("lq", EXIT_FAILED, "%s", qc_last_error());
    o->samples = 4096, o->batch = 256, o->input_scale = 1.0;
    int code = parse_command_line("lq", argc, argv, LONG, HELP, apply, o, &o->model);
    if (code == EXIT_DONE) code = check_calibration_command("lq", o->output, o->num_data);
    if (code != EXIT_DONE) return code;
    if (o->ort && strcmp(o->ort, o->output) == 0) return fail("lq", EXIT_USAGE, "--export-ort and -o name the same file");
    return EXIT_DONE;
}

/* The ORT export goes to a temporary name until the LQ model is written, so that a failure leaves both
 * paths as they were. */
static int save(const options *o, const qc_model *lq, const qc_model *ort)
{
    char ort_tmp[4096];
    if (ort && snprintf(ort_tmp, sizeof ort_tmp, "%s.tmp", o->ort) >= (int)sizeof ort_tmp)
        return fail("lq", EXIT_USAGE, "--export-ort: path too long");
    if (ort && qc_model_save(ort, ort_tmp, NULL) != QC_OK) return fail("lq", EXIT_FAILED, "%s", qc_last_error());
    if (qc_model_save(lq, o->output, NULL) != QC_OK) {
        int code = fail("lq", EXIT_FAILED, "%s", qc_last_error());
        if (ort) remove(ort_tmp);
        return code;
    }
    if (ort && rename(ort_tmp, o->ort) != 0) {
        int code = fail("lq", EXIT_FAILED, "cannot write '%s': %s", o->ort, strerror(errno));
        remove(ort_tmp);
        remove(o->output); /* one model without the other is not what was asked for */
        return code;
    }
    return EXIT_DONE;
}

static void print_summary(const options *o, const qc_lq_replace_result *r)
{
    printf("W%dA%d: %lld fully-connected layers replaced, %lld linear layers left as they were\n", o->lq.weight_bits,
           o->lq.input_bits, (long long)r->replaced, (long long)r->kept);
    printf("replaced layers: %lld bytes as LQ, %lld as float32 (%.2fx smaller)\n", (long long)r->lq_bytes,
           (long long)r->float_bytes, r->lq_bytes ? (double)r->float_bytes / (double)r->lq_bytes : 0.0);
}

static int run(const options *o, qc_ctx *ctx)
{
    qc_model *lq = NULL, *ort = NULL;
    calibration c;
    qc_lq_replace_result result = QC_LQ_REPLACE_RESULT_INIT;
    qc_status st;
    int code = calibration_open(&c, "lq", o->model, (char **)o->data, o->num_data, o->input_scale, o->samples, o->batch,
                                ctx);
    if (code == EXIT_DONE && (st = qc_model_lq_replace(&lq, o->ort ? &ort : NULL, &result, c.pipeline, &o->lq)) != QC_OK)
        code = fail("lq", EXIT_FAILED, "%s", qc_last_error());
    if (code == EXIT_DONE) code = save(o, lq, ort);
    if (code == EXIT_DONE) print_summary(o, &result);
    qc_model_free(ort);
    qc_model_free(lq);
    calibration_close(&c);
    return code;
}

int cmd_lq(int argc, char **argv)
{
    options o = {0};
    int code = parse(&o, argc, argv);
    if (code != EXIT_DONE) return code < 0 ? EXIT_DONE : code;
    qc_ctx *ctx = NULL;
    if (make_context(&ctx, (int)o.threads, o.quiet) != QC_OK) return fail("lq", EXIT_FAILED, "%s", qc_last_error());
    code = run(&o, ctx);
    qc_ctx_free(ctx);
    return code;
}
