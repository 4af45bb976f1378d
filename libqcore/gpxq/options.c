/* The options of OPTQ and GPFQ: defaults and bounds; the versioned result. */
#include "core/error.h"
#include "gpxq/gpxq.h"

enum { MAX_RETRIES = 20 };
static const double MAX_DAMP_RATIO = 1e6;

qc_status qc_gpxq_options_init(qc_gpxq_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    if (version == 0 || version > QC_GPXQ_OPTIONS_VERSION)
        return QC_FAIL(QC_ERR_VERSION, "argument 'version': %u is not a qc_gpxq_options version (1..%d)", version,
                       QC_GPXQ_OPTIONS_VERSION);
    qc_gpxq_options defaults = QC_GPXQ_OPTIONS_INIT;
    *opts = defaults;
    return QC_OK;
}

qc_status qc__gpxq_options(qc_gpxq_options *out, const qc_gpxq_options *o, const char *function)
{
    qc_gpxq_options defaults = QC_GPXQ_OPTIONS_INIT;
    if (o == NULL) o = &defaults;
    if (o->version == 0 || o->version > QC_GPXQ_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION,
                          "argument 'opts': version = %u is unknown (this library knows 1..%d; use QC_GPXQ_OPTIONS_INIT)",
                          (unsigned)o->version, QC_GPXQ_OPTIONS_VERSION);
    if (!(o->damp_ratio >= 0.0 && o->damp_ratio <= MAX_DAMP_RATIO))
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': damp_ratio = %g is outside [0, %g]",
                          o->damp_ratio, MAX_DAMP_RATIO);
    if (o->act_order != 0 && o->act_order != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': act_order = %d must be 0 or 1", (int)o->act_order);
    if (o->max_retries < 0 || o->max_retries > MAX_RETRIES)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': max_retries = %d is outside 0..%d",
                          (int)o->max_retries, MAX_RETRIES);
    if (o->block_size < 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'opts': block_size = %lld must be >= 1",
                          (long long)o->block_size);
    *out = *o;
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

void qc__gpxq_result_store(qc_gpxq_result *result, const qc_gpxq_result *values)
{
    if (result == NULL) return;
    /* Version 1 is the only one so far: every field is written. */
    uint32_t version = result->version;
    *result = *values;
    result->version = version;
}
