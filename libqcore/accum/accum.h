/* Internal: the accumulator calculus shared by the checks of qc_accum.h and AXE (gpxq/axe.c): exact worst
 * cases in 128-bit integers, widths, tiles, and the checked specification. */
#ifndef QC_ACCUM_INTERNAL_H
#define QC_ACCUM_INTERNAL_H

#include <stdlib.h>

#include "qcore/qc_accum.h"

/* Worst cases reach K * 2^31 * 2^32 = 2^94: beyond int64, so exact arithmetic needs 128 bits. */
__extension__ typedef __int128 qc_i128;

/* The largest input magnitude the calculus accepts (N = 32 unsigned inputs reach 2^32 - 1). */
#define QC_ACCUM_MAX_INPUT ((int64_t)1 << 32)

/* The sums of the positive and of the negative entries of a slice of integer weights. */
typedef struct qc_accum_budget {
    int64_t pos, neg; /* pos >= 0 >= neg */
} qc_accum_budget;

static inline void qc__accum_budget_add(qc_accum_budget *b, int64_t q)
{
    if (q > 0) b->pos += q;
    else b->neg += q;
}

/* The largest and smallest sums a slice with budget `b` reaches over inputs in [x_min, x_max]. */
static inline qc_i128 qc__accum_high(qc_accum_budget b, int64_t x_min, int64_t x_max)
{
    return (qc_i128)x_max * b.pos + (qc_i128)x_min * b.neg;
}

static inline qc_i128 qc__accum_low(qc_accum_budget b, int64_t x_min, int64_t x_max)
{
    return (qc_i128)x_min * b.pos + (qc_i128)x_max * b.neg;
}

/* A = 2^(P-1) - 1, the magnitude a P-bit accumulator is trusted with. */
static inline qc_i128 qc__accum_limit(int32_t bits)
{
    return ((qc_i128)1 << (bits - 1)) - 1;
}

/* The smallest P with |v| <= 2^(P-1) - 1: 1 + the bit length of |v|. */
int32_t qc__accum_bits_for(qc_i128 v);

/* The width a slice with budget `b` needs over [x_min, x_max]. */
static inline int32_t qc__accum_budget_bits(qc_accum_budget b, int64_t x_min, int64_t x_max)
{
    qc_i128 high = qc__accum_high(b, x_min, x_max), low = qc__accum_low(b, x_min, x_max);
    return qc__accum_bits_for(high > -low ? high : -low);
}

/* The levels the next weight of a slice may take, [*lo, *hi] with *lo <= 0 <= *hi, so that the slice's
 * worst case stays within [-A, A] for P = bits (AXE's strict local constraint, solved exactly: floor of the
 * upper limits, ceiling of the lower ones). `b` must itself satisfy the bound. */
void qc__accum_level_limits(int64_t *lo, int64_t *hi, qc_accum_budget b, int64_t x_min, int64_t x_max, int32_t bits);

/* Tiles of a row of k inputs with tile size t (0: k). */
static inline int64_t qc__accum_tiles(int64_t k, int64_t tile)
{
    return tile == 0 ? 1 : (k + tile - 1) / tile;
}

/* The budgets of each tile of one row of k weights (tile >= 1): budgets[b] covers [b tile, (b+1) tile). */
void qc__accum_row_budgets(qc_accum_budget *budgets, const int32_t *row, int64_t k, int64_t tile);

/* The implied outer width P + ceil(log2(tiles)). */
int32_t qc__accum_implied_outer(int32_t bits, int64_t tiles);

/* Checks an input range (messages start with `where`, e.g. "argument 'spec': ") and a width (bits in
 * min_bits..max_bits, `what` naming it) for `function`. */
qc_status qc__accum_check_range(int64_t x_min, int64_t x_max, const char *where, const char *function);
qc_status qc__accum_check_bits(int32_t bits, int32_t min_bits, int32_t max_bits, const char *what,
                               const char *function);

/* Checks a tile size against a row of k inputs. */
qc_status qc__accum_check_tile(int64_t tile, int64_t k, const char *what, const char *function);

/* Checks that `q` is an i32 [rows, K] matrix with K >= 1 (argument `name`). */
qc_status qc__accum_check_weights(const qc_tensor *q, const char *name, const char *function);

/* Checks `spec` (NULL: the defaults) against rows of k inputs, inner bits up to max_bits and outer bits up to
 * max_outer_bits, into `out` (tile resolved: never 0; outer_bits resolved: never 0). */
qc_status qc__accum_spec(qc_accum_spec *out, const qc_accum_spec *spec, int64_t k, int32_t max_bits,
                         int32_t max_outer_bits, const char *function);

#endif
