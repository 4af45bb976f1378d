/* The run-time version, generated from the meson project version like the QC_VERSION_* macros. */
#include "qcore/qc_core.h"

unsigned qc_version_number(void)
{
    return QC_VERSION_NUMBER;
}

const char *qc_version_string(void)
{
    return QC_VERSION_STRING;
}
