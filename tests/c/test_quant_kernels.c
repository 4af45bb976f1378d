/* Kernel sets (kernels/): every table this machine can run computes exactly what the reference table
 * computes, and the reference computes the ONNX formulas. Lengths 0..70 cover every vector tail of the
 * 8- and 16-lane kernels; buffers are misaligned and guarded to catch stray loads and stores. */
#include <float.h>

#include "kernels/dispatch.h"
#include "test_util.h"

enum { GUARD = 64, FLOAT_SHIFT = 1, BYTE_SHIFT = 3 }; /* views start off the allocations' alignment */
static const unsigned char CANARY = 0xA5;

typedef struct grid_case {
    const char *name;
    qc_grid_run g;
} grid_case;

static const grid_case grids[] = {
    {"int8, scale 1/2", {0.5f, 0, -128, 127}},
    {"int8 narrow, inexact scale", {0.0371f, 0, -127, 127}},
    {"int8, zero point -17", {0.25f, -17, -128, 127}},
    {"uint8, zero point 128", {0.125f, 128, 0, 255}},
    {"uint8, scale 1, zero point 3", {1.0f, 3, 0, 255}},
    {"uint8 narrow", {2.0f, 128, 1, 255}},
    {"int4 grid", {0.5f, -2, -8, 7}},
    {"uint4 grid", {0.75f, 7, 0, 15}},
    {"int8, tiny scale (quotients overflow)", {1e-30f, 0, -128, 127}},
};

/* Test values for grid g: exact ties, values just beside ties, values beyond both clip edges, huge
 * values, signed zeros, subnormals and plain values inside the range. */
static float sample_value(const qc_grid_run *g, uint64_t *state)
{
    uint64_t r = tu_next(state);
    int32_t span = g->qmax - g->qmin + 8;
    float level = (float)(g->qmin - g->zero_point - 4 + (int32_t)(r % (uint64_t)span));
    switch ((r >> 32) % 8) {
    case 0: return (level + 0.5f) * g->scale;                          /* a tie when the scale is a power of 2 */
    case 1: return nextafterf((level + 0.5f) * g->scale, INFINITY);     /* just above a tie */
    case 2: return nextafterf((level + 0.5f) * g->scale, -INFINITY);    /* just below a tie */
    case 3: return (float)(g->qmax - g->zero_point + 1 + (int32_t)(r % 300)) * g->scale; /* above qmax */
    case 4: return (float)(g->qmin - g->zero_point - 1 - (int32_t)(r % 300)) * g->scale; /* below qmin */
    case 5: {
        static const float special[] = {0.0f, -0.0f, FLT_MAX, -FLT_MAX, 1e30f, -1e30f, 1e-40f, -1e-40f, FLT_MIN};
        return special[(r >> 8) % TU_COUNT(special)];
    }
    default: return level * g->scale + tu_signed_unit(state) * g->scale;
    }
}

typedef struct buffers {
    float *x_store, *y_store, *want_f_store;
    uint8_t *q_store, *want_q_store;
    float *x, *y, *want_f; /* misaligned views */
    uint8_t *q, *want_q;
} buffers;

static buffers make_buffers(size_t n)
{
    buffers b;
    size_t count = n + GUARD + BYTE_SHIFT;
    b.x_store = malloc(count * sizeof(float));
    b.y_store = malloc(count * sizeof(float));
    b.want_f_store = malloc(count * sizeof(float));
    b.q_store = malloc(count);
    b.want_q_store = malloc(count);
    cr_assert(b.x_store && b.y_store && b.want_f_store && b.q_store && b.want_q_store);
    b.x = b.x_store + FLOAT_SHIFT;
    b.y = b.y_store + FLOAT_SHIFT;
    b.want_f = b.want_f_store + FLOAT_SHIFT;
    b.q = b.q_store + BYTE_SHIFT;
    b.want_q = b.want_q_store + BYTE_SHIFT;
    return b;
}

static void free_buffers(buffers *b)
{
    free(b->x_store);
    free(b->y_store);
    free(b->want_f_store);
    free(b->q_store);
    free(b->want_q_store);
}

/* Output areas start full of canaries so that the guard region after n elements can be compared. */
static void reset_outputs(buffers *b, size_t n)
{
    memset(b->y, CANARY, (n + GUARD) * sizeof(float));
    memset(b->want_f, CANARY, (n + GUARD) * sizeof(float));
    memset(b->q, CANARY, n + GUARD);
    memset(b->want_q, CANARY, n + GUARD);
}

static void fill_inputs(buffers *b, size_t n, const qc_grid_run *g, uint64_t seed)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n + GUARD; i++) b->x[i] = sample_value(g, &state); /* past n too: must be ignored */
}

static void check_quantize(const qc_kernels *k, buffers *b, size_t n, const grid_case *c)
{
    reset_outputs(b, n);
    qc__kernels_ref.quantize_f32_bytes(b->want_q, b->x, n, c->g);
    for (size_t i = 0; i < n; i++) {
        int32_t want = tu_quantize_one(b->x[i], c->g.scale, c->g.zero_point, c->g.qmin, c->g.qmax);
        cr_assert_eq(b->want_q[i], (uint8_t)want, "ref quantize, %s, x = %a", c->name, (double)b->x[i]);
    }
    k->quantize_f32_bytes(b->q, b->x, n, c->g);
    tu_assert_same_bytes(b->q, b->want_q, n + GUARD, c->name);
}

