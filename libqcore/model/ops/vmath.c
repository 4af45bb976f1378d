/* Float math over arrays (vmath.h): each element goes through straight-line code (both sides of every
 * case computed, then selected), so that GCC and clang vectorise the loops at -O3 with baseline SSE2.
 * The coefficients are minimax fits made by scripts/tools/fit_vmath.py.
 *
 * exp: x = k ln2 + r with |r| <= ln2 / 2 (Cody-Waite: k ln2_hi is exact), e^r by a degree-6
 *      polynomial, times 2^k applied as two powers of two so that subnormal results round once.
 * erf: |x| < 1: x P(x^2); 1 <= |x| < 4: 1 - e^S(|x| - 2.5), S fitting log erfc; beyond: +-1.
 * gelu: the same two pieces for x / sqrt 2, using 1 + erf(-z) = erfc(z) to keep the negative side
 *      free of cancellation.
 * tanh: |x| < 0.5: x + x^3 P(x^2); beyond: (1 - e) / (1 + e) with e = e^-2|x|, signed.
 * sigmoid: e = e^-|x|; 1 / (1 + e) for x >= 0, e / (1 + e) below (no overflow, relative accuracy). */
#include "vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* No contraction into fused multiply-adds (clang's default in a statement; GCC's ISO C mode already
 * does none): every clone then rounds exactly like the baseline one. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* AVX-512 and AVX2 versions of the array functions, chosen per call from the CPU's features (a load
 * and a test). Not target_clones: clang 14 (the fuzz build) emits no plain symbol for those, so other
 * files could not call them. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__)
#define QCM_DISPATCH 1
#endif

#define QCM_INLINE static inline __attribute__((always_inline))

/* exp: the rounding constant 1.5 * 2^23, log2(e), ln 2 in two parts and the range kept. */
#define EXP_ROUND 12582912.0f
#define EXP_LOG2E 1.44269502162933350f
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.428606765330187e-06f
#define EXP_MAX 89.0f  /* e^89 > FLT_MAX: overflows to inf */
#define EXP_MIN -104.0f /* e^-104 < FLT_TRUE_MIN / 2: underflows to 0 */
#define EXP_C2 0.4999999403953552f
#define EXP_C3 0.16666430234909058f
#define EXP_C4 0.041668009012937546f
#define EXP_C5 0.008374235592782497f
#define EXP_C6 0.0013843559427186847f

/* erf(x) = x P(x^2) on [0, 1]. */
#define ERF_P0 1.1283791065216064f
#define ERF_P1 -0.3761262595653534f
#define ERF_P2 0.1128358542919159f
#define ERF_P3 -0.026853809133172035f
#define ERF_P4 0.005188323091715574f
#define ERF_P5 -0.0008010152960196137f
#define ERF_P6 7.853724673623219e-05f

/* log erfc(x) = S(x - 2.5) on [1, 4]. */
#define ERFC_SPLIT 1.0f
#define ERFC_END 4.0f
#define ERFC_CENTRE 2.5f
#define ERFC_S0 -7.806815147399902f
#define ERFC_S1 -5.352680683135986f
#define ERFC_S2 -0.9438936114311218f
#define ERFC_S3 -0.010858487337827682f
#define ERFC_S4 0.0021650814451277256f
#define ERFC_S5 -0.0004201731353532523f
#define ERFC_S6 7.745493348920718e-05f
#define ERFC_S7 -1.3301707440405153e-05f
#define ERFC_S8 1.5998151638996205e-06f

/* tanh(x) = x + x^3 P(x^2) on [0, 0.5]. */
#define TANH_SPLIT 0.5f
#define TANH_C0 -0.333333283662796f
#define TANH_C1 0.13332964479923248f
#define TANH_C2 -0.053899191319942474f
#define TANH_C3 0.021297991275787354f
#define TANH_C4 -0.0066474867053329945f

#define INV_SQRT2 0.70710678118654752f

QCM_INLINE float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

QCM_INLINE uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* c ? a : b through bit masks. Written as a conditional expression, GCC 12 keeps a branch in the SSE2
 * code (it does not if-convert those selects without AVX-512 masks), which stops vectorisation. */
QCM_INLINE float sel(int c, float a, float b)
{
    uint32_t m = 0u - (uint32_t)c;
    return from_bits((to_bits(a) & m) | (to_bits(b) & ~m));
}

/* 2^k for k in [-126, 127]. */
QCM_INLINE float pow2i(int32_t k) { return from_bits((uint32_t)(k + 127) << 23); }

/* e^x for x in [EXP_MIN, EXP_MAX] (never NaN). */
QCM_INLINE float exp_core(float x)
{
    float kf = (x * EXP_LOG2E + EXP_ROUND) - EXP_ROUND; /* nearest integer to x / ln2 */
    float r = (x - kf * EXP_LN2_HI) - kf * EXP_LN2_LO;
    float p = EXP_C6;
    p = p * r + EXP_C5;
    p = p * r + EXP_C4;
    p = p * r + EXP_C3;
    p = p * r + EXP_C2;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k = (int32_t)kf; /* in [-150, 129] */
    int32_t k1 = k / 2;
    return p * pow2i(k1) * pow2i(k - k1);
}

/* e^x for any x but NaN (which gives a finite value; callers select it away). */
QCM_INLINE float exp_clamped(float x)
{
    float c = sel(x > EXP_MIN, x, EXP_MIN);
    c = sel(c < EXP_MAX, c, EXP_MAX);
    return exp_core(c);
}

QCM_INLINE float exp_elem(float x)
{
    float y = exp_clamped(x);
    return sel(x != x, x, y);
}

