/* Low-bit uniform layers on the bit-serial kernels. A uniform code is an unsigned integer plus an offset,
 * and an unsigned integer below 2^K is the LQ level of its K bits on the basis (1, 2, 4, 8): so the
 * integer layer's sum can be taken as AND-popcounts of bit-planes ({0,1} x {0,1} codes) when both
 * operands' codes span few bits. With w' = w - w_min and u' = u - u_min (both in [0, 2^K)),
 *   sum_k (u - zu)(w - zw) = S + (w_min - zw) sum_k u' + (u_min - zu) sum_k w' + K (u_min - zu)(w_min - zw),
 * S = sum_k u' w', which qc_bitserial_layer returns exactly (at most 65535 * 15 * 15 < 2^24, so even its
 * float result holds it without rounding). The weights' span is fixed per session; the inputs' is taken
 * from each run's codes (a Clip in front of the QuantizeLinear narrows it), and a layer per input width
 * is made on first use. The same int32 sums as qc_int8_gemm's, so the scaling that follows gives the same
 * bits on either kernel. */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/qdq_bitserial.h"
#include "qcore/qc_kernels.h"
#include "qcore/qc_lq.h"

enum { MAX_PLANES = 4, BIG_LAYER = 1 << 20 };

static const float POWERS_OF_TWO[MAX_PLANES] = {1.0f, 2.0f, 4.0f, 8.0f};

struct qce_qdq_bitserial {
    int64_t outputs, k;
    int kw;
    int32_t w_min;
    int64_t *w_sums;                            /* sum_k w'[o, k] */
    qc_tensor planes, interleaved;              /* w's bit-planes, as qc_lq_pack and qc_bitserial_interleave make them */
    qc_tensor w_basis;                          /* f32 [O, Kw]: 1, 2, 4, 8 in every row */
    void *planes_data, *interleaved_data;       /* their storage */
    float *basis_data;
    qc_bitserial_layer *layers[MAX_PLANES + 1]; /* by the inputs' plane count Ka, made on first use */
};

/* Bits needed for values 0 .. span. */
static int bits_for(int64_t span)
{
    int bits = 1;
    while (bits <= 8 && ((int64_t)1 << bits) <= span) bits++;
    return bits;
}

void qce__qdq_bitserial_free(qce_qdq_bitserial *b)
{
    if (b == NULL) return;
    for (int ka = 0; ka <= MAX_PLANES; ka++) qc_bitserial_layer_free(b->layers[ka]);
    free(b->w_sums);
    free(b->planes_data);
    free(b->interleaved_data);
    free(b->basis_data);
    free(b);
}

int qce__qdq_bitserial_weight_planes(const qce_qdq_bitserial *b)
{
    return b ? b->kw : 0;
}

/* w' = w - w_min as u8 [O, k] codes, and each row's sum. */
static uint8_t *offset_codes(const qce_qdq_bitserial *b, const int8_t *rows, int64_t row_stride)
{
    uint8_t *codes = malloc((size_t)(b->outputs * b->k) + 1);
    for (int64_t o = 0; codes && o < b->outputs; o++) {
        int64_t sum = 0;
        for (int64_t k = 0; k < b->k; k++) {
            codes[o * b->k + k] = (uint8_t)(rows[o * row_stride + k] - b->w_min);
            sum += codes[o * b->k + k];
        }
        b->w_sums[o] = sum;
    }
    return codes;
}

/* The storage b owns (freed by qce__qdq_bitserial_free whatever happens here) and the tensors over it. */
static qc_status pack_planes(qc_ctx *ctx, qce_qdq_bitserial *b, const uint8_t *codes)
{
    int64_t words = qc_lq_plane_words(b->k), groups = qc_bitserial_interleaved_groups(b->outputs, b->kw);
    int64_t code_dims[2] = {b->outputs, b->k}, plane_dims[3] = {b->outputs, b->kw, words}, mixed[3] = {groups, words, 8};
    int64_t basis_dims[2] = {b->outputs, b->kw};
    b->basis_data = malloc(sizeof *b->basis_data * (size_t)(b->outputs * b->kw) + 1);
    b->planes_data = aligned_alloc(64, (size_t)(b->outputs * b->kw * words) * 8 + 64);
    b->interleaved_data = aligned_alloc(64, (size_t)(groups * words) * 64 + 64);
    if (!b->basis_data || !b->planes_data || !b->interleaved_data) return QC_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; i < b->outputs * b->kw; i++) b->basis_data[i] = POWERS_OF_TWO[i % b->kw];
    qc_tensor c;
    qc_status st = qc_tensor_init(&b->planes, b->planes_data, QC_DT_I64, 3, plane_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&b->interleaved, b->interleaved_data, QC_DT_I64, 3, mixed, NULL);
    if (st == QC_OK) st = qc_tensor_init(&b->w_basis, b->basis_data, QC_DT_F32, 2, basis_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&c, (void *)codes, QC_DT_U8, 2, code_dims, NULL);
    if (st == QC_OK) st = qc_lq_pack(ctx, &b->planes, &c);
    if (st == QC_OK) st = qc_bitserial_interleave(ctx, &b->interleaved, &b->planes);
    return st;
}

