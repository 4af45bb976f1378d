/* The bit-serial products of qc_kernels.h. The work is cut into items of up to 64 input bit-rows (64 / Ka
 * input rows: 32 KB of planes at n = 4096, which stay in the L1 cache while each weight row streams past
 * them; fewer rows per item left the kernel waiting on the weights) by 128 outputs; the popcount_gemm (or,
 * with interleaved weights, popcount_gemv_il) of the context's kernel set fills an item's counts, and its
 * lq_scale turns each row's counts into dot products and scales them with the same double operations in
 * every kernel set, so the results depend on neither the kernel set nor the thread count. A
 * qc_bitserial_layer does once what depends only on the weights and bases (checks, the encoder, weight
 * popcounts). */
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "core/thread_index.h"
#include "kernels/dispatch.h"
#include "lq/lq.h"
#include "qcore/qc_kernels.h"

enum { BIT_ROWS_PER_ITEM = 64, OUTPUTS_PER_ITEM = 128 };

typedef struct bs_problem {
    qc_row_gemm_fn gemm;
    qc_row_gemv_il_fn gemv_il; /* with w_il, else NULL */
    const uint64_t *w_il;      /* w interleaved (qc_bitserial_interleave), or NULL */
    qc_lq_scale_fn scale;
    int (*encode)(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e);
    int op;                 /* XOR for +-1 on both sides, else AND */
    int64_t n, words, rows, outputs;
    int64_t rows_per_item;  /* BIT_ROWS_PER_ITEM / ka */
    int ka, kw;
    qc_lq_code x_code, w_code;
    const uint64_t *w;      /* [outputs, kw, words] */
    int32_t *w_pop;         /* [outputs * kw]: popcounts of w's bit-rows when w is {0,1} and x is +-1, else NULL */
} bs_problem;

/* Scratch of one thread: an item's input planes, their popcounts and its counts. */
typedef struct bs_scratch {
    uint64_t *x;
    int32_t *x_pop;
    int32_t *counts;
    const uint64_t *ones; /* one row of all-ones words when the input planes' popcounts are needed, else NULL */
} bs_scratch;

static void row_popcounts(int32_t *out, const uint64_t *rows, int64_t count, int64_t words)
{
    for (int64_t r = 0; r < count; r++) {
        int64_t sum = 0;
        for (int64_t w = 0; w < words; w++) sum += __builtin_popcountll(rows[r * words + w]);
        out[r] = (int32_t)sum;
    }
}

/* The identities of qc_kernels.h as one affine map of the count: D = base + scale count - w_pop, with base
 * n (+-1 . +-1), minus the input plane's popcount ({0,1} . +-1) or 0, and w_pop the weight plane's
 * popcount when only the weights are {0,1} (else 0: problem_init leaves w_pop NULL). */
static inline int64_t dot_base(const bs_problem *p, int32_t x_pop)
{
    if (p->op == QC_POPCOUNT_XOR) return p->n;
    return p->x_code == QC_LQ_UNSIGNED && p->w_code == QC_LQ_SIGNED ? -(int64_t)x_pop : 0;
}

static inline int64_t dot_scale(const bs_problem *p)
{
    if (p->op == QC_POPCOUNT_XOR) return -2;
    return p->x_code == QC_LQ_UNSIGNED && p->w_code == QC_LQ_UNSIGNED ? 1 : 2;
}

/* Counts of an item's `rows` input rows (planes x, [rows, ka, words]) against outputs o0 .. o0 + outputs - 1,
 * laid out [rows * ka, outputs * kw]. */
static void item_counts(int32_t *counts, const bs_problem *p, const uint64_t *x, int64_t rows, int64_t o0,
                        int64_t outputs)
{
    if (p->w_il) { /* o0 kw is a multiple of 8: items start at multiples of 128 outputs */
        p->gemv_il(counts, outputs * p->kw, x, rows * p->ka, p->w_il + o0 * p->kw * p->words, outputs * p->kw,
                   p->words, (p->n + 63) / 64, p->op);
        return;
    }
    p->gemm(counts, outputs * p->kw, x, rows * p->ka, p->w + o0 * p->kw * p->words, outputs * p->kw, p->words, p->op);
}

