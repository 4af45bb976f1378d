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
    "      --weight-bits N        weight bits, 2..16 (default 8)\n"
    RECIPE_HELP
    RECIPE_QUANTIZE_HELP
    "      --layer-bits WEIGHT=N  that weight at N bits (2..16), or 0 to keep the weight float while its input\n"
    "                             is quantized; repeatable (a mixed-precision configuration, e.g. from qcore search)\n"
    "      --lq-layer WEIGHT=K    that weight as LQ levels: a learned K-bit basis (1..4) per output channel,\n"
    "                             weight-only, stored as UINT4 codes + GatherElements; repeatable\n"
    "      --one-pass             layer statistics from one pass (default: in sequence, each layer seeing the\n"
    "                             earlier ones quantized)\n"
    "      --report FILE          per-layer report as JSON\n"
    "      --eval-data INPUT=FILE held-out data: the quantized model's fidelity to MODEL on it is printed and\n"
    "                             reported (as qcore eval --reference MODEL --batch N measures it); repeat per input\n"
    "      --eval-output NAME     the graph output compared (default: the first)\n"
    "      --metric M             cosine (default), mse or agreement: the figure reported as \"fidelity\"\n"
    "      --threads N            threads (default: all cores)\n"
    "  -q, --quiet                no progress bar\n";

enum { MAX_DATA = MAX_FEEDS };

typedef struct options {
    const char *model, *output, *report;
    char *data[MAX_DATA], *eval_data[MAX_DATA];
    size_t num_data, num_eval;
    const char *eval_output;
    metric metric;
    double input_scale;
    long samples, batch, threads;
    int quiet;
    recipe_options ro;
    const qc_recipe *recipe;     /* &ro.recipe, once parsed */
} options;