/* erf(x) / x for |x| <= 1, from t = x^2. */
QCM_INLINE float erf_small(float t)
{
    float p = ERF_P6;
    p = p * t + ERF_P5;
    p = p * t + ERF_P4;
    p = p * t + ERF_P3;
    p = p * t + ERF_P2;
    p = p * t + ERF_P1;
    return p * t + ERF_P0;
}

/* erfc(a) for a >= 0 (not NaN); meaningful from 1 on, 0 from 4 on. */
QCM_INLINE float erfc_large(float a)
{
    float u = sel(a < ERFC_END, a, ERFC_END) - ERFC_CENTRE;
    float s = ERFC_S8;
    s = s * u + ERFC_S7;
    s = s * u + ERFC_S6;
    s = s * u + ERFC_S5;
    s = s * u + ERFC_S4;
    s = s * u + ERFC_S3;
    s = s * u + ERFC_S2;
    s = s * u + ERFC_S1;
    s = s * u + ERFC_S0;
    float e = exp_core(s); /* s in [-17.7, -1.8] */
    return sel(a < ERFC_END, e, 0.0f);
}

QCM_INLINE float erf_elem(float x)
{
    float a = fabsf(x);
    float small = x * erf_small(x * x);
    float large = copysignf(1.0f - erfc_large(a), x);
    float y = sel(a < ERFC_SPLIT, small, large);
    return sel(x != x, x, y);
}

QCM_INLINE float gelu_elem(float x)
{
    float z = x * INV_SQRT2;
    float a = fabsf(z);
    float half_e = 0.5f * erfc_large(a);
    float phi_small = 0.5f + 0.5f * (z * erf_small(z * z)); /* (1 + erf z) / 2 */
    float phi_large = sel(x >= 0.0f, 1.0f - half_e, half_e);
    float phi = sel(a < ERFC_SPLIT, phi_small, phi_large);
    float y = sel(phi == 0.0f, -0.0f, x * phi); /* -0 also for x = -inf */
    return sel(x != x, x, y);
}

QCM_INLINE float tanh_elem(float x)
{
    float a = fabsf(x);
    float t = x * x;
    float p = TANH_C4;
    p = p * t + TANH_C3;
    p = p * t + TANH_C2;
    p = p * t + TANH_C1;
    p = p * t + TANH_C0;
    float small = a + (a * t) * p;
    float e = exp_clamped(-2.0f * a);
    float large = (1.0f - e) / (1.0f + e);
    float y = copysignf(sel(a < TANH_SPLIT, small, large), x);
    return sel(x != x, x, y);
}

QCM_INLINE float sigmoid_elem(float x)
{
    float e = exp_clamped(-fabsf(x));
    float r = 1.0f / (1.0f + e);
    float y = sel(x >= 0.0f, r, e * r);
    return sel(x != x, x, y);
}

#ifdef QCM_DISPATCH
/* 2: AVX-512F, 1: AVX2, 0: the baseline (SSE2). */
static int isa_level(void)
{
    __builtin_cpu_init(); /* no-op once libgcc's constructor has run */
    return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
}

/* Function `name` of type ret params and its variants, all compiled from `body`. `give` is `return`
 * when ret is not void. */
#define QCM_VARIANTS(ret, give, name, params, args, body)                                  \
    __attribute__((target("avx512f"))) static ret name##_avx512 params body              \
    __attribute__((target("avx2"))) static ret name##_avx2 params body                   \
    static ret name##_base params body                                                     \
    ret name params                                                                       \
    {                                                                                      \
        int level = isa_level();                                                           \
        ret(*fn) params = level == 2 ? name##_avx512 : level == 1 ? name##_avx2 : name##_base; \
        give fn args;                                                                      \
    }
#else
#define QCM_VARIANTS(ret, give, name, params, args, body) ret name params body
#endif

/* In place the loop reads and writes one pointer: with two, clang's run-time overlap check sends
 * out == in to the scalar loop. */
#define QCM_MAP(name, elem)                                                                 \
    QCM_VARIANTS(void, , name, (float *out, const float *in, size_t n), (out, in, n), {       \
        if (out == in)                                                                       \
            for (size_t i = 0; i < n; i++) out[i] = elem(out[i]);                            \
        else                                                                                 \
            for (size_t i = 0; i < n; i++) out[i] = elem(in[i]);                             \
    })

QCM_MAP(qcm_vexp, exp_elem)
QCM_MAP(qcm_verf, erf_elem)
QCM_MAP(qcm_vtanh, tanh_elem)
QCM_MAP(qcm_vsigmoid, sigmoid_elem)
QCM_MAP(qcm_vgelu, gelu_elem)

/* Sixteen partial sums, element i going to sum i % 16 while whole blocks last: a fixed order that the
 * vector code keeps lane by lane, whatever the vector width. */
#define SUM_LANES 16

QCM_INLINE float exp_sum_shifted(float *out, const float *in, size_t n, float shift)
{
    float acc[SUM_LANES] = {0};
    size_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (size_t j = 0; j < SUM_LANES; j++) {
            float e = exp_elem(in[i + j] - shift);
            out[i + j] = e;
            acc[j] += e;
        }
    for (size_t j = 0; i + j < n; j++) {
        float e = exp_elem(in[i + j] - shift);
        out[i + j] = e;
        acc[j] += e;
    }
    for (size_t w = SUM_LANES / 2; w > 0; w /= 2)
        for (size_t j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

QCM_VARIANTS(float, return, qcm_vexp_sum_shifted, (float *out, const float *in, size_t n, float shift),
             (out, in, n, shift), {
                 /* in place through one pointer, as in QCM_MAP */
                 return out == in ? exp_sum_shifted(out, out, n, shift) : exp_sum_shifted(out, in, n, shift);
             })
