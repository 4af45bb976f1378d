/* Every public function with bad arguments: the documented status, and a message that starts with the
 * function's name and names the argument. Each test changes one thing in an otherwise valid call. */
#include "test_util.h"

/* A valid call's arguments: x [2, 3] f32, per-tensor parameters, i8 output. */
typedef struct fixture {
    qc_ctx *ctx;
    float xv[6], yv[6], scale_v, bad_v[6];
    int32_t zp_v;
    int8_t qv[6];
    qc_tensor x, y, scale, zero_point, q;
    qc_quant_options o;
} fixture;

static fixture *fixture_new(void)
{
    fixture *f = calloc(1, sizeof *f);
    f->ctx = tu_ctx(1, QC_ARCH_AUTO);
    for (int i = 0; i < 6; i++) f->xv[i] = (float)i - 2.5f;
    f->scale_v = 0.1f;
    int64_t dims[2] = {2, 3};
    f->x = tu_tensor(f->xv, QC_DT_F32, 2, dims);
    f->y = tu_tensor(f->yv, QC_DT_F32, 2, dims);
    f->q = tu_tensor(f->qv, QC_DT_I8, 2, dims);
    f->scale = tu_scalar(&f->scale_v, QC_DT_F32);
    f->zero_point = tu_scalar(&f->zp_v, QC_DT_I32);
    f->o = (qc_quant_options)QC_QUANT_OPTIONS_INIT;
    TU_EXPECT_OK(qc_quantize(f->ctx, &f->q, &f->x, &f->scale, &f->zero_point, &f->o)); /* the baseline works */
    return f;
}

static void fixture_free(fixture *f)
{
    qc_ctx_free(f->ctx);
    free(f);
}

/* ---- context ----------------------------------------------------------------------------------- */

Test(bad_args, ctx_functions)
{
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    qc_bounds b;
    int64_t v;
    TU_EXPECT_FAIL(qc_ctx_create(NULL), QC_ERR_INVALID_ARG, "qc_ctx_create", "out");
    TU_EXPECT_FAIL(qc_ctx_param_bounds(NULL, QC_CTX_SEED), QC_ERR_INVALID_ARG, "qc_ctx_param_bounds", "out");
    TU_EXPECT_FAIL(qc_ctx_param_bounds(&b, (qc_ctx_param)0), QC_ERR_INVALID_ARG, "qc_ctx_param_bounds", "param");
    TU_EXPECT_FAIL(qc_ctx_param_bounds(&b, (qc_ctx_param)99), QC_ERR_INVALID_ARG, "qc_ctx_param_bounds", "param");
    TU_EXPECT_FAIL(qc_ctx_set_param(NULL, QC_CTX_SEED, 1), QC_ERR_INVALID_ARG, "qc_ctx_set_param", "ctx");
    TU_EXPECT_FAIL(qc_ctx_set_param(ctx, (qc_ctx_param)5, 1), QC_ERR_INVALID_ARG, "qc_ctx_set_param", "param");
    TU_EXPECT_FAIL(qc_ctx_set_param(ctx, QC_CTX_THREADS, -1), QC_ERR_INVALID_ARG, "qc_ctx_set_param", "value");
    TU_EXPECT_FAIL(qc_ctx_set_param(ctx, QC_CTX_ARCH, 99), QC_ERR_INVALID_ARG, "qc_ctx_set_param", "value");
    TU_EXPECT_FAIL(qc_ctx_set_param(ctx, QC_CTX_LOG_LEVEL, 4), QC_ERR_INVALID_ARG, "qc_ctx_set_param", "value");
    TU_EXPECT_FAIL(qc_ctx_get_param(NULL, QC_CTX_SEED, &v), QC_ERR_INVALID_ARG, "qc_ctx_get_param", "ctx");
    TU_EXPECT_FAIL(qc_ctx_get_param(ctx, QC_CTX_SEED, NULL), QC_ERR_INVALID_ARG, "qc_ctx_get_param", "value");
    TU_EXPECT_FAIL(qc_ctx_get_param(ctx, (qc_ctx_param)0, &v), QC_ERR_INVALID_ARG, "qc_ctx_get_param", "param");
    TU_EXPECT_FAIL(qc_ctx_set_log(NULL, NULL, NULL), QC_ERR_INVALID_ARG, "qc_ctx_set_log", "ctx");
    TU_EXPECT_FAIL(qc_ctx_set_progress(NULL, NULL, NULL), QC_ERR_INVALID_ARG, "qc_ctx_set_progress", "ctx");
    qc_ctx_free(ctx);
}

