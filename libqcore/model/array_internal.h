/* Internal: arrays read from files, and the parsers that make them. */
#ifndef QC_MODEL_ARRAY_INTERNAL_H
#define QC_MODEL_ARRAY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qcore/qc_model.h"

struct qc_array {
    qc_tensor tensor;
    void *data;      /* owned */
    char *name;      /* owned; "" when unnamed */
};

/* A new array of `dtype` and shape with room for its bytes (uninitialised). `nbytes` receives the size. */
qc_status qca__create(qc_array **out, qc_dtype dtype, int ndim, const int64_t *dims, size_t *nbytes,
                      const char *function);

/* Each parser fills *out from `size` bytes at `data`; `function` names the public entry in messages. */
qc_status qca__parse_npy(qc_array **out, const uint8_t *data, size_t size, const char *function);
qc_status qca__parse_idx(qc_array **out, const uint8_t *data, size_t size, const char *function);
qc_status qca__parse_tensor_proto(qc_array **out, const uint8_t *data, size_t size, const char *function);

/* Reverses the byte order of n elements of `width` bytes in place. */
void qca__swap_bytes(void *data, size_t n, size_t width);

#endif
