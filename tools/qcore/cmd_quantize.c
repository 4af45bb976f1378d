/* qcore quantize: a model's linear layers quantized by one recipe (qc_pipeline_run), written as QDQ ONNX
 * with a JSON report. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char HELP[] =
    "usage: qcore quantize MODEL.onnx -o OUT.onnx --data INPUT=FILE [options]\n"
    "\n"
    "Quantizes every linear layer (MatMul, Gemm, Conv with a constant float weight) of MODEL from calibration\n"
    "data and writes a QDQ model onnxruntime runs. Data files: .npy, IDX (as MNIST ships, gzip or not) or\n"
    "TensorProto .pb; samples along axis 0; one --data per graph input.\n"
    "\n"
    "  -o, --output FILE          the quantized model (written atomically; nothing is written on failure)\n"
    "      --data INPUT=FILE      calibration data for graph input INPUT (repeat for each input)\n"
    "      --input-scale X        multiply float inputs by X (e.g. 0.00392156862745098 for 0..255 pixels)\n"
    "      --samples N            calibration samples used (default 512)\n"
    "      --batch N              samples per executor run (default 64)\n"
    "      --method M             rtn, optq or gpfq (default optq)\n"
    "      --weight-bits N        weight bits, 2..16 (default 8)\n"
    "      --group G              per-group scales, G inputs per group (default: one scale per output channel)\n"
    "      --asymmetric           fitted weight zero points (default symmetric)\n"
    "      --act-bits N           bits of every layer input, 2..16, or 0 for float (default 8)\n"
    "      --accumulator-bits P   AXE: guarantee that no dot product overflows a P-bit accumulator\n"
    "      --tile T               AXE: accumulate T inputs per inner register (default: the whole row)\n"
    "      --keep-float WEIGHT    keep that layer (named by its weight, see qcore inspect) in float; repeatable\n"
    "      --layer-bits WEIGHT=N  that weight at N bits (2..16), or 0 to keep the weight float while its input\n"
    "                             is quantized; repeatable (a mixed-precision configuration, e.g. from qcore search)\n"
    "      --one-pass             layer statistics from one pass (default: in sequence, each layer seeing the\n"
    "                             earlier ones quantized)\n"
    "      --report FILE          per-layer report as JSON\n"
    "      --eval-data INPUT=FILE held-out data: the quantized model's fidelity to MODEL on it is printed and\n"
    "                             reported (as qcore eval --reference MODEL --batch N measures it); repeat per input\n"
    "      --eval-output NAME     the graph output compared (default: the first)\n"
    "      --metric M             cosine (default), mse or agreement: the figure reported as \"fidelity\"\n"
    "      --recipe FILE          options from FILE, one 'name = value' per line (# comments); flags override\n"
    "      --threads N            threads (default: all cores)\n"
    "  -q, --quiet                no progress bar\n";

enum { MAX_DATA = MAX_FEEDS, MAX_KEEP = 4096 };

typedef struct options {
    const char *model, *output, *report;
    char *data[MAX_DATA], *eval_data[MAX_DATA];
    size_t num_data, num_eval;
    const char *eval_output;
    metric metric;
    const char *keep[MAX_KEEP];
    size_t num_keep;
    qc_layer_format formats[MAX_KEEP];
    size_t num_formats;
    double input_scale;
    long samples, batch, threads;
    int quiet;
    qc_recipe recipe;
} options;

static int method(const char *text, qc_recipe *r)
{
    if (strcmp(text, "rtn") == 0) r->method = QC_METHOD_RTN;
    else if (strcmp(text, "optq") == 0) r->method = QC_METHOD_OPTQ;
    else if (strcmp(text, "gpfq") == 0) r->method = QC_METHOD_GPFQ;
    else return fail("quantize", EXIT_USAGE, "--method takes rtn, optq or gpfq, got '%s'", text);
    return EXIT_DONE;
}

/* --layer-bits WEIGHT=N: the name is the text before the last '=' (weight names may hold '='). */
static int layer_bits(options *o, const char *arg)
{
    const char *eq = strrchr(arg, '=');
    if (eq == NULL || eq == arg)
        return fail("quantize", EXIT_USAGE, "--layer-bits takes WEIGHT=BITS, got '%s'", arg);
    if (o->num_formats == MAX_KEEP) return fail("quantize", EXIT_USAGE, "at most %d --layer-bits", MAX_KEEP);
    long bits = 0;
    int code = parse_integer("quantize", eq + 1, 0, 16, "--layer-bits", &bits);
    char *name = strndup(arg, (size_t)(eq - arg)); /* freed by cmd_quantize */
    if (code == EXIT_DONE && name == NULL) code = fail("quantize", EXIT_FAILED, "no memory");
    if (code == EXIT_DONE) o->formats[o->num_formats++] = (qc_layer_format){name, (int32_t)bits};
    return code;
}

