/* Internal: the level table of one basis (sorted levels, thresholds, codes) and the encoders that the
 * lq functions and the bit-serial kernels' input side share, so that every path encodes in one way. */
#ifndef QC_LQ_INTERNAL_H
#define QC_LQ_INTERNAL_H

#include <stdint.h>

#include "kernels/dispatch.h"
#include "qcore/qc_lq.h"

enum { QC_LQ_MAX_LEVELS = 1 << QC_LQ_MAX_BITS };

typedef struct qc_lq_table {
    int bits;                                 /* K */
    int count;                                /* 2^K */
    double level[QC_LQ_MAX_LEVELS];           /* sorted ascending; equal levels by code */
    double threshold[QC_LQ_MAX_LEVELS - 1];   /* midpoints of neighbouring levels */
    uint8_t code[QC_LQ_MAX_LEVELS];           /* code of level[i] */
    qc_plane_encoder encoder;                 /* the same rule in floats, for the kernels */
} qc_lq_table;

/* The value of code c under `basis` (K entries), in double (qc_lq.h). */
double qc__lq_level(const float *basis, int bits, qc_lq_code code, unsigned c);

/* Fills t for `basis` (K entries). */
void qc__lq_table(qc_lq_table *t, const float *basis, int bits, qc_lq_code code);

/* Index of x's level: the number of thresholds below x, counted in floats (qc_plane_encoder). A fixed
 * count of comparisons (no branches) so that loops over a row vectorize. */
static inline int qc__lq_index(const qc_lq_table *t, float x)
{
    int index = 0;
    for (int i = 0; i < t->count - 1; i++) index += x >= t->encoder.lower[i];
    return index;
}

/* QC_ERR_INVALID_ARG unless `code` is a qc_lq_code. */
qc_status qc__lq_check_code(qc_lq_code code, const char *function, const char *name);

/* A C-contiguous 2-D tensor of `dtype` with dims[0] == rows (any when rows < 0) and dims[1] == cols (any
 * when cols < 0). */
qc_status qc__lq_check_matrix(const qc_tensor *t, qc_dtype dtype, int64_t rows, int64_t cols, const char *function,
                              const char *name);

/* A finite f32 basis [rows, K] (or [1, K] when `broadcast`), K in 1..4; *bits receives K. */
qc_status qc__lq_check_basis(const qc_tensor *basis, int64_t rows, int broadcast, int *bits, const char *function,
                             const char *name);

#endif