static size_t round64(size_t bytes)
{
    return (bytes + 63) / 64 * 64;
}

/* Scratch that small single-threaded calls (a GEMV's few KB) take from the stack: a malloc and free per
 * call cost as much as a small layer's product. */
enum { LOCAL_SCRATCH = 16384 };

/* Every thread's scratch in one block (s[0] heads it), each part sized to what an item of this problem
 * needs rather than to the largest item. `local` (LOCAL_SCRATCH bytes, 64-byte aligned) serves when the
 * block fits in it; scratch_free(s, local) frees only what was allocated. */
static qc_status scratch_alloc(bs_scratch **out, int threads, const bs_problem *p, int encode, unsigned char *local)
{
    int64_t rows = p->rows < p->rows_per_item ? p->rows : p->rows_per_item;
    size_t bit_rows = (size_t)(rows * p->ka);
    size_t outputs = (size_t)(p->outputs < OUTPUTS_PER_ITEM ? p->outputs : OUTPUTS_PER_ITEM);
    size_t x_bytes = encode ? round64(bit_rows * (size_t)p->words * sizeof(uint64_t)) : 0;
    size_t pop_bytes = round64(bit_rows * sizeof(int32_t));
    size_t count_bytes = round64(bit_rows * outputs * (size_t)p->kw * sizeof(int32_t));
    size_t ones_bytes = p->x_code == QC_LQ_UNSIGNED && p->w_code == QC_LQ_SIGNED ? (size_t)p->words * sizeof(uint64_t) : 0;
    size_t each = x_bytes + pop_bytes + count_bytes;
    size_t head = round64((size_t)threads * sizeof(bs_scratch)) + round64(ones_bytes);
    size_t bytes = head + (size_t)threads * each;
    unsigned char *block = bytes <= LOCAL_SCRATCH ? local : aligned_alloc(64, bytes);
    if (block == NULL) return QC_ERR_OUT_OF_MEMORY;
    bs_scratch *s = (bs_scratch *)block;
    uint64_t *ones = ones_bytes ? (uint64_t *)(block + round64((size_t)threads * sizeof(bs_scratch))) : NULL;
    if (ones) memset(ones, 0xFF, ones_bytes);
    for (int t = 0; t < threads; t++) {
        s[t].ones = ones;
        unsigned char *mine = block + head + (size_t)t * each;
        s[t].x = encode ? (uint64_t *)mine : NULL;
        s[t].x_pop = (int32_t *)(mine + x_bytes);
        s[t].counts = (int32_t *)(mine + x_bytes + pop_bytes);
        memset(s[t].x_pop, 0, pop_bytes);
    }
    *out = s;
    return QC_OK;
}

static void scratch_free(bs_scratch *s, const unsigned char *local)
{
    if ((const unsigned char *)s != local) free(s);
}

/* Fewer binary multiply-accumulates than this run on the calling thread (qc__ctx_threads_for). */
static const double SERIAL_MACS = 4.0 * 1024 * 1024;

static int threads_for(const qc_ctx *ctx, const bs_problem *p)
{
    return qc__ctx_threads_for(ctx, (double)p->rows * (double)p->n * (double)p->outputs * p->kw * p->ka, SERIAL_MACS);
}

/* ---- arguments ------------------------------------------------------------------------------ */

/* i64 planes [rows (any when < 0), K, words] with K in 1..4; *bits receives K. */
static qc_status check_planes(const qc_tensor *t, int64_t rows, int64_t words, int *bits, const char *function,
                              const char *name)
{
    if (t == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s' is NULL", name);
    QC_TRY(qc__tensor_expect(t, function, name, QC_DT_I64));
    if (t->ndim != 3 || (rows >= 0 && t->dims[0] != rows) || t->dims[2] != words) {
        char shape[160];
        qc__shape_string(shape, sizeof shape, t->ndim, t->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': expected [%lld, K, %lld] (-1: any), got %s", name,
                          (long long)rows, (long long)words, shape);
    }
    if (t->dims[1] < 1 || t->dims[1] > QC_LQ_MAX_BITS)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument '%s': K = dims[1] = %lld, expected 1..%d", name,
                          (long long)t->dims[1], QC_LQ_MAX_BITS);
    *bits = (int)t->dims[1];
    return QC_OK;
}

