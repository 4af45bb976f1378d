/* qc_bitserial_layer (made once, run many times) gives bit for bit what qc_bitserial_gemm gives on the
 * reference kernel set (itself checked against numpy in tests/python/test_bitserial.py), on every kernel
 * set, 1 and 2 threads (2 with the interleaved weights only), with and without interleaved weights and
 * bias, every code pairing, Kw and Ka 1..4, row lengths with every word and vector tail, output counts
 * across the 8-lane, 8-row group and 128-output item boundaries, and 1, 2, 3, 5, 8 and 9 rows (the GEMV's
 * blocks, the 8-row tiles and their tails); and it rejects bad input with a precise error, writing
 * nothing. */
#include "test_util.h"

enum { MAX_ROWS = 9, MAX_N = 784, MAX_OUT = 135, MAX_BITS = 4 };

typedef struct layer_case {
    int64_t n, outputs;
    int kw, ka;
    qc_lq_code x_code, w_code;
} layer_case;

/* Random planes with zero padding past n, as qc_lq_pack leaves them. */
static void random_planes(uint64_t *planes, int64_t rows, int64_t words, int64_t n, uint64_t *state)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t w = 0; w < words; w++) {
            uint64_t word = tu_next(state);
            int64_t first = w * 64;
            if (first >= n) word = 0;
            else if (n - first < 64) word &= (1ull << (n - first)) - 1;
            planes[r * words + w] = word;
        }
}

/* Contexts of every kernel set this machine runs, 1 and 2 threads ([arch][threads - 1], NULL: skipped), and
 * the reference's. */
static qc_ctx *ctxs[3][2], *ref;

static void make_contexts(void)
{
    ref = tu_ctx(1, QC_ARCH_REF);
    for (size_t a = 0; a < TU_COUNT(tu_archs); a++)
        for (int t = 0; t < 2; t++) ctxs[a][t] = qc_arch_supported(tu_archs[a]) ? tu_ctx(t + 1, tu_archs[a]) : NULL;
}

static void free_contexts(void)
{
    qc_ctx_free(ref);
    for (size_t a = 0; a < TU_COUNT(tu_archs); a++)
        for (int t = 0; t < 2; t++) qc_ctx_free(ctxs[a][t]);
}

