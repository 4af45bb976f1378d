/* Internal: what op kernels share: the table entry type, generic element access, and value moves. */
#ifndef QC_OPS_OPS_H
#define QC_OPS_OPS_H

#include "exec_internal.h"

typedef struct qce_op {
    const char *name;
    qce_kernel kernel;
} qce_op;

#define QCE_TRY(expr)                        \
    do {                                     \
        qc_status qce__st = (expr);          \
        if (qce__st != QC_OK) return qce__st; \
    } while (0)

/* Element i of a tensor of any executor dtype, as a double (exact for every integer a shape holds). */
double qce__load(const qc_tensor *t, int64_t i);

/* Stores v (rounded toward zero for integer dtypes) as element i. */
void qce__store(qc_tensor *t, int64_t i, double v);

/* Output `out` becomes a copy of input `in` (same dtype and shape). */
qc_status qce__copy_input(const qce_call *call, size_t in, size_t out);

/* Moves src's tensor into dst, swapping storage so that both keep owning one buffer each. */
qc_status qce__move_value(qce_value *dst, qce_value *src);

/* Integer input k as a list of int64 (shapes, axes, indices): its count and values in `out` (at most
 * `capacity`). */
qc_status qce__int_list(const qce_call *call, size_t k, int64_t *out, size_t capacity, size_t *count);

/* Whether optional input k was given (within the node's inputs and not omitted). */
int qce__present(const qce_call *call, size_t k);

/* Copies n integers (an attribute's list, which is NULL when empty). */
void qce__copy_ints(int64_t *dst, const int64_t *src, size_t n);

/* An axis attribute or value made non-negative for rank `ndim`, or a failure naming it. */
qc_status qce__axis(const qce_call *call, int64_t axis, int ndim, int *out);

/* The calling thread's index in the current OpenMP team (0 outside one), for per-thread scratch. */
int qce__worker_index(void);

/* Op tables, one per file, each ended by {NULL, NULL}. Names are op types of the ONNX domain, or
 * "<domain>.<op type>" for other domains (op types hold no dots). */
extern const qce_op qce__elementwise_ops[];
extern const qce_op qce__linear_ops[];
extern const qce_op qce__shape_ops[];
extern const qce_op qce__nn_ops[];
extern const qce_op qce__reduce_ops[];
extern const qce_op qce__quant_ops[];
extern const qce_op qce__quant_int_ops[];
extern const qce_op qce__rnn_ops[];
extern const qce_op qce__control_ops[];
extern const qce_op qce__lq_ops[];
extern const qce_op qce__gather_elements_ops[];

#endif