static qc_status check_length(int64_t n, const char *function)
{
    if (n < 1) return QC_FAIL_IN(function, QC_ERR_SHAPE, "the rows are empty (n = %lld)", (long long)n);
    if (n > INT32_MAX)
        return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "rows of n = %lld elements exceed the 2^31 - 1 a count holds",
                          (long long)n);
    return QC_OK;
}

/* Fills what x's and w's sides share: codes, kernel, the popcounts of w's rows when needed. */
static qc_status problem_init(bs_problem *p, const qc_ctx *ctx, int64_t n, int64_t rows, int ka, qc_lq_code x_code,
                              const qc_tensor *w_planes, int kw, qc_lq_code w_code, const char *function)
{
    p->gemm = qc__popcount_gemm_for(ctx->arch);
    p->gemv_il = NULL;
    p->w_il = NULL;
    p->encode = ctx->kernels->encode_planes;
    p->scale = n < (1ll << 30) ? ctx->kernels->lq_scale : qc__lq_scale_ref; /* see qc_kernels.lq_scale */
    p->op = x_code == QC_LQ_SIGNED && w_code == QC_LQ_SIGNED ? QC_POPCOUNT_XOR : QC_POPCOUNT_AND;
    p->n = n;
    p->words = qc_lq_plane_words(n);
    p->rows = rows;
    p->outputs = w_planes->dims[0];
    p->rows_per_item = BIT_ROWS_PER_ITEM / ka;
    p->ka = ka;
    p->kw = kw;
    p->x_code = x_code;
    p->w_code = w_code;
    p->w = w_planes->data;
    p->w_pop = NULL;
    if (x_code != QC_LQ_SIGNED || w_code != QC_LQ_UNSIGNED) return QC_OK; /* no term: w_pop_at gives 0 */
    p->w_pop = malloc((size_t)(p->outputs * kw + 1) * sizeof(int32_t));
    if (!p->w_pop) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for the weights' popcounts");
    row_popcounts(p->w_pop, p->w, p->outputs * kw, p->words);
    return QC_OK;
}

static inline int64_t w_pop_at(const bs_problem *p, int64_t index)
{
    return p->w_pop ? p->w_pop[index] : 0;
}

/* ---- the integer dot products ---------------------------------------------------------------- */

static void dots_item(int32_t *dots, const bs_problem *p, const uint64_t *x, int64_t m0, int64_t rows, int64_t o0,
                      int64_t outputs, const bs_scratch *s)
{
    const uint64_t *xb = x + m0 * p->ka * p->words;
    item_counts(s->counts, p, xb, rows, o0, outputs);
    if (s->ones) p->gemm(s->x_pop, 1, xb, rows * p->ka, s->ones, 1, p->words, QC_POPCOUNT_AND);
    int64_t ldc = outputs * p->kw;
    for (int64_t m = 0; m < rows; m++)
        for (int64_t o = 0; o < outputs; o++)
            for (int i = 0; i < p->kw; i++)
                for (int j = 0; j < p->ka; j++) {
                    int64_t bit_row = m * p->ka + j, col = o * p->kw + i;
                    int64_t d = dot_base(p, s->x_pop[bit_row]) + dot_scale(p) * s->counts[bit_row * ldc + col] -
                                w_pop_at(p, (o0 + o) * p->kw + i);
                    dots[(((m0 + m) * p->outputs + o0 + o) * p->kw + i) * p->ka + j] = (int32_t)d;
                }
}

