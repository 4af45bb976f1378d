/* The fast Walsh-Hadamard transform of rows, x <- x·H_n/sqrt(n) with H_n = H_{2^k} (x) H_K, and the
 * randomized rotation x·H_n·D/sqrt(n) (qc_rotate.h).
 *
 * A row is viewed as 2^k contiguous blocks of K values. The Sylvester factor mixes whole blocks (butterfly
 * stages whose inner loops run over h*K contiguous floats, so they vectorize), and the H_K factor is a
 * dense product inside each block. Each row is transformed start to end by one thread, so the operations
 * and their order, hence the bits, do not depend on the thread count; a row of n <= 4096 floats stays in
 * the L1 cache across its stages. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "rotate/rotate.h"

typedef struct fwht_plan {
    int64_t n, k;
    float *hk;        /* H_K (or H_K^T) / sqrt(n), K x K; NULL when K = 1 */
    float *diag;      /* D (or D / sqrt(n) when K = 1), or NULL */
    int diag_first;   /* 1: x·D first (the inverse); 0: last */
    float scale;      /* 1/sqrt(n), applied on its own when K = 1 and there is no D */
} fwht_plan;

/* The stage of span h: blocks [u | v] of 2h values become [u + v | u - v]. */
static void radix2_stage(float *restrict x, int64_t n, int64_t h)
{
    for (int64_t base = 0; base < n; base += 2 * h) {
        float *restrict u = x + base, *restrict v = x + base + h;
        for (int64_t i = 0; i < h; i++) {
            float a = u[i], b = v[i];
            u[i] = a + b;
            v[i] = a - b;
        }
    }
}

/* The stages of spans h and 2h at once, on quarters [a | b | c | d] of 4h values: half the loads and stores
 * of two radix-2 passes, which bound the speed once a row sits in the L1 cache. */
static void radix4_stage(float *restrict x, int64_t n, int64_t h)
{
    for (int64_t base = 0; base < n; base += 4 * h) {
        float *restrict a = x + base, *restrict b = a + h, *restrict c = b + h, *restrict d = c + h;
        for (int64_t i = 0; i < h; i++) {
            float s0 = a[i] + b[i], d0 = a[i] - b[i], s1 = c[i] + d[i], d1 = c[i] - d[i];
            a[i] = s0 + s1;
            b[i] = d0 + d1;
            c[i] = s0 - s1;
            d[i] = d0 - d1;
        }
    }
}

/* The three stages of spans 1, 2 and 4 (K = 1) on each group of 8 values, in registers, times `scale`:
 * the generic stages would run loops of 1 to 4 iterations there. */
static void radix8_first(float *restrict x, int64_t n, float scale)
{
    for (int64_t base = 0; base < n; base += 8) {
        float v[8];
        for (int i = 0; i < 8; i++) v[i] = x[base + i] * scale;
        for (int h = 1; h < 8; h *= 2)
            for (int i = 0; i < 8; i++)
                if (!(i & h)) {
                    float a = v[i], b = v[i + h];
                    v[i] = a + b;
                    v[i + h] = a - b;
                }
        for (int i = 0; i < 8; i++) x[base + i] = v[i];
    }
}

/* Stages h = `first`, 2 first, ..., n/2, two at a time while two remain. */
static void butterflies(float *restrict x, int64_t n, int64_t first)
{
    int64_t h = first;
    for (; 4 * h <= n; h *= 4) radix4_stage(x, n, h);
    if (h < n) radix2_stage(x, n, h);
}

/* Every block b of K values becomes b·hk. Inlined with a constant k, the loops have fixed trip counts that
 * GCC unrolls and vectorizes, with `out` kept in registers. */
static inline __attribute__((always_inline)) void block_products_k(float *restrict x, int64_t n, int64_t k,
                                                                    const float *restrict hk)
{
    float out[QC_HADAMARD_MAX_K];
    for (int64_t base = 0; base < n; base += k) {
        for (int64_t j = 0; j < k; j++) out[j] = 0.0f;
        for (int64_t i = 0; i < k; i++) {
            float xi = x[base + i];
            const float *restrict row = hk + i * k;
            for (int64_t j = 0; j < k; j++) out[j] += xi * row[j];
        }
        memcpy(x + base, out, (size_t)k * sizeof *out);
    }
}

/* The factors of transformer widths (384 = 12 * 32, 5120 = 20 * 256, ...) get their own fixed-size copies. */
static void block_products(float *restrict x, int64_t n, int64_t k, const float *restrict hk)
{
    switch (k) {
    case 12: block_products_k(x, n, 12, hk); break;
    case 20: block_products_k(x, n, 20, hk); break;
    case 28: block_products_k(x, n, 28, hk); break;
    case 36: block_products_k(x, n, 36, hk); break;
    case 52: block_products_k(x, n, 52, hk); break;
    case 60: block_products_k(x, n, 60, hk); break;
    default: block_products_k(x, n, k, hk); break;
    }
}

