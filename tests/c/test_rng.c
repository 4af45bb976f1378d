/* Counter-based random numbers (core/rng.c): Philox4x64-10 against the Random123 known-answer
 * vectors, the word layout of the public streams against numpy.random.Philox, the documented
 * transforms to uniform and normal draws, and independence from the thread count. */
#include "core/rng.h"
#include "test_util.h"

typedef struct kat {
    uint64_t counter[4], key[2], expected[4];
} kat;

/* Random123 kat_vectors, "philox4x64 10" (also reproduced with numpy.random.Philox). */
static const kat philox_kats[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x16554d9eca36314cull, 0xdb20fe9d672d0fdcull, 0xd7e772cee186176bull, 0x7e68b68aec7ba23bull}},
    {{UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX},
     {UINT64_MAX, UINT64_MAX},
     {0x87b092c3013fe90bull, 0x438c3c67be8d0224ull, 0x9cc7d7c69cd777b6ull, 0xa09caebf594f0ba0ull}},
    {{0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull},
     {0x452821e638d01377ull, 0xbe5466cf34e90c6cull},
     {0xa528f45403e61d95ull, 0x38c72dbd566e9788ull, 0xa5a1610e72fd18b5ull, 0x57bd43b5e52b7fe6ull}},
};

static void assert_words(const uint64_t *got, const uint64_t *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s: word %zu is %016llx, expected %016llx", what, i, (unsigned long long)got[i],
                     (unsigned long long)want[i]);
}

Test(rng, philox_block_matches_known_answers)
{
    for (size_t i = 0; i < TU_COUNT(philox_kats); i++) {
        uint64_t out[4];
        qc__philox4x64_10(out, philox_kats[i].counter, philox_kats[i].key);
        assert_words(out, philox_kats[i].expected, 4, "kat");
    }
}

Test(rng, stream_zero_is_the_zero_counter_vector)
{
    /* Word i is lane i % 4 of counter (i / 4, 0, 0, 0) under key (seed, stream). */
    uint64_t out[4];
    TU_EXPECT_OK(qc_random_bits(out, 4, 0, 0, 0));
    assert_words(out, philox_kats[0].expected, 4, "seed 0, stream 0");
}

Test(rng, words_match_numpy_philox)
{
    /* numpy.random.Philox(counter=2**256 - 1, key=np.array([seed, stream], np.uint64)).random_raw(n):
     * its first increment wraps the counter to 0, so it yields the same words. */
    static const uint64_t seed7_stream9_from16[8] = {
        0xeef86b636d6978daull, 0x66975ea66a5f32ebull, 0xf819d1449bf18466ull, 0x31369fee206ebf25ull,
        0xafe66c59d7f6efeaull, 0xb63e2107d579857dull, 0xd5a09ba78d6145a0ull, 0x0bc84e3bdb77b980ull};
    static const uint64_t big_seed_stream3[10] = {
        0x7d8746361fe31e4dull, 0xd595f645efd11414ull, 0xbe5a6c3bb6a76f65ull, 0x28dbe71a39093d82ull,
        0x9adb2a78a603114cull, 0x4c898e5bc38b9f8cull, 0xbbb44a2a6101e293ull, 0x9489bbe0e6e2a4f7ull,
        0x47ccbfd46a44a224ull, 0x1bb1de59693e0a26ull};
    uint64_t out[10];
    TU_EXPECT_OK(qc_random_bits(out, 8, 7, 9, 16));
    assert_words(out, seed7_stream9_from16, 8, "seed 7, stream 9, words 16..23");
    TU_EXPECT_OK(qc_random_bits(out, 10, 0xfedcba9876543210ull, 3, 0));
    assert_words(out, big_seed_stream3, 10, "seed 0xfedcba9876543210, stream 3");
}

Test(rng, any_window_is_a_slice_of_the_stream)
{
    enum { N = 64 };
    uint64_t all[N];
    TU_EXPECT_OK(qc_random_bits(all, N, 42, 5, 0));
    for (uint64_t offset = 0; offset < 12; offset++) {
        for (size_t n = 0; offset + n <= N && n < 13; n++) {
            uint64_t part[13] = {0};
            TU_EXPECT_OK(qc_random_bits(part, n, 42, 5, offset));
            assert_words(part, all + offset, n, "window");
        }
    }
}