static void check_case(const layer_case *c, uint64_t seed)
{
    static uint64_t planes[MAX_OUT * MAX_BITS * 16], il[(MAX_OUT * MAX_BITS + 7) / 8 * 16 * 8];
    static float x[MAX_ROWS * MAX_N], w_basis[MAX_OUT * MAX_BITS], bias[MAX_OUT], want[MAX_ROWS * MAX_OUT],
        got[MAX_ROWS * MAX_OUT + 4];
    float x_basis[MAX_BITS];
    uint64_t state = seed;
    int64_t words = qc_lq_plane_words(c->n), o = c->outputs;
    random_planes(planes, o * c->kw, words, c->n, &state);
    for (int64_t k = 0; k < o * c->kw; k++) w_basis[k] = 0.05f + 0.3f * (tu_signed_unit(&state) + 1.0f);
    for (int j = 0; j < c->ka; j++) x_basis[j] = 0.1f * (float)(1 << j) * (1.0f + 0.2f * tu_signed_unit(&state));
    for (int64_t k = 0; k < o; k++) bias[k] = tu_signed_unit(&state);
    for (int64_t k = 0; k < MAX_ROWS * c->n; k++) x[k] = 1.5f * tu_signed_unit(&state);
    int64_t p_dims[3] = {o, c->kw, words}, wb_dims[2] = {o, c->kw};
    int64_t groups = qc_bitserial_interleaved_groups(o, c->kw), il_dims[3] = {groups, words, 8};
    qc_tensor tp = tu_tensor(planes, QC_DT_I64, 3, p_dims), twb = tu_tensor(w_basis, QC_DT_F32, 2, wb_dims);
    qc_tensor txb = tu_vector(x_basis, QC_DT_F32, c->ka), tb = tu_vector(bias, QC_DT_F32, o);
    qc_tensor til = tu_tensor(il, QC_DT_I64, 3, il_dims);
    cr_assert_eq(qc_bitserial_interleave(ref, &til, &tp), QC_OK, "%s", qc_last_error());
    static const int64_t row_counts[] = {1, 2, 3, 5, 8, 9};
    for (int with_bias = 0; with_bias < 2; with_bias++)
        for (size_t ri = 0; ri < TU_COUNT(row_counts); ri++) {
            int64_t rows = row_counts[ri];
            int64_t x_dims[2] = {rows, c->n}, y_dims[2] = {rows, o};
            qc_tensor tx = tu_tensor(x, QC_DT_F32, 2, x_dims), ty = tu_tensor(want, QC_DT_F32, 2, y_dims);
            cr_assert_eq(qc_bitserial_gemm(ref, &ty, &tx, &txb, c->x_code, &tp, &twb, c->w_code, with_bias ? &tb : NULL),
                         QC_OK, "%s", qc_last_error());
            for (size_t a = 0; a < TU_COUNT(tu_archs); a++) {
                if (ctxs[a][0] == NULL) continue;
                for (int threads = 1; threads <= 2; threads++)
                    for (int interleaved = threads - 1; interleaved < 2; interleaved++) {
                        qc_ctx *ctx = ctxs[a][threads - 1];
                        qc_bitserial_layer *layer = NULL;
                        cr_assert_eq(qc_bitserial_layer_create(&layer, ctx, c->n, &txb, c->x_code, &tp,
                                                               interleaved ? &til : NULL, &twb, c->w_code,
                                                               with_bias ? &tb : NULL),
                                     QC_OK, "%s", qc_last_error());
                        for (size_t k = 0; k < TU_COUNT(got); k++) got[k] = -7.0f;
                        qc_tensor tg = tu_tensor(got, QC_DT_F32, 2, y_dims);
                        cr_assert_eq(qc_bitserial_layer_run(layer, ctx, &tg, &tx), QC_OK, "%s", qc_last_error());
                        cr_assert(memcmp(got, want, (size_t)(rows * o) * sizeof(float)) == 0,
                                  "%s threads %d il %d: n %lld O %lld kw %d ka %d codes %d/%d bias %d rows %lld",
                                  qc_arch_string(tu_archs[a]), threads, interleaved, (long long)c->n, (long long)o,
                                  c->kw, c->ka, c->x_code, c->w_code, with_bias, (long long)rows);
                        for (size_t k = (size_t)(rows * o); k < TU_COUNT(got); k++) cr_assert_eq(got[k], -7.0f);
                        qc_bitserial_layer_free(layer);
                    }
            }
        }
}

Test(bitserial_layer, equals_the_reference_gemm)
{
    static const int64_t lengths[] = {1, 63, 65, 130, 513, 784};
    static const int64_t outputs[] = {1, 7, 20, 135};
    uint64_t seed = 1;
    make_contexts();
    for (int codes = 0; codes < 4; codes++)
        for (size_t li = 0; li < TU_COUNT(lengths); li++)
            for (size_t oi = 0; oi < TU_COUNT(outputs); oi++) {
                /* Kw and Ka 1..4 between them, every pairing on the long rows */
                for (int kw = 1; kw <= MAX_BITS; kw++)
                    for (int ka = 1; ka <= MAX_BITS; ka++) {
                        if ((outputs[oi] != 20 || (lengths[li] != 65 && lengths[li] != 784)) && kw != ka) continue;
                        layer_case c = {lengths[li], outputs[oi], kw, ka, codes & 1 ? QC_LQ_SIGNED : QC_LQ_UNSIGNED,
                                        codes & 2 ? QC_LQ_SIGNED : QC_LQ_UNSIGNED};
                        check_case(&c, seed++);
                    }
            }
    free_contexts();
}

