/* qc_model_clone: a deep copy through protobuf-c's own serialization (the copy parses its own bytes, so
 * the two models share nothing; external data is mapped again from the same folder). */
#include <stdlib.h>

#include "error.h"
#include "model_internal.h"

qc_status qc_model_clone(qc_model **out, const qc_model *model)
{
    QCM_CHECK_NOT_NULL(out);
    *out = NULL;
    QCM_CHECK_NOT_NULL(model);
    size_t size = protobuf_c_message_get_packed_size(&model->proto->base);
    uint8_t *bytes = malloc(size ? size : 1);
    if (bytes == NULL) return QCM_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a %zu-byte copy of the model", size);
    protobuf_c_message_pack(&model->proto->base, bytes);
    qc_status st = qc_model_load_memory(out, bytes, size, model->external_dir);
    free(bytes);
    return st;
}
