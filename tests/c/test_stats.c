/* Statistics (quant/stats.c) against closed forms. */
#include "test_util.h"

static double kurtosis_of(const double *v, int64_t n)
{
    qc_tensor t = tu_vector((void *)v, QC_DT_F64, n);
    double k = NAN;
    TU_EXPECT_OK(qc_stat_kurtosis(&k, &t));
    return k;
}

static void assert_close(double got, double want, double rel, const char *what)
{
    cr_assert(fabs(got - want) <= rel * fabs(want), "%s: %.17g, expected %.17g", what, got, want);
}

Test(stats, kurtosis_of_a_symmetric_two_point_sample_is_one)
{
    const double v[2] = {-1.0, 1.0};
    cr_assert_eq(kurtosis_of(v, 2), 1.0);
    const double shifted[4] = {4.0, 6.0, 6.0, 4.0};
    cr_assert_eq(kurtosis_of(shifted, 4), 1.0, "location and scale do not matter");
}

Test(stats, kurtosis_of_a_skewed_two_point_sample)
{
    /* k copies of one value and n - k of another, p = k / n: kurtosis (1 - 3pq) / (pq). */
    enum { N = 40 };
    double v[N];
    for (int k = 1; k < N; k += 7) {
        for (int i = 0; i < N; i++) v[i] = i < k ? 3.0 : -0.5;
        double p = (double)k / N, q = 1.0 - p;
        assert_close(kurtosis_of(v, N), (1.0 - 3.0 * p * q) / (p * q), 1e-12, "two-point");
    }
}

Test(stats, kurtosis_of_a_discrete_uniform_sample)
{
    /* 0 .. n-1: Pearson kurtosis 3 - 6 (n^2 + 1) / (5 (n^2 - 1)); 1.8 in the limit. */
    enum { N = 1000 };
    static double v[N];
    for (int i = 0; i < N; i++) v[i] = i;
    double n2 = (double)N * N;
    assert_close(kurtosis_of(v, N), 3.0 - 6.0 * (n2 + 1.0) / (5.0 * (n2 - 1.0)), 1e-12, "uniform");
}

Test(stats, kurtosis_reads_f32)
{
    const float v[4] = {0.0f, 0.0f, 0.0f, 1.0f}; /* p = 1/4: (1 - 9/16) / (3/16) = 7/3 */
    qc_tensor t = tu_vector((void *)v, QC_DT_F32, 4);
    double k;
    TU_EXPECT_OK(qc_stat_kurtosis(&k, &t));
    assert_close(k, 7.0 / 3.0, 1e-15, "f32");
}

Test(stats, max_over_rms)
{
    const double v[2] = {3.0, -4.0};
    qc_tensor t = tu_vector((void *)v, QC_DT_F64, 2);
    double r;
    TU_EXPECT_OK(qc_stat_max_over_rms(&r, &t));
    assert_close(r, 4.0 / sqrt(12.5), 1e-15, "{3, -4}");
    const float c[5] = {-2, -2, -2, -2, -2};
    qc_tensor tc = tu_vector((void *)c, QC_DT_F32, 5);
    TU_EXPECT_OK(qc_stat_max_over_rms(&r, &tc));
    cr_assert_eq(r, 1.0, "a constant's max equals its RMS");
}

Test(stats, sqnr_and_relative_mse_hand_example)
{
    /* signal 1 + 4 + 9 = 14, noise 1: SQNR 10 log10(14), relative MSE 1/14. */
    const float ref[3] = {1, 2, 3};
    const double approx[3] = {1, 2, 4};
    qc_tensor tr = tu_vector((void *)ref, QC_DT_F32, 3), ta = tu_vector((void *)approx, QC_DT_F64, 3);
    double sqnr, rel;
    TU_EXPECT_OK(qc_stat_sqnr_db(&sqnr, &tr, &ta));
    TU_EXPECT_OK(qc_stat_relative_mse(&rel, &tr, &ta));
    assert_close(sqnr, 11.461280356782380, 1e-14, "SQNR");
    assert_close(rel, 1.0 / 14.0, 1e-15, "relative MSE");
}

