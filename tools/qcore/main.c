/* qcore: quantize ONNX models from the command line (see `qcore --help`). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    command_fn run;
    const char *summary;
} COMMANDS[] = {
    {"quantize", cmd_quantize, "quantize a model's linear layers from calibration data (writes QDQ ONNX)"},
    {"eval", cmd_eval, "evaluate a model on data: accuracy against labels, agreement with a reference"},
    {"inspect", cmd_inspect, "list a model's inputs, outputs, operators and quantizable layers"},
    {"lq", cmd_lq, "replace every fully-connected layer by an LQ layer fitted on data (bit-serial kernels)"},
    {"search", cmd_search, "mixed precision: each layer's weight width traded between size and accuracy (front)"},
    {"pack-ethosu", cmd_pack_ethosu, "pack a quantized model's weights for Arm Ethos-U as Vela does; sizes per layer"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: qcore <command> [options]   (qcore <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\nexit codes: 0 done, 1 failed, 2 wrong command line, 3 unreadable input\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return EXIT_DONE;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("qcore %s\n", qc_version_string());
        return EXIT_DONE;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof *COMMANDS; i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qcore: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
