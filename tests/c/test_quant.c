/* The uniform quantizer (quant/grid.c, params.c, scale_search.c, quantize.c) through the public API:
 * hand-computed examples, the rules of qc_quant.h written out as oracles, and identities between
 * quantize, dequantize and fake-quantize for every kernel set. */
#include "test_util.h"

/* ---- helpers ---------------------------------------------------------------------------------- */

/* A parameter tensor for x under o, with the shape qc_quant_param_shape gives. */
static qc_tensor param_tensor(void *data, qc_dtype dtype, const qc_tensor *x, const qc_quant_options *o)
{
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    TU_EXPECT_OK(qc_quant_param_shape(&ndim, dims, x, o));
    return tu_tensor(data, dtype, ndim, dims);
}

static int64_t param_count(const qc_tensor *x, const qc_quant_options *o)
{
    float unused;
    qc_tensor t = param_tensor(&unused, QC_DT_F32, x, o);
    return qc_tensor_numel(&t);
}

/* Chooses parameters into caller arrays (param_count entries each). */
static void choose(qc_ctx *ctx, const qc_tensor *x, const qc_quant_options *o, float *scale, int32_t *zero_point)
{
    qc_tensor ts = param_tensor(scale, QC_DT_F32, x, o), tz = param_tensor(zero_point, QC_DT_I32, x, o);
    TU_EXPECT_OK(qc_quant_choose_params(ctx, &ts, &tz, x, o));
}

static void grid_range(const qc_quant_options *o, int32_t *qmin, int32_t *qmax)
{
    TU_EXPECT_OK(qc_quant_range(qmin, qmax, o));
}

/* The zero point a symmetric grid fixes (qc_quant.h): 0 signed, (qmin + qmax + 1) / 2 unsigned. */
static int32_t fixed_zero_point(const qc_quant_options *o)
{
    int32_t qmin, qmax;
    grid_range(o, &qmin, &qmax);
    return o->is_signed ? 0 : (qmin + qmax + 1) / 2;
}

/* Scale and zero point from the range [lo, hi], exactly as qc_quant.h states the rules. */
static void params_from_range(const qc_quant_options *o, double lo, double hi, float *scale, int32_t *zero_point)
{
    int32_t qmin, qmax;
    grid_range(o, &qmin, &qmax);
    lo = lo < 0.0 ? lo : 0.0;
    hi = hi > 0.0 ? hi : 0.0;
    double absmax = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi), s;
    int32_t z = fixed_zero_point(o);
    if (o->symmetric)
        s = absmax / (double)(qmax - z);
    else
        s = (hi - lo) / (double)(qmax - qmin);
    float sf = (float)s;
    if (!(sf > 0.0f) || isinf(sf)) sf = 1.0f;
    if (!o->symmetric) {
        double zd = nearbyint((double)qmin - lo / (double)sf);
        z = zd < qmin ? qmin : zd > qmax ? qmax : (int32_t)zd;
    }
    *scale = sf;
    *zero_point = z;
}