/* ---- tensors ----------------------------------------------------------------------------------- */

Test(bad_args, tensor_functions)
{
    qc_tensor t;
    float v[4];
    int64_t dims[1] = {4};
    size_t bytes;
    TU_EXPECT_FAIL(qc_tensor_init(NULL, v, QC_DT_F32, 1, dims, NULL), QC_ERR_INVALID_ARG, "qc_tensor_init", "out");
    TU_EXPECT_FAIL(qc_tensor_init(&t, v, QC_DT_F32, QC_MAX_DIMS + 1, dims, NULL), QC_ERR_INVALID_ARG, "qc_tensor_init",
                   "ndim");
    TU_EXPECT_FAIL(qc_tensor_init(&t, v, QC_DT_F32, -1, dims, NULL), QC_ERR_INVALID_ARG, "qc_tensor_init", "ndim");
    TU_EXPECT_FAIL(qc_tensor_init(&t, v, QC_DT_F32, 1, NULL, NULL), QC_ERR_INVALID_ARG, "qc_tensor_init", "dims");
    TU_EXPECT_FAIL(qc_tensor_init(&t, v, (qc_dtype)0, 1, dims, NULL), QC_ERR_DTYPE, "qc_tensor_init", "out");
    TU_EXPECT_FAIL(qc_tensor_init(&t, v, (qc_dtype)99, 1, dims, NULL), QC_ERR_DTYPE, "qc_tensor_init", "out");
    TU_EXPECT_FAIL(qc_tensor_check(NULL, "w"), QC_ERR_INVALID_ARG, "qc_tensor_check", "w");
    t = tu_vector(v, QC_DT_F32, 4);
    TU_EXPECT_FAIL(qc_tensor_nbytes(NULL, &t), QC_ERR_INVALID_ARG, "qc_tensor_nbytes", "out");
    TU_EXPECT_FAIL(qc_tensor_nbytes(&bytes, NULL), QC_ERR_INVALID_ARG, "qc_tensor_nbytes", "t");
}

/* ---- random numbers ---------------------------------------------------------------------------- */

Test(bad_args, random_functions)
{
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    int32_t ints[4];
    float floats[6];
    int64_t dims[2] = {2, 2}, strides[2] = {1, 3};
    qc_tensor ti = tu_vector(ints, QC_DT_I32, 4), tf = tu_vector(floats, QC_DT_F32, 4), strided;
    TU_EXPECT_OK(qc_tensor_init(&strided, floats, QC_DT_F32, 2, dims, strides));
    TU_EXPECT_FAIL(qc_random_bits(NULL, 4, 0, 0, 0), QC_ERR_INVALID_ARG, "qc_random_bits", "out");
    static const struct {
        qc_status (*fn)(qc_ctx *, qc_tensor *, uint64_t);
        const char *name;
    } fills[] = {{qc_random_normal, "qc_random_normal"}, {qc_random_uniform, "qc_random_uniform"}};
    for (size_t i = 0; i < TU_COUNT(fills); i++) {
        TU_EXPECT_FAIL(fills[i].fn(NULL, &tf, 0), QC_ERR_INVALID_ARG, fills[i].name, "ctx");
        TU_EXPECT_FAIL(fills[i].fn(ctx, NULL, 0), QC_ERR_INVALID_ARG, fills[i].name, "out");
        TU_EXPECT_FAIL(fills[i].fn(ctx, &ti, 0), QC_ERR_DTYPE, fills[i].name, "out");
        TU_EXPECT_FAIL(fills[i].fn(ctx, &strided, 0), QC_ERR_LAYOUT, fills[i].name, "out");
    }
    qc_ctx_free(ctx);
}

/* ---- options ----------------------------------------------------------------------------------- */

