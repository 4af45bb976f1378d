/* The reference lane kernel of the accumulator simulator: each lane's dot product term by term, exactly as
 * qc_accum.h defines it. */
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/ref/accum_ref.h"

void qc__accum_tile_ref(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                        int fits)
{
    qc_reg_range range = {lo, hi};
    memset(out, 0, sizeof *out);
    for (int lane = 0; lane < QC_ACCUM_LANES; lane++) {
        qc_registers reg = {0};
        int64_t exact = 0, top = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t term = (int64_t)x[i] * q[i * QC_ACCUM_LANES + lane];
            exact += term;
            top = qc__max_abs(top, exact);
            if (!fits) qc__registers_add(&reg, term, term, range);
        }
        if (fits) reg.wrap = reg.saturate = exact;
        out->exact[lane] = exact;
        out->top[lane] = top;
        out->wrap[lane] = reg.wrap;
        out->saturate[lane] = reg.saturate;
        out->wrap_events[lane] = reg.wrap_events;
        out->saturate_events[lane] = reg.saturate_events;
    }
}
