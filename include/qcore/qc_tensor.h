/*
 * qc_tensor.h: the tensor view every qcore function takes, and counter-based random numbers.
 *
 * A qc_tensor describes memory the caller owns (the library borrows it for the duration of a call and
 * keeps no pointer afterwards). Strides are in elements. Packed 4-bit tensors (QC_DT_INT4, QC_DT_UINT4)
 * hold two values per byte, the first in the low nibble, as ONNX stores them, and must be C-contiguous.
 */
#ifndef QC_TENSOR_H
#define QC_TENSOR_H

#include "qcore/qc_core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QC_MAX_DIMS 8

/* Element types. Values are part of the ABI. */
typedef enum qc_dtype {
    QC_DT_F32 = 1,
    QC_DT_F64 = 2,
    QC_DT_I8 = 3,
    QC_DT_U8 = 4,
    QC_DT_I16 = 5,
    QC_DT_I32 = 6,
    QC_DT_I64 = 7,
    QC_DT_INT4 = 8,   /* signed 4-bit, two per byte, low nibble first */
    QC_DT_UINT4 = 9   /* unsigned 4-bit, two per byte, low nibble first */
} qc_dtype;

typedef struct qc_tensor {
    void *data;                       /* borrowed; may be NULL only when the tensor has no element */
    qc_dtype dtype;
    int32_t ndim;                     /* 0 (a scalar) .. QC_MAX_DIMS */
    int64_t dims[QC_MAX_DIMS];        /* dims[0..ndim-1] >= 0; the rest 0 */
    int64_t strides[QC_MAX_DIMS];     /* in elements; strides[0..ndim-1]; the rest 0 */
} qc_tensor;

/* Fills `out` with a view of `data`. `dims` has `ndim` entries (may be NULL when ndim = 0); `strides`
 * has `ndim` entries in elements, or is NULL for C-contiguous. Errors: QC_ERR_INVALID_ARG for a NULL
 * `out`, ndim outside 0..QC_MAX_DIMS, a negative dim, or NULL data with elements; QC_ERR_LAYOUT for
 * data not aligned to its element size (e.g. a float at an odd address) or non-contiguous strides on a
 * packed 4-bit dtype; QC_ERR_DTYPE for an unknown dtype; QC_ERR_OVERFLOW
 * when the element count exceeds INT64_MAX / 8. `data` is borrowed. */
QC_API qc_status qc_tensor_init(qc_tensor *out, void *data, qc_dtype dtype, int ndim, const int64_t *dims,
                                const int64_t *strides);

/* Checks a view made by the caller (by hand or by qc_tensor_init) against the same rules. `name`
 * (borrowed, may be NULL) is the argument name the error message uses. */
QC_API qc_status qc_tensor_check(const qc_tensor *t, const char *name);

/* Number of elements (1 for ndim = 0); -1 when `t` is NULL. */
QC_API int64_t qc_tensor_numel(const qc_tensor *t);

/* 1 when the strides are C-contiguous (dims of extent 1 and empty tensors do not matter), else 0. */
QC_API int qc_tensor_is_contiguous(const qc_tensor *t);

/* Bytes spanned by a C-contiguous tensor of this dtype and shape (4-bit types round up). */
QC_API qc_status qc_tensor_nbytes(size_t *out, const qc_tensor *t);

/* Bits per element (4, 8, 16, 32 or 64); 0 for an unknown dtype. */
QC_API int qc_dtype_bits(qc_dtype dtype);

/* "f32", "f64", "i8", "u8", "i16", "i32", "i64", "int4", "uint4"; "unknown" otherwise. Static. */
QC_API const char *qc_dtype_string(qc_dtype dtype);

/* ---------------------------------------------------------------------------------------------
 * Counter-based random numbers (Philox4x64-10, Salmon et al. 2011). Word i of a stream is a pure
 * function of (seed, stream, i), so any partition of the work over threads gives the same numbers.
 * Word i is lane i mod 4 of Philox4x64-10 with key (seed, stream) and counter (i / 4, 0, 0, 0);
 * this is the sequence numpy.random.Philox(key=[seed, stream]) yields after its counter wraps to 0.
 */

/* Writes words offset .. offset+n-1 of stream `stream` under `seed` to `out` (borrowed, n words). */
QC_API qc_status qc_random_bits(uint64_t *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);

/* Fills a C-contiguous f32 or f64 tensor with standard normal draws: element j is
 * sqrt(-2 ln u1) cos(2 pi u2), u1 = (w[2j] >> 11 + 1) 2^-53, u2 = (w[2j+1] >> 11) 2^-53, from the words
 * of `stream` under the context's seed. */
QC_API qc_status qc_random_normal(qc_ctx *ctx, qc_tensor *out, uint64_t stream);

/* Fills a C-contiguous f32 or f64 tensor with uniform draws in [0, 1): element j is (w[j] >> 11) 2^-53
 * for f64 and (w[j] >> 40) 2^-24 for f32, w being the words of `stream` under the context's seed. */
QC_API qc_status qc_random_uniform(qc_ctx *ctx, qc_tensor *out, uint64_t stream);

#ifdef __cplusplus
}
#endif

#endif /* QC_TENSOR_H */
