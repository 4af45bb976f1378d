/* Array math of the executor (libqcore/model/ops/vmath.c) against libm in double precision: every 97th
 * float bit pattern (both signs, subnormals, infinities and NaNs among them) plus chosen values, and
 * the special cases (NaN, infinities, overflow and underflow of exp, out == in). */
#include <float.h>
#include <stdint.h>

#include "model/ops/vmath.h"
#include "test_util.h"

#define SWEEP_STRIDE 97u
#define CHUNK 4096

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The float's unit in the last place at the magnitude of v (subnormal spacing below FLT_MIN). */
static double ulp_at(double v)
{
    v = fabs(v);
    if (v < FLT_MIN) return 0x1p-149;
    int e;
    frexp(v, &e);
    return ldexp(1.0, e - 24);
}

typedef void (*vfn)(float *, const float *, size_t);

/* Values that the sweep may step over: zeros, subnormal ends, the pieces' boundaries, exp's limits. */
static const float chosen[] = {
    0.0f,          -0.0f,         0x1p-149f,     -0x1p-149f,   0x1.fffffcp-127f, FLT_MIN,        -FLT_MIN,
    1e-30f,        -1e-30f,       1e-8f,         -1e-8f,       0.25f,            0.5f,           -0.5f,
    0.49999997f,   1.0f,          -1.0f,         0.99999994f,  1.4142135f,       -1.4142135f,    2.5f,
    4.0f,          -4.0f,         3.9999998f,    5.656854f,    -5.656854f,       9.0f,           -9.0f,
    20.0f,         -20.0f,        52.0f,         88.0f,        88.72283f,        88.72284f,      88.7229f,
    89.0f,         -87.33655f,    -87.33656f,    -100.0f,      -103.27893f,      -103.97208f,    -103.97209f,
    -104.0f,       -200.0f,       1e10f,         -1e10f,       FLT_MAX,          -FLT_MAX,       0.693147f,
    -0.693147f,    3.4657359f,    -3.4657359f,   1e-3f,        -1e-3f,           123.456f,       -123.456f,
};

/* Calls check(x, y) for every input of the sweep and the chosen list, y being fn's output; NaN inputs
 * are checked here (NaN out). */
static void sweep(vfn fn, void (*check)(float x, float y))
{
    static float in[CHUNK], out[CHUNK];
    uint64_t u = 0;
    size_t extra = 0;
    while (u < (UINT64_C(1) << 32) || extra < TU_COUNT(chosen)) {
        size_t n = 0;
        for (; n < CHUNK && u < (UINT64_C(1) << 32); n++, u += SWEEP_STRIDE) in[n] = bits_float((uint32_t)u);
        for (; n < CHUNK && extra < TU_COUNT(chosen); n++, extra++) in[n] = chosen[extra];
        fn(out, in, n);
        for (size_t i = 0; i < n; i++) {
            if (isnan(in[i]))
                cr_assert(isnan(out[i]), "NaN 0x%08x gave %a", float_bits(in[i]), (double)out[i]);
            else
                check(in[i], out[i]);
        }
    }
}

static double max_err;

static void check_exp(float x, float y)
{
    double ref = exp((double)x);
    if (ref > (double)FLT_MAX * (1.0 + 0x1p-25)) {
        cr_assert(isinf(y) && y > 0, "exp(%a) = %a, want +inf", (double)x, (double)y);
        return;
    }
    double err = fabs((double)y - ref) / ulp_at(ref);
    if (err > max_err) max_err = err;
    cr_assert(err <= 4.0, "exp(%a) = %a, want %a (%.2f ulp)", (double)x, (double)y, ref, err);
}

static void check_abs(const char *name, float x, float y, double ref, double tol)
{
    double err = fabs((double)y - ref);
    if (err > max_err) max_err = err;
    cr_assert(err <= tol, "%s(%a) = %a, want %a (error %.3g)", name, (double)x, (double)y, ref, err);
}

static void check_erf(float x, float y)
{
    check_abs("erf", x, y, erf((double)x), 1e-6);
    /* a few ulp relative near 0, where the absolute bound says little */
    if (fabsf(x) < 0.5f && fabsf(x) >= 1e-30f)
        cr_assert(fabs((double)y / erf((double)x) - 1.0) < 4e-7, "erf(%a) = %a: relative", (double)x, (double)y);
}

static void check_tanh(float x, float y)
{
    check_abs("tanh", x, y, tanh((double)x), 1e-6);
    if (fabsf(x) < 0.5f && x != 0.0f)
        cr_assert(fabs((double)y / tanh((double)x) - 1.0) < 4e-7, "tanh(%a) = %a: relative", (double)x, (double)y);
}

