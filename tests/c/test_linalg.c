/* The linear algebra wrappers (linalg/): identities that hold whatever BLAS computes them, L L^T = A,
 * L L^-1 = I, A A^-1 = I, C = A^T A against plain sums, and precise failures for matrices that are not
 * positive definite. */
#include "linalg/linalg.h"
#include "test_util.h"

enum { N = 37 }; /* odd and above OpenBLAS's small-matrix paths' thresholds in one dimension */

/* A = B^T B + n I for a deterministic B: symmetric positive definite and well conditioned. */
static void spd_matrix(double *a, int64_t n)
{
    double *b = malloc((size_t)(n * n) * sizeof *b);
    for (int64_t i = 0; i < n * n; i++) b[i] = sin(0.7 * (double)i + 0.3) + 0.1 * cos(1.3 * (double)i);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = i == j ? (double)n : 0.0;
            for (int64_t k = 0; k < n; k++) s += b[k * n + i] * b[k * n + j];
            a[i * n + j] = s;
        }
    free(b);
}

static double max_abs_diff(const double *a, const double *b, int64_t count)
{
    double m = 0.0;
    for (int64_t i = 0; i < count; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static void identity(double *m, int64_t n)
{
    for (int64_t i = 0; i < n * n; i++) m[i] = i % (n + 1) == 0 ? 1.0 : 0.0;
}

Test(linalg, cholesky_reproduces_the_matrix)
{
    static double a[N * N], l[N * N], llt[N * N];
    spd_matrix(a, N);
    memcpy(l, a, sizeof a);
    TU_EXPECT_OK(qc__cholesky(l, N, N, NULL, "test"));
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) cr_assert_eq(l[i * N + j], 0.0, "upper triangle of L must be zero");
    qc__dgemm(2, 0, 1, N, N, N, 1.0, l, N, l, N, 0.0, llt, N);
    cr_assert_lt(max_abs_diff(llt, a, N * N), 1e-12 * N * N, "L L^T differs from A");
}

Test(linalg, triangular_inverse_and_spd_inverse)
{
    static double a[N * N], l[N * N], linv[N * N], prod[N * N], ainv[N * N], eye[N * N];
    spd_matrix(a, N);
    memcpy(l, a, sizeof a);
    TU_EXPECT_OK(qc__cholesky(l, N, N, NULL, "test"));
    memcpy(linv, l, sizeof l);
    TU_EXPECT_OK(qc__triangular_inverse(linv, N, N, "test"));
    identity(eye, N);
    qc__dgemm(1, 0, 0, N, N, N, 1.0, l, N, linv, N, 0.0, prod, N);
    cr_assert_lt(max_abs_diff(prod, eye, N * N), 1e-13, "L L^-1 differs from I");
    /* A^-1 = L^-T L^-1 */
    qc__dgemm(1, 1, 0, N, N, N, 1.0, linv, N, linv, N, 0.0, ainv, N);
    qc__dgemm(1, 0, 0, N, N, N, 1.0, a, N, ainv, N, 0.0, prod, N);
    cr_assert_lt(max_abs_diff(prod, eye, N * N), 1e-12, "A A^-1 differs from I");
}

/* The upper-triangle variants on a matrix whose strict lower triangle holds other data (a sentinel): R^T R =
 * A, R R^-1 = I, and the lower triangle is neither read (NaN there would spread) nor written. */
Test(linalg, upper_cholesky_and_inverse_leave_the_lower_triangle_alone)
{
    static double a[N * N], r[N * N], rinv[N * N], rtr[N * N], prod[N * N], eye[N * N];
    spd_matrix(a, N);
    memcpy(r, a, sizeof a);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++) r[i * N + j] = NAN;
    TU_EXPECT_OK(qc__cholesky_upper(r, N, N, NULL, "test"));
    memcpy(rinv, r, sizeof r);
    TU_EXPECT_OK(qc__triangular_inverse_upper(rinv, N, N, "test"));
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++) {
            cr_assert(isnan(r[i * N + j]) && isnan(rinv[i * N + j]), "lower triangle written at [%d, %d]", i, j);
            r[i * N + j] = rinv[i * N + j] = 0.0;
        }
    qc__dgemm(1, 1, 0, N, N, N, 1.0, r, N, r, N, 0.0, rtr, N);
    cr_assert_lt(max_abs_diff(rtr, a, N * N), 1e-12 * N * N, "R^T R differs from A");
    identity(eye, N);
    qc__dgemm(1, 0, 0, N, N, N, 1.0, r, N, rinv, N, 0.0, prod, N);
    cr_assert_lt(max_abs_diff(prod, eye, N * N), 1e-13, "R R^-1 differs from I");
    double bad[4] = {1, 2, NAN, 1}; /* upper [[1, 2], [., 1]]: 1 - 4 < 0 at the second pivot */
    int64_t pivot = 0;
    cr_assert_eq(qc__cholesky_upper(bad, 2, 2, &pivot, "t"), QC_ERR_SINGULAR);
    cr_assert_eq(pivot, 2);
}