static const struct option LONG[] = {
    {"output", required_argument, 0, 'o'}, {"data", required_argument, 0, 'd'}, {"input-scale", required_argument, 0, 'S'},
    {"samples", required_argument, 0, 'n'}, {"batch", required_argument, 0, 'b'}, {"method", required_argument, 0, 'm'},
    {"weight-bits", required_argument, 0, 'w'}, {"group", required_argument, 0, 'g'}, {"asymmetric", no_argument, 0, 'A'},
    {"act-bits", required_argument, 0, 'a'}, {"accumulator-bits", required_argument, 0, 'P'},
    {"tile", required_argument, 0, 'T'}, {"keep-float", required_argument, 0, 'k'}, {"one-pass", no_argument, 0, '1'},
    {"layer-bits", required_argument, 0, 'L'},
    {"report", required_argument, 0, 'r'}, {"recipe", required_argument, 0, 'R'}, {"threads", required_argument, 0, 't'},
    {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {"eval-data", required_argument, 0, 'E'},
    {"eval-output", required_argument, 0, 'O'}, {"metric", required_argument, 0, 'M'}, {0, 0, 0, 0}};

static int apply(void *state, int c, const char *arg)
{
    options *o = state;
    long v = 0;
    int code = EXIT_DONE;
    switch (c) {
    case 'o': o->output = arg; break;
    case 'r': o->report = arg; break;
    case 'd': code = add_feed_spec("quantize", o->data, &o->num_data, arg); break;
    case 'k':
        if (o->num_keep == MAX_KEEP) return fail("quantize", EXIT_USAGE, "at most %d --keep-float", MAX_KEEP);
        o->keep[o->num_keep++] = arg;
        break;
    case 'L': code = layer_bits(o, arg); break;
    case 'S': code = parse_scale("quantize", arg, &o->input_scale); break;
    case 'n': code = parse_integer("quantize", arg, 1, 1L << 30, "--samples", &o->samples); break;
    case 'b': code = parse_integer("quantize", arg, 1, 1L << 20, "--batch", &o->batch); break;
    case 't': code = parse_integer("quantize", arg, 0, 1024, "--threads", &o->threads); break;
    case 'm': code = method(arg, &o->recipe); break;
    case 'w': code = parse_integer("quantize", arg, 2, 16, "--weight-bits", &v), o->recipe.weights.bits = (int32_t)v; break;
    case 'a': code = parse_integer("quantize", arg, 0, 16, "--act-bits", &v), o->recipe.activation_bits = (int32_t)v; break;
    case 'P': code = parse_integer("quantize", arg, 2, 64, "--accumulator-bits", &v), o->recipe.gpxq.accumulator_bits = (int32_t)v; break;
    case 'T': code = parse_integer("quantize", arg, 0, 1L << 30, "--tile", &v), o->recipe.gpxq.tile_size = v; break;
    case 'g':
        code = parse_integer("quantize", arg, 1, 1L << 30, "--group", &v);
        o->recipe.weights.granularity = QC_GRAN_GROUP, o->recipe.weights.axis = 1, o->recipe.weights.group_size = v;
        break;
    case 'A': o->recipe.weights.symmetric = 0; break;
    case '1': o->recipe.sequential = 0; break;
    case 'q': o->quiet = 1; break;
    case 'R': break; /* read first, by parse */
    case 'E': code = add_feed_spec("quantize", o->eval_data, &o->num_eval, arg); break;
    case 'O': o->eval_output = arg; break;
    case 'M': code = metric_parse("quantize", arg, &o->metric); break;
    default: return EXIT_USAGE;
    }
    return code;
}

static int option_code(const char *name)
{
    for (const struct option *l = LONG; l->name; l++)
        if (strcmp(l->name, name) == 0 && strcmp(name, "recipe") != 0) return l->val;
    return 0;
}

/* A recipe file: "name = value" lines with the long options' names (a flag without value: "one-pass"). */
static int read_recipe(options *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return fail("quantize", EXIT_INPUT, "cannot read recipe '%s': %s", path, strerror(errno));
    char line[1024];
    int code = EXIT_DONE, number_ = 0;
    while (code == EXIT_DONE && fgets(line, sizeof line, f)) {
        number_++;
        char *hash = strchr(line, '#'), name[64] = "", value[960] = "";
        if (hash) *hash = '\0';
        if (sscanf(line, " %63[a-z-] = %959s", name, value) < 1) continue;
        int c = option_code(name);
        if (c == 0) code = fail("quantize", EXIT_USAGE, "%s:%d: unknown option '%s'", path, number_, name);
        else code = apply(o, c, strdup(value)); /* kept until exit, as argv strings are */
    }
    fclose(f);
    return code;
}

static int parse(options *o, int argc, char **argv)
{
    if (qc_recipe_init(&o->recipe, QC_RECIPE_VERSION) != QC_OK) return fail("quantize", EXIT_FAILED, "%s", qc_last_error());
    o->samples = 512, o->batch = 64, o->input_scale = 1.0;
    for (int i = 1; i + 1 < argc; i++) /* the recipe first, so that flags override it */
        if (strcmp(argv[i], "--recipe") == 0) {
            int code = read_recipe(o, argv[i + 1]);
            if (code != EXIT_DONE) return code;
        }
    int code = parse_command_line("quantize", argc, argv, LONG, HELP, apply, o, &o->model);
    if (code == EXIT_DONE) code = check_calibration_command("quantize", o->output, o->num_data);
    if (code != EXIT_DONE) return code;
    o->recipe.keep_float = o->keep, o->recipe.num_keep_float = o->num_keep;
    o->recipe.layer_formats = o->formats, o->recipe.num_layer_formats = o->num_formats;
    return EXIT_DONE;
}

static void write_layer(FILE *out, const qc_layer_report *r, const qc_layer_info *l)
{
    fprintf(out, "    {\"weight\": ");
    json_string(out, r->weight);
    fprintf(out, ", \"op\": \"%s\", \"in\": %lld, \"out\": %lld, \"quantized\": %s", l->op_type, (long long)l->in_features,
            (long long)l->out_features, r->quantized ? "true" : "false");
    if (r->quantized)
        fprintf(out, ", \"weight_bits\": %d, \"input_bits\": %d, \"input_signed\": %s, \"input_scale\": %.9g, "
                     "\"output_error\": %.6g, \"accumulator_bits_needed\": %d, \"simulated_bits\": %d, "
                     "\"dot_products\": %llu, \"max_abs_partial_sum\": %lld, \"overflow_events\": %llu, "
                     "\"damp_ratio\": %.6g, \"retries\": %d, \"dead_inputs\": %lld",
                r->weight_bits, r->input_bits, r->input_signed ? "true" : "false", r->input_scale, r->output_error,
                r->accumulator_bits, r->report_bits, (unsigned long long)r->simulation.dot_products,
                (long long)r->simulation.max_abs_partial_sum,
                (unsigned long long)(r->simulation.wrap_events + r->simulation.wrap_outer_events), r->gpxq.damp_ratio,
                r->gpxq.retries, (long long)r->gpxq.dead_inputs);
    else fprintf(out, ", \"input_bits\": %d", r->input_bits);
    fprintf(out, ", \"bytes\": %lld}", (long long)r->weight_bytes);
}

/* The report as JSON into `path` (a temporary name; the caller renames it once the model is written). */
static int write_report(const char *path, const options *o, const qc_pipeline *p, const scores *fidelity)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) return fail("quantize", EXIT_FAILED, "cannot write '%s': %s", path, strerror(errno));
    const char *methods[] = {"", "rtn", "optq", "gpfq"};
    fprintf(out, "{\n  \"model\": ");
    json_string(out, o->model);
    fprintf(out, ",\n  \"method\": \"%s\", \"weight_bits\": %d, \"activation_bits\": %d, \"accumulator_bits\": %d, "
                 "\"tile\": %lld, \"sequential\": %s,\n  \"layers\": [\n",
            methods[o->recipe.method], o->recipe.weights.bits, o->recipe.activation_bits, o->recipe.gpxq.accumulator_bits,
            (long long)o->recipe.gpxq.tile_size, o->recipe.sequential ? "true" : "false");
    for (size_t i = 0; i < qc_pipeline_layer_count(p); i++) {
        qc_layer_report r = {.version = QC_LAYER_REPORT_VERSION};
        qc_layer_info l;
        qc_pipeline_report(p, i, &r);
        qc_pipeline_layer(p, i, &l);
        write_layer(out, &r, &l);
        fputs(i + 1 < qc_pipeline_layer_count(p) ? ",\n" : "\n", out);
    }
    fprintf(out, "  ]");
    if (fidelity) {
        fprintf(out, ",\n  \"heldout\": {\"samples\": %lld, ", (long long)fidelity->samples);
        print_fidelity(out, fidelity, o->metric);
        fputc('}', out);
    }
    fprintf(out, "\n}\n");
    return fclose(out) == 0 ? EXIT_DONE : fail("quantize", EXIT_FAILED, "cannot write '%s'", path);
}

