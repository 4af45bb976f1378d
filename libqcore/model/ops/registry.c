/* The executor's op registry: (domain, op type) -> kernel, from each op file's table. */
#include <string.h>

#include "ops/ops.h"

static const qce_op *const tables[] = {
    qce__elementwise_ops, qce__linear_ops, qce__shape_ops, qce__nn_ops, qce__reduce_ops, qce__quant_ops, qce__quant_int_ops,
    qce__rnn_ops, qce__control_ops, qce__lq_ops, qce__gather_elements_ops,
};

static int is_onnx_domain(const char *domain)
{
    return domain[0] == '\0' || strcmp(domain, "ai.onnx") == 0;
}

/* Whether table entry `name` is (domain, op_type): a bare op type for the ONNX domain, "<domain>.<op type>"
 * for any other. */
static int entry_is(const char *name, const char *domain, const char *op_type)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL) return is_onnx_domain(domain) && strcmp(name, op_type) == 0;
    size_t length = (size_t)(dot - name);
    return !is_onnx_domain(domain) && strlen(domain) == length && strncmp(name, domain, length) == 0 &&
           strcmp(dot + 1, op_type) == 0;
}

qce_kernel qce__find_kernel(const char *domain, const char *op_type)
{
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const qce_op *op = tables[t]; op->name; op++)
            if (entry_is(op->name, domain, op_type)) return op->kernel;
    return NULL;
}
