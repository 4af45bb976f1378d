/* The random sign diagonal D of the randomized Hadamard rotation, from qcore's counter-based generator. */
#include "rotate/rotate.h"

enum { CHUNK = 256 };

void qc__random_signs(float *d, int64_t n, uint64_t seed, uint64_t stream)
{
    uint64_t words[CHUNK];
    for (int64_t start = 0; start < n; start += CHUNK) {
        int64_t count = n - start < CHUNK ? n - start : CHUNK;
        qc_random_bits(words, (size_t)count, seed, stream, (uint64_t)start);
        for (int64_t j = 0; j < count; j++) d[start + j] = words[j] >> 63 ? -1.0f : 1.0f;
    }
}