Test(bad_args, options_versions)
{
    qc_quant_options o = QC_QUANT_OPTIONS_INIT;
    TU_EXPECT_FAIL(qc_quant_options_init(NULL, 1), QC_ERR_INVALID_ARG, "qc_quant_options_init", "opts");
    TU_EXPECT_FAIL(qc_quant_options_init(&o, 0), QC_ERR_VERSION, "qc_quant_options_init", "version");
    TU_EXPECT_FAIL(qc_quant_options_init(&o, 99), QC_ERR_VERSION, "qc_quant_options_init", "version");
    TU_EXPECT_FAIL(qc_quant_options_check(NULL, NULL), QC_ERR_INVALID_ARG, "qc_quant_options_check", "opts");
    o.version = 0;
    TU_EXPECT_FAIL(qc_quant_options_check(&o, NULL), QC_ERR_VERSION, "qc_quant_options_check", "opts");
    o.version = 99;
    TU_EXPECT_FAIL(qc_quant_options_check(&o, NULL), QC_ERR_VERSION, "qc_quant_options_check", "opts");
}

/* One field out of range: `field` names it in the message. */
typedef struct bad_option {
    void (*spoil)(qc_quant_options *);
    const char *field;
} bad_option;

static void bits_1(qc_quant_options *o) { o->bits = 1; }
static void bits_17(qc_quant_options *o) { o->bits = 17; }
static void signed_2(qc_quant_options *o) { o->is_signed = 2; }
static void symmetric_minus_1(qc_quant_options *o) { o->symmetric = -1; }
static void narrow_2(qc_quant_options *o) { o->narrow_range = 2; }
static void granularity_3(qc_quant_options *o) { o->granularity = (qc_granularity)3; }
static void group_size_0(qc_quant_options *o) { o->granularity = QC_GRAN_GROUP; o->group_size = 0; }
static void scale_method_3(qc_quant_options *o) { o->scale_method = (qc_scale_method)3; }
static void percentile_50(qc_quant_options *o) { o->scale_method = QC_SCALE_PERCENTILE; o->percentile = 50.0; }
static void percentile_above_100(qc_quant_options *o) { o->scale_method = QC_SCALE_PERCENTILE; o->percentile = 100.001; }
static void percentile_nan(qc_quant_options *o) { o->scale_method = QC_SCALE_PERCENTILE; o->percentile = NAN; }
static void mse_steps_1(qc_quant_options *o) { o->scale_method = QC_SCALE_MSE; o->mse_steps = 1; }
static void mse_steps_10001(qc_quant_options *o) { o->scale_method = QC_SCALE_MSE; o->mse_steps = 10001; }
static void mse_ratio_0(qc_quant_options *o) { o->scale_method = QC_SCALE_MSE; o->mse_min_ratio = 0.0; }
static void mse_ratio_1(qc_quant_options *o) { o->scale_method = QC_SCALE_MSE; o->mse_min_ratio = 1.0; }
static void axis_2(qc_quant_options *o) { o->granularity = QC_GRAN_CHANNEL; o->axis = 2; }
static void axis_minus_3(qc_quant_options *o) { o->granularity = QC_GRAN_GROUP; o->axis = -3; }

static const bad_option bad_options[] = {
    {bits_1, "bits"},           {bits_17, "bits"},        {signed_2, "is_signed"},
    {symmetric_minus_1, "symmetric"}, {narrow_2, "narrow_range"}, {granularity_3, "granularity"},
    {group_size_0, "group_size"}, {scale_method_3, "scale_method"}, {percentile_50, "percentile"},
    {percentile_above_100, "percentile"}, {percentile_nan, "percentile"}, {mse_steps_1, "mse_steps"},
    {mse_steps_10001, "mse_steps"}, {mse_ratio_0, "mse_min_ratio"}, {mse_ratio_1, "mse_min_ratio"},
    {axis_2, "axis"},           {axis_minus_3, "axis"},
};

/* INVALID_ARG naming 'opts' and the field; the last error is cleared first so that a stale message
 * cannot pass. */
