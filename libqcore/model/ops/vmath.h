/* Internal: float math over arrays for the executor's activations (Exp, Erf, Gelu, Tanh, Sigmoid,
 * Softmax). Branch-free polynomial code that the compiler vectorises; out may equal in (exactly the
 * same array), any other overlap is not allowed. Accuracy over every float input (tests/c/test_vmath.c):
 * exp within 4 ulp (also in the subnormal range), erf, tanh and sigmoid within 1e-6 absolute (in
 * practice a few 1e-8, and a few ulp relative near 0), GELU within 1e-6 * max(1, |x|). NaN inputs give
 * NaN; exp overflows to +inf and underflows to 0; erf(+-inf) = +-1, tanh(+-inf) = +-1,
 * sigmoid(-inf) = 0, sigmoid(+inf) = 1, gelu(+inf) = +inf, gelu(-inf) = -0.
 * On x86-64 each function has AVX-512 and AVX2 versions, chosen per call from the CPU's features; they
 * give results bit-identical to the baseline SSE2 version (no fused multiply-add). */
#ifndef QC_OPS_VMATH_H
#define QC_OPS_VMATH_H

#include <stddef.h>

/* out[i] = e^in[i]. */
void qcm_vexp(float *out, const float *in, size_t n);

/* out[i] = erf(in[i]). */
void qcm_verf(float *out, const float *in, size_t n);

/* out[i] = tanh(in[i]). */
void qcm_vtanh(float *out, const float *in, size_t n);

/* out[i] = 1 / (1 + e^-in[i]). */
void qcm_vsigmoid(float *out, const float *in, size_t n);

/* out[i] = e^(in[i] - shift); returns the sum of out (for softmax, shift being the maximum). The sum
 * is taken in a fixed order, the same on every CPU. */
float qcm_vexp_sum_shifted(float *out, const float *in, size_t n, float shift);

/* out[i] = GELU with the exact erf: 0.5 x (1 + erf(x / sqrt 2)). */
void qcm_vgelu(float *out, const float *in, size_t n);

#endif
