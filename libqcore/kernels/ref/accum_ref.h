/* Internal: the registers of the accumulator simulator (accum/simulate.c), shared by the reference lane
 * kernel and the simulator's outer registers so that every kernel set wraps and saturates in exactly one
 * way. Definitions as the ONNX executor's: one event per partial sum outside [lo, hi]. */
#ifndef QC_KERNELS_ACCUM_REF_H
#define QC_KERNELS_ACCUM_REF_H

#include <stdint.h>

typedef struct qc_reg_range {
    int64_t lo, hi; /* [-2^(B-1), 2^(B-1) - 1] for a B-bit register */
} qc_reg_range;

/* A wrapping and a saturating register fed the same dot product, with their event counts. */
typedef struct qc_registers {
    int64_t wrap, saturate;
    uint64_t wrap_events, saturate_events;
} qc_registers;

static inline void qc__registers_add(qc_registers *r, int64_t wrap_term, int64_t saturate_term, qc_reg_range range)
{
    /* The span 2^B is a power of two: the offset's low B bits are the wrapped value, whatever its sign
     * (unsigned arithmetic, so B = 63 and sums near the int64 limits stay defined). */
    uint64_t mask = (uint64_t)range.hi - (uint64_t)range.lo;
    r->wrap += wrap_term;
    if (r->wrap < range.lo || r->wrap > range.hi) {
        r->wrap_events++;
        r->wrap = (int64_t)((((uint64_t)r->wrap - (uint64_t)range.lo) & mask) + (uint64_t)range.lo);
    }
    r->saturate += saturate_term;
    if (r->saturate < range.lo || r->saturate > range.hi) {
        r->saturate_events++;
        r->saturate = r->saturate < range.lo ? range.lo : range.hi;
    }
}

static inline int64_t qc__max_abs(int64_t top, int64_t v)
{
    v = v < 0 ? -v : v;
    return v > top ? v : top;
}

#endif
