/* Fuzz target: the ONNX loader on arbitrary bytes, then every inspection call on what loads. Any input
 * must give a status, never a crash, hang or unbounded allocation. */
#include <stddef.h>
#include <stdint.h>

#include "qcore/qc_model.h"

static void inspect(const qc_model *m)
{
    qc_value_info v;
    qc_node_info n;
    qc_initializer_info init;
    for (size_t i = 0; i < qc_model_count(m, QC_MODEL_INPUTS); i++) qc_model_input(m, i, &v);
    for (size_t i = 0; i < qc_model_count(m, QC_MODEL_OUTPUTS); i++) qc_model_output(m, i, &v);
    for (size_t i = 0; i < qc_model_count(m, QC_MODEL_NODES); i++) qc_model_node(m, i, &n);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < qc_model_count(m, QC_MODEL_INITIALIZERS); i++)
        if (qc_model_initializer(m, i, &init) == QC_OK && init.nbytes > 0)
            sink ^= ((const uint8_t *)init.data)[init.nbytes - 1]; /* the whole view must be readable */
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qc_model *m = NULL;
    if (qc_model_load_memory(&m, data, size, NULL) == QC_OK) inspect(m);
    qc_model_free(m);
    return 0;
}
