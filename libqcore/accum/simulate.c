/* The dot products of real integer inputs through simulated P-bit registers, wrapping and saturating, with
 * the exact sums tracked alongside, QC_ACCUM_LANES rows at a time through the context's lane kernel.
 * Definitions as the ONNX executor's (libqcore/model/ops/quant_int.c): terms added in order of the
 * reduction index, one event per partial sum outside the register's range. */
#include <stdio.h>
#include <string.h>

#include "accum/accum.h"
#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "kernels/dispatch.h"
#include "kernels/ref/accum_ref.h"

enum { MAX_SIMULATED_OUTER_BITS = 63 };
/* Exact sums of K terms stay below 2^62, so a register (|value| <= 2^62) plus a term never leaves int64. */
static const qc_i128 MAX_EXACT = (qc_i128)1 << 62;

static qc_reg_range range_of(int32_t bits)
{
    return (qc_reg_range){-((int64_t)1 << (bits - 1)), ((int64_t)1 << (bits - 1)) - 1};
}

typedef struct simulation {
    const int32_t *x;
    int32_t *lanes; /* the weights in blocks of QC_ACCUM_LANES rows: [blocks][k][QC_ACCUM_LANES], zero padded */
    unsigned char *fits; /* [blocks][tiles]: no input in the spec's range can overflow any lane's inner register */
    int64_t k, rows, blocks, tile, tiles;
    qc_reg_range inner, outer;
    int64_t *y_wrap, *y_saturate;
    const qc_kernels *kernels;
} simulation;

/* Lane l of block `block` is row block * QC_ACCUM_LANES + l; rows past the end hold zero weights, whose
 * dot products are 0 and never overflow. */
static qc_status interleave(simulation *s, const int32_t *q)
{
    s->blocks = (s->rows + QC_ACCUM_LANES - 1) / QC_ACCUM_LANES;
    s->lanes = calloc((size_t)(s->blocks * s->k * QC_ACCUM_LANES), sizeof *s->lanes);
    if (s->lanes == NULL)
        return QC_FAIL_IN("qc_accum_simulate", QC_ERR_OUT_OF_MEMORY, "no memory to interleave a [%lld, %lld] q",
                          (long long)s->rows, (long long)s->k);
    for (int64_t r = 0; r < s->rows; r++)
        for (int64_t i = 0; i < s->k; i++)
            s->lanes[((r / QC_ACCUM_LANES) * s->k + i) * QC_ACCUM_LANES + r % QC_ACCUM_LANES] = q[r * s->k + i];
    return QC_OK;
}

/* A block's tile whose rows' worst cases all fit the inner register needs no register arithmetic (about
 * a third of the work of a tile that may overflow): its registers equal the exact sums. */
static qc_status mark_fitting_tiles(simulation *s, const int32_t *q, const qc_accum_spec *spec)
{
    s->fits = malloc((size_t)(s->blocks * s->tiles));
    qc_accum_budget *budgets = malloc((size_t)s->tiles * sizeof *budgets);
    if (s->fits == NULL || budgets == NULL) {
        free(budgets);
        return QC_FAIL_IN("qc_accum_simulate", QC_ERR_OUT_OF_MEMORY, "no memory for %lld x %lld tiles",
                          (long long)s->blocks, (long long)s->tiles);
    }
    memset(s->fits, 1, (size_t)(s->blocks * s->tiles));
    for (int64_t r = 0; r < s->rows; r++) {
        qc__accum_row_budgets(budgets, q + r * s->k, s->k, s->tile);
        for (int64_t b = 0; b < s->tiles; b++)
            if (qc__accum_budget_bits(budgets[b], spec->input_min, spec->input_max) > spec->bits)
                s->fits[(r / QC_ACCUM_LANES) * s->tiles + b] = 0;
    }
    free(budgets);
    return QC_OK;
}

/* The dot products of one sample with one block of rows: tiles through the inner registers (the kernel),
 * their values through the outer ones, lane by lane. */
