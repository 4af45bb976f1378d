/* The accumulator calculus and AXE from C: versioned structs (a version-1 qc_gpxq_options is neither
 * written nor read past its end), the strict constraint's closed-form limits against a search, widths at
 * their boundaries, and RTN+AXE through the C API checked by the verifier. */
#include <stddef.h>

#include "accum/accum.h"
#include "test_util.h"

enum { ROWS = 6, K = 40 };

Test(accum_struct, options_init_v1_writes_only_the_v1_fields)
{
    unsigned char raw[sizeof(qc_gpxq_options)];
    memset(raw, 0xAB, sizeof raw);
    TU_EXPECT_OK(qc_gpxq_options_init((qc_gpxq_options *)(void *)raw, 1));
    qc_gpxq_options v1;
    memcpy(&v1, raw, offsetof(qc_gpxq_options, accumulator_bits));
    cr_assert_eq(v1.version, 1u);
    cr_assert_eq(v1.damp_ratio, 0.01);
    cr_assert_eq(v1.block_size, 128);
    for (size_t i = offsetof(qc_gpxq_options, accumulator_bits); i < sizeof raw; i++)
        cr_assert_eq(raw[i], 0xAB, "byte %zu beyond a version-1 struct was written", i);
}

Test(accum_struct, options_init_v2_has_axe_off)
{
    qc_gpxq_options o;
    TU_EXPECT_OK(qc_gpxq_options_init(&o, QC_GPXQ_OPTIONS_VERSION));
    cr_assert_eq(o.version, 2u);
    cr_assert_eq(o.accumulator_bits, 0);
    cr_assert_eq(o.input_bits, 8);
    cr_assert_eq(o.soft_threshold, 1);
    TU_EXPECT_FAIL(qc_gpxq_options_init(&o, 3), QC_ERR_VERSION, "qc_gpxq_options_init", "version");
    TU_EXPECT_FAIL(qc_gpxq_options_init(&o, 0), QC_ERR_VERSION, "qc_gpxq_options_init", "version");
}

static void weights(float *w)
{
    tu_fill_data(w, ROWS * K, 7, 1.0f);
}

/* RTN into q with `opts`; returns the status. */
static qc_status rtn(int32_t *q, const float *w, const qc_gpxq_options *opts)
{
    static float scale[ROWS];
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_REF);
    int64_t dims[2] = {ROWS, K};
    qc_tensor tq = tu_tensor(q, QC_DT_I32, 2, dims), tw = tu_tensor((void *)w, QC_DT_F32, 2, dims);
    qc_tensor ts = tu_vector(scale, QC_DT_F32, ROWS);
    qc_quant_options grid = tu_options(4, 1, 1);
    grid.granularity = QC_GRAN_CHANNEL;
    qc_status st = qc_rtn(ctx, &tq, &ts, NULL, NULL, NULL, &tw, &grid, opts);
    qc_ctx_free(ctx);
    return st;
}

Test(accum_struct, a_v1_struct_is_read_without_its_tail)
{
    static float w[ROWS * K];
    static int32_t plain[ROWS * K], v1_levels[ROWS * K];
    weights(w);
    /* A version-1 caller's struct followed by bytes that would be invalid AXE options if they were read. */
    unsigned char raw[sizeof(qc_gpxq_options)];
    memset(raw, 0xFF, sizeof raw);
    TU_EXPECT_OK(qc_gpxq_options_init((qc_gpxq_options *)(void *)raw, 1));
    TU_EXPECT_OK(rtn(v1_levels, w, (const qc_gpxq_options *)(const void *)raw));
    TU_EXPECT_OK(rtn(plain, w, NULL));
    cr_assert_arr_eq(v1_levels, plain, sizeof plain);
}

Test(accum_struct, unknown_versions_are_refused)
{
    qc_accum_spec spec;
    TU_EXPECT_FAIL(qc_accum_spec_init(&spec, 2), QC_ERR_VERSION, "qc_accum_spec_init", "version");
    TU_EXPECT_OK(qc_accum_spec_init(&spec, 1));
    cr_assert_eq(spec.bits, 32);
    cr_assert_eq(spec.input_max, 255);
    int32_t q[4] = {1, 2, 3, 4};
    int64_t dims[2] = {1, 4};
    qc_tensor tq = tu_tensor(q, QC_DT_I32, 2, dims);
    qc_accum_report report = QC_ACCUM_REPORT_INIT;
    report.version = 2;
    TU_EXPECT_FAIL(qc_accum_verify(&report, &tq, NULL), QC_ERR_VERSION, "qc_accum_verify", "report");
    report.version = 1;
    spec.version = 0;
    TU_EXPECT_FAIL(qc_accum_verify(&report, &tq, &spec), QC_ERR_VERSION, "qc_accum_verify", "spec");
    qc_accum_sim sim = QC_ACCUM_SIM_INIT;
    sim.version = 9;
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_REF);
    TU_EXPECT_FAIL(qc_accum_simulate(ctx, &sim, NULL, NULL, &tq, &tq, NULL), QC_ERR_VERSION, "qc_accum_simulate", "stats");
    qc_ctx_free(ctx);
    qc_gpxq_options opts = QC_GPXQ_OPTIONS_INIT;
    opts.version = 3;
    static float w[ROWS * K];
    static int32_t levels[ROWS * K];
    TU_EXPECT_FAIL(rtn(levels, w, &opts), QC_ERR_VERSION, "qc_rtn", "opts");
}

