/*
 * qc_kernels.h: bit-serial matrix products over the bit-planes of qc_lq.h, and an exact int8 product for
 * formats where bit-serial loses (Kw Ka large). Since 1.2.
 *
 * A weight W [O, n] is stored as Kw bit-planes per row (w_planes i64 [O, Kw, W], qc_lq_pack) with a basis
 * per row (w_basis f32 [O, Kw]); an input X [M, n] as Ka bit-planes per row with a basis for all rows
 * (f32 [Ka]) or one per row (f32 [M, Ka]). Kw and Ka are 1..4, each side's codes are QC_LQ_SIGNED (+-1) or
 * QC_LQ_UNSIGNED ({0,1}), W = qc_lq_plane_words(n), and both sides must have been packed from rows of the
 * same length n (the padding bits are 0). The product is
 *     Y[m, o] = sum_i sum_j w_basis[o, i] x_basis[m, j] D[m, o, i, j] (+ bias[o])
 * where D[m, o, i, j] = <b_i(w_o), b_j(x_m)> is the dot product of the code values of plane i of row o and
 * plane j of row m, an exact integer found from one popcount per word pair:
 *     +-1 . +-1:     n - 2 popcount(w XOR x)
 *     {0,1} . +-1:   2 popcount(w AND x) - popcount(the {0,1} side)
 *     {0,1} . {0,1}: popcount(w AND x)
 * The scaling is one fixed sum in double per output, rounded once to f32; the bias is added in float
 * after it. So every kernel set (QC_ARCH ref, avx2, avx512 with VPOPCNTDQ; avx512 without it runs the
 * avx2 kernel) and every thread count gives the same bits.
 *
 * qc_bitserial_gemm encodes X's rows into bit-planes itself (qc_lq_encode's rule), a block of rows at a
 * time inside the product, so no planes of X are ever stored.
 *
 * Errors: QC_ERR_INVALID_ARG (NULL, Kw or Ka outside 1..4, an unknown code), QC_ERR_DTYPE, QC_ERR_LAYOUT
 * (not C-contiguous), QC_ERR_SHAPE (each message names the argument and the shapes), QC_ERR_NUMERIC (NaN or
 * Inf in x, a basis or the bias; the message names the element), QC_ERR_OVERFLOW (n beyond 2^31 - 1),
 * QC_ERR_OUT_OF_MEMORY. Outputs are written only when the call succeeds.
 * Threads: blocks of rows of X and of W are spread over ctx's threads.
 */
#ifndef QC_KERNELS_H
#define QC_KERNELS_H

#include "qcore/qc_lq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The integer dot products alone. Arguments, all borrowed:
 *   dots      out: i32 [M, O, Kw, Ka];
 *   x_planes  i64 [M, Ka, W];  w_planes  i64 [O, Kw, W];
 *   n         the true row length, 1 .. 64 W (and at most 2^31 - 1). */
QC_API qc_status qc_bitserial_dots(qc_ctx *ctx, qc_tensor *dots, const qc_tensor *x_planes, qc_lq_code x_code,
                                   const qc_tensor *w_planes, qc_lq_code w_code, int64_t n);

/* Y = the scaled product above, from float inputs. Arguments, all borrowed:
 *   y         out: f32 [M, O];
 *   x         f32 [M, n], finite, encoded with x_basis (f32 [Ka] or [M, Ka], finite) and x_code;
 *   w_planes  i64 [O, Kw, qc_lq_plane_words(n)];  w_basis f32 [O, Kw], finite;
 *   bias      f32 [O], finite, or NULL. */
QC_API qc_status qc_bitserial_gemm(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *x_basis,
                                   qc_lq_code x_code, const qc_tensor *w_planes, const qc_tensor *w_basis,
                                   qc_lq_code w_code, const qc_tensor *bias);

/* qc_bitserial_gemm for one input vector: y f32 [O], x f32 [n], x_basis f32 [Ka]; the work is spread over
 * W's rows. */