static void min_max(const float *v, int64_t n, double *lo, double *hi)
{
    *lo = 0.0;
    *hi = 0.0;
    for (int64_t i = 0; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

static double fake_quant_error(const float *v, int64_t n, float scale, int32_t zero_point, const qc_quant_options *o)
{
    int32_t qmin, qmax;
    grid_range(o, &qmin, &qmax);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float y = tu_dequantize_one(tu_quantize_one(v[i], scale, zero_point, qmin, qmax), scale, zero_point);
        double d = (double)v[i] - (double)y;
        sum += d * d;
    }
    return sum;
}

/* QC_SCALE_MSE by brute force: the candidate alpha with the least error, ties to the larger alpha. */
static void mse_oracle(const float *v, int64_t n, const qc_quant_options *o, float *scale, int32_t *zero_point)
{
    double lo, hi, best = INFINITY;
    min_max(v, n, &lo, &hi);
    *scale = NAN; /* replaced by the first candidate: errors are finite */
    *zero_point = 0;
    for (int i = 0; i < o->mse_steps; i++) {
        double alpha = o->mse_min_ratio + (1.0 - o->mse_min_ratio) * i / (o->mse_steps - 1);
        float s;
        int32_t z;
        params_from_range(o, alpha * lo, alpha * hi, &s, &z);
        double e = fake_quant_error(v, n, s, z, o);
        if (e <= best) { /* increasing alpha: "<=" hands ties to the larger one */
            best = e;
            *scale = s;
            *zero_point = z;
        }
    }
}

/* Grids covering signed/unsigned, symmetric/asymmetric, narrow range and 2 to 16 bits. */
static const struct {
    int bits, is_signed, symmetric, narrow_range;
} grid_table[] = {
    {8, 1, 1, 0}, {8, 1, 1, 1}, {8, 1, 0, 0},  {8, 0, 1, 0},  {8, 0, 0, 1},  {8, 0, 1, 1},
    {4, 1, 1, 0}, {4, 0, 0, 0}, {2, 1, 0, 0},  {16, 1, 1, 0}, {16, 0, 0, 0}, {12, 1, 0, 1},
};
enum { GRID_KINDS = TU_COUNT(grid_table) };

static qc_quant_options grid_kind(size_t k)
{
    qc_quant_options o = tu_options(grid_table[k].bits, grid_table[k].is_signed, grid_table[k].symmetric);
    o.narrow_range = grid_table[k].narrow_range;
    return o;
}

/* The narrowest integer dtype qc_quantize accepts for the grid. */
static qc_dtype storage_for(const qc_quant_options *o)
{
    if (o->bits <= 8) return o->is_signed ? QC_DT_I8 : QC_DT_U8;
    if (o->bits <= 15 || (o->bits == 16 && o->is_signed)) return QC_DT_I16;
    return QC_DT_I32;
}

static int32_t integer_at(const void *q, qc_dtype dtype, int64_t i)
{
    switch (dtype) {
    case QC_DT_I8: return ((const int8_t *)q)[i];
    case QC_DT_U8: return ((const uint8_t *)q)[i];
    case QC_DT_I16: return ((const int16_t *)q)[i];
    default: return ((const int32_t *)q)[i];
    }
}

/* ---- options, ranges and parameter shapes ---------------------------------------------------- */

Test(quant, options_defaults_are_documented)
{
    qc_quant_options o;
    memset(&o, 0xFF, sizeof o);
    TU_EXPECT_OK(qc_quant_options_init(&o, QC_QUANT_OPTIONS_VERSION));
    cr_assert_eq(o.version, QC_QUANT_OPTIONS_VERSION);
    cr_assert(o.bits == 8 && o.is_signed == 1 && o.symmetric == 1 && o.narrow_range == 0);
    cr_assert(o.granularity == QC_GRAN_TENSOR && o.axis == 0 && o.group_size == 128);
    cr_assert(o.scale_method == QC_SCALE_MINMAX && o.percentile == 99.99 && o.mse_steps == 100 &&
              o.mse_min_ratio == 0.2);
    TU_EXPECT_OK(qc_quant_options_check(&o, NULL));
}

Test(quant, ranges_follow_the_table)
{
    static const struct {
        int bits, is_signed, narrow;
        int32_t qmin, qmax;
    } cases[] = {
        {8, 1, 0, -128, 127}, {8, 1, 1, -127, 127}, {8, 0, 0, 0, 255},        {8, 0, 1, 1, 255},
        {4, 1, 0, -8, 7},     {4, 0, 0, 0, 15},     {2, 1, 0, -2, 1},          {2, 1, 1, -1, 1},
        {2, 0, 1, 1, 3},      {16, 1, 0, -32768, 32767}, {16, 0, 0, 0, 65535}, {16, 0, 1, 1, 65535},
    };
    for (size_t i = 0; i < TU_COUNT(cases); i++) {
        qc_quant_options o = tu_options(cases[i].bits, cases[i].is_signed, 1);
        o.narrow_range = cases[i].narrow;
        int32_t qmin = 1 << 20, qmax = 1 << 20;
        TU_EXPECT_OK(qc_quant_range(&qmin, &qmax, &o));
        cr_assert(qmin == cases[i].qmin && qmax == cases[i].qmax, "case %zu: [%d, %d]", i, qmin, qmax);
        TU_EXPECT_OK(qc_quant_range(NULL, &qmax, &o)); /* either output may be NULL */
        TU_EXPECT_OK(qc_quant_range(&qmin, NULL, &o));
    }
}

static void expect_param_shape(const int64_t *x_dims, int x_ndim, qc_granularity g, int axis, int64_t group,
                               int want_ndim, const int64_t *want)
{
    static _Alignas(16) char storage[1];
    qc_tensor x = tu_tensor(storage, QC_DT_F32, x_ndim, x_dims);
    qc_quant_options o = QC_QUANT_OPTIONS_INIT;
    o.granularity = g;
    o.axis = axis;
    o.group_size = group;
    int32_t ndim = -1;
    int64_t dims[QC_MAX_DIMS];
    memset(dims, 0x7F, sizeof dims);
    TU_EXPECT_OK(qc_quant_param_shape(&ndim, dims, &x, &o));
    cr_assert_eq(ndim, want_ndim);
    for (int i = 0; i < QC_MAX_DIMS; i++)
        cr_assert_eq(dims[i], i < want_ndim ? want[i] : 0, "dims[%d] (granularity %d, axis %d)", i, g, axis);
}

Test(quant, parameter_shapes_follow_onnx)
{
    const int64_t x[3] = {4, 6, 5};
    expect_param_shape(x, 3, QC_GRAN_TENSOR, 0, 1, 0, NULL);
    expect_param_shape(x, 3, QC_GRAN_CHANNEL, 0, 1, 1, (const int64_t[]){4});
    expect_param_shape(x, 3, QC_GRAN_CHANNEL, 1, 1, 1, (const int64_t[]){6});
    expect_param_shape(x, 3, QC_GRAN_CHANNEL, -1, 1, 1, (const int64_t[]){5});
    expect_param_shape(x, 3, QC_GRAN_GROUP, 1, 4, 3, (const int64_t[]){4, 2, 5});
    expect_param_shape(x, 3, QC_GRAN_GROUP, -1, 2, 3, (const int64_t[]){4, 6, 3});
    expect_param_shape(x, 3, QC_GRAN_GROUP, 0, 4, 3, (const int64_t[]){1, 6, 5});
    expect_param_shape(x, 3, QC_GRAN_GROUP, 2, 1000, 3, (const int64_t[]){4, 6, 1});
}

/* ---- hand-computed quantization ---------------------------------------------------------------- */

Test(quant, ties_round_half_to_even_with_scale_one)
{
    static float x[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f, 200.0f, -200.0f, 0.0f};
    static const int8_t want[] = {0, 2, 2, 0, -2, -2, 3, 127, -128, 0};
    for (size_t a = 0; a < TU_COUNT(tu_archs); a++) {
        if (!qc_arch_supported(tu_archs[a])) continue;
        qc_ctx *ctx = tu_ctx(1, tu_archs[a]);
        float one = 1.0f;
        int8_t q[TU_COUNT(x)];
        qc_tensor tx = tu_vector(x, QC_DT_F32, TU_COUNT(x)), tq = tu_vector(q, QC_DT_I8, TU_COUNT(x));
        qc_tensor ts = tu_scalar(&one, QC_DT_F32);
        qc_quant_options o = QC_QUANT_OPTIONS_INIT;
        TU_EXPECT_OK(qc_quantize(ctx, &tq, &tx, &ts, NULL, &o));
        for (size_t i = 0; i < TU_COUNT(x); i++)
            cr_assert_eq(q[i], want[i], "%s: %g -> %d", qc_arch_string(tu_archs[a]), (double)x[i], q[i]);
        qc_ctx_free(ctx);
    }
}

Test(quant, asymmetric_uint8_example)
{
    /* scale 0.5, zero point 10: 1.25 / 0.5 = 2.5 -> 2 -> 12; -5.25 -> -10.5 -> -10 -> 0;
     * 200 -> 400 + 10 saturates to 255; -6 -> -12 + 10 = -2 saturates to 0. */
    float x[4] = {1.25f, -5.25f, 200.0f, -6.0f}, scale = 0.5f, back[4];
    int32_t zp = 10;
    uint8_t q[4];
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    qc_tensor tx = tu_vector(x, QC_DT_F32, 4), tq = tu_vector(q, QC_DT_U8, 4), tb = tu_vector(back, QC_DT_F32, 4);
    qc_tensor ts = tu_scalar(&scale, QC_DT_F32), tz = tu_scalar(&zp, QC_DT_I32);
    qc_quant_options o = tu_options(8, 0, 0);
    TU_EXPECT_OK(qc_quantize(ctx, &tq, &tx, &ts, &tz, &o));
    cr_assert(q[0] == 12 && q[1] == 0 && q[2] == 255 && q[3] == 0, "got %d %d %d %d", q[0], q[1], q[2], q[3]);
    TU_EXPECT_OK(qc_dequantize(ctx, &tb, &tq, &ts, &tz, &o));
    cr_assert(back[0] == 1.0f && back[1] == -5.0f && back[2] == 122.5f && back[3] == -5.0f, "got %g %g %g %g",
              (double)back[0], (double)back[1], (double)back[2], (double)back[3]);
    qc_ctx_free(ctx);
}

Test(quant, unsigned_symmetric_default_zero_point_is_mid_range)
{
    /* zero_point NULL on a symmetric unsigned grid means (0 + 255 + 1) / 2 = 128. */
    float x[3] = {-1.0f, 0.0f, 2.0f}, scale = 0.25f;
    uint8_t q[3];
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    qc_tensor tx = tu_vector(x, QC_DT_F32, 3), tq = tu_vector(q, QC_DT_U8, 3), ts = tu_scalar(&scale, QC_DT_F32);
    qc_quant_options o = tu_options(8, 0, 1);
    TU_EXPECT_OK(qc_quantize(ctx, &tq, &tx, &ts, NULL, &o));
    cr_assert(q[0] == 124 && q[1] == 128 && q[2] == 136, "got %d %d %d", q[0], q[1], q[2]);
    qc_ctx_free(ctx);
}

Test(quant, wide_grids_use_i16_and_i32)
{
    float x[3] = {1000.5f, -40000.0f, 3.0f}, scale = 0.5f;
    int16_t q16[3];
    int32_t q32[3];
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    qc_tensor tx = tu_vector(x, QC_DT_F32, 3), ts = tu_scalar(&scale, QC_DT_F32);
    qc_tensor t16 = tu_vector(q16, QC_DT_I16, 3), t32 = tu_vector(q32, QC_DT_I32, 3);
    qc_quant_options o = tu_options(16, 1, 1);
    TU_EXPECT_OK(qc_quantize(ctx, &t16, &tx, &ts, NULL, &o));
    cr_assert(q16[0] == 2001 && q16[1] == -32768 && q16[2] == 6, "got %d %d %d", q16[0], q16[1], q16[2]);
    TU_EXPECT_OK(qc_quantize(ctx, &t32, &tx, &ts, NULL, &o));
    cr_assert(q32[0] == 2001 && q32[1] == -32768 && q32[2] == 6, "got %d %d %d", q32[0], q32[1], q32[2]);
    qc_ctx_free(ctx);
}

/* ---- choosing parameters: min-max -------------------------------------------------------------- */

static void expect_tensor_params(const float *x, int64_t n, qc_quant_options o, float want_scale, int32_t want_zp)
{
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    qc_tensor tx = tu_vector((void *)x, QC_DT_F32, n);
    float scale = -1.0f;
    int32_t zp = -999;
    choose(ctx, &tx, &o, &scale, &zp);
    cr_assert(scale == want_scale && zp == want_zp, "bits %d signed %d symmetric %d: scale %a zp %d, expected %a %d",
              o.bits, o.is_signed, o.symmetric, (double)scale, zp, (double)want_scale, want_zp);
    qc_ctx_free(ctx);
}

Test(quant, minmax_hand_examples)
{
    const float a[3] = {-2.0f, 1.0f, 0.5f}, b[2] = {-3.0f, 1.0f}, c[2] = {-1.0f, 3.0f}, d[2] = {1.0f, 5.0f};
    expect_tensor_params(a, 3, tu_options(8, 1, 1), (float)(2.0 / 127.0), 0);
    expect_tensor_params(b, 2, tu_options(8, 0, 1), (float)(3.0 / 127.0), 128); /* 255 - 128 levels above */
    expect_tensor_params(c, 2, tu_options(8, 1, 0), (float)(4.0 / 255.0), -64);  /* -128 + 63.75 -> -64 */
    expect_tensor_params(d, 2, tu_options(8, 1, 0), (float)(5.0 / 255.0), -128); /* range widened to 0 */
    expect_tensor_params(d, 2, tu_options(8, 0, 0), (float)(5.0 / 255.0), 0);
    expect_tensor_params(a, 3, tu_options(4, 1, 1), (float)(2.0 / 7.0), 0);
    qc_quant_options narrow = tu_options(8, 1, 1);
    narrow.narrow_range = 1;
    expect_tensor_params(a, 3, narrow, (float)(2.0 / 127.0), 0);
}

Test(quant, all_zero_tensor_gets_scale_one)
{
    const float zeros[5] = {0};
    expect_tensor_params(zeros, 5, tu_options(8, 1, 1), 1.0f, 0);
    expect_tensor_params(zeros, 5, tu_options(8, 0, 1), 1.0f, 128);
    expect_tensor_params(zeros, 5, tu_options(8, 1, 0), 1.0f, -128); /* qmin - 0 / 1 */
    expect_tensor_params(zeros, 5, tu_options(8, 0, 0), 1.0f, 0);
}

Test(quant, scale_underflowing_float_becomes_one)
{
    const float tiny[2] = {1e-45f, 0.0f}; /* 1e-45 / 127 rounds to float 0 */
    expect_tensor_params(tiny, 2, tu_options(8, 1, 1), 1.0f, 0);
}

Test(quant, minmax_follows_the_rules_on_every_grid)
{
    enum { N = 257 };
    float x[N];
    for (size_t k = 0; k < GRID_KINDS; k++) {
        tu_fill_data(x, N, k + 1, 0.7f);
        x[0] = 2.5f; /* a skewed range so that asymmetric grids move their zero point */
        float want_scale;
        int32_t want_zp;
        double lo, hi;
        min_max(x, N, &lo, &hi);
        qc_quant_options o = grid_kind(k);
        params_from_range(&o, lo, hi, &want_scale, &want_zp);
        expect_tensor_params(x, N, o, want_scale, want_zp);
    }
}

Test(quant, per_channel_and_group_params_use_their_own_values)
{
    /* x [2, 5]; rows have distinct ranges, and the groups along axis 1 of size 3 are {0,1,2}, {3,4}. */
    float x[10] = {1, -2, 0.5f, 4, 3, /**/ 100, 0, 0, -8, 6};
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    int64_t dims[2] = {2, 5};
    qc_tensor tx = tu_tensor(x, QC_DT_F32, 2, dims);
    qc_quant_options o = tu_options(8, 1, 1);
    float scale[10];
    int32_t zp[10];
    o.granularity = QC_GRAN_CHANNEL;
    o.axis = 0;
    choose(ctx, &tx, &o, scale, zp);
    cr_assert(scale[0] == (float)(4.0 / 127) && scale[1] == (float)(100.0 / 127), "rows");
    o.axis = -1;
    choose(ctx, &tx, &o, scale, zp);
    static const double column_absmax[5] = {100, 2, 0.5, 8, 6};
    for (int i = 0; i < 5; i++) cr_assert_eq(scale[i], (float)(column_absmax[i] / 127), "column %d", i);
    o.granularity = QC_GRAN_GROUP;
    o.axis = 1;
    o.group_size = 3;
    choose(ctx, &tx, &o, scale, zp);
    static const double group_absmax[4] = {2, 4, 100, 8}; /* row 0: {1,-2,.5}, {4,3}; row 1: {100,0,0}, {-8,6} */
    for (int i = 0; i < 4; i++) cr_assert_eq(scale[i], (float)(group_absmax[i] / 127), "group %d", i);
    qc_ctx_free(ctx);
}

Test(quant, groups_across_an_inner_axis)
{
    /* x [5, 2], groups of 2 along axis 0: parameters [3, 2]; group (g, i) covers rows 2g, 2g+1 of column i,
     * and the last group holds row 4 alone. */
    float x[10] = {1, -1, /**/ 2, 0, /**/ 0, 5, /**/ -3, 0, /**/ 9, 0.25f};
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    int64_t dims[2] = {5, 2};
    qc_tensor tx = tu_tensor(x, QC_DT_F32, 2, dims);
    qc_quant_options o = tu_options(8, 1, 1);
    o.granularity = QC_GRAN_GROUP;
    o.axis = 0;
    o.group_size = 2;
    float scale[6];
    int32_t zp[6];
    choose(ctx, &tx, &o, scale, zp);
    static const double absmax[6] = {2, 1, 3, 5, 9, 0.25};
    for (int i = 0; i < 6; i++) cr_assert_eq(scale[i], (float)(absmax[i] / 127), "group %d: %g", i, (double)scale[i]);
    qc_ctx_free(ctx);
}

Test(quant, empty_tensors_need_no_data)
{
    /* [2, 3, 0] per channel along axis 1: three parameters, no element. Empty groups have a range of
     * width 0, hence scale 1. */
    int64_t dims[3] = {2, 3, 0};
    qc_tensor x = tu_tensor(NULL, QC_DT_F32, 3, dims), q = tu_tensor(NULL, QC_DT_I8, 3, dims);
    qc_tensor y = tu_tensor(NULL, QC_DT_F32, 3, dims);
    qc_quant_options o = tu_options(8, 1, 1);
    o.granularity = QC_GRAN_CHANNEL;
    o.axis = 1;
    float scale[3] = {0};
    int32_t zp[3] = {5, 5, 5};
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    choose(ctx, &x, &o, scale, zp);
    for (int i = 0; i < 3; i++) cr_assert(scale[i] == 1.0f && zp[i] == 0, "channel %d", i);
    qc_tensor ts = param_tensor(scale, QC_DT_F32, &x, &o);
    TU_EXPECT_OK(qc_quantize(ctx, &q, &x, &ts, NULL, &o));
    TU_EXPECT_OK(qc_dequantize(ctx, &y, &q, &ts, NULL, &o));
    TU_EXPECT_OK(qc_fake_quantize(ctx, &y, &x, &ts, NULL, &o));
    qc_ctx_free(ctx);
}

/* ---- choosing parameters: percentile and MSE --------------------------------------------------- */

Test(quant, percentile_interpolates_like_numpy)
{
    /* numpy.percentile(x, 90) = 7.9, numpy.percentile(x, 10) = -4.5, numpy.percentile(|x|, 90) = 8.6. */
    const float x[8] = {-3, -1, 0, 2, 5, 7, 10, -8};
    qc_quant_options o = tu_options(8, 1, 1);
    o.scale_method = QC_SCALE_PERCENTILE;
    o.percentile = 90.0;
    expect_tensor_params(x, 8, o, (float)(8.6 / 127.0), 0);
    o.symmetric = 0;
    float s = (float)((7.9 + 4.5) / 255.0);
    expect_tensor_params(x, 8, o, s, (int32_t)nearbyint(-128.0 + 4.5 / s));
    o.percentile = 100.0; /* the maximum itself: min-max */
    expect_tensor_params(x, 8, o, (float)(18.0 / 255.0), (int32_t)nearbyint(-128.0 + 8.0 / (float)(18.0 / 255.0)));
}

static void check_mse(const float *x, int64_t n, qc_quant_options o)
{
    float want_scale, scale, minmax_scale;
    int32_t want_zp, zp, minmax_zp;
    mse_oracle(x, n, &o, &want_scale, &want_zp);
    o.scale_method = QC_SCALE_MSE;
    expect_tensor_params(x, n, o, want_scale, want_zp);
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_AUTO);
    qc_tensor tx = tu_vector((void *)x, QC_DT_F32, n);
    choose(ctx, &tx, &o, &scale, &zp);
    o.scale_method = QC_SCALE_MINMAX;
    choose(ctx, &tx, &o, &minmax_scale, &minmax_zp);
    double e_mse = fake_quant_error(x, n, scale, zp, &o), e_minmax = fake_quant_error(x, n, minmax_scale, minmax_zp, &o);
    cr_assert_leq(e_mse, e_minmax, "MSE search error %g is worse than min-max's %g", e_mse, e_minmax);
    qc_ctx_free(ctx);
}

