/* Formatting failures for qc_error_set, libqcore's public way to set the thread's last error. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

qc_status qcm__fail(qc_status status, const char *function, const char *format, ...)
{
    char message[512];
    int used = snprintf(message, sizeof message, "%s: ", function);
    if (used < 0 || (size_t)used >= sizeof message) used = 0;
    va_list args;
    va_start(args, format);
    vsnprintf(message + used, sizeof message - (size_t)used, format, args);
    va_end(args);
    return qc_error_set(status, message);
}