QC_API qc_status qc_bitserial_gemv(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *x_basis,
                                   qc_lq_code x_code, const qc_tensor *w_planes, const qc_tensor *w_basis,
                                   qc_lq_code w_code, const qc_tensor *bias);

/* Weights prepared once for products with few input rows (a GEMV, a small batch): W's bit-rows, O * Kw of
 * them in order (row o * Kw + i is plane i of output o), interleaved eight to a group so that one 512-bit
 * vector holds the same word of eight rows:
 *     w_interleaved[g, k, lane] = w_planes row (8 g + lane), word k;  rows past O * Kw are 0,
 * an i64 [qc_bitserial_interleaved_groups(O, Kw), W, 8] tensor the caller owns. The products below then
 * need no horizontal sums per dot product, which dominate when rows are short. */
QC_API int64_t qc_bitserial_interleaved_groups(int64_t outputs, int64_t kw);
QC_API qc_status qc_bitserial_interleave(qc_ctx *ctx, qc_tensor *w_interleaved, const qc_tensor *w_planes);

/* qc_bitserial_gemm (same arguments, the same results bit for bit) reading the weights' bits from
 * w_interleaved, which must be qc_bitserial_interleave's output for w_planes (its shape is checked, its
 * contents are trusted). Kernel sets without an interleaved kernel (all but AVX-512 with VPOPCNTDQ) read
 * w_planes instead. */
QC_API qc_status qc_bitserial_gemm_interleaved(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *x_basis,
                                               qc_lq_code x_code, const qc_tensor *w_planes,
                                               const qc_tensor *w_interleaved, const qc_tensor *w_basis,
                                               qc_lq_code w_code, const qc_tensor *bias);

/* A bit-serial layer made once for repeated products with the same weights (an inference session's
 * fully-connected layer), since 1.6. */
typedef struct qc_bitserial_layer qc_bitserial_layer;

/* Makes *out: everything that depends only on w_planes, w_interleaved (optional, as for
 * qc_bitserial_gemm_interleaved), the bases, the codes and the bias is checked and derived here (the
 * input encoding rule, the weights' popcounts), so that a run checks only x and y. x_basis is one basis
 * for every row (f32 [Ka]); n is the rows' length. The layer borrows w_planes, w_interleaved, w_basis and
 * bias: they must stay alive and unchanged until qc_bitserial_layer_free. Errors as qc_bitserial_gemm's. */
QC_API qc_status qc_bitserial_layer_create(qc_bitserial_layer **out, qc_ctx *ctx, int64_t n, const qc_tensor *x_basis,
                                           qc_lq_code x_code, const qc_tensor *w_planes,
                                           const qc_tensor *w_interleaved, const qc_tensor *w_basis,
                                           qc_lq_code w_code, const qc_tensor *bias);

/* y [..., O] = the layer's product of x [..., n] (any leading dimensions, the same in both; a 1-D x is one row),
 * bit for bit qc_bitserial_gemm's (or qc_bitserial_gemm_interleaved's) result on x viewed as [rows, n], on
 * ctx's kernel set and threads. */
QC_API qc_status qc_bitserial_layer_run(qc_bitserial_layer *layer, qc_ctx *ctx, qc_tensor *y, const qc_tensor *x);

/* NULL is a no-op. */
QC_API void qc_bitserial_layer_free(qc_bitserial_layer *layer);

/* The exact int8 product for wider formats: y[m, o] = sum_k x[m, k] w[o, k] in int32, x u8 [M, n], w i8 [O, n],
 * y out i32 [M, O], all borrowed, n in 1..65535 (beyond, QC_ERR_OVERFLOW: 255 * 128 * n may not fit).
 * AVX-512 VNNI (VPDPBUSD) when the CPU has it, else AVX2 (bytes widened to 16 bits, VPMADDWD), else the
 * reference loop; all give the same integers. */
QC_API qc_status qc_int8_gemm(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *w);

#ifdef __cplusplus
}
#endif

#endif /* QC_KERNELS_H */