Test(quant, mse_picks_the_least_error_candidate)
{
    enum { N = 1000 };
    float x[N];
    for (size_t k = 0; k < GRID_KINDS; k++) {
        tu_fill_data(x, N, 77 + k, 1.0f);
        qc_quant_options o = grid_kind(k);
        o.mse_steps = k % 2 ? 100 : 7;
        o.mse_min_ratio = k % 3 ? 0.2 : 0.5;
        check_mse(x, N, o);
    }
}

Test(quant, mse_ties_go_to_the_larger_alpha)
{
    /* 2-bit signed symmetric grid, levels -2..1. For x = {-1}: alpha 1 gives scale 1 and alpha 0.5
     * gives scale 0.5 with -1 on level -2; both are exact, so the tie must keep alpha 1. */
    const float minus_one[1] = {-1.0f};
    qc_quant_options o = tu_options(2, 1, 1);
    o.scale_method = QC_SCALE_MSE;
    o.mse_steps = 2;
    o.mse_min_ratio = 0.5;
    expect_tensor_params(minus_one, 1, o, 1.0f, 0);
    check_mse(minus_one, 1, o);
    const float zeros[4] = {0};
    expect_tensor_params(zeros, 4, o, 1.0f, 0); /* every candidate has width 0: scale 1 */
}