qc_status qc_bitserial_dots(qc_ctx *ctx, qc_tensor *dots, const qc_tensor *x_planes, qc_lq_code x_code,
                            const qc_tensor *w_planes, qc_lq_code w_code, int64_t n)
{
    int ka, kw;
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(dots);
    QC_TRY(qc__lq_check_code(x_code, __func__, "x_code"));
    QC_TRY(qc__lq_check_code(w_code, __func__, "w_code"));
    QC_TRY(check_length(n, __func__));
    int64_t words = qc_lq_plane_words(n);
    QC_TRY(check_planes(x_planes, -1, words, &ka, __func__, "x_planes"));
    QC_TRY(check_planes(w_planes, -1, words, &kw, __func__, "w_planes"));
    QC_TRY(qc__tensor_expect(dots, __func__, "dots", QC_DT_I32));
    int64_t rows = x_planes->dims[0], outputs = w_planes->dims[0];
    if (dots->ndim != 4 || dots->dims[0] != rows || dots->dims[1] != outputs || dots->dims[2] != kw ||
        dots->dims[3] != ka) {
        char shape[160];
        qc__shape_string(shape, sizeof shape, dots->ndim, dots->dims);
        return QC_FAIL(QC_ERR_SHAPE, "argument 'dots': expected [%lld, %lld, %d, %d] ([M, O, Kw, Ka]), got %s",
                       (long long)rows, (long long)outputs, kw, ka, shape);
    }
    bs_problem p;
    QC_TRY(problem_init(&p, ctx, n, rows, ka, x_code, w_planes, kw, w_code, __func__));
    int threads = qc__ctx_threads(ctx);
    bs_scratch *s;
    _Alignas(64) unsigned char local[LOCAL_SCRATCH];
    if (scratch_alloc(&s, threads, &p, 0, local) != QC_OK) {
        free(p.w_pop);
        return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %d threads' scratch", threads);
    }
    int64_t per = p.rows_per_item;
    int64_t m_items = (rows + per - 1) / per, o_items = (outputs + OUTPUTS_PER_ITEM - 1) / OUTPUTS_PER_ITEM;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t item = 0; item < m_items * o_items; item++) {
        int64_t m0 = item / o_items * per, o0 = item % o_items * OUTPUTS_PER_ITEM;
        int64_t mr = rows - m0 < per ? rows - m0 : per;
        int64_t orr = outputs - o0 < OUTPUTS_PER_ITEM ? outputs - o0 : OUTPUTS_PER_ITEM;
        dots_item(dots->data, &p, x_planes->data, m0, mr, o0, orr, &s[qc__thread_index()]);
    }
    scratch_free(s, local);
    free(p.w_pop);
    return QC_OK;
}

/* ---- the scaled product from float inputs ------------------------------------------------------ */

typedef struct bs_scaling {
    const float *x;         /* [rows, n] */
    const float *x_basis;   /* [rows or 1, ka] */
    int64_t x_basis_stride; /* ka, or 0 for one basis */
    const float *w_basis;   /* [outputs, kw] */
    const float *bias;      /* [outputs] or NULL */
    float *y;               /* [rows, outputs] */
    const qc_plane_encoder *encoder; /* x_basis's rule made once (a layer's), or NULL: made per row */
    const qc_tensor *x_tensor; /* x, whose finiteness run_gemm checks (for the error message) */
} bs_scaling;

/* Encodes input rows m0 .. m0 + rows - 1 into the thread's planes and counts their {0,1} bits; 0 when a
 * value was not finite. */
static int encode_rows(bs_scratch *s, const bs_problem *p, const bs_scaling *f, int64_t m0, int64_t rows)
{
    int finite = 1;
    for (int64_t m = 0; m < rows; m++) {
        qc_lq_table t;
        if (f->encoder == NULL) qc__lq_table(&t, f->x_basis + (m0 + m) * f->x_basis_stride, p->ka, p->x_code);
        finite &= p->encode(s->x + m * p->ka * p->words, p->words, f->x + (m0 + m) * p->n, p->n,
                            f->encoder ? f->encoder : &t.encoder);
    }
    /* popcount(plane AND ones) on the kernel set's popcount: row_popcounts' builtin is a libgcc call here */
    if (s->ones) p->gemm(s->x_pop, 1, s->x, rows * p->ka, s->ones, 1, p->words, QC_POPCOUNT_AND);
    return finite;
}

/* Y for an item: each row's outputs from its counts by the kernel set's lq_scale (per output, the sum over i
 * then j of w_basis[o, i] x_basis[m, j] D in double, in that order). */
