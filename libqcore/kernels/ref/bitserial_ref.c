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
