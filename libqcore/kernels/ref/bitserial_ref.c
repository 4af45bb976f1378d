/* The reference popcount_gemm: one word pair at a time, in portable C. */
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

void qc__encode_planes_ref(uint64_t *planes, int64_t words, const float *x, int64_t n, const qc_plane_encoder *e)
{
    for (int64_t i = 0; i < words * e->bits; i++) planes[i] = 0;
    for (int64_t base = 0; base < n; base += 64) {
        int64_t len = n - base < 64 ? n - base : 64;
        int32_t codes[64];
        for (int64_t k = 0; k < len; k++) {
            int index = 0;
            for (int t = 0; t < e->count - 1; t++) index += x[base + k] >= e->lower[t];
            codes[k] = e->code[index];
        }
        for (int j = 0; j < e->bits; j++) {
            uint64_t word = 0;
            for (int64_t k = 0; k < len; k++) word |= (uint64_t)((codes[k] >> j) & 1) << k;
            planes[(int64_t)j * words + base / 64] = word;
        }
    }
}

/* The term loop with a constant kw where inlined (qc__lq_terms_ref's switch), so that it vectorizes where
 * the compiler can. */
static inline __attribute__((always_inline)) void lq_terms(double *sum, const int32_t *count, const float *wb,
                                                            const int32_t *w_pop, int64_t kw, int64_t base,
                                                            int64_t scale, double xj, int64_t outputs)
{
    if (w_pop)
        for (int64_t o = 0; o < outputs; o++)
            sum[o] += (double)wb[o * kw] * xj * (double)(base + scale * count[o * kw] - w_pop[o * kw]);
    else
        for (int64_t o = 0; o < outputs; o++) sum[o] += (double)wb[o * kw] * xj * (double)(base + scale * count[o * kw]);
}

void qc__lq_terms_ref(double *sum, const int32_t *count, const float *wb, const int32_t *w_pop, int64_t kw,
                      int64_t base, int64_t scale, double xj, int64_t outputs)
{
    switch (kw) {
    case 1: lq_terms(sum, count, wb, w_pop, 1, base, scale, xj, outputs); break;
    case 2: lq_terms(sum, count, wb, w_pop, 2, base, scale, xj, outputs); break;
    case 3: lq_terms(sum, count, wb, w_pop, 3, base, scale, xj, outputs); break;
    default: lq_terms(sum, count, wb, w_pop, kw, base, scale, xj, outputs); break;
    }
}
