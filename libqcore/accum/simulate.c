/* The dot products of real integer inputs through simulated P-bit registers, wrapping and saturating, with
 * the exact sums tracked alongside. Definitions as the ONNX executor's (libqcore/model/ops/quant_int.c):
 * terms added in order of the reduction index, one event per partial sum outside the register's range. */
#include <stdio.h>
#include <string.h>

#include "accum/accum.h"
#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"

enum { MAX_SIMULATED_OUTER_BITS = 63 };
/* Exact sums of K terms stay below 2^62, so a register (|value| <= 2^62) plus a term never leaves int64. */
static const qc_i128 MAX_EXACT = (qc_i128)1 << 62;

typedef struct reg_range {
    int64_t lo, hi;
} reg_range;

static reg_range range_of(int32_t bits)
{
    return (reg_range){-((int64_t)1 << (bits - 1)), ((int64_t)1 << (bits - 1)) - 1};
}

/* Adds `term` to a wrapping and to a saturating register; counts the events of each. */
typedef struct registers {
    int64_t wrap, saturate;
    uint64_t wrap_events, saturate_events;
} registers;

static inline void add_term(registers *r, int64_t wrap_term, int64_t saturate_term, reg_range range)
{
    int64_t span = range.hi - range.lo + 1;
    r->wrap += wrap_term;
    if (r->wrap < range.lo || r->wrap > range.hi) {
        r->wrap_events++;
        r->wrap = ((r->wrap - range.lo) % span + span) % span + range.lo;
    }
    r->saturate += saturate_term;
    if (r->saturate < range.lo || r->saturate > range.hi) {
        r->saturate_events++;
        r->saturate = r->saturate < range.lo ? range.lo : range.hi;
    }
}

static inline int64_t max_abs(int64_t top, int64_t v)
{
    v = v < 0 ? -v : v;
    return v > top ? v : top;
}

typedef struct simulation {
    const int32_t *x, *q;
    int64_t k, rows, tile, tiles;
    reg_range inner, outer;
    int64_t *y_wrap, *y_saturate;
    unsigned char *safe; /* per (row, tile): no input in the spec's range can overflow the inner register */
} simulation;

/* The tile's exact partial sums, its largest |partial sum| into *top; the registers follow them exactly. */
static int64_t exact_tile(const int32_t *x, const int32_t *q, int64_t i0, int64_t i1, int64_t *top)
{
    int64_t exact = 0;
    for (int64_t i = i0; i < i1; i++) {
        exact += (int64_t)x[i] * q[i];
        *top = max_abs(*top, exact);
    }
    return exact;
}

static int64_t register_tile(const int32_t *x, const int32_t *q, int64_t i0, int64_t i1, reg_range range,
                             registers *inner, int64_t *top)
{
    int64_t exact = 0;
    for (int64_t i = i0; i < i1; i++) {
        int64_t term = (int64_t)x[i] * q[i];
        exact += term;
        *top = max_abs(*top, exact);
        add_term(inner, term, term, range);
    }
    return exact;
}

/* One dot product (row r): tiles through the inner registers, their values through the outer ones. */
static void dot(const simulation *s, const int32_t *x, int64_t r, int64_t *y_wrap, int64_t *y_saturate,
                qc_accum_sim *st)
{
    const int32_t *q = s->q + r * s->k;
    registers outer = {0}, events = {0};
    int64_t exact_total = 0;
    for (int64_t b = 0; b < s->tiles; b++) {
        registers inner = {0};
        int64_t exact, end = (b + 1) * s->tile < s->k ? (b + 1) * s->tile : s->k;
        if (s->safe[r * s->tiles + b]) {
            exact = exact_tile(x, q, b * s->tile, end, &st->max_abs_partial_sum);
            inner.wrap = inner.saturate = exact;
        } else {
            exact = register_tile(x, q, b * s->tile, end, s->inner, &inner, &st->max_abs_partial_sum);
        }
        exact_total += exact;
        st->max_abs_outer_sum = max_abs(st->max_abs_outer_sum, exact_total);
        events.wrap_events += inner.wrap_events;
        events.saturate_events += inner.saturate_events;
        if (s->tiles > 1) add_term(&outer, inner.wrap, inner.saturate, s->outer);
        else outer = (registers){inner.wrap, inner.saturate, 0, 0};
    }
    st->dot_products++;
    st->wrap_events += events.wrap_events;
    st->saturate_events += events.saturate_events;
    st->wrap_outer_events += outer.wrap_events;
    st->saturate_outer_events += outer.saturate_events;
    st->wrap_overflowing_products += events.wrap_events + outer.wrap_events > 0;
    st->saturate_overflowing_products += events.saturate_events + outer.saturate_events > 0;
    *y_wrap = outer.wrap;
    *y_saturate = outer.saturate;
}

static void add_sim(qc_accum_sim *total, const qc_accum_sim *part)
{
    total->dot_products += part->dot_products;
    total->max_abs_partial_sum = max_abs(total->max_abs_partial_sum, part->max_abs_partial_sum);
    total->max_abs_outer_sum = max_abs(total->max_abs_outer_sum, part->max_abs_outer_sum);
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
        int64_t yw, ys;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++)
            for (int64_t r = 0; r < s->rows; r++) {
                dot(s, s->x + i * s->k, r, &yw, &ys, &mine);
                if (s->y_wrap) s->y_wrap[i * s->rows + r] = yw;
                if (s->y_saturate) s->y_saturate[i * s->rows + r] = ys;
            }
#pragma omp critical(qc_accum_simulate)
        add_sim(total, &mine);
    }
}

/* Tiles whose worst case fits the inner register need no register arithmetic (about half the work): their
 * registers equal the exact sums. */
static qc_status mark_safe_tiles(simulation *sim, const qc_accum_spec *spec)
{
    sim->safe = malloc((size_t)(sim->rows * sim->tiles) + 1);
    qc_accum_budget *budgets = malloc((size_t)sim->tiles * sizeof *budgets);
    if (sim->safe == NULL || budgets == NULL) {
        free(sim->safe);
        free(budgets);
        return QC_FAIL_IN("qc_accum_simulate", QC_ERR_OUT_OF_MEMORY, "no memory for %lld x %lld tiles",
                          (long long)sim->rows, (long long)sim->tiles);
    }
    for (int64_t r = 0; r < sim->rows; r++) {
        qc__accum_row_budgets(budgets, sim->q + r * sim->k, sim->k, sim->tile);
        for (int64_t b = 0; b < sim->tiles; b++)
            sim->safe[r * sim->tiles + b] = qc__accum_budget_bits(budgets[b], spec->input_min, spec->input_max) <= spec->bits;
    }
    free(budgets);
    return QC_OK;
}

/* The largest |value| of n integers. */
static int64_t largest_magnitude(const int32_t *v, int64_t n)
{
    int64_t top = 0;
    for (int64_t i = 0; i < n; i++) top = max_abs(top, v[i]);
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
    simulation sim = {x->data, q->data, k, rows, s.tile, qc__accum_tiles(k, s.tile), range_of(s.bits),
                      range_of(s.outer_bits), y_wrap ? y_wrap->data : NULL, y_saturate ? y_saturate->data : NULL, NULL};
    QC_TRY(mark_safe_tiles(&sim, &s));
    qc_accum_sim total = {.version = stats->version};
    run(&sim, n, qc__ctx_threads(ctx), &total);
    free(sim.safe);
    *stats = total;
    return QC_OK;
}
