/* Internal: recording failures in the thread-local last error. */
#ifndef QC_CORE_ERROR_H
#define QC_CORE_ERROR_H

#include "qcore/qc_core.h"

/* Records "<function>: <message>" as the calling thread's last error and returns `status`.
 * Use through QC_FAIL so that the public function's name leads the message. */
qc_status qc__fail(qc_status status, const char *function, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#define QC_FAIL(status, ...) qc__fail((status), __func__, __VA_ARGS__)

/* For internal validators that report on behalf of the public function named `function`. */
#define QC_FAIL_IN(function, status, ...) qc__fail((status), (function), __VA_ARGS__)

/* QC_ERR_VERSION (reported as `function`'s) unless `version` is one of 1..newest of the versioned struct
 * `type`: the check every *_init function of a versioned options struct makes. */
qc_status qc__check_struct_version(unsigned version, unsigned newest, const char *type, const char *function);

/* Returns from the enclosing function when `expr` is not QC_OK. */
#define QC_TRY(expr)                      \
    do {                                  \
        qc_status qc__st = (expr);        \
        if (qc__st != QC_OK) return qc__st; \
    } while (0)

/* The common "argument is NULL" failure. */
#define QC_CHECK_NOT_NULL(ptr)                                                            \
    do {                                                                                  \
        if ((ptr) == NULL) return QC_FAIL(QC_ERR_INVALID_ARG, "argument '%s' is NULL", #ptr); \
    } while (0)

#endif
