/* Internal: the scalar grid operations, shared by the reference kernels and the tails of the vector
 * kernels so that every kernel set rounds in exactly one way. */
#ifndef QC_KERNELS_QUANT_REF_H
#define QC_KERNELS_QUANT_REF_H

#include <math.h>

#include "kernels/dispatch.h"

/* ONNX QuantizeLinear on one value: float division, round half to even (rintf under the default
 * rounding mode), zero point added, saturated. Clamping before the conversion keeps huge quotients
 * out of undefined int conversions. */
static inline int32_t qc__quantize_one(float x, qc_grid_run g)
{
    float v = rintf(x / g.scale) + (float)g.zero_point;
    v = fminf(fmaxf(v, (float)g.qmin), (float)g.qmax);
    return (int32_t)v;
}

static inline float qc__dequantize_one(int32_t q, qc_grid_run g)
{
    return (float)(q - g.zero_point) * g.scale;
}

#endif