static const struct option LONG[] = {
    {"output", required_argument, 0, 'o'}, {"data", required_argument, 0, 'd'}, {"input-scale", required_argument, 0, 'S'},
    {"samples", required_argument, 0, 'n'}, {"batch", required_argument, 0, 'b'}, RECIPE_LONG_OPTIONS, RECIPE_WIDTH_OPTIONS,
    RECIPE_QUANTIZE_OPTIONS,
    {"report", required_argument, 0, 'r'}, {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'}, {"eval-data", required_argument, 0, 'E'}, {"eval-output", required_argument, 0, 'O'},
    {"metric", required_argument, 0, 'M'}, {0, 0, 0, 0}};

static int apply(void *state, int c, const char *arg)
{
    options *o = state;
    switch (c) {
    case 'o': o->output = arg; return EXIT_DONE;
    case 'r': o->report = arg; return EXIT_DONE;
    case 'd': return add_feed_spec("quantize", o->data, &o->num_data, arg);
    case 'S': return parse_scale("quantize", arg, &o->input_scale);
    case 'n': return parse_integer("quantize", arg, 1, 1L << 30, "--samples", &o->samples);
    case 'b': return parse_integer("quantize", arg, 1, 1L << 20, "--batch", &o->batch);
    case 't': return parse_integer("quantize", arg, 0, 1024, "--threads", &o->threads);
    case 'q': o->quiet = 1; return EXIT_DONE;
    case 'E': return add_feed_spec("quantize", o->eval_data, &o->num_eval, arg);
    case 'O': o->eval_output = arg; return EXIT_DONE;
    case 'M': return metric_parse("quantize", arg, &o->metric);
    default: return recipe_option(&o->ro, "quantize", c, arg);
    }
}

static int parse(options *o, int argc, char **argv)
{
    int code = recipe_options_init(&o->ro, "quantize");
    o->samples = 512, o->batch = 64, o->input_scale = 1.0;
    if (code == EXIT_DONE) code = recipe_files_read(&o->ro, "quantize", argc, argv, LONG, apply, o); /* flags override them */
    if (code == EXIT_DONE) code = parse_command_line("quantize", argc, argv, LONG, HELP, apply, o, &o->model);
    if (code == EXIT_DONE) code = check_calibration_command("quantize", o->output, o->num_data);
    recipe_options_finish(&o->ro);
    o->recipe = &o->ro.recipe;
    return code;
}

static void write_layer(FILE *out, const qc_layer_report *r, const qc_layer_info *l, const qc_recipe *recipe)
{
    fprintf(out, "    {\"weight\": ");
    json_string(out, r->weight);
    fprintf(out, ", \"op\": \"%s\", \"in\": %lld, \"out\": %lld, \"quantized\": %s", l->op_type, (long long)l->in_features,
            (long long)l->out_features, r->quantized ? "true" : "false");
    if (r->lq) fprintf(out, ", \"lq\": true");
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
    fprintf(out, ", \"bytes\": %lld", (long long)r->weight_bytes);
    if (recipe->rotation)
        fprintf(out, ", \"norm_folded\": %s, \"rotated\": %s", r->norm_folded ? "true" : "false",
                !r->rotated ? "false" : r->rotation_online ? "\"online\"" : "\"folded\"");
    if (recipe->rotate_heads)
        fprintf(out, ", \"heads\": %s", r->heads_rotated == 1 ? "\"value\"" : r->heads_rotated == 2 ? "\"output\"" : "false");
    if (recipe->ethosu_config && r->ethosu_packed)
        fprintf(out, ", \"ethosu\": {\"packed\": true, \"weight_bytes\": %lld, \"scale_bytes\": %lld, \"stream_bytes\": %lld}",
                (long long)r->ethosu_weight_bytes, (long long)r->ethosu_scale_bytes, (long long)r->ethosu_stream_bytes);
    else if (recipe->ethosu_config) {
        fputs(", \"ethosu\": {\"packed\": false, \"reason\": ", out);
        json_string(out, r->ethosu_reason ? r->ethosu_reason : "");
        fputc('}', out);
    }
    fputc('}', out);
}

/* Sums over the layers' reports: Ethos-U figures and rotations. */
typedef struct totals {
    int64_t packed, weight_bytes, scale_bytes, stream_bytes;
    int64_t rotated, online, norm_folded, head_blocks;
} totals;

static totals sum_reports(const qc_pipeline *p)
{
    totals t = {0};
    for (size_t i = 0; i < qc_pipeline_layer_count(p); i++) {
        qc_layer_report r = {.version = QC_LAYER_REPORT_VERSION};
        qc_pipeline_report(p, i, &r);
        t.packed += r.ethosu_packed, t.weight_bytes += r.ethosu_weight_bytes, t.scale_bytes += r.ethosu_scale_bytes;
        t.stream_bytes += r.ethosu_stream_bytes;
        t.rotated += r.rotated, t.online += r.rotated && r.rotation_online, t.norm_folded += r.norm_folded;
        t.head_blocks += r.heads_rotated == 2;
    }
    return t;
}

/* The recipe's rotation and Ethos-U totals as JSON members. */
static void write_totals(FILE *out, const qc_recipe *recipe, const totals *t)
{
    if (recipe->rotation) {
        fprintf(out, ",\n  \"rotation\": {\"kind\": \"%s\", \"seed\": %llu, \"rotated_layers\": %lld, \"online\": %lld, "
                     "\"folded\": %lld, \"norm_folded_layers\": %lld",
                recipe_rotation_name(recipe->rotation), (unsigned long long)recipe->rotation_seed, (long long)t->rotated,
                (long long)t->online, (long long)(t->rotated - t->online), (long long)t->norm_folded);
        if (recipe->rotate_heads) fprintf(out, ", \"heads_rotated_blocks\": %lld", (long long)t->head_blocks);
        fputc('}', out);
    }
    if (recipe->ethosu_config)
        fprintf(out, ",\n  \"ethosu\": {\"config\": \"%s\", \"layers_packed\": %lld, \"weight_bytes\": %lld, "
                     "\"scale_bytes\": %lld, \"stream_bytes\": %lld}",
                qc_ethosu_config_string((qc_ethosu_config)recipe->ethosu_config), (long long)t->packed,
                (long long)t->weight_bytes, (long long)t->scale_bytes, (long long)t->stream_bytes);
}

/* The report as JSON into `path` (a temporary name; the caller renames it once the model is written). */
static int write_report(const char *path, const options *o, const qc_pipeline *p, const scores *fidelity)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) return fail("quantize", EXIT_FAILED, "cannot write '%s': %s", path, strerror(errno));
    fprintf(out, "{\n  \"model\": ");
    json_string(out, o->model);
    fprintf(out, ",\n  \"method\": \"%s\", \"weight_bits\": %d, \"activation_bits\": %d, \"accumulator_bits\": %d, "
                 "\"tile\": %lld, \"sequential\": %s,\n  \"layers\": [\n",
            recipe_method_name(o->recipe->method), o->recipe->weights.bits, o->recipe->activation_bits, o->recipe->gpxq.accumulator_bits,
            (long long)o->recipe->gpxq.tile_size, o->recipe->sequential ? "true" : "false");
    for (size_t i = 0; i < qc_pipeline_layer_count(p); i++) {
        qc_layer_report r = {.version = QC_LAYER_REPORT_VERSION};
        qc_layer_info l;
        qc_pipeline_report(p, i, &r);
        qc_pipeline_layer(p, i, &l);
        write_layer(out, &r, &l, o->recipe);
        fputs(i + 1 < qc_pipeline_layer_count(p) ? ",\n" : "\n", out);
    }
    fprintf(out, "  ]");
    totals t = sum_reports(p);
    write_totals(out, o->recipe, &t);
    if (fidelity) {
        fprintf(out, ",\n  \"heldout\": {\"samples\": %lld, ", (long long)fidelity->samples);
        print_fidelity(out, fidelity, o->metric);
        fputc('}', out);
    }
    fprintf(out, "\n}\n");
    return fclose(out) == 0 ? EXIT_DONE : fail("quantize", EXIT_FAILED, "cannot write '%s'", path);
}

