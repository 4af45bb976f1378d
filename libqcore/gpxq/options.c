/* The options of OPTQ, GPFQ and RTN: defaults and bounds per struct version; the versioned result. */
#include <stddef.h>
#include <string.h>

#include "accum/accum.h"
#include "core/error.h"
#include "gpxq/gpxq.h"

enum { MAX_RETRIES = 20, MAX_INPUT_BITS = 32 };
static const double MAX_DAMP_RATIO = 1e6;

/* The bytes of qc_gpxq_options a caller of `version` has: a version-1 caller's struct ends before AXE's
 * fields, so the library must neither write nor read past them. */
static size_t options_size(unsigned version)
{
    return version == 1 ? offsetof(qc_gpxq_options, accumulator_bits) : sizeof(qc_gpxq_options);
}

qc_status qc_gpxq_options_init(qc_gpxq_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_GPXQ_OPTIONS_VERSION, "qc_gpxq_options", __func__));
    qc_gpxq_options defaults = QC_GPXQ_OPTIONS_INIT;
    defaults.version = version;
    memcpy(opts, &defaults, options_size(version));
    return QC_OK;
}

static qc_status check_axe(const qc_gpxq_options *o, const char *function)
{
    if (o->accumulator_bits == 0) return QC_OK;
    QC_TRY(qc__accum_check_bits(o->accumulator_bits, QC_ACCUM_MIN_BITS, QC_ACCUM_MAX_BITS,
                                "argument 'opts': accumulator_bits (0 for no AXE)", function));
    QC_TRY(qc__accum_check_bits(o->input_bits, 1, MAX_INPUT_BITS, "argument 'opts': input_bits", function));
    if (o->input_signed != 0 && o->input_signed != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': input_signed = %d must be 0 or 1",
                          (int)o->input_signed);
    if (o->soft_threshold != 0 && o->soft_threshold != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': soft_threshold = %d must be 0 or 1",
                          (int)o->soft_threshold);
    if (o->tile_size < 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': tile_size = %lld must be >= 0 (0 for K)",
                          (long long)o->tile_size);
    return QC_OK;
}

qc_status qc__gpxq_options(qc_gpxq_options *out, const qc_gpxq_options *o, const char *function)
{
    qc_gpxq_options checked = QC_GPXQ_OPTIONS_INIT;
    if (o == NULL) o = &checked;
    if (o->version == 0 || o->version > QC_GPXQ_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION,
                          "argument 'opts': version = %u is unknown (this library knows 1..%d; use QC_GPXQ_OPTIONS_INIT)",
                          (unsigned)o->version, QC_GPXQ_OPTIONS_VERSION);
    memcpy(&checked, o, options_size(o->version));
    if (!(checked.damp_ratio >= 0.0 && checked.damp_ratio <= MAX_DAMP_RATIO))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': damp_ratio = %g is outside [0, %g]",
                          checked.damp_ratio, MAX_DAMP_RATIO);
    if (checked.act_order != 0 && checked.act_order != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': act_order = %d must be 0 or 1",
                          (int)checked.act_order);
    if (checked.max_retries < 0 || checked.max_retries > MAX_RETRIES)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': max_retries = %d is outside 0..%d",
                          (int)checked.max_retries, MAX_RETRIES);
    if (checked.block_size < 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': block_size = %lld must be >= 1",
                          (long long)checked.block_size);
    QC_TRY(check_axe(&checked, function));
    *out = checked;
    return QC_OK;
}

qc_status qc__gpxq_result_check(const qc_gpxq_result *result, const char *function)
{
    if (result != NULL && (result->version == 0 || result->version > QC_GPXQ_RESULT_VERSION))
        return QC_FAIL_IN(function, QC_ERR_VERSION,
                          "argument 'result': version = %u is unknown (this library knows 1..%d; use QC_GPXQ_RESULT_INIT)",
                          (unsigned)result->version, QC_GPXQ_RESULT_VERSION);
    return QC_OK;
}

/* The bytes of qc_gpxq_result a caller of `version` has: a version-1 struct ends before AXE's statistics. */
static size_t result_size(unsigned version)
{
    return version == 1 ? offsetof(qc_gpxq_result, axe_slots) : sizeof(qc_gpxq_result);
}

void qc__gpxq_result_store(qc_gpxq_result *result, const qc_gpxq_result *values)
{
    if (result == NULL) return;
    uint32_t version = result->version;
    memcpy(result, values, result_size(version));
    result->version = version;
}
