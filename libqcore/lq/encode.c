/* Values to codes, codes to levels, codes to bit-planes (qc_lq.h). */
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "lq/lq.h"

int64_t qc_lq_plane_words(int64_t n)
{
    return n <= 0 ? 0 : (n + 511) / 512 * 8;
}

/* The basis row that applies to data row r: its own, or the only one. */
static const float *basis_row(const qc_tensor *basis, int64_t r, int bits)
{
    return (const float *)basis->data + (basis->dims[0] == 1 ? 0 : r) * bits;
}

/* The checks encode and decode share: `in` [R, n] of in_dtype, `out` the same shape of out_dtype, a basis
 * per row or one for all; *bits receives K. */
static qc_status check_row_call(int *bits, const qc_ctx *ctx, const qc_tensor *out, qc_dtype out_dtype,
                                const char *out_name, const qc_tensor *in, qc_dtype in_dtype, const char *in_name,
                                const qc_tensor *basis, qc_lq_code code, const char *function)
{
    if (ctx == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'ctx' is NULL");
    QC_TRY(qc__lq_check_code(code, function, "code"));
    QC_TRY(qc__lq_check_matrix(in, in_dtype, -1, -1, function, in_name));
    QC_TRY(qc__lq_check_matrix(out, out_dtype, in->dims[0], in->dims[1], function, out_name));
    return qc__lq_check_basis(basis, in->dims[0], 1, bits, function, "basis");
}

qc_status qc_lq_encode(qc_ctx *ctx, qc_tensor *codes, const qc_tensor *x, const qc_tensor *basis, qc_lq_code code)
{
    int bits;
    QC_TRY(check_row_call(&bits, ctx, codes, QC_DT_U8, "codes", x, QC_DT_F32, "x", basis, code, __func__));
    QC_TRY(qc__tensor_check_finite(x, __func__, "x"));
    int64_t rows = x->dims[0], n = x->dims[1];
#pragma omp parallel for num_threads(qc__ctx_threads(ctx)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        qc_lq_table t;
        qc__lq_table(&t, basis_row(basis, r, bits), bits, code);
        const float *xr = (const float *)x->data + r * n;
        uint8_t *cr = (uint8_t *)codes->data + r * n;
        for (int64_t k = 0; k < n; k++) cr[k] = t.code[qc__lq_index(&t, xr[k])];
    }
    return QC_OK;
}

/* QC_ERR_INVALID_ARG naming the first code that is not below 2^bits. */
static qc_status check_codes(const qc_tensor *codes, int bits, const char *function)
{
    const uint8_t *c = codes->data;
    int64_t n = qc_tensor_numel(codes);
    for (int64_t i = 0; i < n; i++)
        if (c[i] >> bits)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'codes': element %lld is %u, not below 2^%d",
                              (long long)i, (unsigned)c[i], bits);
    return QC_OK;
}

qc_status qc_lq_decode(qc_ctx *ctx, qc_tensor *values, const qc_tensor *codes, const qc_tensor *basis, qc_lq_code code)
{
    int bits;
    QC_TRY(check_row_call(&bits, ctx, values, QC_DT_F32, "values", codes, QC_DT_U8, "codes", basis, code, __func__));
    QC_TRY(check_codes(codes, bits, __func__));
    int64_t rows = codes->dims[0], n = codes->dims[1];
#pragma omp parallel for num_threads(qc__ctx_threads(ctx)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float by_code[QC_LQ_MAX_LEVELS];
        for (unsigned c = 0; c < (1u << bits); c++) by_code[c] = (float)qc__lq_level(basis_row(basis, r, bits), bits, code, c);
        const uint8_t *cr = (const uint8_t *)codes->data + r * n;
        float *vr = (float *)values->data + r * n;
        for (int64_t k = 0; k < n; k++) vr[k] = by_code[cr[k]];
    }
    return QC_OK;
}

qc_status qc_lq_pack(qc_ctx *ctx, qc_tensor *planes, const qc_tensor *codes)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(planes);
    QC_TRY(qc__lq_check_matrix(codes, QC_DT_U8, -1, -1, __func__, "codes"));
    QC_TRY(qc__tensor_expect(planes, __func__, "planes", QC_DT_I64));
    int64_t rows = codes->dims[0], n = codes->dims[1], words = qc_lq_plane_words(n);
    char shape[160];
    qc__shape_string(shape, sizeof shape, planes->ndim, planes->dims);
    if (planes->ndim != 3 || planes->dims[0] != rows || planes->dims[2] != words)
        return QC_FAIL(QC_ERR_SHAPE, "argument 'planes': expected [%lld, K, %lld] for codes [%lld, %lld], got %s",
                       (long long)rows, (long long)words, (long long)rows, (long long)n, shape);
    if (planes->dims[1] < 1 || planes->dims[1] > QC_LQ_MAX_BITS)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'planes': K = dims[1] = %lld, expected 1..%d",
                       (long long)planes->dims[1], QC_LQ_MAX_BITS);
    int bits = (int)planes->dims[1];
    QC_TRY(check_codes(codes, bits, __func__));
#pragma omp parallel for num_threads(qc__ctx_threads(ctx)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        uint64_t *pr = (uint64_t *)planes->data + r * bits * words;
        const uint8_t *cr = (const uint8_t *)codes->data + r * n;
        for (int64_t i = 0; i < bits * words; i++) pr[i] = 0;
        for (int64_t k = 0; k < n; k++)
            for (int j = 0; j < bits; j++) pr[j * words + (k >> 6)] |= (uint64_t)((cr[k] >> j) & 1u) << (k & 63);
    }
    return QC_OK;
}
