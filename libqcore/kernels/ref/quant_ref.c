/* Reference kernels of the uniform grid: portable C, the oracle for every other kernel set. */
#include "kernels/ref/quant_ref.h"

static void quantize_f32_bytes(uint8_t *out, const float *x, size_t n, qc_grid_run g)
{
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)qc__quantize_one(x[i], g);
}

static void dequantize_bytes_f32(float *out, const uint8_t *q, size_t n, int is_signed, qc_grid_run g)
{
    for (size_t i = 0; i < n; i++) {
        int32_t v = is_signed ? (int32_t)(int8_t)q[i] : (int32_t)q[i];
        out[i] = qc__dequantize_one(v, g);
    }
}

static void fake_quantize_f32(float *out, const float *x, size_t n, qc_grid_run g)
{
    for (size_t i = 0; i < n; i++) out[i] = qc__dequantize_one(qc__quantize_one(x[i], g), g);
}

const qc_kernels qc__kernels_ref = {
    .arch = QC_ARCH_REF,
    .quantize_f32_bytes = quantize_f32_bytes,
    .dequantize_bytes_f32 = dequantize_bytes_f32,
    .fake_quantize_f32 = fake_quantize_f32,
    .accum_tile = qc__accum_tile_ref,
    .popcount_gemm = qc__popcount_gemm_ref,
    .int8_gemm = qc__int8_gemm_ref,
    .encode_planes = qc__encode_planes_ref,
    .lq_scale = qc__lq_scale_ref,
};
