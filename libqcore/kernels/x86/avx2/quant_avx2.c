/* AVX2 kernels of the uniform grid: 8 lanes, the same float operations as the reference (IEEE division,
 * round half to even, saturation before conversion), so results are identical bit for bit. */
#include <immintrin.h>

#include "kernels/ref/quant_ref.h"

typedef struct grid_vectors {
    __m256 scale, zero_point, qmin, qmax;
} grid_vectors;

static grid_vectors broadcast(qc_grid_run g)
{
    return (grid_vectors){_mm256_set1_ps(g.scale), _mm256_set1_ps((float)g.zero_point),
                          _mm256_set1_ps((float)g.qmin), _mm256_set1_ps((float)g.qmax)};
}

/* Saturated levels, still as floats (exact small integers). */
static inline __m256 levels(__m256 x, const grid_vectors *v)
{
    __m256 r = _mm256_round_ps(_mm256_div_ps(x, v->scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_add_ps(r, v->zero_point);
    return _mm256_min_ps(_mm256_max_ps(r, v->qmin), v->qmax);
}

static void quantize_f32_bytes(uint8_t *out, const float *x, size_t n, qc_grid_run g)
{
    grid_vectors v = broadcast(g);
    /* Byte 0 of every 32-bit lane to the low 4 bytes of each 128-bit half, then both halves together. */
    const __m256i pick_low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                    0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i join_halves = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i q = _mm256_cvtps_epi32(levels(_mm256_loadu_ps(x + i), &v));
        q = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(q, pick_low_bytes), join_halves);
        _mm_storel_epi64((__m128i *)(out + i), _mm256_castsi256_si128(q));
    }
    for (; i < n; i++) out[i] = (uint8_t)qc__quantize_one(x[i], g);
}

static void dequantize_bytes_f32(float *out, const uint8_t *q, size_t n, int is_signed, qc_grid_run g)
{
    const __m256i zero_point = _mm256_set1_epi32(g.zero_point);
    const __m256 scale = _mm256_set1_ps(g.scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i bytes = _mm_loadl_epi64((const __m128i *)(q + i));
        __m256i wide = is_signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
        __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(wide, zero_point));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(f, scale));
    }
    for (; i < n; i++) out[i] = qc__dequantize_one(is_signed ? (int8_t)q[i] : q[i], g);
}

static void fake_quantize_f32(float *out, const float *x, size_t n, qc_grid_run g)
{
    grid_vectors v = broadcast(g);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 t = _mm256_sub_ps(levels(_mm256_loadu_ps(x + i), &v), v.zero_point);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(t, v.scale));
    }
    for (; i < n; i++) out[i] = qc__dequantize_one(qc__quantize_one(x[i], g), g);
}

const qc_kernels qc__kernels_avx2 = {
    .arch = QC_ARCH_AVX2,
    .quantize_f32_bytes = quantize_f32_bytes,
    .dequantize_bytes_f32 = dequantize_bytes_f32,
    .fake_quantize_f32 = fake_quantize_f32,
    .accum_tile = qc__accum_tile_avx2,
    .popcount_gemm = qc__popcount_gemm_avx2,
    .int8_gemm = qc__int8_gemm_avx2,
    .encode_planes = qc__encode_planes_avx2,
    .lq_scale = qc__lq_scale_ref,
};
