/* qc_int8_gemm: the context's int8_gemm over rows of whole 512-bit vectors, in items of 64 input rows by
 * 128 outputs written straight into Y. When n is not a multiple of 64 the rows are first copied into
 * zero-padded rows (the weights once per call, the inputs a block of 64 rows at a time per thread); when it
 * is, the caller's memory is read as it is (a copy of the weights would cost a GEMV more than its product). Integers, so every kernel set and thread count gives
 * the same result. */
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "core/thread_index.h"
#include "kernels/dispatch.h"
#include "lq/lq.h"
#include "qcore/qc_kernels.h"

enum { ROWS_PER_ITEM = 64, OUTPUTS_PER_ITEM = 128, MAX_LENGTH = 65535 };

/* Fewer multiply-accumulates than this run on the calling thread (qc__ctx_threads_for; a batch-1 MNIST
 * layer, 784 x 512, takes about 5 µs on one core). */
static const double SERIAL_MACS = 1024.0 * 1024;

/* Copies `rows` rows of n bytes into rows of words * 8 bytes, zero padded. */
static void pad_rows(uint64_t *out, int64_t words, const void *in, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++) {
        unsigned char *dst = (unsigned char *)(out + r * words);
        memcpy(dst, (const unsigned char *)in + r * n, (size_t)n);
        memset(dst + n, 0, (size_t)(words * 8 - n));
    }
}

static qc_status check_int8(const qc_tensor *y, const qc_tensor *x, const qc_tensor *w, const char *function)
{
    QC_TRY(qc__lq_check_matrix(x, QC_DT_U8, -1, -1, function, "x"));
    QC_TRY(qc__lq_check_matrix(w, QC_DT_I8, -1, x->dims[1], function, "w"));
    QC_TRY(qc__lq_check_matrix(y, QC_DT_I32, x->dims[0], w->dims[0], function, "y"));
    if (x->dims[1] < 1) return QC_FAIL_IN(function, QC_ERR_SHAPE, "the rows are empty (n = 0)");
    if (x->dims[1] > MAX_LENGTH)
        return QC_FAIL_IN(function, QC_ERR_OVERFLOW,
                          "rows of n = %lld exceed %d: 255 * 128 * n may not fit the int32 result",
                          (long long)x->dims[1], MAX_LENGTH);
    return QC_OK;
}

qc_status qc_int8_gemm(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *w)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(check_int8(y, x, w, __func__));
    /* n bytes are 8 n bits: rows padded as a bit-plane of 8 n bits is, to whole 64-byte vectors */
    int64_t rows = x->dims[0], outputs = w->dims[0], n = x->dims[1], words = qc_lq_plane_words(n * 8);
    int threads = qc__ctx_threads_for(ctx, (double)rows * (double)n * (double)w->dims[0], SERIAL_MACS);
    int padded = n % 64 != 0;
    uint64_t *wp = padded ? aligned_alloc(64, (size_t)(outputs * words * 8 + 64)) : NULL;
    uint64_t *xp = padded ? aligned_alloc(64, (size_t)threads * ROWS_PER_ITEM * (size_t)words * 8) : NULL;
    if (padded && (!wp || !xp)) {
        free(wp);
        free(xp);
        return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for padded copies of %lld + %d x %d rows", (long long)outputs,
                       threads, ROWS_PER_ITEM);
    }
    const uint64_t *w_rows = padded ? wp : (const uint64_t *)w->data;
    if (padded) pad_rows(wp, words, w->data, outputs, n);
    qc_row_gemm_fn gemm = qc__int8_gemm_for(ctx->arch);
    int64_t m_items = (rows + ROWS_PER_ITEM - 1) / ROWS_PER_ITEM;
    int64_t o_items = (outputs + OUTPUTS_PER_ITEM - 1) / OUTPUTS_PER_ITEM;
#pragma omp parallel num_threads(threads)
    {
        uint64_t *mine = padded ? xp + (size_t)qc__thread_index() * ROWS_PER_ITEM * (size_t)words : NULL;
        int64_t copied = -1;
#pragma omp for schedule(static)
        for (int64_t item = 0; item < m_items * o_items; item++) {
            int64_t mi = item / o_items, m0 = mi * ROWS_PER_ITEM, o0 = item % o_items * OUTPUTS_PER_ITEM;
            int64_t mr = rows - m0 < ROWS_PER_ITEM ? rows - m0 : ROWS_PER_ITEM;
            int64_t orr = outputs - o0 < OUTPUTS_PER_ITEM ? outputs - o0 : OUTPUTS_PER_ITEM;
            if (padded && mi != copied) {
                pad_rows(mine, words, (const uint8_t *)x->data + m0 * n, mr, n);
                copied = mi;
            }
            const uint64_t *x_rows = padded ? mine : (const uint64_t *)x->data + m0 * words;
            gemm((int32_t *)y->data + m0 * outputs + o0, outputs, x_rows, mr, w_rows + o0 * words, orr, words, 0);
        }
    }
    free(wp);
    free(xp);
    return QC_OK;
}