static void gemm_item(const bs_problem *p, const bs_scaling *f, int64_t m0, int64_t rows, int64_t o0, int64_t outputs,
                      const bs_scratch *s)
{
    item_counts(s->counts, p, s->x, rows, o0, outputs);
    int64_t ldc = outputs * p->kw, kw = p->kw;
    const float *wb = f->w_basis + o0 * kw, *bias = f->bias ? f->bias + o0 : NULL;
    const int32_t *w_pop = p->w_pop ? p->w_pop + o0 * kw : NULL;
    for (int64_t m = 0; m < rows; m++) {
        int64_t base[QC_LQ_MAX_BITS];
        for (int j = 0; j < p->ka; j++) base[j] = dot_base(p, s->x_pop[m * p->ka + j]);
        p->scale(f->y + (m0 + m) * p->outputs + o0, s->counts + m * p->ka * ldc, ldc, wb, w_pop, p->kw, p->ka, base,
                 dot_scale(p), f->x_basis + (m0 + m) * f->x_basis_stride, bias, outputs);
    }
}

/* One item: its input block encoded unless *encoded says the scratch holds it already. 0, with nothing
 * written, when the encoding met a value that is not finite. */
static int run_item(const bs_problem *p, const bs_scaling *f, bs_scratch *mine, int64_t item, int64_t o_items,
                    int64_t *encoded)
{
    int64_t per = p->rows_per_item, mi = item / o_items, m0 = mi * per, o0 = item % o_items * OUTPUTS_PER_ITEM;
    int64_t rows = p->rows - m0 < per ? p->rows - m0 : per;
    int64_t outputs = p->outputs - o0 < OUTPUTS_PER_ITEM ? p->outputs - o0 : OUTPUTS_PER_ITEM;
    if (mi != *encoded) {
        if (!encode_rows(mine, p, f, m0, rows)) return 0;
        *encoded = mi;
    }
    gemm_item(p, f, m0, rows, o0, outputs, mine);
    return 1;
}

/* Items ordered input block first, so that a thread re-encodes its input block only when it moves on.
 * x's finiteness: when one thread encodes all rows before it writes any output (one block of rows), the
 * encoder's own flag decides; otherwise x is scanned first, since outputs are written only on success. */
static qc_status run_gemm(const qc_ctx *ctx, bs_problem *p, const bs_scaling *f, const char *function)
{
    int threads = threads_for(ctx, p);
    int64_t per = p->rows_per_item, m_items = (p->rows + per - 1) / per;
    int64_t o_items = (p->outputs + OUTPUTS_PER_ITEM - 1) / OUTPUTS_PER_ITEM;
    int encoder_checks = threads == 1 && m_items == 1;
    if (!encoder_checks) QC_TRY(qc__tensor_check_finite(f->x_tensor, function, "x"));
    bs_scratch *s;
    _Alignas(64) unsigned char local[LOCAL_SCRATCH];
    if (scratch_alloc(&s, threads, p, 1, local) != QC_OK)
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %d threads' scratch", threads);
    int finite = 1;
    if (threads == 1) {
        int64_t encoded = -1;
        for (int64_t item = 0; finite && item < m_items * o_items; item++)
            finite = run_item(p, f, s, item, o_items, &encoded);
    } else {
#pragma omp parallel num_threads(threads)
        {
            bs_scratch *mine = &s[qc__thread_index()];
            int64_t encoded = -1;
#pragma omp for schedule(static)
            for (int64_t item = 0; item < m_items * o_items; item++) run_item(p, f, mine, item, o_items, &encoded);
        }
    }
    scratch_free(s, local);
    if (finite) return QC_OK;
    QC_TRY(qc__tensor_check_finite(f->x_tensor, function, "x")); /* its message names the element */
    return QC_FAIL_IN(function, QC_ERR_NUMERIC, "argument 'x' holds a value that is not finite");
}

/* The checks of qc_bitserial_gemm but x's finiteness (run_gemm's), for x of `rows` rows of n; *ka and *kw
 * receive the bases' widths. */
