/* ai.qcore.LQGemm: a fully-connected layer with learned non-uniform (LQ) weights and inputs, run on
 * libqcore's bit-serial kernels (qc_bitserial_gemm / qc_bitserial_gemv), which encode the float input into
 * bit-planes on their input side. Inputs and attributes: qc_model.h, "The ai.qcore domain".
 * No layer runs on qc_int8_gemm instead, however large Kw Ka: the node's contract is the sum over plane
 * pairs of w_basis[o, i] x_basis[j] D_ij, each D_ij an exact integer, and one int8 product of level codes
 * gives only sum 2^(i+j) D_ij (learned bases are not powers of two apart), while Kw Ka int8 products of
 * single planes move 8 times the bits of the popcount kernel for the same D_ij. */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "qcore/qc_kernels.h"

enum { LQ_X, LQ_W_PLANES, LQ_W_BASIS, LQ_X_BASIS, LQ_BIAS };

static int has_bias(const qce_call *call)
{
    return call->num_inputs > LQ_BIAS && call->inputs[LQ_BIAS] != NULL;
}

static qc_status code_attribute(const qce_call *call, const char *name, int64_t fallback, qc_lq_code *out)
{
    int64_t v = qce__attr_int(call, name, fallback);
    if (v != 0 && v != 1) return qce__fail(call, QC_ERR_INVALID_ARG, "attribute %s = %lld (expected 0 or 1)", name, (long long)v);
    *out = v ? QC_LQ_SIGNED : QC_LQ_UNSIGNED;
    return QC_OK;
}

/* Bytes per plane row of the dense UINT8 form of W_planes. */
static int64_t dense_bytes(int64_t n)
{
    return (n + 7) / 8;
}

static int dense_form(const qce_call *call)
{
    return call->inputs[LQ_W_PLANES]->tensor.dtype == QC_DT_U8;
}

/* Shapes in the node's terms (the kernel's own messages name its arguments, not the node's inputs). */
static qc_status check_shapes(const qce_call *call, int64_t n, int64_t *outputs)
{
    const qc_tensor *planes = &call->inputs[LQ_W_PLANES]->tensor, *w_basis = &call->inputs[LQ_W_BASIS]->tensor;
    const qc_tensor *x_basis = &call->inputs[LQ_X_BASIS]->tensor;
    int64_t row = dense_form(call) ? dense_bytes(n) : qc_lq_plane_words(n);
    if (planes->ndim != 3 || planes->dims[1] < 1 || planes->dims[1] > QC_LQ_MAX_BITS || planes->dims[2] != row)
        return qce__fail(call, QC_ERR_SHAPE,
                         "W_planes must be [O, Kw, %lld] with Kw in 1..%d (%lld %s per plane for X's last "
                         "dimension %lld)", (long long)row, QC_LQ_MAX_BITS, (long long)row,
                         dense_form(call) ? "bytes" : "words", (long long)n);
    int64_t o = planes->dims[0], kw = planes->dims[1];
    if (w_basis->ndim != 2 || w_basis->dims[0] != o || w_basis->dims[1] != kw)
        return qce__fail(call, QC_ERR_SHAPE, "W_basis must be [O, Kw] = [%lld, %lld]", (long long)o, (long long)kw);
    if (x_basis->ndim != 1 || x_basis->dims[0] < 1 || x_basis->dims[0] > QC_LQ_MAX_BITS)
        return qce__fail(call, QC_ERR_SHAPE, "X_basis must be [Ka] with Ka in 1..%d", QC_LQ_MAX_BITS);
    if (has_bias(call) && qce__numel(&call->inputs[LQ_BIAS]->tensor) != o)
        return qce__fail(call, QC_ERR_SHAPE, "B must hold O = %lld values", (long long)o);
    *outputs = o;
    return QC_OK;
}

/* The kernels' identities count every bit of a plane, so bits past element n must be 0 (qc_lq_pack's
 * padding); a model from elsewhere may hold anything there. Rows of `row_bytes` bytes; the words of the
 * INT64 form are read as their little-endian bytes, which is how the dense form lays them out. */
