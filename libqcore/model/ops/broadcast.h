/* Internal: numpy-style (multidirectional) broadcasting for the executor's elementwise ops. */
#ifndef QC_OPS_BROADCAST_H
#define QC_OPS_BROADCAST_H

#include "exec_internal.h"

/* An odometer over an output shape that yields, for each output element in order, the element offset
 * of up to three inputs broadcast to it. */
typedef struct qce_broadcast {
    int ndim;
    int64_t dims[QC_MAX_DIMS];
    int num_inputs;
    int64_t strides[3][QC_MAX_DIMS];   /* per input, 0 along broadcast dimensions */
} qce_broadcast;

/* The broadcast shape of the given tensors, or QC_ERR_SHAPE naming the call's node. */
qc_status qce__broadcast_init(qce_broadcast *b, const qce_call *call, const qc_tensor *const *inputs, int count);

/* The offset of each input at the first element of output row `row` (rows run along the last axis);
 * within a row, input i advances by strides[i][ndim - 1] (0 or 1) per element. */
void qce__broadcast_row(const qce_broadcast *b, int64_t row, int64_t offsets[3]);

/* Elements per row: the last output dimension (1 for a scalar output). */
int64_t qce__broadcast_row_length(const qce_broadcast *b);

/* Fills offsets[i][j] for output elements j in [0, n) of input i. Offsets arrays hold n entries. */
void qce__broadcast_offsets(const qce_broadcast *b, int64_t first, int64_t n, int64_t *offsets[3]);

#endif