Test(quant, mse_prefers_clipping_when_it_pays)
{
    /* 2-bit symmetric, alpha in {0.5, 1}: for {-1, 0.5, 0.5, 0.5} alpha 1 (scale 1) rounds every 0.5 to 0
     * (error 0.75) while alpha 0.5 (scale 0.5) is exact. */
    const float x[4] = {-1.0f, 0.5f, 0.5f, 0.5f};
    qc_quant_options o = tu_options(2, 1, 1);
    o.scale_method = QC_SCALE_MSE;
    o.mse_steps = 2;
    o.mse_min_ratio = 0.5;
    expect_tensor_params(x, 4, o, 0.5f, 0);
}

/* ---- identities between quantize, dequantize and fake-quantize -------------------------------- */

typedef struct layout_case {
    int ndim;
    int64_t dims[3];
    qc_granularity granularity;
    int axis;
    int64_t group_size;
} layout_case;

static const layout_case layouts[] = {
    {1, {1031}, QC_GRAN_TENSOR, 0, 1},
    {3, {3, 37, 5}, QC_GRAN_CHANNEL, 1, 1},
    {2, {17, 61}, QC_GRAN_CHANNEL, -1, 1},
    {2, {7, 100}, QC_GRAN_GROUP, 1, 32},
    {3, {4, 9, 6}, QC_GRAN_GROUP, 1, 4},
    {2, {2, 40000}, QC_GRAN_GROUP, 1, 30000}, /* groups longer than the library's work pieces */
};

