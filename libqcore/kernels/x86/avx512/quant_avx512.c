/* AVX-512 kernels of the uniform grid: 16 lanes with masked tails, the same float operations as the
 * reference, so results are identical bit for bit. */
#include <immintrin.h>

#include "kernels/ref/quant_ref.h"

typedef struct grid_vectors {
    __m512 scale, zero_point, qmin, qmax;
} grid_vectors;

static grid_vectors broadcast(qc_grid_run g)
{
    return (grid_vectors){_mm512_set1_ps(g.scale), _mm512_set1_ps((float)g.zero_point),
                          _mm512_set1_ps((float)g.qmin), _mm512_set1_ps((float)g.qmax)};
}

static inline __m512 levels(__m512 x, const grid_vectors *v)
{
    __m512 r = _mm512_roundscale_ps(_mm512_div_ps(x, v->scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_add_ps(r, v->zero_point);
    return _mm512_min_ps(_mm512_max_ps(r, v->qmin), v->qmax);
}

static inline __mmask16 tail_mask(size_t remaining)
{
    return remaining >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << remaining) - 1u);
}

static void quantize_f32_bytes(uint8_t *out, const float *x, size_t n, qc_grid_run g)
{
    grid_vectors v = broadcast(g);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512i q = _mm512_cvtps_epi32(levels(_mm512_maskz_loadu_ps(m, x + i), &v));
        _mm512_mask_cvtepi32_storeu_epi8(out + i, m, q); /* keeps the low byte: values are in range */
    }
}

static void dequantize_bytes_f32(float *out, const uint8_t *q, size_t n, int is_signed, qc_grid_run g)
{
    const __m512i zero_point = _mm512_set1_epi32(g.zero_point);
    const __m512 scale = _mm512_set1_ps(g.scale);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m128i bytes = _mm_maskz_loadu_epi8(m, q + i);
        __m512i wide = is_signed ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
        __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(wide, zero_point));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(f, scale));
    }
}

static void fake_quantize_f32(float *out, const float *x, size_t n, qc_grid_run g)
{
    grid_vectors v = broadcast(g);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 t = _mm512_sub_ps(levels(_mm512_maskz_loadu_ps(m, x + i), &v), v.zero_point);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(t, v.scale));
    }
}

const qc_kernels qc__kernels_avx512 = {
    .arch = QC_ARCH_AVX512,
    .quantize_f32_bytes = quantize_f32_bytes,
    .dequantize_bytes_f32 = dequantize_bytes_f32,
    .fake_quantize_f32 = fake_quantize_f32,
    .accum_tile = qc__accum_tile_avx512,
    .popcount_gemm = qc__popcount_gemm_avx512,
    .int8_gemm = qc__int8_gemm_avx512,
    .encode_planes = qc__encode_planes_avx512,
    .lq_scale = qc__lq_scale_avx512,
    .popcount_gemv_il = qc__popcount_gemv_il_avx512,
};
