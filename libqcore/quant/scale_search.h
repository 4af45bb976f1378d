/* Internal: choosing the (scale, zero point) of one parameter group from its values. */
#ifndef QC_QUANT_SCALE_SEARCH_H
#define QC_QUANT_SCALE_SEARCH_H

#include "kernels/dispatch.h"
#include "quant/grid.h"

/* Chooses the grid for the n values of one group by opts->scale_method. `scratch` holds n floats and
 * may be overwritten (the values themselves are not). */
qc_grid_run qc__choose_group_params(const float *values, int64_t n, float *scratch, const qc_grid *grid,
                                    const qc_quant_options *opts, const qc_kernels *kernels);

#endif