Test(linalg, cholesky_names_the_failing_pivot)
{
    /* Lower triangle of a matrix whose leading 2x2 block is positive definite but whose last pivot would be
     * 0.25 - 1 - 0 < 0. */
    double a[9] = {4, 0, 0, 2, 2, 0, 2, 1, 0.25};
    int64_t pivot = -1;
    qc_clear_error();
    cr_assert_eq(qc__cholesky(a, 3, 3, &pivot, "caller"), QC_ERR_SINGULAR);
    cr_assert_eq(pivot, 3);
    cr_assert(strstr(qc_last_error(), "caller: ") == qc_last_error(), "message: %s", qc_last_error());
    cr_assert(strstr(qc_last_error(), "pivot 3") != NULL, "message: %s", qc_last_error());
}

Test(linalg, cholesky_rejects_a_negative_first_pivot_and_a_zero_matrix)
{
    double neg[4] = {-1, 0, 0, 1}, zero[4] = {0, 0, 0, 0};
    int64_t pivot = 0;
    cr_assert_eq(qc__cholesky(neg, 2, 2, &pivot, "t"), QC_ERR_SINGULAR);
    cr_assert_eq(pivot, 1);
    cr_assert_eq(qc__cholesky(zero, 2, 2, &pivot, "t"), QC_ERR_SINGULAR);
    cr_assert_eq(pivot, 1);
}

Test(linalg, triangular_inverse_names_a_zero_diagonal)
{
    double l[9] = {1, 0, 0, 2, 0, 0, 3, 4, 5};
    qc_clear_error();
    cr_assert_eq(qc__triangular_inverse(l, 3, 3, "caller"), QC_ERR_SINGULAR);
    cr_assert(strstr(qc_last_error(), "diagonal entry 1 is 0") != NULL, "message: %s", qc_last_error());
}

Test(linalg, syrk_and_gemm_match_plain_sums)
{
    enum { K = 53, M = 19 };
    static double a[K * N], b[K * M], c[N * N], g[N * M];
    for (int i = 0; i < K * N; i++) a[i] = cos(0.37 * i);
    for (int i = 0; i < K * M; i++) b[i] = sin(0.11 * i + 1.0);
    for (int i = 0; i < N * N; i++) c[i] = -7.0; /* the upper triangle must keep this */
    qc__dsyrk_lower(2, N, K, 1.0, a, N, 0.0, c, N);
    qc__dgemm(2, 1, 0, N, M, K, 2.0, a, N, b, M, 0.0, g, M);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += a[k * N + i] * a[k * N + j];
            if (j <= i) cr_assert_float_eq(c[i * N + j], s, 1e-12, "syrk [%d][%d]", i, j);
            else cr_assert_eq(c[i * N + j], -7.0, "syrk wrote the upper triangle at [%d][%d]", i, j);
        }
        for (int j = 0; j < M; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) s += a[k * N + i] * b[k * M + j];
            cr_assert_float_eq(g[i * M + j], 2.0 * s, 1e-12, "gemm [%d][%d]", i, j);
        }
    }
}

Test(linalg, extents_beyond_the_blas_integer_are_refused)
{
    int64_t ok[2] = {1, 2147483647}, big[2] = {3, 2147483648LL}, neg[1] = {-1};
    cr_assert_eq(qc__linalg_fits(ok, 2), 1);
    cr_assert_eq(qc__linalg_fits(big, 2), 0);
    cr_assert_eq(qc__linalg_fits(neg, 1), 0);
}