/* x, its parameters (chosen by min-max on x slightly shrunk so that values clip), and the buffers of
 * every output. */
typedef struct scenario {
    qc_quant_options o;
    qc_tensor x, scale, zero_point;
    float *xv, *scale_v;
    int32_t *zp_v;
    int64_t n;
} scenario;

static scenario make_scenario(qc_ctx *ctx, const layout_case *l, qc_quant_options o, uint64_t seed)
{
    scenario s = {.o = o};
    s.o.granularity = l->granularity;
    s.o.axis = l->axis;
    s.o.group_size = l->group_size;
    int64_t n = 1;
    for (int i = 0; i < l->ndim; i++) n *= l->dims[i];
    s.n = n;
    s.xv = malloc((size_t)n * sizeof(float));
    tu_fill_data(s.xv, (size_t)n, seed, 1.0f);
    s.x = tu_tensor(s.xv, QC_DT_F32, l->ndim, l->dims);
    int64_t params = param_count(&s.x, &s.o);
    s.scale_v = malloc((size_t)params * sizeof(float));
    s.zp_v = malloc((size_t)params * sizeof(int32_t));
    s.scale = param_tensor(s.scale_v, QC_DT_F32, &s.x, &s.o);
    s.zero_point = param_tensor(s.zp_v, QC_DT_I32, &s.x, &s.o);
    s.o.scale_method = QC_SCALE_PERCENTILE; /* some values beyond the range: saturation is exercised */
    s.o.percentile = 97.0;
    TU_EXPECT_OK(qc_quant_choose_params(ctx, &s.scale, &s.zero_point, &s.x, &s.o));
    s.o.scale_method = QC_SCALE_MINMAX;
    return s;
}

