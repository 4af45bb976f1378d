/* Counter-based random numbers: Philox4x64-10 (Salmon, Moraes, Dror, Shaw, SC'11). Every word is a pure
 * function of (seed, stream, index), so a parallel fill gives the same numbers for any thread count. */
#include <math.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor_check.h"

#define PHILOX_M0 0xD2E7470EE14C6C93ull
#define PHILOX_M1 0xCA5A826395121157ull
#define PHILOX_W0 0x9E3779B97F4A7C15ull /* golden ratio */
#define PHILOX_W1 0xBB67AE8584CAA73Bull /* sqrt(3) - 1 */
#define TWO_PI 6.283185307179586476925286766559

static inline void mulhilo(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    unsigned __int128 p = (unsigned __int128)a * b;
    *hi = (uint64_t)(p >> 64);
    *lo = (uint64_t)p;
}

void qc__philox4x64_10(uint64_t out[4], const uint64_t counter[4], const uint64_t key[2])
{
    uint64_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
    uint64_t key0 = key[0], key1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            key0 += PHILOX_W0;
            key1 += PHILOX_W1;
        }
        uint64_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c[0], &hi0, &lo0);
        mulhilo(PHILOX_M1, c[2], &hi1, &lo1);
        uint64_t next[4] = {hi1 ^ c[1] ^ key0, lo1, hi0 ^ c[3] ^ key1, lo0};
        for (int i = 0; i < 4; i++) c[i] = next[i];
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

/* The block of the public streams: counter (block, 0, 0, 0). */
static void philox4x64_10(uint64_t out[4], uint64_t block, uint64_t key0, uint64_t key1)
{
    const uint64_t counter[4] = {block, 0, 0, 0}, key[2] = {key0, key1};
    qc__philox4x64_10(out, counter, key);
}

/* Words [offset, offset + n) without argument checks. */
static void fill_words(uint64_t *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    uint64_t block[4];
    size_t i = 0;
    while (i < n) {
        uint64_t index = offset + i;
        philox4x64_10(block, index / 4, seed, stream);
        for (uint64_t lane = index % 4; lane < 4 && i < n; lane++, i++) out[i] = block[lane];
    }
}

qc_status qc_random_bits(uint64_t *out, size_t n, uint64_t seed, uint64_t stream, uint64_t offset)
{
    if (n == 0) return QC_OK;
    QC_CHECK_NOT_NULL(out);
    fill_words(out, n, seed, stream, offset);
    return QC_OK;
}

enum { CHUNK = 1024 };

static double uniform53(uint64_t w)
{
    return (double)(w >> 11) * 0x1.0p-53;
}

static double normal_from(uint64_t w1, uint64_t w2)
{
    double u1 = (double)((w1 >> 11) + 1) * 0x1.0p-53; /* in (0, 1]: the log is finite */
    double u2 = uniform53(w2);
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

static void store(qc_tensor *t, int64_t i, double v)
{
    if (t->dtype == QC_DT_F32)
        ((float *)t->data)[i] = (float)v;
    else
        ((double *)t->data)[i] = v;
}

typedef enum { DRAW_UNIFORM, DRAW_NORMAL } draw_kind;

static void fill_chunk(qc_tensor *t, int64_t start, int64_t count, draw_kind kind, uint64_t seed, uint64_t stream)
{
    uint64_t w[2 * CHUNK];
    if (kind == DRAW_NORMAL) {
        fill_words(w, (size_t)(2 * count), seed, stream, (uint64_t)(2 * start));
        for (int64_t j = 0; j < count; j++) store(t, start + j, normal_from(w[2 * j], w[2 * j + 1]));
        return;
    }
    fill_words(w, (size_t)count, seed, stream, (uint64_t)start);
    for (int64_t j = 0; j < count; j++) {
        if (t->dtype == QC_DT_F32)
            ((float *)t->data)[start + j] = (float)(w[j] >> 40) * 0x1.0p-24f;
        else
            ((double *)t->data)[start + j] = uniform53(w[j]);
    }
}

static qc_status fill(qc_ctx *ctx, qc_tensor *out, uint64_t stream, draw_kind kind, const char *function)
{
    if (ctx == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'ctx' is NULL");
    QC_TRY(qc__tensor_expect_float(out, function, "out"));
    int64_t n = qc_tensor_numel(out);
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    uint64_t seed = ctx->seed;
#pragma omp parallel for num_threads(qc__ctx_threads(ctx)) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t start = c * CHUNK;
        fill_chunk(out, start, n - start < CHUNK ? n - start : CHUNK, kind, seed, stream);
    }
    return QC_OK;
}

qc_status qc_random_normal(qc_ctx *ctx, qc_tensor *out, uint64_t stream)
{
    return fill(ctx, out, stream, DRAW_NORMAL, __func__);
}

qc_status qc_random_uniform(qc_ctx *ctx, qc_tensor *out, uint64_t stream)
{
    return fill(ctx, out, stream, DRAW_UNIFORM, __func__);
}
