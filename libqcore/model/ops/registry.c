/* The executor's op registry: (domain, op type) -> kernel, from each op file's table. */
#include <string.h>

#include "ops/ops.h"

static const qce_op *const onnx_tables[] = {
    qce__elementwise_ops, qce__linear_ops, qce__shape_ops, qce__nn_ops, qce__reduce_ops, qce__quant_ops,
};

qce_kernel qce__find_kernel(const char *domain, const char *op_type)
{
    if (domain[0] != '\0' && strcmp(domain, "ai.onnx") != 0) return NULL; /* other domains: later */
    for (size_t t = 0; t < sizeof onnx_tables / sizeof onnx_tables[0]; t++)
        for (const qce_op *op = onnx_tables[t]; op->name; op++)
            if (strcmp(op->name, op_type) == 0) return op->kernel;
    return NULL;
}