static void check_bad_option(const bad_option *b, qc_status got, const char *function)
{
    tu_check_failure(got, QC_ERR_INVALID_ARG, function, "opts", b->field);
    cr_assert(strstr(qc_last_error(), b->field) != NULL, "%s: '%s' should name %s", function, qc_last_error(),
              b->field);
}

#define EXPECT_BAD_OPTION(b, call, function)  \
    do {                                      \
        qc_clear_error();                     \
        qc_status st_ = (call);               \
        check_bad_option((b), st_, (function)); \
    } while (0)

Test(bad_args, options_out_of_range_in_every_function)
{
    fixture *f = fixture_new();
    int32_t ndim, qmin;
    int64_t dims[QC_MAX_DIMS];
    for (size_t i = 0; i < TU_COUNT(bad_options); i++) {
        const bad_option *b = &bad_options[i];
        qc_quant_options o = QC_QUANT_OPTIONS_INIT;
        b->spoil(&o);
        int needs_x = b->spoil == axis_2 || b->spoil == axis_minus_3; /* axis is checked against x only */
        if (!needs_x) {
            EXPECT_BAD_OPTION(b, qc_quant_options_check(&o, NULL), "qc_quant_options_check");
            EXPECT_BAD_OPTION(b, qc_quant_range(&qmin, NULL, &o), "qc_quant_range");
        }
        EXPECT_BAD_OPTION(b, qc_quant_options_check(&o, &f->x), "qc_quant_options_check");
        EXPECT_BAD_OPTION(b, qc_quant_param_shape(&ndim, dims, &f->x, &o), "qc_quant_param_shape");
        EXPECT_BAD_OPTION(b, qc_quant_choose_params(f->ctx, &f->scale, &f->zero_point, &f->x, &o), "qc_quant_choose_params");
        EXPECT_BAD_OPTION(b, qc_quantize(f->ctx, &f->q, &f->x, &f->scale, &f->zero_point, &o), "qc_quantize");
        EXPECT_BAD_OPTION(b, qc_dequantize(f->ctx, &f->y, &f->q, &f->scale, &f->zero_point, &o), "qc_dequantize");
        EXPECT_BAD_OPTION(b, qc_fake_quantize(f->ctx, &f->y, &f->x, &f->scale, &f->zero_point, &o), "qc_fake_quantize");
    }
    fixture_free(f);
}

Test(bad_args, option_versions_in_every_function)
{
    fixture *f = fixture_new();
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    static const uint32_t versions[] = {0, 2, 99};
    for (size_t i = 0; i < TU_COUNT(versions); i++) {
        qc_quant_options o = QC_QUANT_OPTIONS_INIT;
        o.version = versions[i];
        TU_EXPECT_FAIL(qc_quant_range(NULL, NULL, &o), QC_ERR_VERSION, "qc_quant_range", "opts");
        TU_EXPECT_FAIL(qc_quant_param_shape(&ndim, dims, &f->x, &o), QC_ERR_VERSION, "qc_quant_param_shape", "opts");
        TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->scale, NULL, &f->x, &o), QC_ERR_VERSION,
                       "qc_quant_choose_params", "opts");
        TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &f->x, &f->scale, NULL, &o), QC_ERR_VERSION, "qc_quantize", "opts");
        TU_EXPECT_FAIL(qc_dequantize(f->ctx, &f->y, &f->q, &f->scale, NULL, &o), QC_ERR_VERSION, "qc_dequantize", "opts");
        TU_EXPECT_FAIL(qc_fake_quantize(f->ctx, &f->y, &f->x, &f->scale, NULL, &o), QC_ERR_VERSION, "qc_fake_quantize",
                       "opts");
    }
    fixture_free(f);
}

