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

/* What the bit-serial kernels' input side needs to encode floats into bit-planes (qc_lq.h's rule): a value
 * x takes sorted level #{t : x >= lower[t]}, whose code is code[index]. lower[t] is the smallest float
 * above threshold t (a double), so that float comparisons give exactly the double rule x > threshold. */
typedef struct qc_plane_encoder {
    int bits;        /* K, 1..4 */
    int count;       /* 2^K levels */
    float lower[15];
    int32_t code[16];
} qc_plane_encoder;

/* A product of rows two by two (popcount_gemm, int8_gemm): see the fields of qc_kernels. */
typedef void qc_row_gemm(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                         int64_t words, int op);
typedef qc_row_gemm *qc_row_gemm_fn;

/* Counts against weights interleaved eight rows to a vector (popcount_gemv_il of qc_kernels). */
typedef void qc_row_gemv_il(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                            int64_t words, int64_t live, int op);
typedef qc_row_gemv_il *qc_row_gemv_il_fn;

/* The scaling step of the bit-serial products (lq_scale of qc_kernels). */
typedef void qc_lq_scale(float *y, const int32_t *count, int64_t ldc, const float *wb, const int32_t *w_pop, int kw,
                         int ka, const int64_t *base, int64_t scale, const float *xb, const float *bias,
                         int64_t outputs);
typedef qc_lq_scale *qc_lq_scale_fn;

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
    /* The bit-serial core: c[p * ldc + q] = sum over w < words of popcount(a[p][w] OP b[q][w]) for p < np,
     * q < nq, rows of `words` words (a multiple of 8) stored one after another; OP is AND (op 0) or XOR
     * (op 1). Each count fits an int32 because rows hold fewer than 2^31 bits (checked by the callers). */
    qc_row_gemm_fn popcount_gemm;
    /* c[p * ldc + q] = sum over the 8 words bytes of row p of a (uint8) times row q of b (int8), exactly
     * in int32 (rows of fewer than 65536 bytes, zero padded to `words` words, a multiple of 8); `op` is
     * QC_INT8_DOT (the shape of popcount_gemm, so that both share one tile loop). */
    qc_row_gemm_fn int8_gemm;
    /* Writes the K bit-planes of one row (planes[K][words], all words written, padding 0) for finite x[n],
     * and returns whether x[n] was all finite (when not, the planes are unspecified): the encoder reads
     * every value anyway, so that a caller can skip a separate scan of its input. */
    int (*encode_planes)(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e);
    /* One input row's outputs of the bit-serial products from its counts, for o < outputs:
     *     sum = 0.0; for i < kw, then j < ka:
     *         sum += ((double)wb[o * kw + i] * (double)xb[j]) * (double)D,
     *         D = base[j] + scale * count[j * ldc + o * kw + i] - w_pop[o * kw + i]
     *     y[o] = (float)sum + bias[o]
     * (no w_pop term when it is NULL, no bias add when it is NULL), each with exactly these double
     * operations in this order (no fused multiply-add), so that every kernel set gives the same bits. The
     * optimized entries need rows of n < 2^30 (|base|, |scale * count| and w_pop at most 2 n);
     * qc__lq_scale_ref takes any n < 2^31. One call for all Kw Ka plane pairs keeps each output's sum in a
     * register instead of a memory pass per pair. */
    qc_lq_scale_fn lq_scale;
    /* popcount_gemm's counts with b interleaved (qc_bitserial_interleave): word w of row q at
     * b[((q / 8) * words + w) * 8 + q % 8], rows past nq in the last group zero, over words 0 .. live - 1
     * only (live <= words; the words past it are zero padding on both sides, never read). One broadcast word of a
     * against eight rows of b per vector leaves each row's count in its own lane, so that short rows (a
     * GEMV's) need no horizontal sums. NULL in a set without one (callers use popcount_gemm). */
    qc_row_gemv_il_fn popcount_gemv_il;
} qc_kernels;

/* The lane kernels. */
void qc__accum_tile_ref(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                        int fits);
void qc__accum_tile_avx2(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                         int fits);
void qc__accum_tile_avx512(qc_accum_lanes *out, const int32_t *x, const int32_t *q, int64_t n, int64_t lo, int64_t hi,
                           int fits);

/* The row products of the tile loop: popcounts of AND or XOR, or int8 sums of products (int8_gemm). */
enum { QC_POPCOUNT_AND = 0, QC_POPCOUNT_XOR = 1, QC_INT8_DOT = 2 };

/* The table of a resolved kernel set (REF, AVX2 or AVX512; a set not built falls back to REF). */
const qc_kernels *qc__kernels_for(qc_arch arch);

/* The popcount_gemm of kernel set `arch`: AVX512's needs VPOPCNTDQ as well, and without it this is
 * AVX2's. */
qc_row_gemm_fn qc__popcount_gemm_for(qc_arch arch);

/* The popcount_gemv_il of kernel set `arch` (AVX512's needs VPOPCNTDQ as well), or NULL. */
qc_row_gemv_il_fn qc__popcount_gemv_il_for(qc_arch arch);

/* The int8_gemm of kernel set `arch`: AVX512's needs VNNI as well, and without it this is AVX2's. */
qc_row_gemm_fn qc__int8_gemm_for(qc_arch arch);

qc_row_gemm qc__int8_gemm_ref, qc__int8_gemm_avx2, qc__int8_gemm_avx512;
qc_row_gemm qc__popcount_gemm_ref, qc__popcount_gemm_avx2, qc__popcount_gemm_avx512;
qc_row_gemv_il qc__popcount_gemv_il_avx512;

qc_lq_scale qc__lq_scale_ref, qc__lq_scale_avx512;

int qc__encode_planes_ref(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e);
int qc__encode_planes_avx2(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e);
int qc__encode_planes_avx512(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e);

extern const qc_kernels qc__kernels_ref;
extern const qc_kernels qc__kernels_avx2;
extern const qc_kernels qc__kernels_avx512;

#endif
