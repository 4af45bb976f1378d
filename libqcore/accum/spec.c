/* Argument checks of the accumulator calculus, and the versioned specification of an accumulator. */
#include <stdio.h>

#include "accum/accum.h"
#include "core/error.h"
#include "core/tensor_check.h"

qc_status qc_accum_spec_init(qc_accum_spec *spec, unsigned version)
{
    QC_CHECK_NOT_NULL(spec);
    QC_TRY(qc__check_struct_version(version, QC_ACCUM_SPEC_VERSION, "qc_accum_spec", __func__));
    qc_accum_spec defaults = QC_ACCUM_SPEC_INIT;
    *spec = defaults;
    return QC_OK;
}

qc_status qc__accum_check_range(int64_t x_min, int64_t x_max, const char *where, const char *function)
{
    if (x_min > 0 || x_min < -QC_ACCUM_MAX_INPUT)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "%sinput_min = %lld is outside [-2^32, 0] (inputs are levels minus their zero point: the "
                          "range holds 0)", where, (long long)x_min);
    if (x_max < 1 || x_max > QC_ACCUM_MAX_INPUT)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "%sinput_max = %lld is outside [1, 2^32]", where,
                          (long long)x_max);
    return QC_OK;
}

qc_status qc__accum_check_bits(int32_t bits, int32_t min_bits, int32_t max_bits, const char *what, const char *function)
{
    if (bits < min_bits || bits > max_bits)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "%s = %d is outside %d..%d", what, (int)bits, (int)min_bits,
                          (int)max_bits);
    return QC_OK;
}

qc_status qc__accum_check_tile(int64_t tile, int64_t k, const char *what, const char *function)
{
    if (tile < 0 || tile > k)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "%s = %lld is outside 0..%lld (0 for K; K = %lld inputs per row)",
                          what, (long long)tile, (long long)k, (long long)k);
    return QC_OK;
}

qc_status qc__accum_check_weights(const qc_tensor *q, const char *name, const char *function)
{
    QC_TRY(qc__tensor_expect(q, function, name, QC_DT_I32));
    if (q->ndim != 2 || q->dims[1] < 1) {
        char got[160];
        qc__shape_string(got, sizeof got, q->ndim, q->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': shape %s, expected a 2-D matrix with at least one column", name, got);
    }
    return QC_OK;
}

qc_status qc__accum_spec(qc_accum_spec *out, const qc_accum_spec *spec, int64_t k, int32_t max_bits,
                         int32_t max_outer_bits, const char *function)
{
    qc_accum_spec defaults = QC_ACCUM_SPEC_INIT;
    if (spec == NULL) spec = &defaults;
    if (spec->version == 0 || spec->version > QC_ACCUM_SPEC_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION,
                          "argument 'spec': version = %u is unknown (this library knows 1..%d; use QC_ACCUM_SPEC_INIT)",
                          (unsigned)spec->version, QC_ACCUM_SPEC_VERSION);
    QC_TRY(qc__accum_check_bits(spec->bits, QC_ACCUM_MIN_BITS, max_bits, "argument 'spec': bits", function));
    QC_TRY(qc__accum_check_range(spec->input_min, spec->input_max, "argument 'spec': ", function));
    QC_TRY(qc__accum_check_tile(spec->tile, k, "argument 'spec': tile", function));
    *out = *spec;
    if (out->tile == 0) out->tile = k;
    int64_t tiles = qc__accum_tiles(k, out->tile);
    if (out->outer_bits == 0) out->outer_bits = qc__accum_implied_outer(out->bits, tiles);
    return qc__accum_check_bits(out->outer_bits, QC_ACCUM_MIN_BITS, max_outer_bits, "argument 'spec': outer_bits",
                                function);
}
