/* qcore pack-ethosu: a quantized (QDQ) model's weights packed for an Arm Ethos-U NPU as Vela packs them
 * (qc_model_pack_ethosu), with a per-layer table of sizes, the layer streams and a JSON report. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char HELP[] =
    "usage: qcore pack-ethosu MODEL.onnx [--config NAME] [-o STREAMS.bin] [--json REPORT.json] [options]\n"
    "\n"
    "Packs the weights and biases of every quantized Conv, Gemm and MatMul of MODEL (int8/uint8 weights read\n"
    "through DequantizeLinear, as qcore quantize writes them at 8 weight bits) into Ethos-U weight streams,\n"
    "byte-identical to Vela's, and prints per layer its OHWI shape, original bytes (one per weight), encoded\n"
    "weight bytes and bias/scale bytes, with totals.\n"
    "\n"
    "      --config NAME          ethos-u55-32, -64, -128 (default), -256, ethos-u65-256, -512, ethos-u85-128,\n"
    "                             -256, -512, -1024 or -2048 (Vela's --accelerator-config)\n"
    "      --weight-format F      U85 only: default (Vela's compressed stream per core), fwd (the fast weight\n"
    "                             format, one stream) or smaller (fwd where its stream is smaller)\n"
    "      --ofm-block-depth N    the block configuration's OFM depth, 1..65536 (default 16)\n"
    "      --ifm-bits N           input activation bits, 8 (default) or 16\n"
    "  -o, --output FILE          the layer streams one after another (offsets in the JSON report)\n"
    "      --json FILE            per-layer report as JSON\n"
    "Outputs are written atomically: on failure nothing is written.\n";

typedef struct pack_options {
    const char *model, *output, *json;
    qc_ethosu_layer_options layer;
} pack_options;

static int weight_format_of(const char *name, int32_t *out)
{
    static const char *const NAMES[] = {"default", "fwd", "smaller"}; /* qc_ethosu85_weight_format order */
    for (int f = 0; f < 3; f++)
        if (strcmp(name, NAMES[f]) == 0) {
            *out = f;
            return EXIT_DONE;
        }
    return fail("pack-ethosu", EXIT_USAGE, "--weight-format takes default, fwd or smaller, got '%s'", name);
}

static int integer(const char *text, long lo, long hi, const char *flag, int32_t *out)
{
    long v = 0;
    int code = parse_integer("pack-ethosu", text, lo, hi, flag, &v);
    *out = code == EXIT_DONE ? (int32_t)v : *out;
    return code;
}