static void multiply(float *restrict x, const float *restrict d, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] *= d[i];
}

static void transform_row(float *x, const fwht_plan *p)
{
    if (p->diag && p->diag_first) multiply(x, p->diag, p->n);
    int64_t first = p->k;
    if (p->hk) {
        block_products(x, p->n, p->k, p->hk);
    } else if (p->n >= 8) {
        radix8_first(x, p->n, p->diag ? 1.0f : p->scale);
        first = 8;
    } else if (!p->diag) {
        for (int64_t i = 0; i < p->n; i++) x[i] *= p->scale;
    }
    butterflies(x, p->n, first);
    if (p->diag && !p->diag_first) multiply(x, p->diag, p->n);
}

static void plan_free(fwht_plan *p)
{
    free(p->hk);
    free(p->diag);
}

/* H_K (transposed when asked) as floats scaled by 1/sqrt(n); nothing when K = 1. */
static qc_status plan_hk(fwht_plan *p, int transpose, const char *function)
{
    if (p->k == 1) return QC_OK;
    int64_t k = p->k;
    int8_t *h = malloc((size_t)(k * k));
    p->hk = malloc((size_t)(k * k) * sizeof *p->hk);
    if (h == NULL || p->hk == NULL) {
        free(h);
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for H_%lld", (long long)k);
    }
    qc__hadamard_build(h, k);
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) p->hk[i * k + j] = (float)h[transpose ? j * k + i : i * k + j] * p->scale;
    free(h);
    return QC_OK;
}

static qc_status plan_signs(fwht_plan *p, uint64_t seed, uint64_t stream, const char *function)
{
    p->diag = malloc((size_t)p->n * sizeof *p->diag);
    if (p->diag == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory for %lld signs", (long long)p->n);
    qc__random_signs(p->diag, p->n, seed, stream);
    if (p->k == 1) /* no H_K to carry 1/sqrt(n): D carries it */
        for (int64_t i = 0; i < p->n; i++) p->diag[i] *= p->scale;
    return QC_OK;
}

/* 1 when no value of x[0..n) is NaN or Inf (exponent bits all ones): an OR over every value vectorizes where
 * an early exit would not. */
static int row_is_finite(const float *x, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

/* The rows checked in parallel before any is changed: a serial scan took a third of a 4096-wide call. */
static int all_finite(qc_ctx *ctx, const qc_tensor *x, int64_t n)
{
    const float *data = x->data;
    int64_t rows = qc_tensor_numel(x) / n;
    int bad = 0;
#pragma omp parallel for num_threads(qc__ctx_threads(ctx)) schedule(static) reduction(| : bad)
    for (int64_t r = 0; r < rows; r++) bad |= !row_is_finite(data + r * n, n);
    return !bad;
}

static void apply(qc_ctx *ctx, qc_tensor *x, const fwht_plan *p)
{
    float *data = x->data;
    int64_t rows = qc_tensor_numel(x) / p->n;
#pragma omp parallel for num_threads(qc__ctx_threads(ctx)) schedule(static)
    for (int64_t r = 0; r < rows; r++) transform_row(data + r * p->n, p);
}

/* The shared body of qc_fwht and qc_random_hadamard (`stream` NULL: no D). */
static qc_status run(qc_ctx *ctx, qc_tensor *x, int transpose, const uint64_t *stream, const char *function)
{
    if (ctx == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'ctx' is NULL");
    QC_TRY(qc__tensor_expect(x, function, "x", QC_DT_F32));
    if (x->ndim < 1)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'x' is a scalar; it needs a last axis of length n");
    if (transpose != 0 && transpose != 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'transpose' = %d must be 0 or 1", transpose);
    fwht_plan p = {.n = x->dims[x->ndim - 1], .diag_first = transpose};
    QC_TRY(qc__hadamard_order(&p.k, p.n, function, "x"));
    if (!all_finite(ctx, x, p.n)) return qc__tensor_check_finite(x, function, "x"); /* names the element */
    p.scale = (float)(1.0 / sqrt((double)p.n));
    qc_status st = plan_hk(&p, transpose, function);
    if (st == QC_OK && stream) st = plan_signs(&p, ctx->seed, *stream, function);
    if (st == QC_OK) apply(ctx, x, &p);
    plan_free(&p);
    return st;
}

qc_status qc_fwht(qc_ctx *ctx, qc_tensor *x, int transpose)
{
    return run(ctx, x, transpose, NULL, __func__);
}

qc_status qc_random_hadamard(qc_ctx *ctx, qc_tensor *x, uint64_t stream, int transpose)
{
    return run(ctx, x, transpose, &stream, __func__);
}