static void check_sigmoid(float x, float y)
{
    double ref = 1.0 / (1.0 + exp(-(double)x));
    check_abs("sigmoid", x, y, ref, 1e-6);
    if (ref >= 1e-30) /* relative accuracy too, on the negative side down to 1e-30 */
        cr_assert(fabs((double)y / ref - 1.0) < 1e-6, "sigmoid(%a) = %a: relative", (double)x, (double)y);
}

static void check_gelu(float x, float y)
{
    double xd = x;
    double ref = isinf(xd) ? (xd > 0 ? xd : 0.0) : 0.5 * xd * erfc(-xd / sqrt(2.0));
    if (isinf(xd)) {
        cr_assert_eq(float_bits(y), float_bits(xd > 0 ? INFINITY : -0.0f), "gelu(%a) = %a", xd, (double)y);
        return;
    }
    double err = fabs((double)y - ref) / fmax(1.0, fabs(xd));
    if (err > max_err) max_err = err;
    cr_assert(err <= 1e-6, "gelu(%a) = %a, want %a", xd, (double)y, ref);
}

Test(vmath, exp_sweep_within_4_ulp)
{
    sweep(qcm_vexp, check_exp);
    cr_log_info("exp: max %.3f ulp", max_err);
}

Test(vmath, erf_sweep_within_1e6)
{
    sweep(qcm_verf, check_erf);
    cr_log_info("erf: max absolute error %.3g", max_err);
}

Test(vmath, tanh_sweep_within_1e6)
{
    sweep(qcm_vtanh, check_tanh);
    cr_log_info("tanh: max absolute error %.3g", max_err);
}

Test(vmath, sigmoid_sweep_within_1e6)
{
    sweep(qcm_vsigmoid, check_sigmoid);
    cr_log_info("sigmoid: max absolute error %.3g", max_err);
}

Test(vmath, gelu_sweep_within_1e6_scaled)
{
    sweep(qcm_vgelu, check_gelu);
    cr_log_info("gelu: max error / max(1, |x|) %.3g", max_err);
}

/* Exact values at the special inputs. */
Test(vmath, special_values)
{
    const float in[] = {INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p-149f, 1000.0f, -1000.0f};
    enum { N = sizeof in / sizeof in[0] };
    float e[N], r[N], t[N], s[N], g[N];
    qcm_vexp(e, in, N);
    qcm_verf(r, in, N);
    qcm_vtanh(t, in, N);
    qcm_vsigmoid(s, in, N);
    qcm_vgelu(g, in, N);
    const float want_exp[] = {INFINITY, 0.0f, 1.0f, 1.0f, 1.0f, INFINITY, 0.0f};
    const float want_erf[] = {1.0f, -1.0f, 0.0f, -0.0f, 0.0f, 1.0f, -1.0f};
    const float want_tanh[] = {1.0f, -1.0f, 0.0f, -0.0f, 0x1p-149f, 1.0f, -1.0f};
    const float want_sig[] = {1.0f, 0.0f, 0.5f, 0.5f, 0.5f, 1.0f, 0.0f};
    const float want_gelu[] = {INFINITY, -0.0f, 0.0f, -0.0f, 0.0f, 1000.0f, -0.0f};
    for (int i = 0; i < N; i++) {
        cr_expect_eq(float_bits(e[i]), float_bits(want_exp[i]), "exp(%a) = %a", (double)in[i], (double)e[i]);
        cr_expect_eq(float_bits(t[i]), float_bits(want_tanh[i]), "tanh(%a) = %a", (double)in[i], (double)t[i]);
        cr_expect_eq(float_bits(s[i]), float_bits(want_sig[i]), "sigmoid(%a) = %a", (double)in[i], (double)s[i]);
        cr_expect_eq(float_bits(g[i]), float_bits(want_gelu[i]), "gelu(%a) = %a", (double)in[i], (double)g[i]);
        if (i != 4) /* erf of the smallest subnormal: 1.128 of it rounds to itself */
            cr_expect_eq(float_bits(r[i]), float_bits(want_erf[i]), "erf(%a) = %a", (double)in[i], (double)r[i]);
    }
    cr_expect_eq(r[4], 0x1p-149f, "erf(min subnormal) = %a", (double)r[4]);
}