qc_status qce__qdq_bitserial_create(const qce_call *call, qce_qdq_bitserial **out, const int8_t *rows, int64_t row_stride,
                                    int64_t outputs, int64_t k)
{
    *out = NULL;
    int32_t lo = rows[0], hi = rows[0];
    for (int64_t o = 0; o < outputs; o++)
        for (int64_t i = 0; i < k; i++) {
            int32_t w = rows[o * row_stride + i];
            lo = w < lo ? w : lo, hi = w > hi ? w : hi;
        }
    if (bits_for(hi - lo) > MAX_PLANES) return QC_OK; /* too wide: the int8 kernel serves */
    qce_qdq_bitserial *b = calloc(1, sizeof *b);
    if (b == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the bit-serial weights");
    b->outputs = outputs, b->k = k, b->kw = bits_for(hi - lo), b->w_min = lo;
    b->w_sums = malloc(sizeof *b->w_sums * (size_t)outputs + 1);
    uint8_t *codes = b->w_sums ? offset_codes(b, rows, row_stride) : NULL;
    qc_status st = codes ? pack_planes(call->ctx, b, codes) : QC_ERR_OUT_OF_MEMORY;
    free(codes);
    if (st != QC_OK) {
        qce__qdq_bitserial_free(b);
        return qce__fail(call, st, "bit-serial weights: %s", st == QC_ERR_OUT_OF_MEMORY ? "no memory" : qc_last_error());
    }
    *out = b;
    return QC_OK;
}

/* Whether the Kw x Ka plane pairs' products beat qc_int8_gemm's, from measurements of both on QDQ layers
 * in the executor (benchmarks/bench_qdq_exec.py, its layer_shapes rows; one AVX-512 VNNI core): one pair
 * (W1A1) wins everywhere (1.2x at 784 x 512, up to 7x at 4096^2); a GEMV over weights of a megabyte or
 * more reads them from memory, so reading bits instead of bytes wins up to 4 x 4 pairs (1.3x to 3.3x);
 * up to 8 rows the VNNI product catches up beyond 2 x 2 pairs, and beyond 8 rows at 2 x 2. On smaller
 * layers the fixed costs of both tie from 2 x 2 pairs. */
static int bitserial_wins(const qce_qdq_bitserial *b, int ka, int64_t rows)
{
    int pairs = b->kw * ka, big = b->outputs * b->k >= BIG_LAYER;
    if (pairs == 1) return 1;
    if (rows == 1) return big && pairs <= 16;
    return rows <= 8 && big && pairs <= 4;
}

int qce__qdq_bitserial_input_planes(const qce_qdq_bitserial *b, const uint8_t *u, int64_t rows, int64_t row_stride,
                                    int force, int32_t *u_min)
{
    if (b == NULL) return 0;
    uint8_t lo = u[0], hi = u[0];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < b->k; k++) {
            uint8_t v = u[r * row_stride + k];
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    int ka = bits_for(hi - lo);
    if (ka > MAX_PLANES || !(force || bitserial_wins(b, ka, rows))) return 0;
    *u_min = lo;
    return ka;
}

static qc_status layer_for(const qce_call *call, qce_qdq_bitserial *b, int ka)
{
    if (b->layers[ka] != NULL) return QC_OK;
    int64_t dims[1] = {ka};
    qc_tensor x_basis;
    qc_status st = qc_tensor_init(&x_basis, (void *)POWERS_OF_TWO, QC_DT_F32, 1, dims, NULL);
    if (st == QC_OK)
        st = qc_bitserial_layer_create(&b->layers[ka], call->ctx, b->k, &x_basis, QC_LQ_UNSIGNED, &b->planes,
                                       &b->interleaved, &b->w_basis, QC_LQ_UNSIGNED, NULL);
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

/* S [rows, O] = sum_k u' w' through the layer for Ka planes, as floats holding exact integers. */
static qc_status plane_products(const qce_call *call, qce_qdq_bitserial *b, int ka, const uint8_t *u, int64_t rows,
                                int64_t row_stride, int32_t u_min, float *s)
{
    QCE_TRY(layer_for(call, b, ka));
    float *x = malloc(sizeof *x * (size_t)(rows * b->k) + 1);
    if (x == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the bit-serial inputs");
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < b->k; k++) x[r * b->k + k] = (float)(u[r * row_stride + k] - u_min);
    int64_t x_dims[2] = {rows, b->k}, y_dims[2] = {rows, b->outputs};
    qc_tensor xt, yt;
    qc_status st = qc_tensor_init(&xt, x, QC_DT_F32, 2, x_dims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&yt, s, QC_DT_F32, 2, y_dims, NULL);
    if (st == QC_OK) st = qc_bitserial_layer_run(b->layers[ka], call->ctx, &yt, &xt);
    free(x);
    return st == QC_OK ? QC_OK : qce__fail(call, st, "%s", qc_last_error());
}

qc_status qce__qdq_bitserial_sums(const qce_call *call, qce_qdq_bitserial *b, int ka, const qce_qdq_operands *op,
                                  int32_t *sums)
{
    float *s = malloc(sizeof *s * (size_t)(op->rows * b->outputs) + 1);
    if (s == NULL) return qce__fail(call, QC_ERR_OUT_OF_MEMORY, "no memory for the bit-serial sums");
    qc_status st = plane_products(call, b, ka, op->u, op->rows, op->row_stride, op->u_min, s);
    int64_t du = op->u_min - op->zu, bad = 0;
    for (int64_t r = 0; st == QC_OK && r < op->rows; r++) {
        int64_t u_offset_sum = op->u_sums[r] - b->k * (int64_t)op->u_min;
        for (int64_t o = 0; o < b->outputs; o++) {
            int64_t dw = b->w_min - op->zw[o];
            int64_t total = (int64_t)s[r * b->outputs + o] + dw * u_offset_sum + du * b->w_sums[o] + b->k * du * dw;
            bad |= total != (int32_t)total;
            sums[r * b->outputs + o] = (int32_t)total;
        }
    }
    free(s);
    if (st == QC_OK && bad)
        return qce__fail(call, QC_ERR_OVERFLOW, "a sum of %lld products does not fit the int32 accumulator", (long long)b->k);
    return st;
}