Test(stats, sqnr_of_equal_tensors_is_infinite)
{
    const float a[4] = {0.5f, -1.0f, 3.0f, 0.0f};
    const float zeros[2] = {0};
    double sqnr = 0.0, rel = -1.0;
    qc_tensor ta = tu_vector((void *)a, QC_DT_F32, 4), tz = tu_vector((void *)zeros, QC_DT_F32, 2);
    TU_EXPECT_OK(qc_stat_sqnr_db(&sqnr, &ta, &ta));
    cr_assert(isinf(sqnr) && sqnr > 0);
    TU_EXPECT_OK(qc_stat_sqnr_db(&sqnr, &tz, &tz));
    cr_assert(isinf(sqnr) && sqnr > 0, "two equal all-zero tensors are equal");
    TU_EXPECT_OK(qc_stat_relative_mse(&rel, &ta, &ta));
    cr_assert_eq(rel, 0.0);
}

Test(stats, undefined_results_are_numeric_errors)
{
    const float zeros[3] = {0}, ones[3] = {1, 1, 1}, mixed[3] = {0, 1, 0};
    double out = 42.0;
    qc_tensor tz = tu_vector((void *)zeros, QC_DT_F32, 3), to = tu_vector((void *)ones, QC_DT_F32, 3);
    qc_tensor tm = tu_vector((void *)mixed, QC_DT_F32, 3);
    TU_EXPECT_FAIL(qc_stat_sqnr_db(&out, &tz, &tm), QC_ERR_NUMERIC, "qc_stat_sqnr_db", "ref");
    TU_EXPECT_FAIL(qc_stat_relative_mse(&out, &tz, &tm), QC_ERR_NUMERIC, "qc_stat_relative_mse", "ref");
    TU_EXPECT_FAIL(qc_stat_relative_mse(&out, &tz, &tz), QC_ERR_NUMERIC, "qc_stat_relative_mse", "ref");
    TU_EXPECT_FAIL(qc_stat_kurtosis(&out, &to), QC_ERR_NUMERIC, "qc_stat_kurtosis", "x");
    TU_EXPECT_FAIL(qc_stat_kurtosis(&out, &tz), QC_ERR_NUMERIC, "qc_stat_kurtosis", "x");
    TU_EXPECT_FAIL(qc_stat_max_over_rms(&out, &tz), QC_ERR_NUMERIC, "qc_stat_max_over_rms", "x");
    cr_assert_eq(out, 42.0, "failures leave the output alone");
}

Test(stats, non_finite_inputs_are_named)
{
    const double nan_at_1[3] = {1, NAN, 2}, inf_at_2[3] = {1, 2, -INFINITY}, fine[3] = {1, 2, 3};
    double out;
    qc_tensor tn = tu_vector((void *)nan_at_1, QC_DT_F64, 3), ti = tu_vector((void *)inf_at_2, QC_DT_F64, 3);
    qc_tensor tf = tu_vector((void *)fine, QC_DT_F64, 3);
    TU_EXPECT_FAIL(qc_stat_kurtosis(&out, &tn), QC_ERR_NUMERIC, "qc_stat_kurtosis", "x");
    cr_assert(strstr(qc_last_error(), "element 1") != NULL, "%s", qc_last_error());
    TU_EXPECT_FAIL(qc_stat_max_over_rms(&out, &ti), QC_ERR_NUMERIC, "qc_stat_max_over_rms", "x");
    TU_EXPECT_FAIL(qc_stat_sqnr_db(&out, &tn, &tf), QC_ERR_NUMERIC, "qc_stat_sqnr_db", "ref");
    TU_EXPECT_FAIL(qc_stat_sqnr_db(&out, &tf, &ti), QC_ERR_NUMERIC, "qc_stat_sqnr_db", "approx");
    TU_EXPECT_FAIL(qc_stat_relative_mse(&out, &tf, &tn), QC_ERR_NUMERIC, "qc_stat_relative_mse", "approx");
}
