/* Internal: a checked uniform grid and how quantization parameters follow from a value range. */
#ifndef QC_QUANT_GRID_H
#define QC_QUANT_GRID_H

#include "kernels/dispatch.h"
#include "qcore/qc_quant.h"

typedef struct qc_grid {
    int32_t qmin, qmax;
    int symmetric;
    int32_t fixed_zero_point; /* symmetric grids: 0, or mid-range when unsigned */
} qc_grid;

/* Checks `opts` (and the axis against x when x is not NULL) for the public function `function`, and
 * fills `grid`. The axis of a checked qc_quant_options is resolved by qc__quant_axis. */
qc_status qc__quant_grid(qc_grid *grid, const qc_quant_options *opts, const qc_tensor *x, const char *function);

/* opts->axis made non-negative for a tensor of rank ndim. */
int qc__quant_axis(const qc_quant_options *opts, int ndim);

/* Scale and zero point of the grid for the value range [lo, hi] (see qc_quant.h). */
qc_grid_run qc__grid_from_range(const qc_grid *grid, double lo, double hi);

#endif