static void print_table(const qc_pipeline *p)
{
    int64_t bytes = 0, float_bytes = 0;
    printf("%-48s %5s %5s %10s %9s %6s %9s\n", "layer (weight)", "W", "A", "bytes", "out.err", "P need", "overflows");
    for (size_t i = 0; i < qc_pipeline_layer_count(p); i++) {
        qc_layer_report r = {.version = QC_LAYER_REPORT_VERSION};
        qc_layer_info l;
        qc_pipeline_report(p, i, &r);
        qc_pipeline_layer(p, i, &l);
        bytes += r.weight_bytes, float_bytes += l.in_features * l.out_features * 4;
        if (!r.quantized) {
            char input[16] = "float";
            if (r.input_bits) snprintf(input, sizeof input, "%d", r.input_bits);
            printf("%-48.48s %5s %5s %10lld\n", r.weight, "float", input, (long long)r.weight_bytes);
            continue;
        }
        printf("%-48.48s %5d %5d %10lld %9.4f %6d %9llu\n", r.weight, r.weight_bits, r.input_bits, (long long)r.weight_bytes,
               r.output_error, r.accumulator_bits, (unsigned long long)(r.simulation.wrap_events + r.simulation.wrap_outer_events));
    }
    printf("linear-layer weights: %lld bytes (float32: %lld, %.2fx smaller)\n", (long long)bytes, (long long)float_bytes,
           bytes ? (double)float_bytes / (double)bytes : 0.0);
}

