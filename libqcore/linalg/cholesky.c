/* Cholesky factorization and the triangular inverse, through LAPACKE.
 *
 * A row-major matrix read column-major is its transpose, so a row-major lower triangle is a column-major
 * upper one: the calls below pass LAPACK_COL_MAJOR with 'U', which lets LAPACK work on the caller's memory
 * directly (LAPACKE's row-major path would transpose a copy of the whole matrix first). The *_work entry
 * points skip LAPACKE's NaN scan: callers check their inputs for NaN once, up front. */
#include <lapacke.h>

#include "core/error.h"
#include "linalg/threads.h"

static void zero_strict_upper(double *a, int64_t n, int64_t lda)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) a[i * lda + j] = 0.0;
}

/* dpotrf on LAPACK's triangle `uplo` (column-major); the status as qc__cholesky documents it. */
static qc_status cholesky(char uplo, double *a, int64_t n, int64_t lda, int64_t *pivot,
                          const char *function)
{
    if (pivot) *pivot = 0;
    if (n == 0) return QC_OK;
    int saved = qc__blas_threads_enter(1);
    lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, uplo, (lapack_int)n, a, (lapack_int)lda);
    qc__blas_threads_leave(saved);
    if (info > 0) {
        if (pivot) *pivot = info;
        return QC_FAIL_IN(function, QC_ERR_SINGULAR,
                          "the %lldx%lld matrix is not positive definite: Cholesky fails at pivot %lld (its leading "
                          "%lldx%lld block is not positive definite)",
                          (long long)n, (long long)n, (long long)info, (long long)info, (long long)info);
    }
    if (info < 0) return QC_FAIL_IN(function, QC_ERR_INTERNAL, "dpotrf rejected argument %d", (int)-info);
    return QC_OK;
}

qc_status qc__cholesky(double *a, int64_t n, int64_t lda, int64_t *pivot, const char *function)
{
    QC_TRY(cholesky('U', a, n, lda, pivot, function));
    zero_strict_upper(a, n, lda);
    return QC_OK;
}

qc_status qc__cholesky_upper(double *a, int64_t n, int64_t lda, int64_t *pivot, const char *function)
{
    return cholesky('L', a, n, lda, pivot, function);
}

/* dtrtri on LAPACK's triangle `uplo` (column-major), i.e. the other row-major triangle. */
static qc_status triangular_inverse(char uplo, double *l, int64_t n, int64_t ldl, const char *function)
{
    if (n == 0) return QC_OK;
    int saved = qc__blas_threads_enter(1);
    lapack_int info = LAPACKE_dtrtri_work(LAPACK_COL_MAJOR, uplo, 'N', (lapack_int)n, l, (lapack_int)ldl);
    qc__blas_threads_leave(saved);
    if (info > 0)
        return QC_FAIL_IN(function, QC_ERR_SINGULAR, "the triangular matrix is singular: diagonal entry %lld is 0",
                          (long long)info - 1);
    if (info < 0) return QC_FAIL_IN(function, QC_ERR_INTERNAL, "dtrtri rejected argument %d", (int)-info);
    return QC_OK;
}

qc_status qc__triangular_inverse(double *l, int64_t n, int64_t ldl, const char *function)
{
    return triangular_inverse('U', l, n, ldl, function);
}

qc_status qc__triangular_inverse_upper(double *r, int64_t n, int64_t ldr, const char *function)
{
    return triangular_inverse('L', r, n, ldr, function);
}

qc_status qc__spd_solve(double *a, int64_t n, int64_t lda, double *b, const char *function)
{
    if (n == 0) return QC_OK;
    int saved = qc__blas_threads_enter(1);
    lapack_int info = LAPACKE_dposv_work(LAPACK_COL_MAJOR, 'U', (lapack_int)n, 1, a, (lapack_int)lda, b, (lapack_int)n);
    qc__blas_threads_leave(saved);
    if (info > 0)
        return QC_FAIL_IN(function, QC_ERR_SINGULAR, "the %lldx%lld system is not positive definite (pivot %lld)",
                          (long long)n, (long long)n, (long long)info);
    if (info < 0) return QC_FAIL_IN(function, QC_ERR_INTERNAL, "dposv rejected argument %d", (int)-info);
    return QC_OK;
}