typedef struct lane_dots {
    qc_registers outer[QC_ACCUM_LANES];
    uint64_t inner_wrap[QC_ACCUM_LANES], inner_saturate[QC_ACCUM_LANES];
    int64_t exact[QC_ACCUM_LANES];
} lane_dots;

static void add_tile(lane_dots *d, const qc_accum_lanes *t, int lanes, const simulation *s, qc_accum_sim *st)
{
    for (int l = 0; l < lanes; l++) {
        st->max_abs_partial_sum = qc__max_abs(st->max_abs_partial_sum, t->top[l]);
        d->exact[l] += t->exact[l];
        st->max_abs_outer_sum = qc__max_abs(st->max_abs_outer_sum, d->exact[l]);
        d->inner_wrap[l] += t->wrap_events[l];
        d->inner_saturate[l] += t->saturate_events[l];
        if (s->tiles > 1) qc__registers_add(&d->outer[l], t->wrap[l], t->saturate[l], s->outer);
        else d->outer[l] = (qc_registers){t->wrap[l], t->saturate[l], 0, 0};
    }
}

static void dot_block(const simulation *s, int64_t sample, int64_t block, qc_accum_sim *st)
{
    const int32_t *x = s->x + sample * s->k, *q = s->lanes + block * s->k * QC_ACCUM_LANES;
    int64_t r0 = block * QC_ACCUM_LANES;
    int lanes = s->rows - r0 < QC_ACCUM_LANES ? (int)(s->rows - r0) : QC_ACCUM_LANES;
    lane_dots d = {0};
    qc_accum_lanes t;
    for (int64_t b = 0; b < s->tiles; b++) {
        int64_t i0 = b * s->tile, i1 = i0 + s->tile < s->k ? i0 + s->tile : s->k;
        s->kernels->accum_tile(&t, x + i0, q + i0 * QC_ACCUM_LANES, i1 - i0, s->inner.lo, s->inner.hi,
                               s->fits[block * s->tiles + b]);
        add_tile(&d, &t, lanes, s, st);
    }
    for (int l = 0; l < lanes; l++) {
        const qc_registers *o = &d.outer[l];
        st->dot_products++;
        st->wrap_events += d.inner_wrap[l];
        st->saturate_events += d.inner_saturate[l];
        st->wrap_outer_events += o->wrap_events;
        st->saturate_outer_events += o->saturate_events;
        st->wrap_overflowing_products += d.inner_wrap[l] + o->wrap_events > 0;
        st->saturate_overflowing_products += d.inner_saturate[l] + o->saturate_events > 0;
        if (s->y_wrap) s->y_wrap[sample * s->rows + r0 + l] = o->wrap;
        if (s->y_saturate) s->y_saturate[sample * s->rows + r0 + l] = o->saturate;
    }
}

static void add_sim(qc_accum_sim *total, const qc_accum_sim *part)
{
    total->dot_products += part->dot_products;
    total->max_abs_partial_sum = qc__max_abs(total->max_abs_partial_sum, part->max_abs_partial_sum);
    total->max_abs_outer_sum = qc__max_abs(total->max_abs_outer_sum, part->max_abs_outer_sum);
    total->wrap_events += part->wrap_events;
    total->wrap_outer_events += part->wrap_outer_events;
    total->wrap_overflowing_products += part->wrap_overflowing_products;
    total->saturate_events += part->saturate_events;
    total->saturate_outer_events += part->saturate_outer_events;
    total->saturate_overflowing_products += part->saturate_overflowing_products;
}

static void run(const simulation *s, int64_t n, int threads, qc_accum_sim *total)
{
#pragma omp parallel num_threads(threads)
    {
        qc_accum_sim mine = {0};
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++)
            for (int64_t block = 0; block < s->blocks; block++) dot_block(s, i, block, &mine);
#pragma omp critical(qc_accum_simulate)
        add_sim(total, &mine);
    }
}

/* The largest |value| of n integers. */
static int64_t largest_magnitude(const int32_t *v, int64_t n)
{
    int64_t top = 0;
    for (int64_t i = 0; i < n; i++) top = qc__max_abs(top, v[i]);
    return top;
}