/* Per layer, what the rotation did and the Ethos-U figures (or why not), then their totals. */
static void print_extras(const qc_pipeline *p, const qc_recipe *recipe)
{
    if (!recipe->rotation && !recipe->ethosu_config) return;
    if (recipe->ethosu_config)
        printf("%-48s %8s %10s %8s %10s\n", "layer (weight)", "rotated", "encoded", "scales", "stream");
    else printf("%-48s %8s\n", "layer (weight)", "rotated");
    for (size_t i = 0; i < qc_pipeline_layer_count(p); i++) {
        qc_layer_report r = {.version = QC_LAYER_REPORT_VERSION};
        qc_pipeline_report(p, i, &r);
        char how[16];
        snprintf(how, sizeof how, "%s%s", !recipe->rotation ? "" : !r.rotated ? "no" : r.rotation_online ? "online" : "folded",
                 r.heads_rotated == 1 ? "+V" : r.heads_rotated == 2 ? "+O" : "");
        if (!recipe->ethosu_config) printf("%-48.48s %8s\n", r.weight, how);
        else if (r.ethosu_packed)
            printf("%-48.48s %8s %10lld %8lld %10lld\n", r.weight, how, (long long)r.ethosu_weight_bytes,
                   (long long)r.ethosu_scale_bytes, (long long)r.ethosu_stream_bytes);
        else printf("%-48.48s %8s not packed: %s\n", r.weight, how, r.ethosu_reason ? r.ethosu_reason : "");
    }
    totals t = sum_reports(p);
    if (recipe->rotation)
        printf("rotation %s (seed %llu): %lld layers rotated (%lld online, %lld folded), %lld behind a folded norm\n",
               recipe_rotation_name(recipe->rotation), (unsigned long long)recipe->rotation_seed, (long long)t.rotated,
               (long long)t.online, (long long)(t.rotated - t.online), (long long)t.norm_folded);
    if (recipe->rotate_heads)
        printf("heads rotated in %lld attention blocks (+V: value projection W_v B, +O: output projection B^T W_o)\n",
               (long long)t.head_blocks);
    if (recipe->ethosu_config)
        printf("%s: %lld of %zu layers packed, weights %lld bytes encoded, biases/scales %lld bytes, streams %lld bytes\n",
               qc_ethosu_config_string((qc_ethosu_config)recipe->ethosu_config), (long long)t.packed,
               qc_pipeline_layer_count(p), (long long)t.weight_bytes, (long long)t.scale_bytes, (long long)t.stream_bytes);
}

static void print_table(const qc_pipeline *p, const qc_recipe *recipe)
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
        if (r.lq) { /* non-uniform levels: no integer dot products to size or simulate */
            char bits[16];
            snprintf(bits, sizeof bits, "lq%d", r.weight_bits);
            printf("%-48.48s %5s %5d %10lld %9.4f %6s %9s\n", r.weight, bits, r.input_bits, (long long)r.weight_bytes, r.output_error,
                   "-", "-");
            continue;
        }
        printf("%-48.48s %5d %5d %10lld %9.4f %6d %9llu\n", r.weight, r.weight_bits, r.input_bits, (long long)r.weight_bytes,
               r.output_error, r.accumulator_bits, (unsigned long long)(r.simulation.wrap_events + r.simulation.wrap_outer_events));
    }
    printf("linear-layer weights: %lld bytes (float32: %lld, %.2fx smaller)\n", (long long)bytes, (long long)float_bytes,
           bytes ? (double)float_bytes / (double)bytes : 0.0);
    print_extras(p, recipe);
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
    if (code == EXIT_DONE && (st = qc_pipeline_run(p, o->recipe, &quantized)) != QC_OK)
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
    if (code == EXIT_DONE) print_table(p, o->recipe);
    if (code == EXIT_DONE && o->num_eval) print_heldout(o, &fidelity);
    qc_model_free(quantized);
    feeds_free(&heldout);
    calibration_close(&c);
    return code;
}

int cmd_quantize(int argc, char **argv)
{
    options o = {0};
    int code = parse(&o, argc, argv);
    if (code != EXIT_DONE) {
        recipe_options_free(&o.ro);
        return code < 0 ? EXIT_DONE : code;
    }
    qc_ctx *ctx = NULL;
    if (make_context(&ctx, (int)o.threads, o.quiet) != QC_OK) return fail("quantize", EXIT_FAILED, "%s", qc_last_error());
    code = run(&o, ctx);
    qc_ctx_free(ctx);
    recipe_options_free(&o.ro);
    return code;
}