Test(bad_args, null_options_and_shape_outputs)
{
    fixture *f = fixture_new();
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    TU_EXPECT_FAIL(qc_quant_range(NULL, NULL, NULL), QC_ERR_INVALID_ARG, "qc_quant_range", "opts");
    TU_EXPECT_FAIL(qc_quant_param_shape(NULL, dims, &f->x, &f->o), QC_ERR_INVALID_ARG, "qc_quant_param_shape", "ndim");
    TU_EXPECT_FAIL(qc_quant_param_shape(&ndim, NULL, &f->x, &f->o), QC_ERR_INVALID_ARG, "qc_quant_param_shape", "dims");
    TU_EXPECT_FAIL(qc_quant_param_shape(&ndim, dims, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_quant_param_shape", "x");
    TU_EXPECT_FAIL(qc_quant_param_shape(&ndim, dims, &f->x, NULL), QC_ERR_INVALID_ARG, "qc_quant_param_shape", "opts");
    fixture_free(f);
}

/* ---- qc_quant_choose_params -------------------------------------------------------------------- */

Test(bad_args, choose_params)
{
    fixture *f = fixture_new();
    const char *fn = "qc_quant_choose_params";
    qc_quant_options asym = tu_options(8, 1, 0);
    float two_scales[2];
    double xd[6] = {0};
    qc_tensor wrong_shape = tu_vector(two_scales, QC_DT_F32, 2), x64 = tu_tensor(xd, QC_DT_F64, 2, f->x.dims);
    TU_EXPECT_FAIL(qc_quant_choose_params(NULL, &f->scale, NULL, &f->x, &f->o), QC_ERR_INVALID_ARG, fn, "ctx");
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->scale, NULL, NULL, &f->o), QC_ERR_INVALID_ARG, fn, "x");
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->scale, NULL, &x64, &f->o), QC_ERR_DTYPE, fn, "x");
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, NULL, NULL, &f->x, &f->o), QC_ERR_INVALID_ARG, fn, "scale");
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->zero_point, NULL, &f->x, &f->o), QC_ERR_DTYPE, fn, "scale");
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &wrong_shape, NULL, &f->x, &f->o), QC_ERR_SHAPE, fn, "scale");
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->scale, NULL, &f->x, &asym), QC_ERR_INVALID_ARG, fn, "zero_point");
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->scale, &f->scale, &f->x, &asym), QC_ERR_DTYPE, fn, "zero_point");
    qc_quant_options channel = f->o;
    channel.granularity = QC_GRAN_CHANNEL; /* wants scale [2] */
    TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->scale, NULL, &f->x, &channel), QC_ERR_SHAPE, fn, "scale");
    fixture_free(f);
}

Test(bad_args, non_finite_inputs_are_numeric_errors)
{
    static const float specials[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < TU_COUNT(specials); i++) {
        fixture *f = fixture_new();
        f->xv[4] = specials[i];
        f->scale_v = -3.0f; /* sentinel: must stay */
        TU_EXPECT_FAIL(qc_quant_choose_params(f->ctx, &f->scale, NULL, &f->x, &f->o), QC_ERR_NUMERIC,
                       "qc_quant_choose_params", "x");
        cr_assert(strstr(qc_last_error(), "element 4") != NULL, "%s", qc_last_error());
        cr_assert_eq(f->scale_v, -3.0f, "no parameters written");
        f->scale_v = 0.1f;
        TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &f->x, &f->scale, NULL, &f->o), QC_ERR_NUMERIC, "qc_quantize", "x");
        cr_assert(strstr(qc_last_error(), "element 4") != NULL, "%s", qc_last_error());
        TU_EXPECT_FAIL(qc_fake_quantize(f->ctx, &f->y, &f->x, &f->scale, NULL, &f->o), QC_ERR_NUMERIC,
                       "qc_fake_quantize", "x");
        fixture_free(f);
    }
}

/* ---- quantize, dequantize, fake-quantize -------------------------------------------------------- */

/* Bad scales and zero points fail the same way in all three functions. */
static void expect_bad_params(fixture *f, qc_status want, const char *arg, const qc_quant_options *o)
{
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &f->x, &f->scale, &f->zero_point, o), want, "qc_quantize", arg);
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, &f->y, &f->q, &f->scale, &f->zero_point, o), want, "qc_dequantize", arg);
    TU_EXPECT_FAIL(qc_fake_quantize(f->ctx, &f->y, &f->x, &f->scale, &f->zero_point, o), want, "qc_fake_quantize", arg);
}

