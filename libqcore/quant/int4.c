/* 4-bit packing as ONNX stores INT4/UINT4: two values per byte, the first in the low nibble. */
#include "core/error.h"
#include "qcore/qc_quant.h"

qc_status qc_pack_int4(uint8_t *out, const int8_t *values, size_t n, int is_signed)
{
    if (n == 0) return QC_OK;
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(values);
    int lo = is_signed ? -8 : 0, hi = is_signed ? 7 : 15;
    for (size_t i = 0; i < n; i++)
        if (values[i] < lo || values[i] > hi)
            return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'values': element %zu is %d, outside [%d, %d]", i, values[i], lo, hi);
    for (size_t b = 0; b < n / 2; b++)
        out[b] = (uint8_t)((values[2 * b] & 0x0F) | ((values[2 * b + 1] & 0x0F) << 4));
    if (n % 2) out[n / 2] = (uint8_t)(values[n - 1] & 0x0F);
    return QC_OK;
}

qc_status qc_unpack_int4(int8_t *out, const uint8_t *packed, size_t n, int is_signed)
{
    if (n == 0) return QC_OK;
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(packed);
    /* Moving a nibble to the top of a signed byte and shifting back sign-extends it. */
    if (is_signed) {
        for (size_t b = 0; b < n / 2; b++) {
            out[2 * b] = (int8_t)((int8_t)(packed[b] << 4) >> 4);
            out[2 * b + 1] = (int8_t)((int8_t)packed[b] >> 4);
        }
    } else {
        for (size_t b = 0; b < n / 2; b++) {
            out[2 * b] = (int8_t)(packed[b] & 0x0F);
            out[2 * b + 1] = (int8_t)(packed[b] >> 4);
        }
    }
    if (n % 2) out[n - 1] = (int8_t)(is_signed ? (int8_t)(packed[n / 2] << 4) >> 4 : packed[n / 2] & 0x0F);
    return QC_OK;
}
