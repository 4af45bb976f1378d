/* Internal: the table of kernels, one per kernel set, chosen once per context. Every entry of an
 * optimized table computes exactly what the reference entry computes. */
#ifndef QC_KERNELS_DISPATCH_H
#define QC_KERNELS_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "qcore/qc_core.h"

/* One uniform grid applied to a run of values: out = clamp(rint(x / scale) + zero_point, qmin, qmax).
 * qmin/qmax lie within [-128, 255] for the byte kernels. */
typedef struct qc_grid_run {
    float scale;
    int32_t zero_point;
    int32_t qmin;
    int32_t qmax;
} qc_grid_run;

/* The accumulator simulator (accum/simulate.c) advances QC_ACCUM_LANES dot products (rows of the weights)
 * together through one tile. Per lane: the exact sum of the tile, its largest |partial sum|, the final
 * values of a wrapping and of a saturating register of range [lo, hi] that start at 0, and the partial
 * sums outside [lo, hi] in each. */
#define QC_ACCUM_LANES 16

typedef struct qc_accum_lanes {
    int64_t exact[QC_ACCUM_LANES], top[QC_ACCUM_LANES], wrap[QC_ACCUM_LANES], saturate[QC_ACCUM_LANES];
    uint64_t wrap_events[QC_ACCUM_LANES], saturate_events[QC_ACCUM_LANES];
} qc_accum_lanes;

typedef struct qc_kernels {
    qc_arch arch;
    /* Quantizes n floats into bytes holding the low 8 bits of each integer (int8 or uint8 storage). */
    void (*quantize_f32_bytes)(uint8_t *out, const float *x, size_t n, qc_grid_run g);
    /* Dequantizes n int8 (is_signed) or uint8 values: (q - zero_point) * scale. */
    void (*dequantize_bytes_f32)(float *out, const uint8_t *q, size_t n, int is_signed, qc_grid_run g);
    /* Quantizes and dequantizes n floats; out may alias x. */
    void (*fake_quantize_f32)(float *out, const float *x, size_t n, qc_grid_run g);
    /* One tile of the simulator: inputs x[0..n) against the lanes' weights q[i * QC_ACCUM_LANES + lane];
     * [lo, hi] = [-2^(P-1), 2^(P-1) - 1] with P <= 32; every exact partial sum below 2^62 in magnitude.
     * `fits`: the caller knows no lane can leave [lo, hi] (their worst cases fit), so the registers equal
     * the exact sums and only those are computed. */
    void (*accum_tile)(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                       int fits);
} qc_kernels;

/* The lane kernels. */
void qc__accum_tile_ref(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                        int fits);
void qc__accum_tile_avx2(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                         int fits);
void qc__accum_tile_avx512(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                           int fits);

/* The table of a resolved kernel set (REF, AVX2 or AVX512; a set not built falls back to REF). */
const qc_kernels *qc__kernels_for(qc_arch arch);

extern const qc_kernels qc__kernels_ref;
extern const qc_kernels qc__kernels_avx2;
extern const qc_kernels qc__kernels_avx512;

#endif