Test(bad_args, scales_must_be_finite_and_positive)
{
    static const float bad[] = {0.0f, -0.0f, -1.0f, NAN, INFINITY};
    fixture *f = fixture_new();
    for (size_t i = 0; i < TU_COUNT(bad); i++) {
        f->scale_v = bad[i];
        expect_bad_params(f, QC_ERR_INVALID_ARG, "scale", &f->o);
    }
    fixture_free(f);
}

Test(bad_args, zero_points_must_lie_on_the_grid)
{
    fixture *f = fixture_new();
    qc_quant_options asym = tu_options(8, 1, 0);
    f->zp_v = 128;
    expect_bad_params(f, QC_ERR_INVALID_ARG, "zero_point", &asym);
    f->zp_v = -129;
    expect_bad_params(f, QC_ERR_INVALID_ARG, "zero_point", &asym);
    asym.narrow_range = 1;
    f->zp_v = -128; /* the level a narrow range drops */
    expect_bad_params(f, QC_ERR_INVALID_ARG, "zero_point", &asym);
    fixture_free(f);
}

Test(bad_args, parameter_tensors_need_their_shape_and_dtype)
{
    fixture *f = fixture_new();
    qc_quant_options channel = f->o;
    channel.granularity = QC_GRAN_CHANNEL; /* wants [2] */
    expect_bad_params(f, QC_ERR_SHAPE, "scale", &channel);
    float three[3] = {1, 1, 1};
    int32_t zps[3] = {0};
    f->scale = tu_vector(three, QC_DT_F32, 3);
    channel.axis = 1; /* [3]: scale fits now */
    f->zero_point = tu_vector(zps, QC_DT_I32, 2);
    expect_bad_params(f, QC_ERR_SHAPE, "zero_point", &channel);
    f->zero_point = tu_vector(three, QC_DT_F32, 3);
    expect_bad_params(f, QC_ERR_DTYPE, "zero_point", &channel);
    f->zero_point = tu_vector(zps, QC_DT_I32, 3);
    f->scale = tu_vector(zps, QC_DT_I32, 3);
    expect_bad_params(f, QC_ERR_DTYPE, "scale", &channel);
    fixture_free(f);
}

Test(bad_args, null_pointers_in_quantize_functions)
{
    fixture *f = fixture_new();
    qc_quant_options asym = tu_options(8, 1, 0);
    TU_EXPECT_FAIL(qc_quantize(NULL, &f->q, &f->x, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_quantize", "ctx");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, NULL, &f->x, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_quantize", "q");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, NULL, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_quantize", "x");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &f->x, NULL, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_quantize", "scale");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &f->x, &f->scale, NULL, &asym), QC_ERR_INVALID_ARG, "qc_quantize",
                   "zero_point");
    TU_EXPECT_FAIL(qc_dequantize(NULL, &f->y, &f->q, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_dequantize", "ctx");
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, NULL, &f->q, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_dequantize", "x");
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, &f->y, NULL, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_dequantize", "q");
    TU_EXPECT_FAIL(qc_fake_quantize(NULL, &f->y, &f->x, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_fake_quantize",
                   "ctx");
    TU_EXPECT_FAIL(qc_fake_quantize(f->ctx, NULL, &f->x, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_fake_quantize",
                   "y");
    TU_EXPECT_FAIL(qc_fake_quantize(f->ctx, &f->y, NULL, &f->scale, NULL, &f->o), QC_ERR_INVALID_ARG, "qc_fake_quantize",
                   "x");
    fixture_free(f);
}

Test(bad_args, quantize_output_must_hold_the_grid)
{
    fixture *f = fixture_new();
    int16_t q16[6];
    uint8_t packed[3];
    float floats[6];
    int64_t dims[2] = {2, 3}, three = 3, six = 6;
    qc_tensor t16 = tu_tensor(q16, QC_DT_I16, 2, dims), t4 = tu_tensor(packed, QC_DT_INT4, 2, dims);
    qc_tensor tf = tu_tensor(floats, QC_DT_F32, 2, dims), flat = tu_vector(f->qv, QC_DT_I8, six);
    qc_tensor short_q = tu_vector(f->qv, QC_DT_I8, three), strided;
    int64_t strides[2] = {1, 2};
    TU_EXPECT_OK(qc_tensor_init(&strided, f->qv, QC_DT_I8, 2, dims, strides));
    const char *fn = "qc_quantize";
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &tf, &f->x, &f->scale, NULL, &f->o), QC_ERR_DTYPE, fn, "q");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &t4, &f->x, &f->scale, NULL, &f->o), QC_ERR_DTYPE, fn, "q"); /* 8 bits in int4 */
    qc_quant_options wide = tu_options(16, 1, 1);
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &f->x, &f->scale, NULL, &wide), QC_ERR_DTYPE, fn, "q");
    qc_quant_options wide_unsigned = tu_options(16, 0, 1);
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &t16, &f->x, &f->scale, NULL, &wide_unsigned), QC_ERR_DTYPE, fn, "q");
    qc_quant_options unsigned8 = tu_options(8, 0, 1);
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &f->x, &f->scale, NULL, &unsigned8), QC_ERR_DTYPE, fn, "q");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &flat, &f->x, &f->scale, NULL, &f->o), QC_ERR_SHAPE, fn, "q");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &short_q, &f->x, &f->scale, NULL, &f->o), QC_ERR_SHAPE, fn, "q");
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &strided, &f->x, &f->scale, NULL, &f->o), QC_ERR_LAYOUT, fn, "q");
    qc_tensor x64 = tu_tensor(floats, QC_DT_F64, 1, &three);
    qc_tensor q3 = tu_vector(f->qv, QC_DT_I8, three);
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &q3, &x64, &f->scale, NULL, &f->o), QC_ERR_DTYPE, fn, "x");
    TU_EXPECT_OK(qc_tensor_init(&strided, f->xv, QC_DT_F32, 2, dims, strides));
    TU_EXPECT_FAIL(qc_quantize(f->ctx, &f->q, &strided, &f->scale, NULL, &f->o), QC_ERR_LAYOUT, fn, "x");
    fixture_free(f);
}

