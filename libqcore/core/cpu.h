/* Internal: parsing kernel-set names and asking which kernel sets this build holds. */
#ifndef QC_CORE_CPU_H
#define QC_CORE_CPU_H

#include <string.h>

#include "qcore/qc_core.h"

/* Sets *out to the kernel set called `name` ("auto", "ref", "avx2", "avx512"); 0 when unknown. */
int qc__arch_from_string(qc_arch *out, const char *name);

/* 1 when this build compiled the kernels of `arch` (defined by the kernels part). */
int qc__arch_compiled(qc_arch arch);

#endif