static void free_scenario(scenario *s)
{
    free(s->xv);
    free(s->scale_v);
    free(s->zp_v);
}

/* dequantize(quantize(x)) == fake_quantize(x), bit for bit, for storage `dtype`. */
static void check_round_trip(qc_ctx *ctx, scenario *s, qc_dtype dtype)
{
    size_t bytes = (size_t)s->n * 4 + 1;
    void *q = malloc(bytes);
    float *back = malloc((size_t)s->n * sizeof(float)), *fake = malloc((size_t)s->n * sizeof(float));
    qc_tensor tq = tu_tensor(q, dtype, s->x.ndim, s->x.dims);
    qc_tensor tb = tu_tensor(back, QC_DT_F32, s->x.ndim, s->x.dims), tf = tu_tensor(fake, QC_DT_F32, s->x.ndim, s->x.dims);
    TU_EXPECT_OK(qc_quantize(ctx, &tq, &s->x, &s->scale, &s->zero_point, &s->o));
    TU_EXPECT_OK(qc_dequantize(ctx, &tb, &tq, &s->scale, &s->zero_point, &s->o));
    TU_EXPECT_OK(qc_fake_quantize(ctx, &tf, &s->x, &s->scale, &s->zero_point, &s->o));
    tu_assert_same_floats(back, fake, (size_t)s->n, qc_dtype_string(dtype));
    free(q);
    free(back);
    free(fake);
}

/* Every element against the ONNX oracle with its own parameter; parameters are located by quantizing
 * a probe: element e's parameter is the one whose scale dequantizes its level back. */