static qc_status check_gemm(int *ka, int *kw, int64_t rows, int64_t n, const qc_tensor *x_basis,
                            qc_lq_code x_code, const qc_tensor *w_planes, const qc_tensor *w_basis, qc_lq_code w_code,
                            const qc_tensor *bias, const char *function)
{
    QC_TRY(qc__lq_check_code(x_code, function, "x_code"));
    QC_TRY(qc__lq_check_code(w_code, function, "w_code"));
    QC_TRY(check_length(n, function));
    QC_TRY(check_planes(w_planes, -1, qc_lq_plane_words(n), kw, function, "w_planes"));
    int64_t outputs = w_planes->dims[0];
    int w_bits;
    QC_TRY(qc__lq_check_basis(w_basis, outputs, 0, &w_bits, function, "w_basis"));
    if (w_bits != *kw)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'w_basis': K = %d, but w_planes has %d planes", w_bits, *kw);
    if (x_basis == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'x_basis' is NULL");
    if (x_basis->ndim == 1) {
        qc_tensor as_row = *x_basis;
        as_row.ndim = 2;
        as_row.dims[1] = x_basis->dims[0];
        as_row.dims[0] = 1;
        as_row.strides[1] = 1;
        as_row.strides[0] = x_basis->dims[0];
        QC_TRY(qc__lq_check_basis(&as_row, 1, 0, ka, function, "x_basis"));
    } else {
        QC_TRY(qc__lq_check_basis(x_basis, rows, 0, ka, function, "x_basis"));
    }
    if (bias) {
        QC_TRY(qc__tensor_expect(bias, function, "bias", QC_DT_F32));
        if (bias->ndim != 1 || bias->dims[0] != outputs)
            return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'bias': expected [%lld] (w_planes' rows)",
                              (long long)outputs);
        QC_TRY(qc__tensor_check_finite(bias, function, "bias"));
    }
    return QC_OK;
}

static qc_status gemm_common(qc_ctx *ctx, float *y, const qc_tensor *x, int64_t rows, int64_t n,
                             const qc_tensor *x_basis, qc_lq_code x_code, const qc_tensor *w_planes,
                             const uint64_t *w_il, const qc_tensor *w_basis, qc_lq_code w_code, const qc_tensor *bias,
                             const char *function)
{
    int ka, kw;
    QC_TRY(check_gemm(&ka, &kw, rows, n, x_basis, x_code, w_planes, w_basis, w_code, bias, function));
    bs_problem p;
    QC_TRY(problem_init(&p, ctx, n, rows, ka, x_code, w_planes, kw, w_code, function));
    p.gemv_il = w_il ? qc__popcount_gemv_il_for(ctx->arch) : NULL;
    p.w_il = p.gemv_il ? w_il : NULL; /* a kernel set without the interleaved kernel reads w_planes */
    bs_scaling f = {x->data, x_basis->data, x_basis->ndim == 1 ? 0 : ka, w_basis->data, bias ? bias->data : NULL, y,
                    NULL, x};
    qc_status st = run_gemm(ctx, &p, &f, function);
    free(p.w_pop);
    return st;
}

qc_status qc_bitserial_gemm(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *x_basis, qc_lq_code x_code,
                            const qc_tensor *w_planes, const qc_tensor *w_basis, qc_lq_code w_code, const qc_tensor *bias)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(qc__lq_check_matrix(x, QC_DT_F32, -1, -1, __func__, "x"));
    QC_CHECK_NOT_NULL(w_planes);
    QC_TRY(qc__lq_check_matrix(y, QC_DT_F32, x->dims[0], w_planes->dims[0], __func__, "y"));
    return gemm_common(ctx, y->data, x, x->dims[0], x->dims[1], x_basis, x_code, w_planes, NULL, w_basis, w_code, bias,
                       __func__);
}

qc_status qc_bitserial_gemv(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *x_basis, qc_lq_code x_code,
                            const qc_tensor *w_planes, const qc_tensor *w_basis, qc_lq_code w_code, const qc_tensor *bias)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(x);
    QC_CHECK_NOT_NULL(y);
    QC_CHECK_NOT_NULL(x_basis);
    QC_CHECK_NOT_NULL(w_planes);
    QC_TRY(qc__tensor_expect(x, __func__, "x", QC_DT_F32));
    QC_TRY(qc__tensor_expect(y, __func__, "y", QC_DT_F32));
    if (x->ndim != 1) return QC_FAIL(QC_ERR_SHAPE, "argument 'x': expected 1 dimension, got %d", (int)x->ndim);
    if (x_basis->ndim != 1)
        return QC_FAIL(QC_ERR_SHAPE, "argument 'x_basis': expected 1 dimension [Ka], got %d", (int)x_basis->ndim);
    if (y->ndim != 1 || y->dims[0] != w_planes->dims[0])
        return QC_FAIL(QC_ERR_SHAPE, "argument 'y': expected [%lld] (w_planes' rows)", (long long)w_planes->dims[0]);
    return gemm_common(ctx, y->data, x, 1, x->dims[0], x_basis, x_code, w_planes, NULL, w_basis, w_code, bias, __func__);
}

