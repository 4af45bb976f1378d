/*
 * qc_accum.h: the accumulator calculus. How many bits a dot product of integer weights with integer inputs
 * needs, a static check that a quantized layer fits a P-bit accumulator whatever its inputs, and a
 * simulation of P-bit registers on real inputs. Since 1.2.
 *
 * Terms. A layer's integer weights are q [rows, K] (i32, the levels minus their zero point: the integers the
 * accumulator multiplies). Its integer inputs x lie in [x_min, x_max] (the input levels minus the input zero
 * point), with x_min <= 0 < x_max: N-bit signed inputs give [-2^(N-1), 2^(N-1) - 1], unsigned ones
 * [0, 2^N - 1] (qc_accum_input_range). A P-bit accumulator is trusted with [-A, A], A = 2^(P-1) - 1: a
 * symmetric range, sufficient for two's complement and sign-magnitude alike (AXE's convention).
 *
 * Worst case. For a slice of q with p = sum of its positive entries and n = sum of its negative ones,
 *     high = x_max p + x_min n,   low = x_min p + x_max n
 * are the largest and smallest sums over all inputs in the range. Because x_min <= 0 <= x_max, every term
 * q_i x_i of the maximizing (minimizing) input adds non-negatively (non-positively), so every partial sum,
 * in any order, also lies in [low, high]: the slice fits P bits iff high <= A and low >= -A. The width a
 * slice needs is therefore the smallest P with max(high, -low) <= 2^(P-1) - 1, i.e. 1 + the bit length of
 * max(high, -low).
 *
 * Tiles (multi-stage accumulation). With tile size T (1..K; 0 means K), row r is summed as tiles
 * [bT, min((b+1)T, K)), b = 0 .. ceil(K/T) - 1 (the last tile may be shorter), each in an inner P-bit
 * accumulator, and the tile results in an outer accumulator. Inner tiles that fit P bits make the outer
 * sum fit P_O = P + ceil(log2(ceil(K/T))) bits (the "implied" outer width); the exact outer need of a row
 * is the width of its whole-row worst case (the tiles' highs add up to the row's high).
 *
 * Bounds checked by every function: P (bits) in 2..64 (the simulator: 2..32, as the ONNX executor's P-bit
 * accumulator); the outer width 2..96 (the simulator: 2..63); N (input bits) in 1..32; x_min in [-2^32, 0], x_max in [1, 2^32]. Worst cases
 * are computed exactly (128-bit integers). Errors: QC_ERR_INVALID_ARG (NULL, a bound above, a tile size
 * outside 0..K), QC_ERR_VERSION (a struct's version), QC_ERR_DTYPE, QC_ERR_LAYOUT, QC_ERR_SHAPE (each names
 * the argument), QC_ERR_OVERFLOW (the simulator's exact sums would not fit 62 bits). Outputs are written
 * only on success. A failed check is not an error: it is reported in qc_accum_report.
 */
#ifndef QC_ACCUM_H
#define QC_ACCUM_H

#include "qcore/qc_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QC_ACCUM_MIN_BITS 2
#define QC_ACCUM_MAX_BITS 64
#define QC_ACCUM_MAX_SIMULATED_BITS 32

/* ---------------------------------------------------------------------------------------------
 * Bounds.
 */

/* The integer range of N-bit inputs (`bits` 1..32): [-2^(N-1), 2^(N-1) - 1] when is_signed, else
 * [0, 2^N - 1]. `min` and `max` receive it (neither may be NULL). */
QC_API qc_status qc_accum_input_range(int64_t *min, int64_t *max, int32_t bits, int32_t is_signed);

/* A2Q's bound: the smallest P with l1_norm * 2^(N - is_signed) <= 2^(P-1) - 1, i.e.
 * P = ceil(alpha + log2(1 + 2^-alpha) + 1) with alpha = log2(l1_norm) + N - is_signed (P = 1 for a zero
 * norm). `l1_norm` is sum |q_i| of a row (0 .. 2^62), `input_bits` N (1..32). It covers |x| <= 2^(N - s)
 * and is one bit looser than qc_accum_bits_needed for unsigned inputs at some norms. */
QC_API qc_status qc_accum_bits_a2q(int32_t *out, int64_t l1_norm, int32_t input_bits, int32_t input_signed);

/* The data-type bound: A2Q's bound at the largest norm M-bit signed weights can have, K * 2^(M-1)
 * (alpha = log2 K + M + N - 1 - is_signed). `k` 1..2^31 - 1, `weight_bits` M 1..32. M = N = 4, K = 128,
 * unsigned inputs give 16. */
QC_API qc_status qc_accum_bits_datatype(int32_t *out, int64_t k, int32_t weight_bits, int32_t input_bits,
                                        int32_t input_signed);

/* The width each row and tile of `q` (i32 [rows, K], borrowed) needs with inputs in [input_min,
 * input_max]: `bits` (i32 [rows, ceil(K/T)], borrowed) receives, per (row, tile), 1 + the bit length of
 * max(high, -low) (see the top of this file; 1 for an all-zero tile). `tile` T: 0 for K. */
QC_API qc_status qc_accum_bits_needed(qc_tensor *bits, const qc_tensor *q, int64_t input_min, int64_t input_max,
                                      int64_t tile);

/* ---------------------------------------------------------------------------------------------
 * What is checked or simulated.
 */
#define QC_ACCUM_SPEC_VERSION 1

