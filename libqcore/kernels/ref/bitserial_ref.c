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
