/* Internal: failures of libqcore-onnx, reported through libqcore's public last-error mechanism. */
#ifndef QC_MODEL_ERROR_H
#define QC_MODEL_ERROR_H

#include "qcore/qc_core.h"

/* Records "<function>: <message>" as the thread's last error (qc_error_set) and returns `status`. */
qc_status qcm__fail(qc_status status, const char *function, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#define QCM_FAIL(status, ...) qcm__fail((status), __func__, __VA_ARGS__)
#define QCM_FAIL_IN(function, status, ...) qcm__fail((status), (function), __VA_ARGS__)

#define QCM_TRY(expr)                         \
    do {                                      \
        qc_status qcm__st = (expr);           \
        if (qcm__st != QC_OK) return qcm__st; \
    } while (0)

#define QCM_CHECK_NOT_NULL(ptr)                                                             \
    do {                                                                                    \
        if ((ptr) == NULL) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument '%s' is NULL", #ptr); \
    } while (0)

#endif
