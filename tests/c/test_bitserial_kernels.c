/* The popcount_gemm and int8_gemm entries of every kernel table this machine can run equal a bit-by-bit
 * count and a byte-by-byte sum of products written here (and so the reference kernels), on row counts that leave every register-tile tail (1..9 rows each
 * side) and row lengths of 8 to 40 words; the counts land in a wider matrix (ldc) whose other cells, and
 * a guard after it, must stay untouched. Words are sparse, dense and random so that counts near 0 and
 * near 64 per word both occur. */
#include "kernels/dispatch.h"
#include "test_util.h"

enum { MAX_ROWS = 9, MAX_WORDS = 40, LDC_EXTRA = 3, GUARD = 16 };
static const int32_t UNTOUCHED = -12345;

static uint64_t random_word(uint64_t *state)
{
    uint64_t r = tu_next(state);
    switch (r % 4) {
    case 0: return r & tu_next(state) & tu_next(state); /* sparse */
    case 1: return r | tu_next(state) | tu_next(state); /* dense */
    case 2: return r % 8 == 2 ? ~0ull : 0ull;
    default: return tu_next(state);
    }
}

static int32_t bit_count(const uint64_t *a, const uint64_t *b, int64_t words, int op)
{
    int32_t count = 0;
    for (int64_t w = 0; w < words; w++)
        for (int bit = 0; bit < 64; bit++) {
            int x = (int)((a[w] >> bit) & 1), y = (int)((b[w] >> bit) & 1);
            count += op == QC_POPCOUNT_XOR ? x ^ y : x & y;
        }
    return count;
}

/* The int8 count written out: row p's bytes as unsigned, row q's as signed. */
static int32_t byte_products(const uint64_t *a, const uint64_t *b, int64_t words, int op)
{
    (void)op;
    int32_t sum = 0;
    for (int64_t k = 0; k < words * 8; k++)
        sum += (int32_t)((const uint8_t *)a)[k] * (int32_t)((const int8_t *)b)[k];
    return sum;
}

typedef int32_t (*row_oracle)(const uint64_t *a, const uint64_t *b, int64_t words, int op);

/* Every table's kernel (picked by `kernel_for`) against `oracle`, for every tile tail and both ops. */
static void check_row_kernel(qc_row_gemm_fn (*kernel_for)(qc_arch), row_oracle oracle, int ops)
{
    static uint64_t a[MAX_ROWS * MAX_WORDS], b[MAX_ROWS * MAX_WORDS];
    static int32_t c[MAX_ROWS * (MAX_ROWS + LDC_EXTRA) + GUARD];
    uint64_t state = 77;
    for (size_t i = 0; i < TU_COUNT(a); i++) a[i] = random_word(&state);
    for (size_t i = 0; i < TU_COUNT(b); i++) b[i] = random_word(&state);
    int tables = 0;
    for (size_t k = 0; k < TU_COUNT(tu_archs); k++) {
        if (!qc_arch_supported(tu_archs[k])) continue;
        qc_row_gemm_fn gemm = kernel_for(tu_archs[k]);
        tables++;
        for (int64_t words = 8; words <= MAX_WORDS; words += 16)
            for (int op = 0; op < ops; op++)
                for (int64_t np = 1; np <= MAX_ROWS; np++)
                    for (int64_t nq = 1; nq <= MAX_ROWS; nq++) {
                        int64_t ldc = nq + LDC_EXTRA;
                        for (size_t i = 0; i < TU_COUNT(c); i++) c[i] = UNTOUCHED;
                        gemm(c, ldc, a, np, b, nq, words, op);
                        for (int64_t p = 0; p < np; p++)
                            for (int64_t q = 0; q < ldc; q++) {
                                int32_t want = q < nq ? oracle(a + p * words, b + q * words, words, op) : UNTOUCHED;
                                cr_assert_eq(c[p * ldc + q], want, "%s: words %lld op %d np %lld nq %lld: c[%lld][%lld] = %d, want %d",
                                             qc_arch_string(tu_archs[k]), (long long)words, op, (long long)np, (long long)nq,
                                             (long long)p, (long long)q, c[p * ldc + q], want);
                            }
                        for (int64_t i = np * ldc; i < (int64_t)TU_COUNT(c); i++) cr_assert_eq(c[i], UNTOUCHED);
                    }
    }
    cr_assert_geq(tables, 1);
}

Test(bitserial_kernels, popcount_gemm_every_table_every_tail)
{
    check_row_kernel(qc__popcount_gemm_for, bit_count, 2);
}

Test(bitserial_kernels, int8_gemm_every_table_every_tail)
{
    check_row_kernel(qc__int8_gemm_for, byte_products, 1);
}

