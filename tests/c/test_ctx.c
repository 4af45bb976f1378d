/* The context (core/ctx.c): settings and their bounds, the QC_ARCH environment variable, and the log
 * and progress callbacks. Criterion runs every test in its own process, so setenv does not leak. */
#include <pthread.h>

#include "core/ctx.h"
#include "test_util.h"

static qc_ctx *create_with_env(const char *qc_arch)
{
    if (qc_arch)
        setenv("QC_ARCH", qc_arch, 1);
    else
        unsetenv("QC_ARCH");
    qc_ctx *ctx = NULL;
    TU_EXPECT_OK(qc_ctx_create(&ctx));
    return ctx;
}

static int64_t get(const qc_ctx *ctx, qc_ctx_param param)
{
    int64_t v = -12345;
    TU_EXPECT_OK(qc_ctx_get_param(ctx, param, &v));
    return v;
}

static qc_bounds bounds(qc_ctx_param param)
{
    qc_bounds b = {1, 0};
    TU_EXPECT_OK(qc_ctx_param_bounds(&b, param));
    return b;
}

Test(ctx, defaults)
{
    qc_ctx *ctx = create_with_env(NULL);
    cr_assert_eq(get(ctx, QC_CTX_THREADS), 0, "documented default: one thread per core");
    cr_assert_eq(get(ctx, QC_CTX_SEED), 0);
    cr_assert_eq(get(ctx, QC_CTX_ARCH), qc_arch_best(), "AUTO resolves to the best kernel set");
    int64_t level = get(ctx, QC_CTX_LOG_LEVEL);
    cr_assert(level >= QC_LOG_ERROR && level <= QC_LOG_DEBUG);
    qc_ctx_free(ctx);
}

Test(ctx, bounds_match_the_documented_ranges)
{
    qc_bounds b = bounds(QC_CTX_THREADS);
    cr_assert(b.lower == 0 && b.upper >= 1, "0 means all cores; at least one explicit count");
    b = bounds(QC_CTX_SEED);
    cr_assert(b.lower == INT64_MIN && b.upper == INT64_MAX, "every 64-bit seed");
    b = bounds(QC_CTX_ARCH);
    cr_assert(b.lower == QC_ARCH_AUTO && b.upper == QC_ARCH_AVX512);
    b = bounds(QC_CTX_LOG_LEVEL);
    cr_assert(b.lower == QC_LOG_ERROR && b.upper == QC_LOG_DEBUG);
}

Test(ctx, every_value_at_the_bounds_round_trips)
{
    static const qc_ctx_param params[] = {QC_CTX_THREADS, QC_CTX_SEED, QC_CTX_LOG_LEVEL};
    qc_ctx *ctx = create_with_env(NULL);
    for (size_t i = 0; i < TU_COUNT(params); i++) {
        qc_bounds b = bounds(params[i]);
        TU_EXPECT_OK(qc_ctx_set_param(ctx, params[i], b.lower));
        cr_assert_eq(get(ctx, params[i]), b.lower, "param %d", (int)params[i]);
        TU_EXPECT_OK(qc_ctx_set_param(ctx, params[i], b.upper));
        cr_assert_eq(get(ctx, params[i]), b.upper, "param %d", (int)params[i]);
    }
    qc_ctx_free(ctx);
}

Test(ctx, values_outside_the_bounds_fail_and_change_nothing)
{
    static const qc_ctx_param params[] = {QC_CTX_THREADS, QC_CTX_ARCH, QC_CTX_LOG_LEVEL};
    qc_ctx *ctx = create_with_env(NULL);
    for (size_t i = 0; i < TU_COUNT(params); i++) {
        qc_bounds b = bounds(params[i]);
        int64_t before = get(ctx, params[i]);
        TU_EXPECT_FAIL(qc_ctx_set_param(ctx, params[i], b.lower - 1), QC_ERR_INVALID_ARG, "qc_ctx_set_param", "value");
        TU_EXPECT_FAIL(qc_ctx_set_param(ctx, params[i], b.upper + 1), QC_ERR_INVALID_ARG, "qc_ctx_set_param", "value");
        cr_assert_eq(get(ctx, params[i]), before);
    }
    qc_ctx_free(ctx);
}

Test(ctx, threads_used_follow_the_setting)
{
    qc_ctx *ctx = create_with_env(NULL);
    TU_EXPECT_OK(qc_ctx_set_param(ctx, QC_CTX_THREADS, 0));
    cr_assert_geq(qc__ctx_threads(ctx), 1, "'all cores' is at least one thread");
#ifdef _OPENMP
    TU_EXPECT_OK(qc_ctx_set_param(ctx, QC_CTX_THREADS, 3));
    cr_assert_eq(qc__ctx_threads(ctx), 3);
#endif
    qc_ctx_free(ctx);
}