Test(rng, seed_and_stream_both_select_the_words)
{
    uint64_t a[4], b[4], c[4];
    TU_EXPECT_OK(qc_random_bits(a, 4, 1, 2, 0));
    TU_EXPECT_OK(qc_random_bits(b, 4, 2, 1, 0));
    TU_EXPECT_OK(qc_random_bits(c, 4, 1, 3, 0));
    uint64_t counter[4] = {0, 0, 0, 0}, key[2] = {2, 1}, block[4];
    qc__philox4x64_10(block, counter, key);
    assert_words(b, block, 4, "seed is key word 0, stream key word 1");
    cr_assert(memcmp(a, b, sizeof a) != 0 && memcmp(a, c, sizeof a) != 0);
}

Test(rng, huge_offsets_use_the_high_counter_word_only)
{
    /* Word 4k + lane sits in block k: check at the end of the 64-bit word range. */
    uint64_t out[3], block[4], key[2] = {11, 12};
    uint64_t last_block = UINT64_MAX / 4, counter[4] = {last_block, 0, 0, 0};
    qc__philox4x64_10(block, counter, key);
    TU_EXPECT_OK(qc_random_bits(out, 3, 11, 12, UINT64_MAX - 3));
    assert_words(out, block, 3, "words 2^64-4 .. 2^64-2");
}

Test(rng, zero_words_need_no_buffer)
{
    TU_EXPECT_OK(qc_random_bits(NULL, 0, 1, 2, 3));
}

/* ---- uniform and normal draws ----------------------------------------------------------------- */

enum { DRAWS = 2500 }; /* more than two of the library's 1024-element chunks */

static qc_ctx *seeded_ctx(int threads, int64_t seed)
{
    qc_ctx *ctx = tu_ctx(threads, QC_ARCH_AUTO);
    TU_EXPECT_OK(qc_ctx_set_param(ctx, QC_CTX_SEED, seed));
    return ctx;
}

static uint64_t *stream_words(size_t n, uint64_t seed, uint64_t stream)
{
    uint64_t *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    TU_EXPECT_OK(qc_random_bits(w, n, seed, stream, 0));
    return w;
}

Test(rng, uniform_f64_is_the_top_53_bits)
{
    qc_ctx *ctx = seeded_ctx(2, -5);
    static double x[DRAWS];
    qc_tensor t = tu_vector(x, QC_DT_F64, DRAWS);
    TU_EXPECT_OK(qc_random_uniform(ctx, &t, 17));
    uint64_t *w = stream_words(DRAWS, (uint64_t)-5, 17);
    for (int j = 0; j < DRAWS; j++) {
        double want = (double)(w[j] >> 11) * 0x1.0p-53;
        cr_assert(x[j] == want && x[j] >= 0.0 && x[j] < 1.0, "element %d: %a, expected %a", j, x[j], want);
    }
    free(w);
    qc_ctx_free(ctx);
}

Test(rng, uniform_f32_is_the_top_24_bits)
{
    qc_ctx *ctx = seeded_ctx(2, 99);
    static float x[DRAWS];
    int64_t dims[2] = {50, 50};
    qc_tensor t = tu_tensor(x, QC_DT_F32, 2, dims);
    TU_EXPECT_OK(qc_random_uniform(ctx, &t, 0));
    uint64_t *w = stream_words(DRAWS, 99, 0);
    for (int j = 0; j < DRAWS; j++) {
        float want = (float)(w[j] >> 40) * 0x1.0p-24f;
        cr_assert(x[j] == want && x[j] < 1.0f, "element %d: %a, expected %a", j, (double)x[j], (double)want);
    }
    free(w);
    qc_ctx_free(ctx);
}

#define TWO_PI 6.283185307179586476925286766559

