/* Per-channel requantization scales as Vela derives them (scaling.py): a Q31 multiplier and a shift. */
#include <math.h>

#include "core/error.h"
#include "qcore/qc_ethosu.h"

/* round(x) with halves away from zero, exact here: x = m * 2^31 with |m| < 1 has at most 22 fraction
 * bits, so x +- 0.5 is exact in double. */
static double round_away(double x)
{
    return trunc(x + (x < 0 ? -0.5 : 0.5));
}

static qc_status quantise(int64_t *scale, int32_t *shift, double s, const char *function)
{
    if (!isfinite(s)) return QC_FAIL_IN(function, QC_ERR_NUMERIC, "argument 's' is %g, not a finite scale", s);
    int e;
    double m = frexp(s, &e);
    int64_t q = (int64_t)round_away(ldexp(m, 31));
    int sh = 31 - e;
    /* Beyond a 6-bit shift the channel cannot be represented; Vela zeroes it. */
    if (sh < 0 || sh >= 64) {
        q = 0;
        sh = 16;
    }
    *scale = q;
    *shift = sh;
    return QC_OK;
}

qc_status qc_ethosu_quantise_scale(int64_t *scale, int32_t *shift, double s)
{
    QC_CHECK_NOT_NULL(scale);
    QC_CHECK_NOT_NULL(shift);
    return quantise(scale, shift, s, __func__);
}

/* floor(a / 2^16), as Python's >> on negative numbers. */
static int64_t floor_shift16(int64_t a)
{
    return a >= 0 ? a / 65536 : -((-a + 65535) / 65536);
}

qc_status qc_ethosu_reduced_quantise_scale(int64_t *scale, int32_t *shift, double s)
{
    QC_CHECK_NOT_NULL(scale);
    QC_CHECK_NOT_NULL(shift);
    int64_t q = 0;
    int32_t sh = 0;
    QC_TRY(quantise(&q, &sh, s, __func__));
    /* Vela reduces quantise_scale's result as it is: an out-of-range channel, already (0, 16), becomes
     * (0, 0), and its own range check (on the unreduced shift) never fires. */
    *scale = q < ((int64_t)32767 << 16) ? floor_shift16(q + (1 << 15)) : 32767;
    *shift = sh - 16;
    return QC_OK;
}
