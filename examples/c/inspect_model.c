/* Prints an ONNX model's inputs, outputs and op counts with libqcore-onnx.
 * Build against an installed qcore:  cc inspect_model.c $(pkg-config --cflags --libs qcore-onnx)
 * Usage: inspect_model model.onnx */
#include <qcore/qc_model.h>
#include <stdio.h>

static void print_value(const char *kind, const qc_value_info *v)
{
    printf("%s %s %s [", kind, v->name, qc_onnx_type_string(v->elem_type));
    for (int d = 0; d < v->ndim; d++) {
        if (v->dim_params[d]) printf(d ? ", %s" : "%s", v->dim_params[d]);
        else printf(d ? ", %lld" : "%lld", (long long)v->dims[d]);
    }
    printf("]\n");
}

int main(int argc, char **argv)
{
    qc_model *model = NULL;
    if (argc != 2) {
        fprintf(stderr, "usage: %s model.onnx\n", argv[0]);
        return 2;
    }
    if (qc_model_load(&model, argv[1]) != QC_OK) {
        fprintf(stderr, "%s\n", qc_last_error());
        return 1;
    }
    qc_value_info v;
    for (size_t i = 0; i < qc_model_count(model, QC_MODEL_INPUTS); i++)
        if (qc_model_input(model, i, &v) == QC_OK) print_value("input", &v);
    for (size_t i = 0; i < qc_model_count(model, QC_MODEL_OUTPUTS); i++)
        if (qc_model_output(model, i, &v) == QC_OK) print_value("output", &v);
    printf("nodes %zu\ninitializers %zu\n", qc_model_count(model, QC_MODEL_NODES),
           qc_model_count(model, QC_MODEL_INITIALIZERS));
    qc_model_free(model);
    return 0;
}