static qc_status check_inputs(const qc_tensor *x, int64_t k, const qc_accum_spec *spec, const char *function)
{
    QC_TRY(qc__accum_check_weights(x, "x", function));
    if (x->dims[1] != k)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'x': %lld inputs per sample, but q has K = %lld",
                          (long long)x->dims[1], (long long)k);
    const int32_t *v = x->data;
    for (int64_t i = 0, n = qc_tensor_numel(x); i < n; i++)
        if (v[i] < spec->input_min || v[i] > spec->input_max)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                              "argument 'x': element [%lld, %lld] = %d is outside the spec's input range [%lld, %lld]",
                              (long long)(i / k), (long long)(i % k), (int)v[i], (long long)spec->input_min,
                              (long long)spec->input_max);
    return QC_OK;
}

static qc_status check_output(const qc_tensor *y, const char *name, int64_t n, int64_t rows, const char *function)
{
    if (y == NULL) return QC_OK;
    QC_TRY(qc__tensor_expect(y, function, name, QC_DT_I64));
    if (y->ndim != 2 || y->dims[0] != n || y->dims[1] != rows) {
        char got[160];
        qc__shape_string(got, sizeof got, y->ndim, y->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument '%s': shape %s, expected [%lld, %lld] (samples, rows)", name,
                          got, (long long)n, (long long)rows);
    }
    return QC_OK;
}

static qc_status check_stats(const qc_accum_sim *stats, const char *function)
{
    if (stats == NULL) return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'stats' is NULL");
    if (stats->version == 0 || stats->version > QC_ACCUM_SIM_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION,
                          "argument 'stats': version = %u is unknown (this library knows 1..%d; use QC_ACCUM_SIM_INIT)",
                          (unsigned)stats->version, QC_ACCUM_SIM_VERSION);
    return QC_OK;
}

qc_status qc_accum_simulate(qc_ctx *ctx, qc_accum_sim *stats, qc_tensor *y_wrap, qc_tensor *y_saturate,
                            const qc_tensor *x, const qc_tensor *q, const qc_accum_spec *spec)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(check_stats(stats, __func__));
    QC_TRY(qc__accum_check_weights(q, "q", __func__));
    int64_t rows = q->dims[0], k = q->dims[1];
    qc_accum_spec s;
    QC_TRY(qc__accum_spec(&s, spec, k, QC_ACCUM_MAX_SIMULATED_BITS, MAX_SIMULATED_OUTER_BITS, __func__));
    QC_TRY(check_inputs(x, k, &s, __func__));
    int64_t n = x->dims[0];
    QC_TRY(check_output(y_wrap, "y_wrap", n, rows, __func__));
    QC_TRY(check_output(y_saturate, "y_saturate", n, rows, __func__));
    qc_i128 worst = (qc_i128)k * largest_magnitude(x->data, n * k) * largest_magnitude(q->data, rows * k);
    if (worst >= MAX_EXACT)
        return QC_FAIL(QC_ERR_OVERFLOW, "K * max|x| * max|q| = %.3g reaches 2^62: the exact sums cannot be tracked",
                       (double)worst);
    simulation sim = {.x = x->data, .k = k, .rows = rows, .tile = s.tile, .tiles = qc__accum_tiles(k, s.tile),
                      .inner = range_of(s.bits), .outer = range_of(s.outer_bits),
                      .y_wrap = y_wrap ? y_wrap->data : NULL, .y_saturate = y_saturate ? y_saturate->data : NULL,
                      .kernels = ctx->kernels};
    qc_status st = interleave(&sim, q->data);
    if (st == QC_OK) st = mark_fitting_tiles(&sim, q->data, &s);
    if (st == QC_OK) {
        qc_accum_sim total = {.version = stats->version};
        run(&sim, n, qc__ctx_threads(ctx), &total);
        *stats = total;
    }
    free(sim.lanes);
    free(sim.fits);
    return st;
}
