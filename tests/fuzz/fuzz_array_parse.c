/* Fuzz target: the data-file readers (.npy, IDX plain and gzip, TensorProto), chosen from the content as
 * qc_array_load does. */
#include <stddef.h>
#include <stdint.h>

#include "qcore/qc_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qc_array *a = NULL;
    if (qc_array_parse(&a, data, size, QC_ARRAY_AUTO) == QC_OK) {
        size_t nbytes = 0;
        const qc_tensor *t = qc_array_tensor(a);
        if (qc_tensor_nbytes(&nbytes, t) == QC_OK && nbytes > 0) {
            volatile uint8_t last = ((const uint8_t *)t->data)[nbytes - 1];
            (void)last;
        }
    }
    qc_array_free(a);
    return 0;
}
