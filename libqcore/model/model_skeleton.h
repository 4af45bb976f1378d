/* Internal: a ModelProto's skeleton without its initializers' raw_data payloads (model_skeleton.c). */
#ifndef QC_MODEL_SKELETON_H
#define QC_MODEL_SKELETON_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

/* Initializer `initializer`'s raw_data: `length` bytes at `offset` in the source. */
typedef struct qcm_borrowed_raw {
    size_t initializer;
    size_t offset;
    size_t length;
} qcm_borrowed_raw;

typedef struct qcm_skeleton {
    uint8_t *bytes;           /* the message without the borrowed payloads */
    size_t size;
    qcm_borrowed_raw *raw;    /* in initializer order */
    size_t num_raw;
} qcm_skeleton;

/* 1: sk holds a skeleton (free with qcm__skeleton_free); 0: nothing to borrow or a layout left to
 * protobuf-c (parse the source as it is); -1: no memory. */
int qcm__skeleton_build(qcm_skeleton *sk, const uint8_t *data, size_t size);

void qcm__skeleton_free(qcm_skeleton *sk);

#endif