static const struct option LONG[] = {
    {"config", required_argument, 0, 'c'}, {"ofm-block-depth", required_argument, 0, 'D'},
    {"ifm-bits", required_argument, 0, 'I'}, {"weight-format", required_argument, 0, 'F'}, {"output", required_argument, 0, 'o'}, {"json", required_argument, 0, 'j'},
    {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};

static int parse(pack_options *o, int argc, char **argv)
{
    if (qc_ethosu_layer_options_init(&o->layer, QC_ETHOSU_LAYER_OPTIONS_VERSION) != QC_OK)
        return fail("pack-ethosu", EXIT_FAILED, "%s", qc_last_error());
    int c, code = EXIT_DONE;
    optind = 1;
    while (code == EXIT_DONE && (c = getopt_long(argc, argv, "o:h", LONG, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(HELP, stdout); return -1;
        case 'c': code = parse_ethosu_config("pack-ethosu", "--config", optarg, QC_ETHOSU_U85_2048, &o->layer.config); break;
        case 'F': code = weight_format_of(optarg, &o->layer.weight_format); break;
        case 'D': code = integer(optarg, 1, 65536, "--ofm-block-depth", &o->layer.ofm_block_depth); break;
        case 'I':
            code = integer(optarg, 8, 16, "--ifm-bits", &o->layer.ifm_bits);
            if (code == EXIT_DONE && o->layer.ifm_bits != 8 && o->layer.ifm_bits != 16)
                code = fail("pack-ethosu", EXIT_USAGE, "--ifm-bits takes 8 or 16, got '%s'", optarg);
            break;
        case 'o': o->output = optarg; break;
        case 'j': o->json = optarg; break;
        default: return fail("pack-ethosu", EXIT_USAGE, "see qcore pack-ethosu --help");
        }
    }
    if (code != EXIT_DONE) return code;
    if (optind != argc - 1) return fail("pack-ethosu", EXIT_USAGE, "give one model file (see qcore pack-ethosu --help)");
    o->model = argv[optind];
    return EXIT_DONE;
}

/* Every layer's stream, one after another (each a multiple of 16 bytes, so every layer stays aligned). */
static int write_streams(FILE *out, const qc_ethosu_model *packed)
{
    for (size_t i = 0; i < qc_ethosu_model_count(packed); i++) {
        qc_ethosu_model_layer l;
        const qc_ethosu_layer *layer = NULL;
        const uint8_t *data = NULL;
        size_t size = 0;
        if (qc_ethosu_model_layer_info(packed, i, &l, &layer) != QC_OK || qc_ethosu_layer_stream(&data, &size, layer) != QC_OK)
            return fail("pack-ethosu", EXIT_FAILED, "%s", qc_last_error());
        if (fwrite(data, 1, size, out) != size) return fail("pack-ethosu", EXIT_FAILED, "cannot write the streams");
    }
    return EXIT_DONE;
}

static void write_layer_json(FILE *out, const qc_ethosu_model_layer *l, int64_t offset)
{
    fputs("    {\"node\": ", out);
    json_string(out, l->node);
    fprintf(out, ", \"op\": \"%s\", \"weight\": ", l->op_type);
    json_string(out, l->weight);
    fprintf(out, ", \"ohwi\": [%lld, %lld, %lld, %lld], \"depthwise\": %s, \"original_bytes\": %lld, "
                 "\"weight_bytes\": %lld, \"scale_bytes\": %lld, \"stream_bytes\": %lld, \"offset\": %lld}",
            (long long)l->shape[0], (long long)l->shape[1], (long long)l->shape[2], (long long)l->shape[3],
            l->depthwise ? "true" : "false", (long long)l->weights, (long long)l->weight_bytes, (long long)l->scale_bytes,
            (long long)l->stream_bytes, (long long)offset);
}

static void write_json(FILE *out, const pack_options *o, const qc_ethosu_model *packed)
{
    int64_t offset = 0, totals[4] = {0};
    fputs("{\n  \"model\": ", out);
    json_string(out, o->model);
    fprintf(out, ",\n  \"config\": \"%s\", \"ofm_block_depth\": %d, \"ifm_bits\": %d,\n  \"layers\": [\n",
            qc_ethosu_config_string((qc_ethosu_config)o->layer.config), o->layer.ofm_block_depth, o->layer.ifm_bits);
    size_t n = qc_ethosu_model_count(packed);
    for (size_t i = 0; i < n; i++) {
        qc_ethosu_model_layer l;
        qc_ethosu_model_layer_info(packed, i, &l, NULL);
        write_layer_json(out, &l, offset);
        fputs(i + 1 < n ? ",\n" : "\n", out);
        offset += l.stream_bytes;
        totals[0] += l.weights, totals[1] += l.weight_bytes, totals[2] += l.scale_bytes, totals[3] += l.stream_bytes;
    }
    fprintf(out, "  ],\n  \"total\": {\"original_bytes\": %lld, \"weight_bytes\": %lld, \"scale_bytes\": %lld, "
                 "\"stream_bytes\": %lld}\n}\n",
            (long long)totals[0], (long long)totals[1], (long long)totals[2], (long long)totals[3]);
}

static void print_table(const pack_options *o, const qc_ethosu_model *packed)
{
    int64_t totals[4] = {0};
    printf("%s on %s\n", o->model, qc_ethosu_config_string((qc_ethosu_config)o->layer.config));
    printf("%-40s %-7s %-22s %10s %10s %8s\n", "layer", "op", "OHWI", "original", "encoded", "scales");
    for (size_t i = 0; i < qc_ethosu_model_count(packed); i++) {
        qc_ethosu_model_layer l;
        char shape[64];
        qc_ethosu_model_layer_info(packed, i, &l, NULL);
        snprintf(shape, sizeof shape, "%lldx%lldx%lldx%lld%s", (long long)l.shape[0], (long long)l.shape[1],
                 (long long)l.shape[2], (long long)l.shape[3], l.depthwise ? " dw" : "");
        printf("%-40.40s %-7s %-22s %10lld %10lld %8lld\n", l.node, l.op_type, shape, (long long)l.weights,
               (long long)l.weight_bytes, (long long)l.scale_bytes);
        totals[0] += l.weights, totals[1] += l.weight_bytes, totals[2] += l.scale_bytes, totals[3] += l.stream_bytes;
    }
    printf("%-40s %-7s %-22s %10lld %10lld %8lld\n", "total", "", "", (long long)totals[0], (long long)totals[1],
           (long long)totals[2]);
    printf("streams: %lld bytes (weights %.3f of their original size)\n", (long long)totals[3],
           totals[0] ? (double)totals[1] / (double)totals[0] : 0.0);
}

/* Writes the streams and the report to temporaries and renames both only once both are whole. */
static int write_outputs(const pack_options *o, const qc_ethosu_model *packed)
{
    atomic_file bin = {0}, json = {0};
    int code = EXIT_DONE;
    if (o->output && (code = atomic_open(&bin, "pack-ethosu", o->output)) == EXIT_DONE &&
        (code = write_streams(bin.f, packed)) == EXIT_DONE)
        code = atomic_close(&bin, "pack-ethosu");
    if (code == EXIT_DONE && o->json && (code = atomic_open(&json, "pack-ethosu", o->json)) == EXIT_DONE) {
        write_json(json.f, o, packed);
        code = atomic_close(&json, "pack-ethosu");
    }
    if (code == EXIT_DONE && o->output) code = atomic_commit(&bin, "pack-ethosu");
    if (code == EXIT_DONE && o->json && (code = atomic_commit(&json, "pack-ethosu")) != EXIT_DONE && o->output)
        remove(o->output); /* streams without their report are not what was asked for */
    atomic_discard(&bin);
    atomic_discard(&json);
    return code;
}

int cmd_pack_ethosu(int argc, char **argv)
{
    pack_options o = {0};
    int code = parse(&o, argc, argv);
    if (code != EXIT_DONE) return code < 0 ? EXIT_DONE : code;
    qc_model *model = NULL;
    qc_ethosu_model *packed = NULL;
    qc_status st = qc_model_load(&model, o.model);
    if (st != QC_OK) code = fail("pack-ethosu", exit_code_of(st), "%s", qc_last_error());
    if (code == EXIT_DONE && (st = qc_model_pack_ethosu(&packed, model, &o.layer)) != QC_OK)
        code = fail("pack-ethosu", EXIT_FAILED, "%s", qc_last_error());
    if (code == EXIT_DONE && qc_ethosu_model_count(packed) == 0)
        code = fail("pack-ethosu", EXIT_FAILED,
                    "'%s' has no quantized layers to pack (no Conv, Gemm or MatMul reads an int8/uint8 weight through "
                    "DequantizeLinear); quantize it first, e.g. qcore quantize --weight-bits 8",
                    o.model);
    if (code == EXIT_DONE) code = write_outputs(&o, packed);
    if (code == EXIT_DONE) print_table(&o, packed);
    qc_ethosu_model_free(packed);
    qc_model_free(model);
    return code;
}