Test(bitserial_kernels, avx512_table_needs_vpopcntdq)
{
    qc_row_gemm_fn want = (qc_cpu_features() & QC_CPU_AVX512VPOPCNTDQ) ? qc__kernels_for(QC_ARCH_AVX512)->popcount_gemm
                                                                            : qc__kernels_for(QC_ARCH_AVX2)->popcount_gemm;
    cr_assert(qc__popcount_gemm_for(QC_ARCH_AVX512) == want);
    cr_assert(qc__popcount_gemm_for(QC_ARCH_REF) == qc__popcount_gemm_ref);
    qc_row_gemm_fn int8 = (qc_cpu_features() & QC_CPU_AVX512VNNI) ? qc__kernels_for(QC_ARCH_AVX512)->int8_gemm
                                                                       : qc__kernels_for(QC_ARCH_AVX2)->int8_gemm;
    cr_assert(qc__int8_gemm_for(QC_ARCH_AVX512) == int8);
}

/* The encoders of every table write the reference's planes, for lengths 1..140 (every 16-lane and 64-bit
 * tail) and values drawn from the levels' own thresholds (exactly on them, one float either side) and in
 * between, with 1..4 planes. */
Test(bitserial_kernels, encode_planes_every_table_every_tail)
{
    enum { N = 140, WORDS = 8 };
    static const float lower[15] = {-3.5f, -2.25f, -1.5f, -1.0f, -0.5f, -0.25f, -0.125f, 0.0f,
                                    0.125f, 0.25f, 0.5f, 1.0f, 1.5f, 2.25f, 3.5f};
    float x[N];
    uint64_t state = 5;
    for (int k = 0; k < N; k++) {
        uint64_t r = tu_next(&state);
        float t = lower[r % 15];
        x[k] = (r >> 8) % 3 == 0 ? t : (r >> 8) % 3 == 1 ? nextafterf(t, -INFINITY) : 4.0f * tu_signed_unit(&state);
    }
    for (int bits = 1; bits <= 4; bits++) {
        qc_plane_encoder e = {bits, 1 << bits, {0}, {0}};
        for (int t = 0; t < e.count - 1; t++) e.lower[t] = lower[t * (16 >> bits) + (16 >> bits) - 1];
        for (int c = 0; c < e.count; c++) e.code[c] = (c * 7 + 3) % e.count; /* a permutation */
        for (int64_t n = 1; n <= N; n++) {
            uint64_t want[4 * WORDS], got[4 * WORDS];
            qc__encode_planes_ref(want, WORDS, x, n, &e);
            for (size_t k = 0; k < TU_COUNT(tu_archs); k++) {
                if (!qc_arch_supported(tu_archs[k])) continue;
                memset(got, 0xA5, sizeof got);
                cr_assert_eq(qc__kernels_for(tu_archs[k])->encode_planes(got, WORDS, x, n, &e), 1, "finite");
                for (int i = 0; i < bits * WORDS; i++)
                    cr_assert_eq(got[i], want[i], "%s: bits %d n %lld word %d", qc_arch_string(tu_archs[k]), bits,
                                 (long long)n, i);
            }
            /* The reference itself: plane j, element k is bit j of the code of #{t : x >= lower[t]}. */
            for (int64_t k = 0; k < n; k++) {
                int index = 0;
                for (int t = 0; t < e.count - 1; t++) index += x[k] >= e.lower[t];
                for (int j = 0; j < bits; j++)
                    cr_assert_eq((want[j * WORDS + k / 64] >> (k % 64)) & 1, (uint64_t)((e.code[index] >> j) & 1));
            }
            for (int64_t k = n; k < WORDS * 64; k++)
                for (int j = 0; j < bits; j++) cr_assert_eq((want[j * WORDS + k / 64] >> (k % 64)) & 1, 0u);
        }
    }
}

/* The encoders of every table report a value that is not finite (NaN, +Inf, -Inf) at every position of
 * lengths 1..140 (every 16-lane, 8-lane and 64-bit tail), and only values before n count. */
Test(bitserial_kernels, encode_planes_report_non_finite)
{
    enum { N = 140, WORDS = 8 };
    static const float specials[3] = {NAN, INFINITY, -INFINITY};
    float x[N + 1];
    uint64_t planes[2 * WORDS];
    qc_plane_encoder e = {2, 4, {-0.5f, 0.0f, 0.5f}, {0, 1, 2, 3}};
    uint64_t state = 9;
    for (int k = 0; k <= N; k++) x[k] = tu_signed_unit(&state);
    for (size_t a = 0; a < TU_COUNT(tu_archs); a++) {
        if (!qc_arch_supported(tu_archs[a])) continue;
        const qc_kernels *kt = qc__kernels_for(tu_archs[a]);
        for (int64_t n = 1; n <= N; n++) {
            x[n] = specials[n % 3]; /* just past the row: must not count */
            cr_assert_eq(kt->encode_planes(planes, WORDS, x, n, &e), 1, "%s n %lld", qc_arch_string(tu_archs[a]),
                         (long long)n);
            for (int64_t k = 0; k < n; k++) {
                float keep = x[k];
                x[k] = specials[(k + n) % 3];
                cr_assert_eq(kt->encode_planes(planes, WORDS, x, n, &e), 0, "%s n %lld at %lld",
                             qc_arch_string(tu_archs[a]), (long long)n, (long long)k);
                x[k] = keep;
            }
            x[n] = tu_signed_unit(&state);
        }
    }
}

