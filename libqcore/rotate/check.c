/* Argument checks the rotation functions share. */
#include <stdio.h>

#include "core/error.h"
#include "core/tensor_check.h"
#include "rotate/rotate.h"

qc_status qc__square_output(const qc_tensor *out, const char *function)
{
    QC_TRY(qc__tensor_expect_float(out, function, "out"));
    if (out->ndim == 2 && out->dims[0] == out->dims[1] && out->dims[0] >= 1) return QC_OK;
    char shape[128];
    qc__shape_string(shape, sizeof shape, out->ndim, out->dims);
    return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'out' must be a square matrix [n, n] with n >= 1, got %s",
                      shape);
}
