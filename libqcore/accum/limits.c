/* AXE's strict local constraint solved in integers: the levels the next weight of a slice may take so that
 * no input in the range can push the slice's sum outside [-A, A]. */
#include <stdint.h>

#include "accum/accum.h"

static int fits_int64(qc_i128 v)
{
    return v >= INT64_MIN && v <= INT64_MAX;
}

static qc_i128 floor_div(qc_i128 a, qc_i128 b)
{
    /* 128-bit division is a library call several times slower; the operands almost always fit 64 bits
     * (b is an input bound, never -1 when a is INT64_MIN since |a| <= 2^63 - 1 comes from A). */
    if (fits_int64(a) && fits_int64(b) && a != INT64_MIN) {
        int64_t q = (int64_t)a / (int64_t)b, r = (int64_t)a % (int64_t)b;
        return (r != 0 && (r < 0) != (b < 0)) ? q - 1 : q;
    }
    qc_i128 q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static qc_i128 ceil_div(qc_i128 a, qc_i128 b)
{
    return -floor_div(-a, b);
}

/* With room_high = A - high >= 0 and room_low = -A - low <= 0 (the slice fits), a new level q > 0 raises
 * high by x_max q and lowers low by |x_min| q; a level q < 0 lowers low by x_max |q| and raises high by
 * |x_min| |q|. Each limit is the largest step that keeps both within bounds. */
void qc__accum_level_limits(int64_t *lo, int64_t *hi, qc_accum_budget b, int64_t x_min, int64_t x_max, int32_t bits)
{
    qc_i128 limit = qc__accum_limit(bits);
    qc_i128 room_high = limit - qc__accum_high(b, x_min, x_max), room_low = -limit - qc__accum_low(b, x_min, x_max);
    qc_i128 up = floor_div(room_high, x_max), down = ceil_div(room_low, x_max);
    if (x_min < 0) {
        qc_i128 up_low = floor_div(room_low, x_min), down_high = ceil_div(room_high, x_min);
        up = up_low < up ? up_low : up;
        down = down_high > down ? down_high : down;
    }
    *hi = (int64_t)up;
    *lo = (int64_t)down;
}
