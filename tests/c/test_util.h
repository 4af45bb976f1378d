/* Shared helpers of the Criterion tests: building tensors and contexts, deterministic test data,
 * checking failures, and the ONNX formulas written out independently of the library's kernels. */
#ifndef QC_TEST_UTIL_H
#define QC_TEST_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcore/qcore.h"

#define TU_COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* Every kernel set; tests skip the ones qc_arch_supported() says cannot run here. */
static const qc_arch tu_archs[] = {QC_ARCH_REF, QC_ARCH_AVX2, QC_ARCH_AVX512};

/* ---- tensors and contexts ------------------------------------------------------------------ */

/* A C-contiguous view; the test fails when qc_tensor_init refuses it. */
static inline qc_tensor tu_tensor(void *data, qc_dtype dtype, int ndim, const int64_t *dims)
{
    qc_tensor t;
    qc_status st = qc_tensor_init(&t, data, dtype, ndim, dims, NULL);
    cr_assert_eq(st, QC_OK, "qc_tensor_init: %s", qc_last_error());
    return t;
}

static inline qc_tensor tu_vector(void *data, qc_dtype dtype, int64_t n)
{
    return tu_tensor(data, dtype, 1, &n);
}

static inline qc_tensor tu_scalar(void *data, qc_dtype dtype)
{
    return tu_tensor(data, dtype, 0, NULL);
}

/* A context with `threads` workers (0 = all cores) running kernel set `arch`. */
static inline qc_ctx *tu_ctx(int threads, qc_arch arch)
{
    qc_ctx *ctx = NULL;
    cr_assert_eq(qc_ctx_create(&ctx), QC_OK, "qc_ctx_create: %s", qc_last_error());
    cr_assert_eq(qc_ctx_set_param(ctx, QC_CTX_THREADS, threads), QC_OK, "%s", qc_last_error());
    cr_assert_eq(qc_ctx_set_param(ctx, QC_CTX_ARCH, arch), QC_OK, "%s", qc_last_error());
    return ctx;
}

static inline qc_quant_options tu_options(int bits, int is_signed, int symmetric)
{
    qc_quant_options o = QC_QUANT_OPTIONS_INIT;
    o.bits = bits;
    o.is_signed = is_signed;
    o.symmetric = symmetric;
    return o;
}

/* ---- deterministic test data (splitmix64: independent of the library's Philox) ------------- */

static inline uint64_t tu_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float tu_signed_unit(uint64_t *state)
{
    return (float)((double)(tu_next(state) >> 11) * 0x1.0p-52 - 1.0);
}

/* Roughly Gaussian (sum of four uniforms) with rare large outliers, so that clipping matters. */
static inline void tu_fill_data(float *x, size_t n, uint64_t seed, float sigma)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        float v = 0.0f;
        for (int k = 0; k < 4; k++) v += tu_signed_unit(&s);
        x[i] = sigma * v;
        if (tu_next(&s) % 97 == 0) x[i] *= 8.0f;
    }
}

/* ---- failures -------------------------------------------------------------------------------- */

/* The status is `want`, and the message starts with "<function>:" and names "'<arg>'" (arg may be
 * NULL when the failure is not about one argument). */
static inline void tu_check_failure(qc_status got, qc_status want, const char *function, const char *arg,
                                    const char *expression)
{
    const char *msg = qc_last_error();
    cr_assert_eq(got, want, "%s returned %s, expected %s (message: '%s')", expression, qc_status_string(got),
                 qc_status_string(want), msg);
    size_t len = strlen(function);
    cr_assert(strncmp(msg, function, len) == 0 && msg[len] == ':', "%s: message '%s' should start with '%s:'",
              expression, msg, function);
    if (arg == NULL) return;
    char quoted[80];
    snprintf(quoted, sizeof quoted, "'%s'", arg);
    cr_assert(strstr(msg, quoted) != NULL, "%s: message '%s' should name %s", expression, msg, quoted);
}

/* Clears the last error first so that a stale message cannot satisfy the check. */
#define TU_EXPECT_FAIL(call, status, function, arg)                     \
    do {                                                                \
        qc_clear_error();                                               \
        qc_status tu_st_ = (call);                                      \
        tu_check_failure(tu_st_, (status), (function), (arg), #call);   \
    } while (0)

#define TU_EXPECT_OK(call)                                                                           \
    do {                                                                                             \
        qc_status tu_st_ = (call);                                                                   \
        cr_assert_eq(tu_st_, QC_OK, "%s returned %s: %s", #call, qc_status_string(tu_st_), qc_last_error()); \
    } while (0)

/* ---- oracles --------------------------------------------------------------------------------- */

/* ONNX QuantizeLinear written from the specification: float32 division, round half to even,
 * zero point added, saturation to [qmin, qmax]. Rounding and addition are done in double, which is
 * exact for these magnitudes, unlike the library's all-float path. */
static inline int32_t tu_quantize_one(float x, float scale, int32_t zero_point, int32_t qmin, int32_t qmax)
{
    float quotient = x / scale; /* may be +-inf for huge x: saturates below */
    double q = nearbyint((double)quotient) + zero_point;
    return q < qmin ? qmin : q > qmax ? qmax : (int32_t)q;
}

/* ONNX DequantizeLinear: (q - zero_point) * scale in float32. */
static inline float tu_dequantize_one(int32_t q, float scale, int32_t zero_point)
{
    return (float)(q - zero_point) * scale;
}

/* Bit-for-bit equality of two float arrays, reporting the first difference. */
static inline void tu_assert_same_floats(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s: element %zu is %a, expected %a", what, i,
                  (double)got[i], (double)want[i]);
}

static inline void tu_assert_same_bytes(const void *got, const void *want, size_t n, const char *what)
{
    const unsigned char *a = got, *b = want;
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a[i], b[i], "%s: byte %zu is 0x%02x, expected 0x%02x", what, i, a[i], b[i]);
}

#endif
