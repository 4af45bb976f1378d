/* Internal: which quantization parameter each element of a C-contiguous tensor uses.
 *
 * The tensor is viewed as [outer, extent, inner] around the quantization axis. Element (o, d, i) uses
 * parameter  0                               per tensor,
 *            d                               per channel,
 *            (o * groups + d / block) * inner + i   per group.
 * Work is cut into runs: contiguous stretches of elements in which the parameter index advances by one
 * every `per` elements, so that kernels see long stretches with a single (scale, zero point).
 */
#ifndef QC_QUANT_LAYOUT_H
#define QC_QUANT_LAYOUT_H

#include "qcore/qc_quant.h"

typedef struct qc_quant_layout {
    qc_granularity granularity;
    int64_t outer, extent, inner;
    int64_t block, groups;       /* per group: block size and ceil(extent / block) */
    int64_t params;              /* number of parameters */
    /* Runs: `rows` rows of `row_length` elements; each row is cut into pieces of `piece` elements. */
    int64_t rows, row_length, piece, pieces_per_row;
    int64_t per;                 /* elements per parameter along a row */
} qc_quant_layout;

typedef struct qc_quant_run {
    int64_t offset;   /* first element */
    int64_t length;
    int64_t param;    /* parameter of the first element */
    int64_t per;      /* elements per parameter within the run (>= length: one parameter) */
} qc_quant_run;

/* Describes x (C-contiguous, options already checked). */
void qc__quant_layout_init(qc_quant_layout *layout, const qc_tensor *x, const qc_quant_options *opts);

/* Number of runs and run k (0 <= k < runs). */
int64_t qc__quant_layout_runs(const qc_quant_layout *layout);
qc_quant_run qc__quant_layout_run(const qc_quant_layout *layout, int64_t k);

/* The elements of parameter p: their count, and whether they are one contiguous stretch starting at
 * *offset. When not contiguous, qc__quant_layout_gather copies them into buf (count floats).
 * group_size is the largest count of any parameter (the size of buffers); group_count is p's own count,
 * smaller for the last group along the axis when group_size does not divide the extent. */
int64_t qc__quant_layout_group_size(const qc_quant_layout *layout);
int64_t qc__quant_layout_group_count(const qc_quant_layout *layout, int64_t p);
int qc__quant_layout_group_contiguous(const qc_quant_layout *layout, int64_t p, int64_t *offset);
void qc__quant_layout_gather(const qc_quant_layout *layout, int64_t p, const float *x, float *buf);

#endif