/* The documented Box-Muller transform of words 2j and 2j+1. */
static double box_muller(uint64_t w1, uint64_t w2)
{
    double u1 = (double)((w1 >> 11) + 1) * 0x1.0p-53, u2 = (double)(w2 >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

Test(rng, normal_is_box_muller_of_word_pairs)
{
    qc_ctx *ctx = seeded_ctx(3, 123);
    static double x[DRAWS];
    static float y[DRAWS];
    qc_tensor tx = tu_vector(x, QC_DT_F64, DRAWS), ty = tu_vector(y, QC_DT_F32, DRAWS);
    TU_EXPECT_OK(qc_random_normal(ctx, &tx, 4));
    TU_EXPECT_OK(qc_random_normal(ctx, &ty, 4));
    uint64_t *w = stream_words(2 * DRAWS, 123, 4);
    for (int j = 0; j < DRAWS; j++) {
        double want = box_muller(w[2 * j], w[2 * j + 1]);
        cr_assert(x[j] == want, "f64 element %d: %a, expected %a", j, x[j], want);
        cr_assert(y[j] == (float)want, "f32 element %d: %a, expected %a", j, (double)y[j], (double)(float)want);
    }
    free(w);
    qc_ctx_free(ctx);
}

Test(rng, normal_draws_look_standard)
{
    /* A loose sanity check on the transform's constants: mean 0 and variance 1 within 5 sigma. */
    enum { N = 100000 };
    qc_ctx *ctx = seeded_ctx(2, 2024);
    double *x = malloc(N * sizeof *x);
    qc_tensor t = tu_vector(x, QC_DT_F64, N);
    TU_EXPECT_OK(qc_random_normal(ctx, &t, 0));
    double sum = 0.0, squares = 0.0;
    for (int i = 0; i < N; i++) {
        sum += x[i];
        squares += x[i] * x[i];
    }
    double mean = sum / N, variance = squares / N - mean * mean;
    cr_assert_lt(fabs(mean), 5.0 / sqrt(N), "mean %g", mean);
    cr_assert_lt(fabs(variance - 1.0), 5.0 * sqrt(2.0 / N), "variance %g", variance);
    free(x);
    qc_ctx_free(ctx);
}

typedef qc_status (*fill_fn)(qc_ctx *, qc_tensor *, uint64_t);

/* Fills n values of `dtype` with `threads` workers into a fresh buffer (caller frees). */
static void *fill_with_threads(fill_fn fill, qc_dtype dtype, int64_t n, int threads)
{
    size_t size = (size_t)n * (size_t)qc_dtype_bits(dtype) / 8;
    void *data = malloc(size);
    cr_assert_not_null(data);
    qc_ctx *ctx = seeded_ctx(threads, 31337);
    qc_tensor t = tu_vector(data, dtype, n);
    TU_EXPECT_OK(fill(ctx, &t, 8));
    qc_ctx_free(ctx);
    return data;
}

Test(rng, draws_do_not_depend_on_threads)
{
    static const fill_fn fills[] = {qc_random_uniform, qc_random_normal};
    static const qc_dtype dtypes[] = {QC_DT_F32, QC_DT_F64};
    static const int threads[] = {2, 3, 0};
    const int64_t n = 5 * 1024 + 77; /* chunks of unequal counts per thread, and a partial chunk */
    for (size_t f = 0; f < TU_COUNT(fills); f++) {
        for (size_t d = 0; d < TU_COUNT(dtypes); d++) {
            void *one = fill_with_threads(fills[f], dtypes[d], n, 1);
            for (size_t k = 0; k < TU_COUNT(threads); k++) {
                void *many = fill_with_threads(fills[f], dtypes[d], n, threads[k]);
                size_t size = (size_t)n * (size_t)qc_dtype_bits(dtypes[d]) / 8;
                tu_assert_same_bytes(many, one, size, "threads vs 1 thread");
                free(many);
            }
            free(one);
        }
    }
}

Test(rng, empty_tensor_is_filled_trivially)
{
    qc_ctx *ctx = seeded_ctx(2, 1);
    int64_t zero = 0;
    qc_tensor t = tu_tensor(NULL, QC_DT_F32, 1, &zero);
    TU_EXPECT_OK(qc_random_normal(ctx, &t, 0));
    TU_EXPECT_OK(qc_random_uniform(ctx, &t, 0));
    qc_ctx_free(ctx);
}