static qc_status check_padding(const qce_call *call, int64_t n, int64_t row_bytes)
{
    const qc_tensor *planes = &call->inputs[LQ_W_PLANES]->tensor;
    int64_t rows = planes->dims[0] * planes->dims[1], first = n >> 3;
    const uint8_t *b = planes->data;
    uint8_t partial = (uint8_t)((n & 7) ? 0xffu << (n & 7) : 0xffu); /* the bits of byte `first` past n */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = first; k < row_bytes; k++)
            if (b[r * row_bytes + k] & (k == first ? partial : 0xffu))
                return qce__fail(call, QC_ERR_INVALID_ARG,
                                 "W_planes: plane row %lld has bits set past element %lld (padding must be 0)",
                                 (long long)r, (long long)n);
    return QC_OK;
}

/* The dense rows widened to the kernels' rows of qc_lq_plane_words(n) words, zero-padded. */
static void widen_planes(uint64_t *out, const qce_call *call, int64_t n)
{
    const qc_tensor *planes = &call->inputs[LQ_W_PLANES]->tensor;
    int64_t rows = planes->dims[0] * planes->dims[1], bytes = dense_bytes(n), words = qc_lq_plane_words(n);
    for (int64_t r = 0; r < rows; r++) {
        memset(out + r * words, 0, (size_t)words * sizeof(uint64_t));
        memcpy(out + r * words, (const uint8_t *)planes->data + r * bytes, (size_t)bytes);
    }
}

/* What the node keeps when W_planes, the bases and the bias are constants (redone when one is replaced):
 * that the padding passed check_padding for rows of n, the dense form widened to the kernels' rows, the
 * planes interleaved for the few-row product (qc_bitserial_interleave), and the qc_bitserial_layer over
 * them. At batch 1 the padding scan and the interleaving each cost as much as the product, and the
 * per-call checks of the bases and bias a fifth of it; computed inputs are checked (and W_planes widened)
 * on every run, through qc_bitserial_gemm. */
typedef struct lq_prepared {
    int64_t checked_n; /* -1 until check_padding passes */
    int64_t groups;    /* of the interleaved planes, 0 when they are not kept */
    qc_bitserial_layer *layer; /* for rows of checked_n, made on the first run that needs it, or NULL */
} lq_prepared;

/* The derived data's release (qce_derived.release): the layer is the one thing it owns. */
static void release_prepared(void *data)
{
    lq_prepared *prep = data;
    qc_bitserial_layer_free(prep->layer);
    prep->layer = NULL;
}

/* The weights as the kernels take them (zeroed by the caller). `owned` holds widened planes made for this
 * run only; the caller frees it. */
typedef struct lq_weights {
    qc_tensor planes;      /* INT64 [O, Kw, qc_lq_plane_words(n)] */
    qc_tensor interleaved; /* valid when have_interleaved */
    int have_interleaved;
    uint64_t *owned;
    qc_bitserial_layer *layer; /* the kept layer (all its inputs constant): the run needs nothing else */
} lq_weights;

