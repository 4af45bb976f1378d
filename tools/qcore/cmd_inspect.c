/* qcore inspect: a model's graph inputs and outputs, operator counts and the layers qcore quantizes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_value(const char *kind, const qc_value_info *v)
{
    printf("%-7s %-40s %-8s [", kind, v->name, qc_onnx_type_string(v->elem_type));
    for (int d = 0; d < v->ndim; d++) {
        if (v->dim_params[d]) printf(d ? ", %s" : "%s", v->dim_params[d]);
        else printf(d ? ", %lld" : "%lld", (long long)v->dims[d]);
    }
    printf("]\n");
}

static void print_op_counts(const qc_model *model)
{
    size_t n = qc_model_count(model, QC_MODEL_NODES);
    printf("operators (%zu nodes):", n);
    for (size_t i = 0; i < n; i++) {
        qc_node_info node, earlier;
        size_t count = 0, j = 0;
        qc_model_node(model, i, &node);
        for (; j < i; j++)
            if (qc_model_node(model, j, &earlier) == QC_OK && strcmp(earlier.op_type, node.op_type) == 0) break;
        if (j < i) continue; /* counted at its first occurrence */
        for (size_t k = i; k < n; k++) count += qc_model_node(model, k, &earlier) == QC_OK && strcmp(earlier.op_type, node.op_type) == 0;
        printf(" %s %zu", node.op_type, count);
    }
    printf("\n");
}

static void print_layers(const qc_model *model, qc_ctx *ctx)
{
    qc_pipeline *p = NULL;
    if (qc_pipeline_create(&p, model, ctx) != QC_OK) {
        printf("quantizable layers: none (%s)\n", qc_last_error());
        return;
    }
    int64_t weights = 0;
    printf("quantizable layers (%zu):\n", qc_pipeline_layer_count(p));
    for (size_t i = 0; i < qc_pipeline_layer_count(p); i++) {
        qc_layer_info l;
        qc_pipeline_layer(p, i, &l);
        weights += l.in_features * l.out_features;
        printf("  %-8s %-44s in %6lld  out %6lld  reads %s\n", l.op_type, l.weight, (long long)l.in_features,
               (long long)l.out_features, l.input);
    }
    printf("linear-layer weights: %lld values (%lld bytes in float32)\n", (long long)weights, (long long)weights * 4);
    qc_pipeline_free(p);
}

int cmd_inspect(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: qcore inspect MODEL.onnx\n\nLists the graph inputs and outputs, the operator counts, and the layers\n"
               "qcore quantize finds (named by their weight, the names --keep-float takes).\n");
        return EXIT_DONE;
    }
    if (argc != 2) return fail("inspect", EXIT_USAGE, "give one model file (see qcore inspect --help)");
    qc_model *model = NULL;
    qc_ctx *ctx = NULL;
    qc_status st = qc_model_load(&model, argv[1]);
    if (st != QC_OK) return fail("inspect", exit_code_of(st), "%s", qc_last_error());
    int64_t ir = 0;
    const char *producer = "", *version = "";
    qc_model_header(model, &ir, &producer, &version);
    printf("%s: IR %lld, opset %lld, producer %s %s\n", argv[1], (long long)ir, (long long)qc_model_opset_version(model, ""),
           producer, version);
    qc_value_info v;
    for (size_t i = 0; i < qc_model_count(model, QC_MODEL_INPUTS); i++)
        if (qc_model_input(model, i, &v) == QC_OK) print_value("input", &v);
    for (size_t i = 0; i < qc_model_count(model, QC_MODEL_OUTPUTS); i++)
        if (qc_model_output(model, i, &v) == QC_OK) print_value("output", &v);
    print_op_counts(model);
    if (qc_ctx_create(&ctx) == QC_OK) print_layers(model, ctx);
    qc_ctx_free(ctx);
    qc_model_free(model);
    return EXIT_DONE;
}