static void check_dequantize(const qc_kernels *k, buffers *b, size_t n, const grid_case *c, int is_signed)
{
    reset_outputs(b, n);
    for (size_t i = 0; i < n + GUARD; i++) b->q[i] = (uint8_t)(i * 37 + 11); /* every byte value */
    qc__kernels_ref.dequantize_bytes_f32(b->want_f, b->q, n, is_signed, c->g);
    for (size_t i = 0; i < n; i++) {
        int32_t v = is_signed ? (int8_t)b->q[i] : b->q[i];
        float want = tu_dequantize_one(v, c->g.scale, c->g.zero_point);
        cr_assert(memcmp(&b->want_f[i], &want, sizeof want) == 0, "ref dequantize, %s, q = %d", c->name, v);
    }
    k->dequantize_bytes_f32(b->y, b->q, n, is_signed, c->g);
    tu_assert_same_bytes(b->y, b->want_f, (n + GUARD) * sizeof(float), c->name);
}

static void check_fake_quantize(const qc_kernels *k, buffers *b, size_t n, const grid_case *c)
{
    reset_outputs(b, n);
    qc__kernels_ref.fake_quantize_f32(b->want_f, b->x, n, c->g);
    for (size_t i = 0; i < n; i++) {
        int32_t q = tu_quantize_one(b->x[i], c->g.scale, c->g.zero_point, c->g.qmin, c->g.qmax);
        float want = tu_dequantize_one(q, c->g.scale, c->g.zero_point);
        cr_assert(memcmp(&b->want_f[i], &want, sizeof want) == 0, "ref fake quantize, %s, x = %a", c->name,
                  (double)b->x[i]);
    }
    k->fake_quantize_f32(b->y, b->x, n, c->g);
    tu_assert_same_bytes(b->y, b->want_f, (n + GUARD) * sizeof(float), c->name);
    /* In place (out aliases x), as qc_fake_quantize allows. */
    for (size_t i = 0; i < n; i++) b->y[i] = b->x[i];
    k->fake_quantize_f32(b->y, b->y, n, c->g);
    tu_assert_same_floats(b->y, b->want_f, n, c->name);
}

static void check_all_kernels(qc_arch arch, size_t n)
{
    const qc_kernels *k = qc__kernels_for(arch);
    cr_assert_eq(k->arch, arch);
    buffers b = make_buffers(n);
    for (size_t i = 0; i < TU_COUNT(grids); i++) {
        fill_inputs(&b, n, &grids[i].g, 1000 * i + n);
        check_quantize(k, &b, n, &grids[i]);
        check_dequantize(k, &b, n, &grids[i], 1);
        check_dequantize(k, &b, n, &grids[i], 0);
        check_fake_quantize(k, &b, n, &grids[i]);
    }
    free_buffers(&b);
}

static void check_arch(qc_arch arch)
{
    if (!qc_arch_supported(arch)) {
        cr_log_info("%s kernels cannot run on this machine: skipped", qc_arch_string(arch));
        return;
    }
    static const size_t big[] = {255, 1001, 4099, 65537};
    for (size_t n = 0; n <= 70; n++) check_all_kernels(arch, n);
    for (size_t i = 0; i < TU_COUNT(big); i++) check_all_kernels(arch, big[i]);
}

Test(quant_kernels, ref_follows_onnx)
{
    check_arch(QC_ARCH_REF);
}

Test(quant_kernels, avx2_equals_ref)
{
    check_arch(QC_ARCH_AVX2);
}

Test(quant_kernels, avx512_equals_ref)
{
    check_arch(QC_ARCH_AVX512);
}

Test(quant_kernels, ties_round_half_to_even)
{
    /* Hand-computed: scale 1, zero point 0. */
    static const float x[] = {0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, 126.5f, 127.5f, -128.5f, 0.49999997f};
    static const int8_t want[] = {0, 2, 2, 4, 0, -2, -2, 126, 127, -128, 0};
    const qc_grid_run g = {1.0f, 0, -128, 127};
    for (size_t a = 0; a < TU_COUNT(tu_archs); a++) {
        if (!qc_arch_supported(tu_archs[a])) continue;
        /* 16 copies so that the vector bodies, not only the scalar tails, see every value. */
        enum { N = TU_COUNT(x) * 16 };
        float in[N];
        uint8_t out[N];
        for (size_t i = 0; i < N; i++) in[i] = x[i % TU_COUNT(x)];
        qc__kernels_for(tu_archs[a])->quantize_f32_bytes(out, in, N, g);
        for (size_t i = 0; i < N; i++)
            cr_assert_eq((int8_t)out[i], want[i % TU_COUNT(x)], "%s: x = %g", qc_arch_string(tu_archs[a]),
                         (double)in[i]);
    }
}
