/* Internal: the raw Philox4x64-10 block function, exposed so tests can check it against the published
 * known-answer vectors with any counter (the public API only reaches counters (i, 0, 0, 0)). */
#ifndef QC_CORE_RNG_H
#define QC_CORE_RNG_H

#include <stdint.h>

/* One block: the 4 words of Philox4x64-10 for the 256-bit `counter` under the 128-bit `key`. */
void qc__philox4x64_10(uint64_t out[4], const uint64_t counter[4], const uint64_t key[2]);

#endif
