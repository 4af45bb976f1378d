/* Rotations (rotate/): the finite fields behind Paley's constructions, H H^T = K I with +-1 entries for every
 * order qcore builds, Q^T Q = I for Haar matrices, the FWHT against the dense product, thread-count
 * invariance, and precise failures. */
#include "rotate/rotate.h"
#include "test_util.h"

enum { MAX_N = 256 };

/* The quadratic character of GF(p) by Euler's criterion, computed independently of galois.c. */
static int euler_character(int64_t x, int64_t p)
{
    if (x % p == 0) return 0;
    int64_t r = 1, b = x % p;
    for (int64_t e = (p - 1) / 2; e > 0; e /= 2, b = b * b % p)
        if (e & 1) r = r * b % p;
    return r == 1 ? 1 : -1;
}

Test(rotate, prime_field_character_is_eulers)
{
    static const int64_t primes[] = {3, 5, 7, 11, 13, 17, 19, 43, 59, 61, 127, 251};
    int8_t chi[256];
    for (size_t i = 0; i < TU_COUNT(primes); i++) {
        int64_t p = primes[i], got_p = 0;
        cr_assert(qc__galois_character(chi, &got_p, p), "GF(%lld) should be built", (long long)p);
        cr_assert_eq(got_p, p);
        for (int64_t x = 0; x < p; x++)
            cr_assert_eq(chi[x], euler_character(x, p), "chi(%lld) in GF(%lld)", (long long)x, (long long)p);
    }
}

/* In GF(q), half the non-zero elements are squares, and chi(-x) = chi(-1) chi(x), chi(-1) = +1 exactly when
 * q = 1 mod 4. */
Test(rotate, prime_power_fields_have_the_character_laws)
{
    static const int64_t powers[] = {9, 25, 27, 49, 121, 125, 169};
    int8_t chi[256];
    for (size_t i = 0; i < TU_COUNT(powers); i++) {
        int64_t q = powers[i], p, squares = 0;
        cr_assert(qc__galois_character(chi, &p, q), "GF(%lld) should be built", (long long)q);
        int minus_one = q % 4 == 1 ? 1 : -1;
        for (int64_t x = 1; x < q; x++) {
            squares += chi[x] == 1;
            cr_assert_eq(chi[qc__galois_sub(0, x, p)], minus_one * chi[x], "chi(-x) in GF(%lld), x = %lld",
                         (long long)q, (long long)x);
        }
        cr_assert_eq(squares, (q - 1) / 2, "GF(%lld) has %lld squares", (long long)q, (long long)squares);
    }
    int64_t p;
    cr_assert_not(qc__galois_character(chi, &p, 15), "15 is not a prime power");
    cr_assert_not(qc__galois_character(chi, &p, 81), "3^4 is beyond the e <= 3 fields");
}

static void expect_hadamard(int64_t n)
{
    static double h[MAX_N * MAX_N];
    int64_t dims[2] = {n, n};
    qc_tensor t = tu_tensor(h, QC_DT_F64, 2, dims);
    TU_EXPECT_OK(qc_hadamard_matrix(&t));
    for (int64_t i = 0; i < n * n; i++) cr_assert(h[i] == 1.0 || h[i] == -1.0, "H_%lld has entry %g", (long long)n, h[i]);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double dot = 0.0;
            for (int64_t c = 0; c < n; c++) dot += h[i * n + c] * h[j * n + c];
            cr_assert_eq(dot, i == j ? (double)n : 0.0, "H_%lld rows %lld and %lld: dot %g", (long long)n,
                         (long long)i, (long long)j, dot);
        }
}

Test(rotate, every_constructed_order_is_hadamard)
{
    int built = 0;
    for (int64_t n = 1; n <= MAX_N; n++) {
        int64_t k;
        if (qc_hadamard_factor(&k, n) != QC_OK) continue;
        cr_assert_eq(n % k, 0);
        expect_hadamard(n);
        built++;
    }
    /* The 9 powers of 2 and the 57 other multiples of 4 up to 256, except 92, 116, 156, 172, 184, 188, 232
     * and 236, whose odd parts have no Paley order (e.g. 92: neither 91 nor 45 is a prime power). */
    cr_assert_eq(built, 9 + 57 - 8, "%d orders built", built);
    static const int64_t missing[] = {92, 116, 156, 172, 184, 188, 232, 236};
    for (size_t i = 0; i < TU_COUNT(missing); i++) {
        int64_t k;
        cr_assert_eq(qc_hadamard_factor(&k, missing[i]), QC_ERR_UNSUPPORTED, "%lld", (long long)missing[i]);
    }
}

