/* Low-bit uniform layers on the bit-serial kernels (qdq_bitserial.c), for ops/qdq_linear.c. */
#ifndef QCE_QDQ_BITSERIAL_H
#define QCE_QDQ_BITSERIAL_H

#include <stdint.h>

#include "exec_internal.h"

typedef struct qce_qdq_bitserial qce_qdq_bitserial;

/* A run's operands, as qdq_linear.c holds them: the input codes u (uint8, rows of row_stride), their
 * zero point zu and per-row sums, the weights' zero points zw [O] (both shifted as the codes are), and
 * u_min from qce__qdq_bitserial_input_planes. */
typedef struct qce_qdq_operands {
    const uint8_t *u;
    int64_t rows, row_stride;
    const int64_t *u_sums;
    int32_t zu, u_min;
    const int32_t *zw;
} qce_qdq_operands;

/* The weights' bit-planes from the int8 codes `rows` [outputs, k] (rows row_stride apart); *out = NULL
 * when their span needs more than 4 bits. */
qc_status qce__qdq_bitserial_create(const qce_call *call, qce_qdq_bitserial **out, const int8_t *rows, int64_t row_stride,
                                    int64_t outputs, int64_t k);
void qce__qdq_bitserial_free(qce_qdq_bitserial *b);

/* Kw, 0 for NULL. */
int qce__qdq_bitserial_weight_planes(const qce_qdq_bitserial *b);

/* Ka for this run's codes when the bit-serial product should run (always when `force` and Ka <= 4),
 * with *u_min their least value; 0 when the int8 kernel should. */
int qce__qdq_bitserial_input_planes(const qce_qdq_bitserial *b, const uint8_t *u, int64_t rows, int64_t row_stride,
                                    int force, int32_t *u_min);

/* The layer's exact sums [rows, O] (checked against int32) through Ka plane pairs. */
qc_status qce__qdq_bitserial_sums(const qce_call *call, qce_qdq_bitserial *b, int ka, const qce_qdq_operands *op,
                                  int32_t *sums);

#endif