/* ---- kernel set: setting, and the QC_ARCH environment variable -------------------------------- */

Test(ctx, arch_setting_resolves_auto_and_refuses_what_cannot_run)
{
    qc_ctx *ctx = create_with_env(NULL);
    for (size_t i = 0; i < TU_COUNT(tu_archs); i++) {
        qc_arch arch = tu_archs[i];
        TU_EXPECT_OK(qc_ctx_set_param(ctx, QC_CTX_ARCH, QC_ARCH_REF));
        if (qc_arch_supported(arch)) {
            TU_EXPECT_OK(qc_ctx_set_param(ctx, QC_CTX_ARCH, arch));
            cr_assert_eq(get(ctx, QC_CTX_ARCH), arch);
            cr_assert_eq(ctx->kernels->arch, arch, "the context uses the kernels of its arch");
        } else {
            TU_EXPECT_FAIL(qc_ctx_set_param(ctx, QC_CTX_ARCH, arch), QC_ERR_UNSUPPORTED, "qc_ctx_set_param", NULL);
            cr_assert_eq(get(ctx, QC_CTX_ARCH), QC_ARCH_REF, "a refused arch leaves the setting");
        }
    }
    TU_EXPECT_OK(qc_ctx_set_param(ctx, QC_CTX_ARCH, QC_ARCH_AUTO));
    cr_assert_eq(get(ctx, QC_CTX_ARCH), qc_arch_best());
    qc_ctx_free(ctx);
}

Test(ctx, environment_names_each_kernel_set)
{
    for (size_t i = 0; i < TU_COUNT(tu_archs); i++) {
        qc_arch arch = tu_archs[i];
        setenv("QC_ARCH", qc_arch_string(arch), 1);
        qc_ctx *ctx = (qc_ctx *)0x1;
        if (qc_arch_supported(arch)) {
            TU_EXPECT_OK(qc_ctx_create(&ctx));
            cr_assert_eq(get(ctx, QC_CTX_ARCH), arch, "QC_ARCH=%s", qc_arch_string(arch));
            qc_ctx_free(ctx);
        } else {
            TU_EXPECT_FAIL(qc_ctx_create(&ctx), QC_ERR_UNSUPPORTED, "qc_ctx_create", NULL);
            cr_assert_null(ctx, "no context on failure");
        }
    }
}

Test(ctx, environment_auto_or_empty_means_best)
{
    static const char *const values[] = {"auto", ""};
    for (size_t i = 0; i < TU_COUNT(values); i++) {
        qc_ctx *ctx = create_with_env(values[i]);
        cr_assert_eq(get(ctx, QC_CTX_ARCH), qc_arch_best(), "QC_ARCH='%s'", values[i]);
        qc_ctx_free(ctx);
    }
}

Test(ctx, environment_with_an_unknown_name_is_invalid)
{
    /* Names are exact: case, spaces and prefixes are not forgiven. */
    static const char *const values[] = {"bogus", "REF", "ref ", "avx", "avx5120", "x"};
    for (size_t i = 0; i < TU_COUNT(values); i++) {
        setenv("QC_ARCH", values[i], 1);
        qc_ctx *ctx = (qc_ctx *)0x1;
        TU_EXPECT_FAIL(qc_ctx_create(&ctx), QC_ERR_INVALID_ARG, "qc_ctx_create", NULL);
        cr_assert(strstr(qc_last_error(), "QC_ARCH") != NULL, "%s", qc_last_error());
        cr_assert_null(ctx);
    }
}

/* ---- log callback ------------------------------------------------------------------------------ */

typedef struct log_record {
    int calls;
    qc_log_level level;
    char message[64];
} log_record;

static void record_log(void *user, qc_log_level level, const char *message)
{
    log_record *r = user;
    r->calls++;
    r->level = level;
    snprintf(r->message, sizeof r->message, "%s", message);
}

Test(ctx, log_passes_formatted_messages_up_to_the_level)
{
    qc_ctx *ctx = create_with_env(NULL);
    log_record r = {0};
    TU_EXPECT_OK(qc_ctx_set_log(ctx, record_log, &r));
    TU_EXPECT_OK(qc_ctx_set_param(ctx, QC_CTX_LOG_LEVEL, QC_LOG_WARNING));
    qc__log(ctx, QC_LOG_WARNING, "step %d of %s", 3, "four");
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.level, QC_LOG_WARNING);
    cr_assert_str_eq(r.message, "step 3 of four");
    qc__log(ctx, QC_LOG_INFO, "filtered");
    cr_assert_eq(r.calls, 1, "INFO is above the WARNING level");
    qc__log(ctx, QC_LOG_ERROR, "kept");
    cr_assert_eq(r.calls, 2);
    cr_assert_str_eq(r.message, "kept");
    TU_EXPECT_OK(qc_ctx_set_log(ctx, NULL, NULL));
    qc__log(ctx, QC_LOG_ERROR, "nobody listens");
    cr_assert_eq(r.calls, 2, "a removed callback is not called");
    qc_ctx_free(ctx);
}