Test(rotate, transformer_factors)
{
    static const int64_t widths[][2] = {{1, 1}, {2, 1}, {4, 1}, {12, 12}, {20, 20}, {28, 28}, {36, 36}, {40, 20},
                                        {52, 52}, {60, 60}, {384, 12}, {1536, 12}, {5120, 20}, {4096, 1}};
    for (size_t i = 0; i < TU_COUNT(widths); i++) {
        int64_t k = 0;
        TU_EXPECT_OK(qc_hadamard_factor(&k, widths[i][0]));
        cr_assert_eq(k, widths[i][1], "n = %lld: K = %lld", (long long)widths[i][0], (long long)k);
    }
    int64_t k;
    TU_EXPECT_FAIL(qc_hadamard_factor(&k, 92), QC_ERR_UNSUPPORTED, "qc_hadamard_factor", "n");
    TU_EXPECT_FAIL(qc_hadamard_factor(&k, 3), QC_ERR_UNSUPPORTED, "qc_hadamard_factor", "n");
    TU_EXPECT_FAIL(qc_hadamard_factor(&k, 0), QC_ERR_SHAPE, "qc_hadamard_factor", "n");
    TU_EXPECT_FAIL(qc_hadamard_factor(NULL, 4), QC_ERR_INVALID_ARG, "qc_hadamard_factor", "k");
}

static double max_orthogonality_error(const float *q, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double dot = 0.0;
            for (int64_t r = 0; r < n; r++) dot += (double)q[r * n + i] * q[r * n + j];
            worst = fmax(worst, fabs(dot - (i == j)));
        }
    return worst;
}

Test(rotate, generators_are_orthogonal)
{
    static float q[MAX_N * MAX_N];
    static const int64_t sizes[] = {1, 2, 12, 40, 97, 256};
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    for (size_t i = 0; i < TU_COUNT(sizes); i++) {
        int64_t n = sizes[i], k, dims[2] = {n, n};
        qc_tensor t = tu_tensor(q, QC_DT_F32, 2, dims);
        TU_EXPECT_OK(qc_random_orthogonal(ctx, &t, 7));
        cr_assert_lt(max_orthogonality_error(q, n), 1e-5, "Haar n = %lld", (long long)n);
        if (qc_hadamard_factor(&k, n) != QC_OK) continue;
        TU_EXPECT_OK(qc_random_hadamard_matrix(ctx, &t, 7));
        cr_assert_lt(max_orthogonality_error(q, n), 1e-5, "randomized Hadamard n = %lld", (long long)n);
    }
    qc_ctx_free(ctx);
}

/* x·H_n/sqrt(n) in double from the dense matrix. */
static void dense_transform(double *y, const float *x, const double *h, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t i = 0; i < n; i++) s += (double)x[r * n + i] * h[i * n + j];
            y[r * n + j] = s / sqrt((double)n);
        }
}

Test(rotate, fwht_matches_the_dense_product)
{
    static const int64_t sizes[] = {1, 2, 8, 16, 32, 12, 24, 96, 20, 40, 52, 60, 120, 256};
    enum { ROWS = 3 };
    static float x[ROWS * MAX_N];
    static double h[MAX_N * MAX_N], want[ROWS * MAX_N];
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    for (size_t s = 0; s < TU_COUNT(sizes); s++) {
        int64_t n = sizes[s], hd[2] = {n, n}, xd[2] = {ROWS, n};
        qc_tensor ht = tu_tensor(h, QC_DT_F64, 2, hd), xt = tu_tensor(x, QC_DT_F32, 2, xd);
        TU_EXPECT_OK(qc_hadamard_matrix(&ht));
        tu_fill_data(x, (size_t)(ROWS * n), 11 + (uint64_t)n, 1.0f);
        dense_transform(want, x, h, ROWS, n);
        TU_EXPECT_OK(qc_fwht(ctx, &xt, 0));
        for (int64_t i = 0; i < ROWS * n; i++)
            cr_assert(fabs(x[i] - want[i]) < 1e-5, "n = %lld, element %lld: %g vs %g", (long long)n, (long long)i,
                      x[i], want[i]);
    }
    qc_ctx_free(ctx);
}

/* The same call on 1, 2 and 3 threads gives the same bits. */
Test(rotate, results_do_not_depend_on_threads)
{
    enum { ROWS = 37, N = 384 };
    static float x[3][ROWS * N], y[3][ROWS * N], q[3][96 * 96];
    for (int t = 0; t < 3; t++) {
        qc_ctx *ctx = tu_ctx(t + 1, QC_ARCH_AUTO);
        tu_fill_data(x[t], ROWS * N, 5, 1.0f);
        memcpy(y[t], x[t], sizeof y[t]);
        int64_t xd[2] = {ROWS, N}, qd[2] = {96, 96};
        qc_tensor xt = tu_tensor(x[t], QC_DT_F32, 2, xd), yt = tu_tensor(y[t], QC_DT_F32, 2, xd);
        qc_tensor qt = tu_tensor(q[t], QC_DT_F32, 2, qd);
        TU_EXPECT_OK(qc_fwht(ctx, &xt, 0));
        TU_EXPECT_OK(qc_random_hadamard(ctx, &yt, 3, 1));
        TU_EXPECT_OK(qc_random_orthogonal(ctx, &qt, 3));
        qc_ctx_free(ctx);
    }
    for (int t = 1; t < 3; t++) {
        cr_assert(memcmp(x[0], x[t], sizeof x[0]) == 0, "FWHT differs on %d threads", t + 1);
        cr_assert(memcmp(y[0], y[t], sizeof y[0]) == 0, "randomized Hadamard differs on %d threads", t + 1);
        cr_assert(memcmp(q[0], q[t], sizeof q[0]) == 0, "Haar matrix differs on %d threads", t + 1);
    }
}

