/* Householder QR through LAPACKE, column-major (see linalg.h). LAPACKE allocates the optimal workspace
 * itself; its out-of-memory code is the only failure a valid call can meet. */
#include <lapacke.h>

#include "core/error.h"
#include "linalg/threads.h"

static qc_status lapack_status(lapack_int info, const char *routine, const char *function)
{
    if (info == 0) return QC_OK;
    if (info == LAPACK_WORK_MEMORY_ERROR)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "%s: no memory for LAPACK's workspace", routine);
    return QC_FAIL_IN(function, QC_ERR_INTERNAL, "%s rejected argument %d", routine, (int)-info);
}

qc_status qc__qr(double *a, int64_t m, int64_t n, int64_t lda, double *tau, const char *function)
{
    if (m == 0 || n == 0) return QC_OK;
    int saved = qc__blas_threads_enter(1);
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, a, (lapack_int)lda, tau);
    qc__blas_threads_leave(saved);
    return lapack_status(info, "dgeqrf", function);
}

qc_status qc__qr_form_q(double *a, int64_t m, int64_t n, int64_t lda, const double *tau,
                        const char *function)
{
    if (m == 0 || n == 0) return QC_OK;
    int saved = qc__blas_threads_enter(1);
    lapack_int info =
        LAPACKE_dorgqr(LAPACK_COL_MAJOR, (lapack_int)m, (lapack_int)n, (lapack_int)n, a, (lapack_int)lda, tau);
    qc__blas_threads_leave(saved);
    return lapack_status(info, "dorgqr", function);
}