/* Both NaN signs and a signalling NaN propagate as NaN through every function. */
Test(vmath, nan_propagates)
{
    float in[] = {bits_float(0x7fc00000u), bits_float(0xffc00000u), bits_float(0x7f800001u), bits_float(0x7fc12345u)};
    enum { N = sizeof in / sizeof in[0] };
    vfn fns[] = {qcm_vexp, qcm_verf, qcm_vtanh, qcm_vsigmoid, qcm_vgelu};
    for (size_t f = 0; f < TU_COUNT(fns); f++) {
        float out[N];
        fns[f](out, in, N);
        for (int i = 0; i < N; i++) cr_expect(isnan(out[i]), "function %zu, input %d: %a", f, i, (double)out[i]);
    }
    float tmp[N];
    cr_expect(isnan(qcm_vexp_sum_shifted(tmp, in, N, 0.0f)));
}

/* Overflow to +inf exactly above ln FLT_MAX, and gradual underflow through the subnormals to 0. */
Test(vmath, exp_overflow_and_underflow)
{
    /* 0x1.62e42ep+6 = 88.7228317 is the last float below ln FLT_MAX = 88.7228391 */
    float in[] = {88.72283f, 0x1.62e42ep+6f, 0x1.62e430p+6f, -87.0f, -95.0f, -103.0f, -103.9f, -104.0f, -1e30f};
    enum { N = sizeof in / sizeof in[0] };
    float out[N];
    qcm_vexp(out, in, N);
    cr_expect(isfinite(out[0]) && out[0] > 3.4e38f, "%a", (double)out[0]);
    cr_expect(isfinite(out[1]) && out[1] > 3.4e38f, "%a", (double)out[1]);
    cr_expect(isinf(out[2]) && out[2] > 0, "%a", (double)out[2]);
    for (int i = 3; i < 7; i++) {
        double ref = exp((double)in[i]);
        cr_expect(fabs(out[i] - ref) <= 4 * ulp_at(ref), "exp(%a) = %a, want %a", (double)in[i], (double)out[i], ref);
        cr_expect(out[i] > 0.0f);
    }
    cr_expect(out[5] < FLT_MIN && out[6] < FLT_MIN, "subnormal results");
    cr_expect_eq(out[7], 0.0f);
    cr_expect_eq(out[8], 0.0f);
}

/* In place (out == in) gives what a separate output gives, at every length and offset (the vector
 * loops and their remainders). */
Test(vmath, in_place_and_lengths)
{
    vfn fns[] = {qcm_vexp, qcm_verf, qcm_vtanh, qcm_vsigmoid, qcm_vgelu};
    float src[75], ref[75], buf[75];
    for (int i = 0; i < 75; i++) src[i] = (float)(i - 37) * 0.37f;
    for (size_t f = 0; f < TU_COUNT(fns); f++)
        for (size_t n = 0; n <= 70; n++) {
            size_t off = n % 5;
            fns[f](ref + off, src + off, n);
            memcpy(buf, src, sizeof buf);
            fns[f](buf + off, buf + off, n);
            cr_assert_arr_eq(buf + off, ref + off, n * sizeof(float), "function %zu, n %zu", f, n);
            for (size_t i = 0; i < n; i++) { /* each element the same as alone */
                float one;
                fns[f](&one, src + off + i, 1);
                cr_assert_eq(float_bits(one), float_bits(ref[off + i]), "function %zu, n %zu, i %zu", f, n, i);
            }
        }
}

/* The softmax helper: each output as qcm_vexp gives it, the sum within float rounding, in place too. */
Test(vmath, exp_sum_shifted)
{
    static float in[1000], out[1000], ref[1000], shifted[1000];
    for (size_t n = 0; n <= 1000; n += (n < 40 ? 1 : 97)) {
        for (size_t i = 0; i < n; i++) in[i] = sinf((float)i * 0.7f) * 12.0f;
        float shift = 11.5f;
        for (size_t i = 0; i < n; i++) shifted[i] = in[i] - shift;
        qcm_vexp(ref, shifted, n);
        float sum = qcm_vexp_sum_shifted(out, in, n, shift);
        double want = 0.0;
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(float_bits(out[i]), float_bits(ref[i]), "n %zu, element %zu", n, i);
            want += exp((double)in[i] - shift);
        }
        cr_assert(fabs(sum - want) <= 1e-6 * want + 1e-30, "n %zu: sum %a, want %a", n, (double)sum, want);
        float again = qcm_vexp_sum_shifted(in, in, n, shift);
        cr_assert_eq(float_bits(again), float_bits(sum), "in place, n %zu", n);
        cr_assert_arr_eq(in, out, n * sizeof(float), "in place, n %zu", n);
    }
    float big[] = {0.0f, 100.0f};
    float o[2];
    cr_expect(isinf(qcm_vexp_sum_shifted(o, big, 2, 0.0f)), "overflowing terms sum to inf");
}
