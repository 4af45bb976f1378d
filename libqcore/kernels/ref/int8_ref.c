/* The reference int8_gemm: one byte pair at a time. */
#include "kernels/dispatch.h"

void qc__int8_gemm_ref(int32_t *c, int64_t ldc, const uint64_t *a, int64_t np, const uint64_t *b, int64_t nq,
                       int64_t words, int op)
{
    (void)op;
    for (int64_t p = 0; p < np; p++)
        for (int64_t q = 0; q < nq; q++) {
            const uint8_t *ap = (const uint8_t *)(a + p * words);
            const int8_t *bq = (const int8_t *)(b + q * words);
            int32_t sum = 0;
            for (int64_t k = 0; k < words * 8; k++) sum += (int32_t)ap[k] * (int32_t)bq[k];
            c[p * ldc + q] = sum;
        }
}
