/* The reference popcount_gemm: one word pair at a time, in portable C. */
#include <math.h>

#include "kernels/dispatch.h"

void qc__popcount_gemm_ref(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                           int64_t words, int op)
{
    for (int64_t p = 0; p < np; p++)
        for (int64_t q = 0; q < nq; q++) {
            const uint64_t *ap = a + p * words, *bq = b + q * words;
            int64_t count = 0;
            for (int64_t w = 0; w < words; w++)
                count += __builtin_popcountll(op == QC_POPCOUNT_XOR ? ap[w] ^ bq[w] : ap[w] & bq[w]);
            c[p * ldc + q] = (int32_t)count;
        }
}

int qc__encode_planes_ref(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e)
{
    int finite = 1;
    for (int64_t i = 0; i < words * e->bits; i++) planes[i] = 0;
    for (int64_t base = 0; base < n; base += 64) {
        int64_t len = n - base < 64 ? n - base : 64;
        int32_t codes[64];
        for (int64_t k = 0; k < len; k++) {
            int index = 0;
            for (int t = 0; t < e->count - 1; t++) index += x[base + k] >= e->lower[t];
            codes[k] = e->code[index];
            finite &= isfinite(x[base + k]) != 0;
        }
        for (int j = 0; j < e->bits; j++) {
            uint64_t word = 0;
            for (int64_t k = 0; k < len; k++) word |= (uint64_t)((codes[k] >> j) & 1) << k;
            planes[(int64_t)j * words + base / 64] = word;
        }
    }
    return finite;
}

/* One output's sum over the plane pairs, i then j, with a constant kw and ka where inlined
 * (qc__lq_scale_ref's switch). */
static inline __attribute__((always_inline)) double pair_sum(const int32_t *count, int64_t ldc, const float *wb,
                                                             const int32_t *w_pop, int kw, int ka,
                                                             const int64_t *base, int64_t scale, const float *xb)
{
    double sum = 0.0;
    for (int i = 0; i < kw; i++)
        for (int j = 0; j < ka; j++) {
            int64_t d = base[j] + scale * count[j * ldc + i] - (w_pop ? w_pop[i] : 0);
            sum += (double)wb[i] * (double)xb[j] * (double)d;
        }
    return sum;
}

static inline __attribute__((always_inline)) void lq_scale(float *y, const int32_t *count, int64_t ldc,
                                                           const float *wb, const int32_t *w_pop, int kw, int ka,
                                                           const int64_t *base, int64_t scale, const float *xb,
                                                           const float *bias, int64_t outputs)
{
    for (int64_t o = 0; o < outputs; o++) {
        double sum = pair_sum(count + o * kw, ldc, wb + o * kw, w_pop ? w_pop + o * kw : NULL, kw, ka, base, scale, xb);
        y[o] = bias ? (float)sum + bias[o] : (float)sum;
    }
}

void qc__lq_scale_ref(float *y, const int32_t *count, int64_t ldc, const float *wb, const int32_t *w_pop, int kw,
                      int ka, const int64_t *base, int64_t scale, const float *xb, const float *bias, int64_t outputs)
{
    switch (kw * 8 + ka) {
    case 9: lq_scale(y, count, ldc, wb, w_pop, 1, 1, base, scale, xb, bias, outputs); break;
    case 18: lq_scale(y, count, ldc, wb, w_pop, 2, 2, base, scale, xb, bias, outputs); break;
    case 27: lq_scale(y, count, ldc, wb, w_pop, 3, 3, base, scale, xb, bias, outputs); break;
    default: lq_scale(y, count, ldc, wb, w_pop, kw, ka, base, scale, xb, bias, outputs); break;
    }
}