static void check_against_oracle(qc_ctx *ctx, scenario *s)
{
    qc_dtype dtype = storage_for(&s->o);
    void *q = malloc((size_t)s->n * 4);
    qc_tensor tq = tu_tensor(q, dtype, s->x.ndim, s->x.dims);
    TU_EXPECT_OK(qc_quantize(ctx, &tq, &s->x, &s->scale, &s->zero_point, &s->o));
    int32_t qmin, qmax;
    grid_range(&s->o, &qmin, &qmax);
    /* The per-element parameter index, from the layout rule of qc_quant.h. */
    int axis = s->o.axis < 0 ? s->o.axis + s->x.ndim : s->o.axis;
    int64_t extent = s->x.dims[axis], inner = 1;
    for (int i = axis + 1; i < s->x.ndim; i++) inner *= s->x.dims[i];
    int64_t groups = s->o.granularity == QC_GRAN_GROUP ? (extent + s->o.group_size - 1) / s->o.group_size : 0;
    for (int64_t e = 0; e < s->n; e++) {
        int64_t o = e / (extent * inner), d = (e / inner) % extent, i = e % inner, p = 0;
        if (s->o.granularity == QC_GRAN_CHANNEL) p = d;
        if (s->o.granularity == QC_GRAN_GROUP) p = (o * groups + d / s->o.group_size) * inner + i;
        int32_t want = tu_quantize_one(s->xv[e], s->scale_v[p], s->zp_v[p], qmin, qmax);
        cr_assert_eq(integer_at(q, dtype, e), want, "element %lld", (long long)e);
    }
    free(q);
}

static void for_each_scenario(void (*check)(qc_ctx *, scenario *, const qc_quant_options *))
{
    for (size_t a = 0; a < TU_COUNT(tu_archs); a++) {
        if (!qc_arch_supported(tu_archs[a])) continue;
        qc_ctx *ctx = tu_ctx(2, tu_archs[a]);
        for (size_t l = 0; l < TU_COUNT(layouts); l++) {
            for (size_t k = 0; k < GRID_KINDS; k++) {
                qc_quant_options grid = grid_kind(k);
                scenario s = make_scenario(ctx, &layouts[l], grid, 100 * l + k);
                check(ctx, &s, &grid);
                free_scenario(&s);
            }
        }
        qc_ctx_free(ctx);
    }
}

static void round_trip_every_storage(qc_ctx *ctx, scenario *s, const qc_quant_options *grid)
{
    static const qc_dtype storages[] = {QC_DT_I8, QC_DT_U8, QC_DT_I16, QC_DT_I32, QC_DT_INT4, QC_DT_UINT4};
    int32_t qmin, qmax;
    grid_range(grid, &qmin, &qmax);
    for (size_t d = 0; d < TU_COUNT(storages); d++) {
        static const int32_t lo[] = {-128, 0, -32768, INT32_MIN, -8, 0}, hi[] = {127, 255, 32767, INT32_MAX, 7, 15};
        if (qmin >= lo[d] && qmax <= hi[d]) check_round_trip(ctx, s, storages[d]);
    }
}

Test(quant, dequantize_of_quantize_is_fake_quantize)
{
    for_each_scenario(round_trip_every_storage);
}

static void oracle_check(qc_ctx *ctx, scenario *s, const qc_quant_options *grid)
{
    (void)grid;
    check_against_oracle(ctx, s);
}

Test(quant, quantize_matches_onnx_per_element)
{
    for_each_scenario(oracle_check);
}

Test(quant, fake_quantize_may_work_in_place)
{
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    scenario s = make_scenario(ctx, &layouts[1], grid_kind(2), 5);
    float *y = malloc((size_t)s.n * sizeof(float));
    qc_tensor ty = tu_tensor(y, QC_DT_F32, s.x.ndim, s.x.dims);
    TU_EXPECT_OK(qc_fake_quantize(ctx, &ty, &s.x, &s.scale, &s.zero_point, &s.o));
    TU_EXPECT_OK(qc_fake_quantize(ctx, &s.x, &s.x, &s.scale, &s.zero_point, &s.o));
    tu_assert_same_floats(s.xv, y, (size_t)s.n, "in place");
    free(y);
    free_scenario(&s);
    qc_ctx_free(ctx);
}

/* ---- 4-bit storage ---------------------------------------------------------------------------- */