/* An accumulator and the inputs it sees. Initialise with QC_ACCUM_SPEC_INIT or qc_accum_spec_init; later
 * versions only append fields. */
typedef struct qc_accum_spec {
    uint32_t version;    /* QC_ACCUM_SPEC_VERSION */
    int32_t bits;        /* P of the (inner) accumulator, see the bounds above (default 32) */
    int64_t input_min;   /* x_min, <= 0 (default 0: unsigned 8-bit inputs) */
    int64_t input_max;   /* x_max, >= 1 (default 255) */
    int64_t tile;        /* T, 0..K; 0: one accumulator per row (default 0) */
    int32_t outer_bits;  /* width of the accumulator that sums the tiles; 0: P + ceil(log2(ceil(K/T)))
                            (default 0). Ignored when a row is one tile. */
} qc_accum_spec;

#define QC_ACCUM_SPEC_INIT { QC_ACCUM_SPEC_VERSION, 32, 0, 255, 0, 0 }

/* Fills `spec` with the defaults of `version` (QC_ERR_VERSION for 0 or a version newer than the library's). */
QC_API qc_status qc_accum_spec_init(qc_accum_spec *spec, unsigned version);

/* ---------------------------------------------------------------------------------------------
 * Static verification: every row and tile against the worst case over all inputs in the range.
 */
#define QC_ACCUM_REPORT_VERSION 1

typedef struct qc_accum_report {
    uint32_t version;             /* set by the caller: QC_ACCUM_REPORT_VERSION */
    int32_t passed;               /* 1: no input in the range can overflow the inner or outer accumulator */
    int64_t tiles;                /* tiles per row, ceil(K/T) */
    int64_t failing_tiles;        /* (row, tile) pairs whose worst case leaves [-A, A] for P = spec bits */
    int64_t first_row;            /* the first failing (row, tile) in row-major order; -1 when none */
    int64_t first_tile;
    int64_t failing_outer_rows;   /* rows whose sum of tiles leaves the outer accumulator's range */
    int64_t first_outer_row;      /* -1 when none */
    int32_t required_bits;        /* the largest width a (row, tile) needs */
    int32_t outer_bits;           /* the outer width checked (spec's, or the implied one) */
    int32_t required_outer_bits;  /* the largest width a whole row's sum needs */
} qc_accum_report;

#define QC_ACCUM_REPORT_INIT { QC_ACCUM_REPORT_VERSION, 0, 0, 0, -1, -1, 0, -1, 0, 0, 0 }

/* Checks the integer weights `q` (i32 [rows, K], borrowed) against `spec` (NULL: the defaults) and fills
 * `report` (its version set by the caller). The outer accumulator is checked only when a row has more
 * than one tile. */
QC_API qc_status qc_accum_verify(qc_accum_report *report, const qc_tensor *q, const qc_accum_spec *spec);

/* ---------------------------------------------------------------------------------------------
 * Simulation on real inputs.
 *
 * Each dot product y[s][r] = sum_i x[s][i] q[r][i] is accumulated in order of i. A P-bit register holds
 * [-2^(P-1), 2^(P-1) - 1] (two's complement, as the ONNX executor's qc_session_set_accumulator): each
 * partial sum outside it is one overflow event, after which the register wraps around (modulo 2^P) or
 * saturates (clamps). With tiles, the inner register restarts at 0 for each tile, and the tile's register
 * value is added to an outer register of the outer width the same way. Both behaviours are simulated in one
 * pass; the exact sums are tracked alongside.
 */
#define QC_ACCUM_SIM_VERSION 1

typedef struct qc_accum_sim {
    uint32_t version;                       /* set by the caller: QC_ACCUM_SIM_VERSION */
    uint64_t dot_products;                  /* samples x rows */
    int64_t max_abs_partial_sum;            /* the largest |partial sum| within a tile, exact arithmetic */
    int64_t max_abs_outer_sum;              /* the largest |partial sum of exact tile sums| (rows of one
                                               tile: their largest |sum|) */
    uint64_t wrap_events;                   /* inner partial sums outside the P-bit range, wrapping */
    uint64_t wrap_outer_events;             /* outer partial sums outside the outer range, wrapping */
    uint64_t wrap_overflowing_products;     /* dot products with at least one event, wrapping */
    uint64_t saturate_events;               /* the same three counts for the saturating registers */
    uint64_t saturate_outer_events;
    uint64_t saturate_overflowing_products;
} qc_accum_sim;

#define QC_ACCUM_SIM_INIT { QC_ACCUM_SIM_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* Simulates the dot products of the integer inputs `x` (i32 [n, K], each in [input_min, input_max] of
 * `spec`, else QC_ERR_INVALID_ARG naming the element) with `q` (i32 [rows, K]); `spec` NULL: the defaults,
 * bits 2..32, outer bits 2..63. `y_wrap` and `y_saturate` (i64 [n, rows]; either may be NULL) receive the
 * final register values. K * max|x| * max|q| must be below 2^62 (QC_ERR_OVERFLOW). Parallel over samples
 * with ctx's threads; the counts do not depend on them. All tensors are borrowed. */
QC_API qc_status qc_accum_simulate(qc_ctx *ctx, qc_accum_sim *stats, qc_tensor *y_wrap, qc_tensor *y_saturate,
                                   const qc_tensor *x, const qc_tensor *q, const qc_accum_spec *spec);

#ifdef __cplusplus
}
#endif

#endif /* QC_ACCUM_H */