Test(rotate, bad_arguments_are_named)
{
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    float x[2 * 24] = {0};
    double xd[24] = {0};
    int64_t dims[2] = {2, 24}, odd[2] = {2, 23}, one = 24;
    qc_tensor t = tu_tensor(x, QC_DT_F32, 2, dims);
    TU_EXPECT_FAIL(qc_fwht(NULL, &t, 0), QC_ERR_INVALID_ARG, "qc_fwht", "ctx");
    TU_EXPECT_FAIL(qc_fwht(ctx, NULL, 0), QC_ERR_INVALID_ARG, "qc_fwht", "x");
    TU_EXPECT_FAIL(qc_fwht(ctx, &t, 2), QC_ERR_INVALID_ARG, "qc_fwht", "transpose");
    qc_tensor bad = tu_tensor(x, QC_DT_F32, 2, odd);
    TU_EXPECT_FAIL(qc_random_hadamard(ctx, &bad, 0, 0), QC_ERR_UNSUPPORTED, "qc_random_hadamard", "x");
    qc_tensor wrong = tu_tensor(xd, QC_DT_F64, 1, &one);
    TU_EXPECT_FAIL(qc_fwht(ctx, &wrong, 0), QC_ERR_DTYPE, "qc_fwht", "x");
    int64_t strides[2] = {1, 2};
    qc_tensor strided;
    cr_assert_eq(qc_tensor_init(&strided, x, QC_DT_F32, 2, dims, strides), QC_OK);
    TU_EXPECT_FAIL(qc_fwht(ctx, &strided, 0), QC_ERR_LAYOUT, "qc_fwht", "x");
    x[30] = NAN;
    TU_EXPECT_FAIL(qc_fwht(ctx, &t, 0), QC_ERR_NUMERIC, "qc_fwht", "x");
    cr_assert(isnan(x[30]) && x[0] == 0.0f, "a failed transform leaves x unchanged");
    qc_tensor rect = tu_tensor(x, QC_DT_F32, 2, dims);
    TU_EXPECT_FAIL(qc_random_orthogonal(ctx, &rect, 0), QC_ERR_SHAPE, "qc_random_orthogonal", "out");
    TU_EXPECT_FAIL(qc_hadamard_matrix(&rect), QC_ERR_SHAPE, "qc_hadamard_matrix", "out");
    qc_outlier_metrics m = QC_OUTLIER_METRICS_INIT;
    m.version = 9;
    TU_EXPECT_FAIL(qc_outlier_metrics_compute(ctx, &m, &t, NULL), QC_ERR_VERSION, "qc_outlier_metrics_compute", "out");
    qc_ctx_free(ctx);
}

Test(rotate, metrics_combine_the_statistics)
{
    enum { N = 512 };
    static float x[N];
    tu_fill_data(x, N, 3, 1.0f);
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    int64_t n = N;
    qc_tensor t = tu_tensor(x, QC_DT_F32, 1, &n);
    qc_outlier_metrics m = QC_OUTLIER_METRICS_INIT;
    qc_quant_options grid = tu_options(4, 1, 1);
    TU_EXPECT_OK(qc_outlier_metrics_compute(ctx, &m, &t, &grid));
    double kurtosis, max_rms;
    TU_EXPECT_OK(qc_stat_kurtosis(&kurtosis, &t));
    TU_EXPECT_OK(qc_stat_max_over_rms(&max_rms, &t));
    cr_assert_eq(m.kurtosis, kurtosis);
    cr_assert_eq(m.max_over_rms, max_rms);
    cr_assert(m.sqnr_db > 5.0 && m.sqnr_db < 30.0, "4-bit SQNR %g dB", m.sqnr_db);
    TU_EXPECT_OK(qc_outlier_metrics_compute(ctx, &m, &t, NULL));
    cr_assert(isnan(m.sqnr_db), "no grid, no SQNR");
    grid.bits = 1;
    TU_EXPECT_FAIL(qc_outlier_metrics_compute(ctx, &m, &t, &grid), QC_ERR_INVALID_ARG, "qc_outlier_metrics_compute",
                   "opts");
    qc_ctx_free(ctx);
}