/* lq_scale of every table gives exactly (bit for bit) the sum written out here in double, for 1..20 outputs
 * (every 8-lane tail), kw and ka 1..4, the three count scales, with and without weight popcounts and bias,
 * from counts in a wider matrix (ldc); cells past `outputs` stay untouched. */
Test(bitserial_kernels, lq_scale_every_table_every_tail)
{
    enum { MAX_OUT = 20, KW = 4, KA = 4, LDC = MAX_OUT * KW + 5 };
    static const int64_t scales[3] = {-2, 1, 2};
    uint64_t state = 11;
    int32_t count[KA * LDC], w_pop[MAX_OUT * KW];
    float wb[MAX_OUT * KW], bias[MAX_OUT], xb[KA];
    for (int k = 0; k < KA * LDC; k++) count[k] = (int32_t)(tu_next(&state) % 4097);
    for (int k = 0; k < MAX_OUT * KW; k++) {
        w_pop[k] = (int32_t)(tu_next(&state) % 4097);
        wb[k] = tu_signed_unit(&state) * 0.37f;
    }
    for (int k = 0; k < MAX_OUT; k++) bias[k] = tu_signed_unit(&state) * 3.0f;
    for (int kw = 1; kw <= KW; kw++)
        for (int ka = 1; ka <= KA; ka++)
            for (int s = 0; s < 3; s++)
                for (int extra = 0; extra < 4; extra++) /* bit 0: w_pop, bit 1: bias */
                    for (int64_t outputs = 1; outputs <= MAX_OUT; outputs++) {
                        int64_t base[KA];
                        for (int j = 0; j < ka; j++) {
                            base[j] = s == 0 ? 4096 : -(int64_t)(tu_next(&state) % 4097);
                            xb[j] = tu_signed_unit(&state) / 3.0f;
                        }
                        const int32_t *pop = extra & 1 ? w_pop : NULL;
                        const float *b = extra & 2 ? bias : NULL;
                        float want[MAX_OUT + 4];
                        for (int k = 0; k < MAX_OUT + 4; k++) want[k] = -7.0f;
                        for (int64_t o = 0; o < outputs; o++) {
                            double sum = 0.0;
                            for (int i = 0; i < kw; i++)
                                for (int j = 0; j < ka; j++) {
                                    int64_t d = base[j] + scales[s] * count[j * LDC + o * kw + i] - (pop ? pop[o * kw + i] : 0);
                                    double w = (double)wb[o * kw + i];
                                    sum = sum + (w * (double)xb[j]) * (double)d;
                                }
                            want[o] = b ? (float)sum + b[o] : (float)sum;
                        }
                        for (size_t k = 0; k < TU_COUNT(tu_archs); k++) {
                            if (!qc_arch_supported(tu_archs[k])) continue;
                            float got[MAX_OUT + 4];
                            for (int i = 0; i < MAX_OUT + 4; i++) got[i] = -7.0f;
                            qc__kernels_for(tu_archs[k])->lq_scale(got, count, LDC, wb, pop, kw, ka, base, scales[s], xb,
                                                                   b, outputs);
                            cr_assert(memcmp(got, want, sizeof got) == 0, "%s: kw %d ka %d scale %lld extra %d outputs %lld",
                                      qc_arch_string(tu_archs[k]), kw, ka, (long long)scales[s], extra,
                                      (long long)outputs);
                        }
                    }
}

/* popcount_gemv_il (where a table has one) against the bit-by-bit count on rows interleaved here, for 1..20
 * rows of a (the GEMV's blocks of up to 4 and the 8-row blocks with every tail), 1..40 rows of b (every
 * 8-lane tail and 3- and 4-group tail) and 1..17 words of which the first `live` count: the words past it
 * hold garbage that must not be read. Cells past nq in each row of c, and past the last row, stay
 * untouched. */