static void print_heldout(const options *o, const scores *s)
{
    printf("held-out fidelity of '%s' (%lld samples): %s %.6f (mean cosine %.6f, mse %.6g, agreement %.4f)\n",
           s->output, (long long)s->samples, metric_name(o->metric), metric_value(s, o->metric),
           metric_value(s, METRIC_COSINE), metric_value(s, METRIC_MSE), metric_value(s, METRIC_AGREEMENT));
}

static int run(const options *o, qc_ctx *ctx)
{
    qc_model *quantized = NULL;
    calibration c;
    feed_set heldout = {0};
    scores fidelity = {0};
    char report_tmp[4096] = "";
    qc_status st;
    int code = calibration_open(&c, "quantize", o->model, (char **)o->data, o->num_data, o->input_scale, o->samples,
                                o->batch, ctx);
    qc_pipeline *p = c.pipeline;
    if (code == EXIT_DONE && o->num_eval == 0 && (o->eval_output || o->metric != METRIC_COSINE))
        code = fail("quantize", EXIT_USAGE, "--eval-output and --metric need held-out data: --eval-data INPUT=FILE");
    if (code == EXIT_DONE && o->num_eval) /* read before the long work, so that a bad file fails fast */
        code = feeds_read(&heldout, "quantize", c.model, (char **)o->eval_data, o->num_eval, o->input_scale, 0);
    if (code == EXIT_DONE && (st = qc_pipeline_run(p, &o->recipe, &quantized)) != QC_OK)
        code = fail("quantize", st == QC_ERR_INVALID_ARG ? EXIT_USAGE : EXIT_FAILED, "%s", qc_last_error());
    score_job job = {quantized, c.model, NULL, o->eval_output, 0, o->batch}; /* as qcore eval --reference measures */
    if (code == EXIT_DONE && o->num_eval) code = score_models(&fidelity, "quantize", ctx, &job, &heldout);
    if (code == EXIT_DONE && o->report) {
        snprintf(report_tmp, sizeof report_tmp, "%s.tmp", o->report);
        code = write_report(report_tmp, o, p, o->num_eval ? &fidelity : NULL);
    }
    if (code == EXIT_DONE && (st = qc_model_save(quantized, o->output, NULL)) != QC_OK)
        code = fail("quantize", EXIT_FAILED, "%s", qc_last_error());
    if (code == EXIT_DONE && o->report && rename(report_tmp, o->report) != 0) {
        code = fail("quantize", EXIT_FAILED, "cannot write '%s': %s", o->report, strerror(errno));
        remove(o->output); /* a model without its report is not what was asked for */
    }
    if (code != EXIT_DONE && report_tmp[0]) remove(report_tmp);
    if (code == EXIT_DONE) print_table(p);
    if (code == EXIT_DONE && o->num_eval) print_heldout(o, &fidelity);
    qc_model_free(quantized);
    feeds_free(&heldout);
    calibration_close(&c);
    return code;
}

static void free_formats(options *o)
{
    for (size_t k = 0; k < o->num_formats; k++) free((char *)o->formats[k].weight);
}

int cmd_quantize(int argc, char **argv)
{
    options o = {0};
    int code = parse(&o, argc, argv);
    if (code != EXIT_DONE) {
        free_formats(&o);
        return code < 0 ? EXIT_DONE : code;
    }
    qc_ctx *ctx = NULL;
    if (make_context(&ctx, (int)o.threads, o.quiet) != QC_OK) return fail("quantize", EXIT_FAILED, "%s", qc_last_error());
    code = run(&o, ctx);
    qc_ctx_free(ctx);
    free_formats(&o);
    return code;
}