/* ---- weights interleaved eight rows to a vector ----------------------------------------------------- */

int64_t qc_bitserial_interleaved_groups(int64_t outputs, int64_t kw)
{
    return outputs <= 0 || kw <= 0 ? 0 : (outputs * kw + 7) / 8;
}

/* i64 [qc_bitserial_interleaved_groups(O, Kw), words, 8]. */
static qc_status check_interleaved(const qc_tensor *t, int64_t outputs, int kw, int64_t words, const char *function)
{
    if (t == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'w_interleaved' is NULL");
    QC_TRY(qc__tensor_expect(t, function, "w_interleaved", QC_DT_I64));
    int64_t groups = qc_bitserial_interleaved_groups(outputs, kw);
    if (t->ndim != 3 || t->dims[0] != groups || t->dims[1] != words || t->dims[2] != 8) {
        char shape[160];
        qc__shape_string(shape, sizeof shape, t->ndim, t->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'w_interleaved': expected [%lld, %lld, 8], got %s",
                          (long long)groups, (long long)words, shape);
    }
    return QC_OK;
}

qc_status qc_bitserial_interleave(qc_ctx *ctx, qc_tensor *w_interleaved, const qc_tensor *w_planes)
{
    int kw = 0;
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(w_planes);
    QC_TRY(check_planes(w_planes, -1, w_planes->dims[2], &kw, __func__, "w_planes"));
    int64_t rows = w_planes->dims[0] * kw, words = w_planes->dims[2];
    QC_TRY(check_interleaved(w_interleaved, w_planes->dims[0], kw, words, __func__));
    const uint64_t *w = w_planes->data;
    uint64_t *out = w_interleaved->data;
    int64_t groups = w_interleaved->dims[0];
#pragma omp parallel for num_threads(qc__ctx_threads(ctx)) schedule(static)
    for (int64_t g = 0; g < groups; g++)
        for (int64_t k = 0; k < words; k++)
            for (int64_t lane = 0; lane < 8; lane++) {
                int64_t row = g * 8 + lane;
                out[(g * words + k) * 8 + lane] = row < rows ? w[row * words + k] : 0;
            }
    return QC_OK;
}

qc_status qc_bitserial_gemm_interleaved(qc_ctx *ctx, qc_tensor *y, const qc_tensor *x, const qc_tensor *x_basis,
                                        qc_lq_code x_code, const qc_tensor *w_planes, const qc_tensor *w_interleaved,
                                        const qc_tensor *w_basis, qc_lq_code w_code, const qc_tensor *bias)
{
    int kw = 0;
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(qc__lq_check_matrix(x, QC_DT_F32, -1, -1, __func__, "x"));
    QC_CHECK_NOT_NULL(w_planes);
    QC_TRY(qc__lq_check_matrix(y, QC_DT_F32, x->dims[0], w_planes->dims[0], __func__, "y"));
    QC_TRY(check_planes(w_planes, -1, qc_lq_plane_words(x->dims[1]), &kw, __func__, "w_planes"));
    QC_TRY(check_interleaved(w_interleaved, w_planes->dims[0], kw, w_planes->dims[2], __func__));
    return gemm_common(ctx, y->data, x, x->dims[0], x->dims[1], x_basis, x_code, w_planes, w_interleaved->data, w_basis,
                       w_code, bias, __func__);
}

/* ---- a layer: everything that depends on the weights and bases alone, made once ------------------- */

struct qc_bitserial_layer {
    bs_problem p;          /* kernels and rows set per run */
    qc_plane_encoder encoder;
    float x_basis[QC_LQ_MAX_BITS];
    const float *w_basis, *bias;
    int interleaved;       /* p.w_il holds the caller's interleaved planes */
};

qc_status qc_bitserial_layer_create(qc_bitserial_layer **out, qc_ctx *ctx, int64_t n, const qc_tensor *x_basis,
                                    qc_lq_code x_code, const qc_tensor *w_planes, const qc_tensor *w_interleaved,
                                    const qc_tensor *w_basis, qc_lq_code w_code, const qc_tensor *bias)
{
    int ka = 0, kw = 0;
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    QC_CHECK_NOT_NULL(ctx);
    if (x_basis != NULL && x_basis->ndim != 1)
        return QC_FAIL(QC_ERR_SHAPE, "argument 'x_basis': expected 1 dimension [Ka] (one basis for every row), got %d",
                       (int)x_basis->ndim);
    QC_TRY(check_gemm(&ka, &kw, 1, n, x_basis, x_code, w_planes, w_basis, w_code, bias, __func__));
    if (w_interleaved) QC_TRY(check_interleaved(w_interleaved, w_planes->dims[0], kw, w_planes->dims[2], __func__));
    qc_bitserial_layer *l = calloc(1, sizeof *l);
    if (l == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for the layer");
    qc_status st = problem_init(&l->p, ctx, n, 0, ka, x_code, w_planes, kw, w_code, __func__);
    if (st != QC_OK) {
        free(l);
        return st;
    }
    l->p.w_il = w_interleaved ? w_interleaved->data : NULL;
    l->interleaved = w_interleaved != NULL;
    qc_lq_table t;
    qc__lq_table(&t, x_basis->data, ka, x_code);
    l->encoder = t.encoder;
    memcpy(l->x_basis, x_basis->data, (size_t)ka * sizeof(float));
    l->w_basis = w_basis->data;
    l->bias = bias ? bias->data : NULL;
    *out = l;
    return QC_OK;
}

/* x [..., n] and y [..., O] with the same leading dimensions; *rows receives their product. */
static qc_status check_layer_io(const qc_bitserial_layer *l, const qc_tensor *y, const qc_tensor *x, int64_t *rows)
{
    QC_TRY(qc__tensor_expect(x, "qc_bitserial_layer_run", "x", QC_DT_F32));
    QC_TRY(qc__tensor_expect(y, "qc_bitserial_layer_run", "y", QC_DT_F32));
    int same = x->ndim >= 1 && y->ndim == x->ndim && x->dims[x->ndim - 1] == l->p.n &&
               y->dims[y->ndim - 1] == l->p.outputs;
    for (int d = 0; same && d + 1 < x->ndim; d++) same = x->dims[d] == y->dims[d];
    if (!same) {
        char xs[160], ys[160];
        qc__shape_string(xs, sizeof xs, x->ndim, x->dims);
        qc__shape_string(ys, sizeof ys, y->ndim, y->dims);
        return QC_FAIL_IN("qc_bitserial_layer_run", QC_ERR_SHAPE,
                          "arguments 'x' %s and 'y' %s: expected [..., %lld] and [..., %lld] with the same leading "
                          "dimensions", xs, ys, (long long)l->p.n, (long long)l->p.outputs);
    }
    *rows = qc_tensor_numel(x) / l->p.n;
    return QC_OK;
}

qc_status qc_bitserial_layer_run(qc_bitserial_layer *layer, qc_ctx *ctx, qc_tensor *y, const qc_tensor *x)
{
    int64_t rows = 0;
    QC_CHECK_NOT_NULL(layer);
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(check_layer_io(layer, y, x, &rows));
    if (rows == 0) return qc__tensor_check_finite(x, __func__, "x");
    bs_problem p = layer->p;
    p.rows = rows;
    p.gemm = qc__popcount_gemm_for(ctx->arch);
    p.encode = ctx->kernels->encode_planes;
    p.scale = p.n < (1ll << 30) ? ctx->kernels->lq_scale : qc__lq_scale_ref;
    p.gemv_il = layer->interleaved ? qc__popcount_gemv_il_for(ctx->arch) : NULL;
    p.w_il = p.gemv_il ? p.w_il : NULL;
    bs_scaling f = {x->data, layer->x_basis, 0, layer->w_basis, layer->bias, y->data, &layer->encoder, x};
    return run_gemm(ctx, &p, &f, __func__);
}

void qc_bitserial_layer_free(qc_bitserial_layer *layer)
{
    if (layer == NULL) return;
    free(layer->p.w_pop);
    free(layer);
}