Test(bitserial_layer, bad_input)
{
    enum { N = 70, O = 9, KW = 2, KA = 3 };
    static uint64_t planes[O * KW * 8];
    float w_basis[O * KW], x_basis[KA] = {0.1f, 0.2f, 0.4f}, x[2 * N], y[2 * O], x_basis2[2 * KA] = {0};
    uint64_t state = 3;
    random_planes(planes, O * KW, 8, N, &state);
    for (int k = 0; k < O * KW; k++) w_basis[k] = 0.5f;
    for (int k = 0; k < 2 * N; k++) x[k] = tu_signed_unit(&state);
    int64_t p_dims[3] = {O, KW, 8}, wb_dims[2] = {O, KW}, xb2_dims[2] = {2, KA};
    qc_tensor tp = tu_tensor(planes, QC_DT_I64, 3, p_dims), twb = tu_tensor(w_basis, QC_DT_F32, 2, wb_dims);
    qc_tensor txb = tu_vector(x_basis, QC_DT_F32, KA), txb2 = tu_tensor(x_basis2, QC_DT_F32, 2, xb2_dims);
    qc_ctx *ctx = tu_ctx(1, QC_ARCH_REF);
    qc_bitserial_layer *layer = NULL;
    cr_assert_eq(qc_bitserial_layer_create(&layer, ctx, N, &txb2, QC_LQ_UNSIGNED, &tp, NULL, &twb, QC_LQ_SIGNED, NULL),
                 QC_ERR_SHAPE);
    cr_assert(strstr(qc_last_error(), "x_basis") != NULL, "%s", qc_last_error());
    cr_assert_null(layer);
    cr_assert_eq(qc_bitserial_layer_create(&layer, ctx, 2000, &txb, QC_LQ_UNSIGNED, &tp, NULL, &twb, QC_LQ_SIGNED, NULL),
                 QC_ERR_SHAPE); /* planes of 8 words are not rows of 2000 */
    cr_assert(strstr(qc_last_error(), "w_planes") != NULL, "%s", qc_last_error());
    cr_assert_eq(qc_bitserial_layer_create(&layer, ctx, N, &txb, QC_LQ_UNSIGNED, &tp, NULL, &twb, QC_LQ_SIGNED, NULL),
                 QC_OK, "%s", qc_last_error());
    int64_t x_dims[2] = {2, N}, y_dims[2] = {2, O}, bad_dims[2] = {2, O + 1}, short_dims[2] = {2, N - 1};
    qc_tensor tx = tu_tensor(x, QC_DT_F32, 2, x_dims), ty = tu_tensor(y, QC_DT_F32, 2, y_dims);
    qc_tensor ty_bad = tu_tensor(y, QC_DT_F32, 2, bad_dims), tx_short = tu_tensor(x, QC_DT_F32, 2, short_dims);
    cr_assert_eq(qc_bitserial_layer_run(layer, ctx, &ty_bad, &tx), QC_ERR_SHAPE);
    cr_assert(strstr(qc_last_error(), "[2, 10]") != NULL, "%s", qc_last_error());
    cr_assert_eq(qc_bitserial_layer_run(layer, ctx, &ty, &tx_short), QC_ERR_SHAPE);
    for (int k = 0; k < 2 * O; k++) y[k] = 5.0f;
    x[N + 3] = NAN;
    cr_assert_eq(qc_bitserial_layer_run(layer, ctx, &ty, &tx), QC_ERR_NUMERIC);
    cr_assert(strstr(qc_last_error(), "element 73") != NULL, "%s", qc_last_error());
    for (int k = 0; k < 2 * O; k++) cr_assert_eq(y[k], 5.0f); /* nothing written */
    cr_assert_eq(qc_bitserial_layer_run(NULL, ctx, &ty, &tx), QC_ERR_INVALID_ARG);
    qc_bitserial_layer_free(layer);
    qc_bitserial_layer_free(NULL);
    qc_ctx_free(ctx);
}