Test(accum_struct, defaults_verify_with_a_null_spec)
{
    int32_t q[3] = {127, -128, 5};
    int64_t dims[2] = {1, 3};
    qc_tensor tq = tu_tensor(q, QC_DT_I32, 2, dims);
    qc_accum_report report = QC_ACCUM_REPORT_INIT;
    TU_EXPECT_OK(qc_accum_verify(&report, &tq, NULL));
    cr_assert_eq(report.passed, 1);
    cr_assert_eq(report.tiles, 1);
    cr_assert_eq(report.required_bits, 17); /* 255 * 132 = 33660 needs 1 + 16 bits */
}

static int fits(qc_accum_budget b, int64_t x_min, int64_t x_max, int32_t bits)
{
    return qc__accum_high(b, x_min, x_max) <= qc__accum_limit(bits) && qc__accum_low(b, x_min, x_max) >= -qc__accum_limit(bits);
}

/* The closed form equals the farthest level a search from 0 finds, for random budgets that fit. */
Test(accum_limits, closed_form_equals_search)
{
    static const int64_t ranges[][2] = {{0, 255}, {-128, 127}, {-8, 7}, {0, 1}, {-3, 100}};
    uint64_t state = 3;
    for (size_t r = 0; r < TU_COUNT(ranges); r++)
        for (int trial = 0; trial < 400; trial++) {
            int64_t x_min = ranges[r][0], x_max = ranges[r][1];
            int32_t bits = 8 + (int32_t)(tu_next(&state) % 8);
            qc_accum_budget b = {(int64_t)(tu_next(&state) % 200), -(int64_t)(tu_next(&state) % 200)};
            if (!fits(b, x_min, x_max, bits)) continue;
            int64_t lo, hi, up = 0, down = 0;
            qc__accum_level_limits(&lo, &hi, b, x_min, x_max, bits);
            while (fits((qc_accum_budget){b.pos + up + 1, b.neg}, x_min, x_max, bits)) up++;
            while (fits((qc_accum_budget){b.pos, b.neg + down - 1}, x_min, x_max, bits)) down--;
            cr_assert_eq(hi, up, "range [%lld, %lld], P %d, p %lld, n %lld", (long long)x_min, (long long)x_max, bits,
                         (long long)b.pos, (long long)b.neg);
            cr_assert_eq(lo, down);
        }
}

Test(accum_limits, widths_at_their_boundaries)
{
    cr_assert_eq(qc__accum_bits_for(0), 1);
    cr_assert_eq(qc__accum_bits_for(1), 2);
    cr_assert_eq(qc__accum_bits_for(32767), 16);
    cr_assert_eq(qc__accum_bits_for(32768), 17);
    cr_assert_eq(qc__accum_bits_for(-32768), 17);
    cr_assert_eq(qc__accum_bits_for(((qc_i128)1 << 94) - 1), 95);
    int32_t p;
    TU_EXPECT_OK(qc_accum_bits_a2q(&p, (int64_t)1 << 62, 32, 0));
    cr_assert_eq(p, 96);
    cr_assert_eq(qc__accum_implied_outer(16, 1), 16);
    cr_assert_eq(qc__accum_implied_outer(16, 12), 20);
    cr_assert_eq(qc__accum_implied_outer(16, 16), 20);
}

/* The whole path in C: RTN+AXE at a width plain rounding exceeds, checked by the verifier per tile. */
Test(accum_axe, rtn_axe_rows_verify)
{
    static float w[ROWS * K];
    static int32_t q[ROWS * K];
    weights(w);
    qc_gpxq_options opts = QC_GPXQ_OPTIONS_INIT;
    opts.accumulator_bits = 10;
    opts.tile_size = 16;
    qc_accum_spec spec = QC_ACCUM_SPEC_INIT;
    spec.bits = 10;
    spec.tile = 16;
    int64_t dims[2] = {ROWS, K};
    qc_tensor tq = tu_tensor(q, QC_DT_I32, 2, dims);
    qc_accum_report report = QC_ACCUM_REPORT_INIT;
    TU_EXPECT_OK(rtn(q, w, NULL));
    TU_EXPECT_OK(qc_accum_verify(&report, &tq, &spec));
    cr_assert_eq(report.passed, 0, "plain RTN should not fit 10 bits, or this test shows nothing");
    TU_EXPECT_OK(rtn(q, w, &opts));
    TU_EXPECT_OK(qc_accum_verify(&report, &tq, &spec));
    cr_assert_eq(report.passed, 1, "row %lld tile %lld needs %d bits", (long long)report.first_row,
                 (long long)report.first_tile, report.required_bits);
    cr_assert_eq(report.tiles, 3);
    cr_assert_eq(report.outer_bits, 12);
}
