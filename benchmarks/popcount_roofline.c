/* The popcount roofline of this machine, measured rather than assumed: independent register chains of
 * XOR + VPOPCNTQ + VPADDQ on 512-bit vectors (the three operations a binary multiply-accumulate of 512
 * pairs costs in the bit-serial kernel), and a dependent chain of scalar adds (one per cycle) for the
 * core's clock, both timed by the process's CPU time. Best of `rounds` rounds of `seconds` / rounds each;
 * prints one JSON object:
 *     {"binary_mac_per_ns": ..., "add_chain_ghz": ...}
 * Built only for x86-64 with AVX-512 flags; run it only where qcore.cpu_features() lists avx512vpopcntdq. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { CHAINS = 8 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); /* one thread: its CPU time, not other processes' turns */
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Binary MACs per ns of `steps` steps of CHAINS independent XOR + POPCNT + ADD triples. */
static double popcount_rate(long steps)
{
    __m512i a[CHAINS], acc[CHAINS], b = _mm512_set1_epi64(0x0123456789abcdefLL);
#pragma GCC unroll 8
    for (int i = 0; i < CHAINS; i++) {
        a[i] = _mm512_set1_epi64(i * 77 + 1);
        acc[i] = _mm512_setzero_si512();
    }
    double start = now();
    for (long k = 0; k < steps; k++) {
#pragma GCC unroll 8
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_add_epi64(acc[i], _mm512_popcnt_epi64(_mm512_xor_si512(a[i], b)));
        __asm__ volatile("" : "+v"(b)); /* b may change: the triples cannot be hoisted */
    }
    double seconds = now() - start;
    long long sink = 0;
#pragma GCC unroll 8
    for (int i = 0; i < CHAINS; i++) sink += _mm512_reduce_add_epi64(acc[i]);
    if (sink == 42) puts("");
    return (double)steps * CHAINS * 512 / seconds * 1e-9;
}

/* GHz of a chain of dependent scalar adds (latency 1 cycle). */
static double add_chain_ghz(long steps)
{
    uint64_t x = 1;
    double start = now();
    for (long i = 0; i < steps; i++) __asm__ volatile("add $1, %0" : "+r"(x));
    return (double)steps / (now() - start) * 1e-9;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    double best_rate = 0.0, best_ghz = 0.0;
    for (int r = 0; r < rounds; r++) {
        double rate = popcount_rate(2000000), ghz = add_chain_ghz(50000000);
        if (rate > best_rate) best_rate = rate;
        if (ghz > best_ghz) best_ghz = ghz;
    }
    printf("{\"binary_mac_per_ns\": %.1f, \"add_chain_ghz\": %.3f}\n", best_rate, best_ghz);
    return 0;
}
