/* Accumulator widths from bounds on the inputs and the weights: A2Q's L1-norm bound, the data-type bound,
 * and the width a worst-case sum needs. */
#include "accum/accum.h"
#include "core/error.h"

enum { MAX_INPUT_BITS = 32, MAX_WEIGHT_BITS = 32 };
static const int64_t MAX_L1_NORM = (int64_t)1 << 62;
static const int64_t MAX_K = INT32_MAX;

int32_t qc__accum_bits_for(qc_i128 v)
{
    if (v < 0) v = -v;
    int32_t length = 0;
    for (; v > 0; v >>= 1) length++;
    return length + 1;
}

int32_t qc__accum_implied_outer(int32_t bits, int64_t tiles)
{
    int32_t extra = 0;
    while (((int64_t)1 << extra) < tiles) extra++;
    return bits + extra;
}

static qc_status check_input_bits(int32_t bits, int32_t is_signed, const char *function)
{
    if (bits < 1 || bits > MAX_INPUT_BITS)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'input_bits': %d is outside 1..%d", (int)bits,
                          MAX_INPUT_BITS);
    if (is_signed != 0 && is_signed != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'input_signed': %d must be 0 or 1", (int)is_signed);
    return QC_OK;
}

qc_status qc_accum_input_range(int64_t *min, int64_t *max, int32_t bits, int32_t is_signed)
{
    QC_CHECK_NOT_NULL(min);
    QC_CHECK_NOT_NULL(max);
    if (bits < 1 || bits > MAX_INPUT_BITS)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'bits': %d is outside 1..%d", (int)bits, MAX_INPUT_BITS);
    if (is_signed != 0 && is_signed != 1)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'is_signed': %d must be 0 or 1", (int)is_signed);
    int64_t levels = (int64_t)1 << bits;
    *min = is_signed ? -levels / 2 : 0;
    *max = is_signed ? levels / 2 - 1 : levels - 1;
    return QC_OK;
}

/* A2Q: |sum q x| <= |q|_1 2^(N - s), which must not exceed 2^(P-1) - 1. */
static int32_t a2q_bits(qc_i128 l1_norm, int32_t input_bits, int32_t input_signed)
{
    return qc__accum_bits_for(l1_norm << (input_bits - input_signed));
}

qc_status qc_accum_bits_a2q(int32_t *out, int64_t l1_norm, int32_t input_bits, int32_t input_signed)
{
    QC_CHECK_NOT_NULL(out);
    if (l1_norm < 0 || l1_norm > MAX_L1_NORM)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'l1_norm': %lld is outside 0..2^62", (long long)l1_norm);
    QC_TRY(check_input_bits(input_bits, input_signed, __func__));
    *out = a2q_bits(l1_norm, input_bits, input_signed);
    return QC_OK;
}

qc_status qc_accum_bits_datatype(int32_t *out, int64_t k, int32_t weight_bits, int32_t input_bits,
                                 int32_t input_signed)
{
    QC_CHECK_NOT_NULL(out);
    if (k < 1 || k > MAX_K)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'k': %lld is outside 1..2^31 - 1", (long long)k);
    if (weight_bits < 1 || weight_bits > MAX_WEIGHT_BITS)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'weight_bits': %d is outside 1..%d", (int)weight_bits,
                       MAX_WEIGHT_BITS);
    QC_TRY(check_input_bits(input_bits, input_signed, __func__));
    *out = a2q_bits((qc_i128)k << (weight_bits - 1), input_bits, input_signed);
    return QC_OK;
}