Test(bad_args, dequantize_input_must_be_on_the_grid)
{
    fixture *f = fixture_new();
    const char *fn = "qc_dequantize";
    qc_quant_options narrow = f->o;
    narrow.narrow_range = 1;
    f->qv[5] = -128; /* off the narrow grid [-127, 127] */
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, &f->y, &f->q, &f->scale, NULL, &narrow), QC_ERR_INVALID_ARG, fn, "q");
    cr_assert(strstr(qc_last_error(), "element 5") != NULL, "%s", qc_last_error());
    qc_quant_options four = tu_options(4, 1, 1);
    f->qv[5] = 8; /* a 4-bit grid stored in i8 */
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, &f->y, &f->q, &f->scale, NULL, &four), QC_ERR_INVALID_ARG, fn, "q");
    f->qv[5] = 0;
    double xd[6];
    qc_tensor x64 = tu_tensor(xd, QC_DT_F64, 2, f->x.dims), y_short = tu_vector(f->yv, QC_DT_F32, 5);
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, &x64, &f->q, &f->scale, NULL, &f->o), QC_ERR_DTYPE, fn, "x");
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, &y_short, &f->q, &f->scale, NULL, &f->o), QC_ERR_SHAPE, fn, "x");
    TU_EXPECT_FAIL(qc_dequantize(f->ctx, &f->y, &f->x, &f->scale, NULL, &f->o), QC_ERR_DTYPE, fn, "q");
    fixture_free(f);
}

Test(bad_args, fake_quantize_output)
{
    fixture *f = fixture_new();
    const char *fn = "qc_fake_quantize";
    qc_tensor y_short = tu_vector(f->yv, QC_DT_F32, 5);
    TU_EXPECT_FAIL(qc_fake_quantize(f->ctx, &y_short, &f->x, &f->scale, NULL, &f->o), QC_ERR_SHAPE, fn, "y");
    TU_EXPECT_FAIL(qc_fake_quantize(f->ctx, &f->q, &f->x, &f->scale, NULL, &f->o), QC_ERR_DTYPE, fn, "y");
    fixture_free(f);
}

/* ---- 4-bit packing ------------------------------------------------------------------------------ */