static qc_status planes_view(const qce_call *call, qc_tensor *t, void *data, int64_t n)
{
    const qc_tensor *planes = &call->inputs[LQ_W_PLANES]->tensor;
    int64_t dims[3] = {planes->dims[0], planes->dims[1], qc_lq_plane_words(n)};
    qc_status st = qc_tensor_init(t, data, QC_DT_I64, 3, dims, NULL);
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

static int64_t row_bytes(const qce_call *call, int64_t n)
{
    return dense_form(call) ? dense_bytes(n) : qc_lq_plane_words(n) * 8;
}

/* A computed W_planes: checked, and widened into a buffer of this run when dense. */
static qc_status weights_per_run(const qce_call *call, int64_t n, lq_weights *w)
{
    QCE_TRY(check_padding(call, n, row_bytes(call, n)));
    if (!dense_form(call)) return planes_view(call, &w->planes, call->inputs[LQ_W_PLANES]->tensor.data, n);
    const qc_tensor *planes = &call->inputs[LQ_W_PLANES]->tensor;
    w->owned = malloc((size_t)(planes->dims[0] * planes->dims[1] * qc_lq_plane_words(n)) * sizeof(uint64_t) + 1);
    if (w->owned == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the widened W_planes");
    widen_planes(w->owned, call, n);
    return planes_view(call, &w->planes, w->owned, n);
}

/* The layer of qc_bitserial_layer_create over the kept planes and the constant bases and bias, made once
 * per W_planes and n: a batch-1 run then skips every check and derivation that depends on them alone. */
static qc_status make_layer(const qce_call *call, int64_t n, lq_prepared *prep, const lq_weights *w)
{
    qc_lq_code x_code = QC_LQ_UNSIGNED, w_code = QC_LQ_SIGNED;
    QCE_TRY(code_attribute(call, "x_signed", 0, &x_code));
    QCE_TRY(code_attribute(call, "w_signed", 1, &w_code));
    const qc_tensor *w_basis = &call->inputs[LQ_W_BASIS]->tensor, *x_basis = &call->inputs[LQ_X_BASIS]->tensor;
    qc_tensor bias;
    int64_t outputs = w->planes.dims[0];
    qc_status st = has_bias(call) ? qc_tensor_init(&bias, call->inputs[LQ_BIAS]->tensor.data, QC_DT_F32, 1, &outputs,
                                                   NULL)
                                  : QC_OK;
    if (st == QC_OK)
        st = qc_bitserial_layer_create(&prep->layer, call->ctx, n, x_basis, x_code, &w->planes,
                                       w->have_interleaved ? &w->interleaved : NULL, w_basis, w_code,
                                       has_bias(call) ? &bias : NULL);
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

static qc_status prepare_weights(const qce_call *call, int64_t n, lq_weights *w)
{
    const qc_tensor *planes = &call->inputs[LQ_W_PLANES]->tensor;
    int64_t groups = qc_bitserial_interleaved_groups(planes->dims[0], planes->dims[1]), words = qc_lq_plane_words(n);
    size_t head = (sizeof(lq_prepared) + 63) / 64 * 64;
    size_t widened = dense_form(call) ? (size_t)(planes->dims[0] * planes->dims[1] * words) * sizeof(uint64_t) : 0;
    const size_t sources[4] = {LQ_W_PLANES, LQ_W_BASIS, LQ_X_BASIS, LQ_BIAS};
    int fresh;
    unsigned char *kept = qce__derived(call, head + widened + (size_t)(groups * words * 8) * sizeof(uint64_t), sources,
                                       4, &fresh);
    if (fresh < 0) return QC_ERR_OUT_OF_MEMORY;
    if (kept == NULL) return weights_per_run(call, n, w);
    lq_prepared *prep = (lq_prepared *)kept;
    if (fresh) {
        prep->checked_n = -1, prep->groups = 0, prep->layer = NULL;
        call->derived->release = release_prepared;
    }
    if (prep->checked_n == n && prep->layer != NULL) {
        w->layer = prep->layer;
        return QC_OK;
    }
    if (prep->checked_n != n) { /* the padding first: the widened planes and the interleaving depend on it */
        QCE_TRY(check_padding(call, n, row_bytes(call, n)));
        if (widened) widen_planes((uint64_t *)(kept + head), call, n);
        release_prepared(prep);
        prep->checked_n = n, prep->groups = 0;
    }
    QCE_TRY(planes_view(call, &w->planes, widened ? (void *)(kept + head) : planes->data, n));
    int64_t dims[3] = {groups, words, 8};
    qc_status st = qc_tensor_init(&w->interleaved, kept + head + widened, QC_DT_I64, 3, dims, NULL);
    if (st == QC_OK && prep->groups != groups) {
        st = qc_bitserial_interleave(call->ctx, &w->interleaved, &w->planes);
        prep->groups = st == QC_OK ? groups : 0;
    }
    if (st != QC_OK) return qce__fail(call, st, "%s", qc_last_error());
    w->have_interleaved = prep->groups == groups;
    QCE_TRY(make_layer(call, n, prep, w));
    w->layer = prep->layer;
    return QC_OK;
}

/* The interleaved product when the node keeps the planes interleaved (no horizontal sums per dot product:
 * faster than popcount_gemm's register tiles at every batch measured, 1 to 64 rows); else one batch row
 * runs the GEMV, whose work is spread over the outputs rather than the rows. The session's context gives
 * the threads and the kernel set; every path gives the same bits. */
static qc_status run_kernel(const qce_call *call, qc_tensor *y, const qc_tensor *x, qc_lq_code x_code, qc_lq_code w_code,
                            const qc_tensor *bias, const lq_weights *w)
{
    const qc_tensor *x_basis = &call->inputs[LQ_X_BASIS]->tensor, *planes = &w->planes;
    const qc_tensor *w_basis = &call->inputs[LQ_W_BASIS]->tensor;
    qc_status st;
    if (w->have_interleaved) {
        st = qc_bitserial_gemm_interleaved(call->ctx, y, x, x_basis, x_code, planes, &w->interleaved, w_basis, w_code,
                                           bias);
    } else if (x->dims[0] == 1) {
        qc_tensor x_row, y_row;
        st = qc_tensor_init(&x_row, x->data, QC_DT_F32, 1, &x->dims[1], NULL);
        if (st == QC_OK) st = qc_tensor_init(&y_row, y->data, QC_DT_F32, 1, &y->dims[1], NULL);
        if (st == QC_OK) st = qc_bitserial_gemv(call->ctx, &y_row, &x_row, x_basis, x_code, planes, w_basis, w_code, bias);
    } else {
        st = qc_bitserial_gemm(call->ctx, y, x, x_basis, x_code, planes, w_basis, w_code, bias);
    }
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

/* Y [rows, O] from X [rows, n] (rows may be 0). */
static qc_status run_rows(const qce_call *call, const qc_tensor *x, int64_t n, int64_t outputs, qc_lq_code x_code,
                          qc_lq_code w_code, const lq_weights *weights)
{
    int64_t rows = qce__numel(x) / n;
    if (rows == 0) return QC_OK;
    /* views of the shapes the kernels take: X [rows, n], Y [rows, O], B [O] */
    qc_tensor x_matrix, y_matrix, bias;
    int64_t x_dims[2] = {rows, n}, y_dims[2] = {rows, outputs};
    qc_status st = qc_tensor_init(&x_matrix, x->data, QC_DT_F32, 2, x_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&y_matrix, call->outputs[0]->tensor.data, QC_DT_F32, 2, y_dims, NULL);
    if (st == QC_OK && has_bias(call)) st = qc_tensor_init(&bias, call->inputs[LQ_BIAS]->tensor.data, QC_DT_F32, 1, &outputs, NULL);
    if (st != QC_OK) return qce__fail(call, st, "%s", qc_last_error());
    return run_kernel(call, &y_matrix, &x_matrix, x_code, w_code, has_bias(call) ? &bias : NULL, weights);
}

/* Y [..., O] = LQ(X [..., n]) LQ(W)^T (+ B). */
static qc_status op_lq_gemm(const qce_call *call)
{
    QCE_TRY(qce__expect_input(call, LQ_X, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, LQ_W_PLANES, QCE_DT(QC_DT_I64) | QCE_DT(QC_DT_U8)));
    QCE_TRY(qce__expect_input(call, LQ_W_BASIS, QCE_DT(QC_DT_F32)));
    QCE_TRY(qce__expect_input(call, LQ_X_BASIS, QCE_DT(QC_DT_F32)));
    if (has_bias(call)) QCE_TRY(qce__expect_input(call, LQ_BIAS, QCE_DT(QC_DT_F32)));
    const qc_tensor *x = &call->inputs[LQ_X]->tensor;
    if (x->ndim < 1 || x->dims[x->ndim - 1] < 1) return qce__fail(call, QC_ERR_SHAPE, "X must have a last dimension of at least 1");
    int64_t n = x->dims[x->ndim - 1], outputs = 0, dims[QC_MAX_DIMS];
    QCE_TRY(check_shapes(call, n, &outputs));
    lq_weights weights;
    memset(&weights, 0, sizeof weights);
    qce__copy_ints(dims, x->dims, (size_t)x->ndim);
    dims[x->ndim - 1] = outputs;
    qc_status st = prepare_weights(call, n, &weights);
    if (st == QC_OK) st = qce__output(call, 0, QC_DT_F32, x->ndim, dims);
    if (st == QC_OK && weights.layer != NULL) { /* the layer holds the codes: no attribute lookups per run */
        st = qc_bitserial_layer_run(weights.layer, call->ctx, &call->outputs[0]->tensor, x);
        if (st != QC_OK) st = qce__fail(call, st, "%s", qc_last_error());
    } else if (st == QC_OK) {
        qc_lq_code x_code = QC_LQ_UNSIGNED, w_code = QC_LQ_SIGNED;
        st = code_attribute(call, "x_signed", 0, &x_code);
        if (st == QC_OK) st = code_attribute(call, "w_signed", 1, &w_code);
        if (st == QC_OK) st = run_rows(call, x, n, outputs, x_code, w_code, &weights);
    }
    free(weights.owned);
    return st;
}

const qce_op qce__lq_ops[] = {
    {"ai.qcore.LQGemm", op_lq_gemm},
    {NULL, NULL},
};