Test(bitserial_kernels, popcount_gemv_il_every_tail)
{
    enum { NQ = 40, WORDS = 17, LDC = NQ + LDC_EXTRA, NP = 20 };
    static uint64_t a[NP * WORDS], b[NQ * WORDS], il[(NQ + 7) / 8 * 8 * WORDS];
    static int32_t c[NP * LDC + GUARD];
    uint64_t state = 91;
    for (size_t i = 0; i < TU_COUNT(a); i++) a[i] = random_word(&state);
    for (size_t i = 0; i < TU_COUNT(b); i++) b[i] = random_word(&state);
    int kernels = 0;
    for (size_t k = 0; k < TU_COUNT(tu_archs); k++) {
        qc_row_gemv_il_fn gemv = qc_arch_supported(tu_archs[k]) ? qc__popcount_gemv_il_for(tu_archs[k]) : NULL;
        if (gemv == NULL) continue;
        kernels++;
        for (int64_t words = 1; words <= WORDS; words += 4)
          for (int64_t live = words; live >= 1 && live >= words - 3; live -= 3)
            for (int64_t nq = 1; nq <= NQ; nq++) {
                for (int64_t g = 0; g < (nq + 7) / 8; g++)
                    for (int64_t w = 0; w < words; w++)
                        for (int64_t lane = 0; lane < 8; lane++)
                            il[(g * words + w) * 8 + lane] = g * 8 + lane >= nq ? 0
                                                             : w < live ? b[(g * 8 + lane) * words + w]
                                                                        : random_word(&state);
                for (int op = 0; op < 2; op++)
                    for (int64_t np = 1; np <= NP; np++) {
                        for (size_t i = 0; i < TU_COUNT(c); i++) c[i] = UNTOUCHED;
                        gemv(c, LDC, a, np, il, nq, words, live, op);
                        for (int64_t p = 0; p < np; p++)
                            for (int64_t q = 0; q < LDC; q++) {
                                int32_t want = q < nq ? bit_count(a + p * words, b + q * words, live, op) : UNTOUCHED;
                                cr_assert_eq(c[p * LDC + q], want,
                                             "%s: words %lld live %lld op %d np %lld nq %lld: c[%lld][%lld]",
                                             qc_arch_string(tu_archs[k]), (long long)words, (long long)live, op,
                                             (long long)np, (long long)nq, (long long)p, (long long)q);
                            }
                        for (int64_t i = np * LDC; i < (int64_t)TU_COUNT(c); i++) cr_assert_eq(c[i], UNTOUCHED);
                    }
            }
    }
    /* AVX-512 with VPOPCNTDQ has one; no other set does */
    cr_assert_eq(kernels, qc_arch_supported(QC_ARCH_AVX512) && (qc_cpu_features() & QC_CPU_AVX512VPOPCNTDQ) ? 1 : 0);
}

/* popcount_gemv_il on long rows (8 KB per group of b, so that with more than 8 rows of a the kernel splits
 * the groups into chunks of 3) and 1..9 rows of a (one block of 1..8 rows, or 8 and a tail), against a
 * word-by-word popcount written here. */
Test(bitserial_kernels, popcount_gemv_il_chunks)
{
    enum { NQ = 8 * 60 + 3, WORDS = 130, LIVE = 127, NP = 9 };
    static uint64_t a[NP * WORDS], b[NQ * WORDS], il[(NQ + 7) / 8 * 8 * WORDS];
    static int32_t c[NP * NQ];
    uint64_t state = 13;
    for (size_t i = 0; i < TU_COUNT(a); i++) a[i] = random_word(&state);
    for (size_t i = 0; i < TU_COUNT(b); i++) b[i] = random_word(&state);
    for (int64_t g = 0; g < (NQ + 7) / 8; g++)
        for (int64_t w = 0; w < WORDS; w++)
            for (int64_t lane = 0; lane < 8; lane++)
                il[(g * WORDS + w) * 8 + lane] = g * 8 + lane < NQ ? b[(g * 8 + lane) * WORDS + w] : 0;
    qc_row_gemv_il_fn gemv = qc_arch_supported(QC_ARCH_AVX512) ? qc__popcount_gemv_il_for(QC_ARCH_AVX512) : NULL;
    if (gemv == NULL) return;
    for (int op = 0; op < 2; op++)
        for (int64_t np = 1; np <= NP; np++) {
            gemv(c, NQ, a, np, il, NQ, WORDS, LIVE, op);
            for (int64_t p = 0; p < np; p++)
                for (int64_t q = 0; q < NQ; q++) {
                    int32_t want = 0;
                    for (int64_t w = 0; w < LIVE; w++) {
                        uint64_t x = a[p * WORDS + w], y = b[q * WORDS + w];
                        want += __builtin_popcountll(op == QC_POPCOUNT_XOR ? x ^ y : x & y);
                    }
                    cr_assert_eq(c[p * NQ + q], want, "op %d np %lld: c[%lld][%lld]", op, (long long)np, (long long)p,
                                 (long long)q);
                }
        }
}