Test(bad_args, int4_functions)
{
    int8_t values[2] = {1, 2};
    uint8_t packed[1] = {0};
    TU_EXPECT_FAIL(qc_pack_int4(NULL, values, 2, 1), QC_ERR_INVALID_ARG, "qc_pack_int4", "out");
    TU_EXPECT_FAIL(qc_pack_int4(packed, NULL, 2, 1), QC_ERR_INVALID_ARG, "qc_pack_int4", "values");
    values[1] = -9;
    TU_EXPECT_FAIL(qc_pack_int4(packed, values, 2, 1), QC_ERR_INVALID_ARG, "qc_pack_int4", "values");
    values[1] = 16;
    TU_EXPECT_FAIL(qc_pack_int4(packed, values, 2, 0), QC_ERR_INVALID_ARG, "qc_pack_int4", "values");
    TU_EXPECT_FAIL(qc_unpack_int4(NULL, packed, 2, 1), QC_ERR_INVALID_ARG, "qc_unpack_int4", "out");
    TU_EXPECT_FAIL(qc_unpack_int4(values, NULL, 2, 1), QC_ERR_INVALID_ARG, "qc_unpack_int4", "packed");
}

/* ---- statistics --------------------------------------------------------------------------------- */

typedef qc_status (*pair_stat)(double *, const qc_tensor *, const qc_tensor *);
typedef qc_status (*single_stat)(double *, const qc_tensor *);

static void check_pair_stat(pair_stat fn, const char *name)
{
    float a[4] = {1, 2, 3, 4};
    int32_t ints[4] = {1, 2, 3, 4};
    int64_t dims[2] = {2, 2}, zero = 0;
    double out;
    qc_tensor ta = tu_vector(a, QC_DT_F32, 4), square = tu_tensor(a, QC_DT_F32, 2, dims);
    qc_tensor ti = tu_vector(ints, QC_DT_I32, 4), empty = tu_tensor(NULL, QC_DT_F32, 1, &zero);
    TU_EXPECT_FAIL(fn(NULL, &ta, &ta), QC_ERR_INVALID_ARG, name, "out");
    TU_EXPECT_FAIL(fn(&out, NULL, &ta), QC_ERR_INVALID_ARG, name, "ref");
    TU_EXPECT_FAIL(fn(&out, &ta, NULL), QC_ERR_INVALID_ARG, name, "approx");
    TU_EXPECT_FAIL(fn(&out, &ti, &ta), QC_ERR_DTYPE, name, "ref");
    TU_EXPECT_FAIL(fn(&out, &ta, &ti), QC_ERR_DTYPE, name, "approx");
    TU_EXPECT_FAIL(fn(&out, &ta, &square), QC_ERR_SHAPE, name, "approx");
    TU_EXPECT_FAIL(fn(&out, &empty, &empty), QC_ERR_SHAPE, name, "ref");
}

static void check_single_stat(single_stat fn, const char *name)
{
    float a[4] = {1, 2, 3, 5};
    int64_t dims[2] = {2, 2}, strides[2] = {1, 2};
    int32_t ints[4] = {1, 2, 3, 4};
    double out;
    qc_tensor ta = tu_vector(a, QC_DT_F32, 4), ti = tu_vector(ints, QC_DT_I32, 4), strided;
    TU_EXPECT_OK(qc_tensor_init(&strided, a, QC_DT_F32, 2, dims, strides));
    TU_EXPECT_FAIL(fn(NULL, &ta), QC_ERR_INVALID_ARG, name, "out");
    TU_EXPECT_FAIL(fn(&out, NULL), QC_ERR_INVALID_ARG, name, "x");
    TU_EXPECT_FAIL(fn(&out, &ti), QC_ERR_DTYPE, name, "x");
    TU_EXPECT_FAIL(fn(&out, &strided), QC_ERR_LAYOUT, name, "x");
}

Test(bad_args, stat_functions)
{
    check_pair_stat(qc_stat_sqnr_db, "qc_stat_sqnr_db");
    check_pair_stat(qc_stat_relative_mse, "qc_stat_relative_mse");
    check_single_stat(qc_stat_kurtosis, "qc_stat_kurtosis");
    check_single_stat(qc_stat_max_over_rms, "qc_stat_max_over_rms");
}