/* ---- progress callback and cancellation through qc_quant_choose_params ------------------------ */

enum { CHANNELS = 600, BATCH = 256 }; /* params.c reports after each batch of 256 groups */

typedef struct progress_record {
    int calls;
    int stop_at_call; /* 0: never stop */
    uint64_t done[8], total[8];
    int wrong_stage, wrong_thread;
    pthread_t caller;
} progress_record;

static int record_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    progress_record *r = user;
    if (r->calls < 8) {
        r->done[r->calls] = done;
        r->total[r->calls] = total;
    }
    r->calls++;
    r->wrong_stage |= stage == NULL || stage[0] == '\0';
    r->wrong_thread |= !pthread_equal(pthread_self(), r->caller);
    return r->calls == r->stop_at_call;
}

/* Per-channel parameters of a [CHANNELS, 4] tensor with ctx's progress callback; scale and
 * zero_point start as sentinels so that a cancelled call can be seen to leave them. */
static qc_status choose_per_channel(qc_ctx *ctx, float *scale, int32_t *zero_point)
{
    static float x[CHANNELS * 4];
    tu_fill_data(x, TU_COUNT(x), 5, 1.0f);
    for (int i = 0; i < CHANNELS; i++) {
        scale[i] = -7.0f;
        zero_point[i] = -77;
    }
    int64_t dims[2] = {CHANNELS, 4};
    qc_tensor tx = tu_tensor(x, QC_DT_F32, 2, dims);
    qc_tensor ts = tu_vector(scale, QC_DT_F32, CHANNELS), tz = tu_vector(zero_point, QC_DT_I32, CHANNELS);
    qc_quant_options o = tu_options(8, 1, 0);
    o.granularity = QC_GRAN_CHANNEL;
    return qc_quant_choose_params(ctx, &ts, &tz, &tx, &o);
}

static void assert_untouched(const float *scale, const int32_t *zero_point)
{
    for (int i = 0; i < CHANNELS; i++)
        cr_assert(scale[i] == -7.0f && zero_point[i] == -77, "output %d was written by a cancelled call", i);
}

Test(ctx, progress_reports_every_batch_from_the_calling_thread)
{
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    progress_record r = {.caller = pthread_self()};
    TU_EXPECT_OK(qc_ctx_set_progress(ctx, record_progress, &r));
    static float scale[CHANNELS];
    static int32_t zero_point[CHANNELS];
    TU_EXPECT_OK(choose_per_channel(ctx, scale, zero_point));
    cr_assert_eq(r.calls, 3, "600 groups in batches of 256");
    static const uint64_t done[3] = {BATCH, 2 * BATCH, CHANNELS};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r.done[i], done[i], "call %d", i);
        cr_assert_eq(r.total[i], CHANNELS);
    }
    cr_assert_not(r.wrong_stage, "every report names its stage");
    cr_assert_not(r.wrong_thread, "reports come from the calling thread");
    cr_assert_gt(scale[CHANNELS - 1], 0.0f, "a finished call writes its outputs");
    qc_ctx_free(ctx);
}

Test(ctx, progress_cancels_and_leaves_outputs_untouched)
{
    for (int stop = 1; stop <= 3; stop++) {
        qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
        progress_record r = {.stop_at_call = stop, .caller = pthread_self()};
        TU_EXPECT_OK(qc_ctx_set_progress(ctx, record_progress, &r));
        static float scale[CHANNELS];
        static int32_t zero_point[CHANNELS];
        TU_EXPECT_FAIL(choose_per_channel(ctx, scale, zero_point), QC_ERR_CANCELLED, "qc_quant_choose_params", NULL);
        cr_assert_eq(r.calls, stop, "no report after the callback asked to stop");
        assert_untouched(scale, zero_point);
        qc_ctx_free(ctx);
    }
}

Test(ctx, removed_progress_callback_is_not_called)
{
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    progress_record r = {.stop_at_call = 1, .caller = pthread_self()};
    TU_EXPECT_OK(qc_ctx_set_progress(ctx, record_progress, &r));
    TU_EXPECT_OK(qc_ctx_set_progress(ctx, NULL, NULL));
    static float scale[CHANNELS];
    static int32_t zero_point[CHANNELS];
    TU_EXPECT_OK(choose_per_channel(ctx, scale, zero_point));
    cr_assert_eq(r.calls, 0);
    qc_ctx_free(ctx);
}

Test(ctx, free_accepts_null)
{
    qc_ctx_free(NULL);
    cr_assert_str_eq(qc_last_error(), "", "freeing NULL is not a failure");
}
