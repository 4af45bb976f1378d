/* The 10-byte bias and scale entry of one output channel, little-endian. */
#include <string.h>

#include "core/error.h"
#include "qcore/qc_ethosu.h"

static void put_le(uint8_t *out, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++) out[i] = (uint8_t)(value >> (8 * i));
}

static qc_status check_range(int64_t value, int64_t lo, int64_t hi, const char *name, const char *function)
{
    if (value < lo || value > hi)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s' is %lld, outside %lld..%lld", name,
                          (long long)value, (long long)lo, (long long)hi);
    return QC_OK;
}

qc_status qc_ethosu_pack_bias(uint8_t out[10], int64_t bias, int64_t scale, int32_t shift)
{
    QC_CHECK_NOT_NULL(out);
    QC_TRY(check_range(bias, -((int64_t)1 << 39), ((int64_t)1 << 39) - 1, "bias", __func__));
    QC_TRY(check_range(scale, 0, ((int64_t)1 << 32) - 1, "scale", __func__));
    QC_TRY(check_range(shift, 0, 63, "shift", __func__));
    put_le(out, (uint64_t)bias, 5);
    put_le(out + 5, (uint64_t)scale, 4);
    out[9] = (uint8_t)(shift & 0x3f);
    return QC_OK;
}

qc_status qc_ethosu85_pack_bias(uint8_t out[10], int64_t bias, int64_t scale, int32_t shift, int accumulator_bits)
{
    QC_CHECK_NOT_NULL(out);
    if (accumulator_bits != 32 && accumulator_bits != 48)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'accumulator_bits' is %d; expected 32 or 48", accumulator_bits);
    int wide = accumulator_bits == 48;
    int bias_bytes = wide ? 6 : 4, scale_bits = wide ? 15 : 31;
    QC_TRY(check_range(bias, -((int64_t)1 << (accumulator_bits - 1)), ((int64_t)1 << (accumulator_bits - 1)) - 1,
                       "bias", __func__));
    QC_TRY(check_range(scale, 0, ((int64_t)1 << scale_bits) - 1, "scale", __func__));
    QC_TRY(check_range(shift, 0, 63, "shift", __func__));
    memset(out, 0, 10);
    put_le(out, (uint64_t)bias, bias_bytes);
    put_le(out + bias_bytes, (uint64_t)scale, 8 - bias_bytes);
    out[8] = (uint8_t)shift;
    return QC_OK;
}
