/* Status names and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

#define QC_ERROR_CAPACITY 512

static _Thread_local char last_error[QC_ERROR_CAPACITY];

const char *qc_status_string(qc_status status)
{
    switch (status) {
    case QC_OK: return "QC_OK";
    case QC_ERR_INVALID_ARG: return "QC_ERR_INVALID_ARG";
    case QC_ERR_SHAPE: return "QC_ERR_SHAPE";
    case QC_ERR_DTYPE: return "QC_ERR_DTYPE";
    case QC_ERR_LAYOUT: return "QC_ERR_LAYOUT";
    case QC_ERR_NUMERIC: return "QC_ERR_NUMERIC";
    case QC_ERR_OUT_OF_MEMORY: return "QC_ERR_OUT_OF_MEMORY";
    case QC_ERR_IO: return "QC_ERR_IO";
    case QC_ERR_FORMAT: return "QC_ERR_FORMAT";
    case QC_ERR_UNSUPPORTED: return "QC_ERR_UNSUPPORTED";
    case QC_ERR_VERSION: return "QC_ERR_VERSION";
    case QC_ERR_SINGULAR: return "QC_ERR_SINGULAR";
    case QC_ERR_OVERFLOW: return "QC_ERR_OVERFLOW";
    case QC_ERR_CANCELLED: return "QC_ERR_CANCELLED";
    case QC_ERR_INTERNAL: return "QC_ERR_INTERNAL";
    }
    return "unknown status";
}

const char *qc_last_error(void)
{
    return last_error;
}

void qc_clear_error(void)
{
    last_error[0] = '\0';
}

qc_status qc_error_set(qc_status status, const char *message)
{
    snprintf(last_error, sizeof last_error, "%s", message ? message : "");
    return status;
}

qc_status qc__fail(qc_status status, const char *function, const char *format, ...)
{
    int used = snprintf(last_error, sizeof last_error, "%s: ", function);
    if (used < 0 || (size_t)used >= sizeof last_error) used = 0;
    va_list args;
    va_start(args, format);
    vsnprintf(last_error + used, sizeof last_error - (size_t)used, format, args);
    va_end(args);
    return status;
}

qc_status qc__check_struct_version(unsigned version, unsigned newest, const char *type, const char *function)
{
    if (version == 0 || version > newest)
        return QC_FAIL_IN(function, QC_ERR_VERSION, "argument 'version': %u is not a %s version (1..%u)", version, type,
                          newest);
    return QC_OK;
}