static void check_packed(qc_ctx *ctx, scenario *s, int is_signed)
{
    int8_t *bytes = malloc((size_t)s->n);
    size_t packed_size = (size_t)(s->n + 1) / 2;
    uint8_t *packed = malloc(packed_size), *want = malloc(packed_size);
    memset(packed, 0xEE, packed_size);
    qc_tensor t8 = tu_tensor(bytes, is_signed ? QC_DT_I8 : QC_DT_U8, s->x.ndim, s->x.dims);
    qc_tensor t4 = tu_tensor(packed, is_signed ? QC_DT_INT4 : QC_DT_UINT4, s->x.ndim, s->x.dims);
    TU_EXPECT_OK(qc_quantize(ctx, &t8, &s->x, &s->scale, &s->zero_point, &s->o));
    TU_EXPECT_OK(qc_quantize(ctx, &t4, &s->x, &s->scale, &s->zero_point, &s->o));
    TU_EXPECT_OK(qc_pack_int4(want, bytes, (size_t)s->n, is_signed));
    tu_assert_same_bytes(packed, want, packed_size, "int4 output vs packed int8 output");
    float *from4 = malloc((size_t)s->n * sizeof(float)), *from8 = malloc((size_t)s->n * sizeof(float));
    qc_tensor tf4 = tu_tensor(from4, QC_DT_F32, s->x.ndim, s->x.dims), tf8 = tu_tensor(from8, QC_DT_F32, s->x.ndim, s->x.dims);
    TU_EXPECT_OK(qc_dequantize(ctx, &tf4, &t4, &s->scale, &s->zero_point, &s->o));
    TU_EXPECT_OK(qc_dequantize(ctx, &tf8, &t8, &s->scale, &s->zero_point, &s->o));
    tu_assert_same_floats(from4, from8, (size_t)s->n, "dequantize int4 vs int8");
    free(bytes);
    free(packed);
    free(want);
    free(from4);
    free(from8);
}

Test(quant, int4_output_is_the_packed_int8_output)
{
    /* Odd element counts (1031, 3*37*5) leave a lone final nibble. */
    qc_ctx *ctx = tu_ctx(2, QC_ARCH_AUTO);
    for (size_t l = 0; l < TU_COUNT(layouts); l++) {
        for (int is_signed = 0; is_signed <= 1; is_signed++) {
            scenario s = make_scenario(ctx, &layouts[l], tu_options(4, is_signed, is_signed), 9 + l);
            check_packed(ctx, &s, is_signed);
            free_scenario(&s);
        }
    }
    qc_ctx_free(ctx);
}

/* ---- independence from the thread count -------------------------------------------------------- */

typedef struct outputs {
    float *scale, *fake;
    int32_t *zp;
    int8_t *q;
} outputs;

/* Every output of one pipeline on a [300, 67] tensor with `threads` workers. */
static outputs run_pipeline(int threads, qc_quant_options o)
{
    enum { ROWS = 300, COLS = 67 };
    static float x[ROWS * COLS];
    tu_fill_data(x, TU_COUNT(x), 2024, 1.0f);
    int64_t dims[2] = {ROWS, COLS};
    qc_tensor tx = tu_tensor(x, QC_DT_F32, 2, dims);
    qc_ctx *ctx = tu_ctx(threads, QC_ARCH_AUTO);
    int64_t params = param_count(&tx, &o);
    outputs out = {malloc((size_t)params * sizeof(float)), malloc(sizeof x), malloc((size_t)params * sizeof(int32_t)),
                   malloc(TU_COUNT(x))};
    choose(ctx, &tx, &o, out.scale, out.zp);
    qc_tensor ts = param_tensor(out.scale, QC_DT_F32, &tx, &o), tz = param_tensor(out.zp, QC_DT_I32, &tx, &o);
    qc_tensor tq = tu_tensor(out.q, QC_DT_I8, 2, dims), tf = tu_tensor(out.fake, QC_DT_F32, 2, dims);
    TU_EXPECT_OK(qc_quantize(ctx, &tq, &tx, &ts, &tz, &o));
    TU_EXPECT_OK(qc_fake_quantize(ctx, &tf, &tx, &ts, &tz, &o));
    qc_ctx_free(ctx);
    return out;
}

static void free_outputs(outputs *o)
{
    free(o->scale);
    free(o->fake);
    free(o->zp);
    free(o->q);
}

Test(quant, results_do_not_depend_on_threads)
{
    qc_quant_options cases[4] = {tu_options(8, 1, 0), tu_options(8, 1, 1), tu_options(8, 1, 0), tu_options(8, 1, 1)};
    cases[0].granularity = QC_GRAN_CHANNEL; /* 300 channels: two progress batches */
    cases[0].scale_method = QC_SCALE_MSE;
    cases[0].mse_steps = 20;
    cases[1].granularity = QC_GRAN_GROUP;
    cases[1].axis = 1;
    cases[1].group_size = 16;
    cases[1].scale_method = QC_SCALE_PERCENTILE;
    cases[2].scale_method = QC_SCALE_MSE;
    cases[3].granularity = QC_GRAN_CHANNEL;
    cases[3].axis = 1;
    for (size_t c = 0; c < TU_COUNT(cases); c++) {
        int64_t dims[2] = {300, 67};
        qc_tensor shape = tu_tensor((void *)16, QC_DT_F32, 2, dims); /* shape only: never read */
        size_t params = (size_t)param_count(&shape, &cases[c]);
        outputs one = run_pipeline(1, cases[c]);
        for (int threads = 2; threads <= 3; threads++) {
            outputs many = run_pipeline(threads, cases[c]);
            tu_assert_same_bytes(many.scale, one.scale, params * sizeof(float), "scale");
            tu_assert_same_bytes(many.zp, one.zp, params * sizeof(int32_t), "zero point");
            tu_assert_same_bytes(many.q, one.q, 300 * 67, "quantized");
            tu_assert_same_floats(many.fake, one.fake, 300 * 67, "fake quantized");
            free_outputs(&many);
        }
        free_outputs(&one);
    }
}
