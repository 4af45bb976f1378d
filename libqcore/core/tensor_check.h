/* Internal: argument checks on tensors, reporting on behalf of the public function `function`. */
#ifndef QC_CORE_TENSOR_CHECK_H
#define QC_CORE_TENSOR_CHECK_H

#include <stdio.h>

#include "qcore/qc_tensor.h"

/* The rules of qc_tensor_check. */
qc_status qc__tensor_check(const qc_tensor *t, const char *function, const char *name);

/* A valid, C-contiguous tensor of exactly `dtype`. */
qc_status qc__tensor_expect(const qc_tensor *t, const char *function, const char *name, qc_dtype dtype);

/* A valid, C-contiguous f32 or f64 tensor. */
qc_status qc__tensor_expect_float(const qc_tensor *t, const char *function, const char *name);

/* Element i of a C-contiguous f32 or f64 tensor, as a double. */
static inline double qc__tensor_float_at(const qc_tensor *t, int64_t i)
{
    return t->dtype == QC_DT_F32 ? (double)((const float *)t->data)[i] : ((const double *)t->data)[i];
}

/* QC_ERR_NUMERIC naming the first NaN or Inf of an f32 or f64 tensor (checked by qc__tensor_expect_float). */
qc_status qc__tensor_check_finite(const qc_tensor *t, const char *function, const char *name);

/* QC_ERR_SHAPE naming both arguments unless `a` and `b` have the same shape. */
qc_status qc__tensor_same_shape(const qc_tensor *a, const qc_tensor *b, const char *function, const char *name_a,
                                const char *name_b);

/* Writes "[d0, d1, ...]" into buf. */
void qc__shape_string(char *buf, size_t size, int ndim, const int64_t *dims);

#endif
