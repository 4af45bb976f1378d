/* The W1A1 kernel rows of bench_bitserial.py timed from C: qc_bitserial_gemm and
 * qc_bitserial_gemm_interleaved (from float inputs: encoding and scaling included) at n = O = 4096 on one
 * thread, by the process's CPU time, best of `repeats` runs after a warm-up, without the Python call's
 * own cost (argument conversion, the output array's allocation), which at M = 8 is a tenth of the call.
 * The products' cost does not depend on the bit values, so the planes are random and the bases fixed.
 * Usage: bitserial_probe REPEATS M...   Prints one JSON object:
 *     {"rows": [{"codes": "signed x signed", "M": 8, "gemm_s": ..., "gemm_interleaved_s": ...}, ...]} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qcore/qcore.h"

enum { N = 4096, O = 4096, WORDS = N / 64 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void check(qc_status st, const char *what)
{
    if (st == QC_OK) return;
    fprintf(stderr, "bitserial_probe: %s: %s\n", what, qc_last_error());
    exit(1);
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct problem {
    qc_ctx *ctx;
    qc_tensor y, x, x_basis, planes, interleaved, w_basis;
    qc_lq_code x_code;
} problem;

static double best_time(const problem *p, int interleaved, int repeats)
{
    double best = 1e30;
    for (int r = 0; r <= repeats; r++) {
        double t0 = now();
        if (interleaved)
            check(qc_bitserial_gemm_interleaved(p->ctx, (qc_tensor *)&p->y, &p->x, &p->x_basis, p->x_code, &p->planes,
                                                &p->interleaved, &p->w_basis, QC_LQ_SIGNED, NULL),
                  "qc_bitserial_gemm_interleaved");
        else
            check(qc_bitserial_gemm(p->ctx, (qc_tensor *)&p->y, &p->x, &p->x_basis, p->x_code, &p->planes, &p->w_basis,
                                    QC_LQ_SIGNED, NULL),
                  "qc_bitserial_gemm");
        double t = now() - t0;
        if (r > 0 && t < best) best = t; /* run 0 warms up */
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bitserial_probe REPEATS M...\n");
        return 2;
    }
    int repeats = atoi(argv[1]);
    uint64_t *planes = aligned_alloc(64, (size_t)O * WORDS * 8), *il = aligned_alloc(64, (size_t)O * WORDS * 8);
    float *w_basis = malloc(O * sizeof(float)), x_basis = 0.5f;
    uint64_t state = 1;
    for (size_t i = 0; i < (size_t)O * WORDS; i++) planes[i] = next(&state);
    for (int o = 0; o < O; o++) w_basis[o] = 0.01f * (float)(1 + o % 7);
    problem p;
    check(qc_ctx_create(&p.ctx), "qc_ctx_create");
    check(qc_ctx_set_param(p.ctx, QC_CTX_THREADS, 1), "threads");
    int64_t pd[3] = {O, 1, WORDS}, ild[3] = {O / 8, WORDS, 8}, wd[2] = {O, 1}, one = 1;
    check(qc_tensor_init(&p.planes, planes, QC_DT_I64, 3, pd, NULL), "planes");
    check(qc_tensor_init(&p.interleaved, il, QC_DT_I64, 3, ild, NULL), "interleaved");
    check(qc_tensor_init(&p.w_basis, w_basis, QC_DT_F32, 2, wd, NULL), "w_basis");
    check(qc_tensor_init(&p.x_basis, &x_basis, QC_DT_F32, 1, &one, NULL), "x_basis");
    check(qc_bitserial_interleave(p.ctx, &p.interleaved, &p.planes), "qc_bitserial_interleave");
    printf("{\"rows\": [");
    const char *sep = "";
    for (int code = 0; code < 2; code++)
        for (int a = 2; a < argc; a++) {
            int64_t m = atoi(argv[a]), xd[2] = {m, N}, yd[2] = {m, O};
            float *x = malloc((size_t)m * N * sizeof(float)), *y = malloc((size_t)m * O * sizeof(float));
            p.x_code = code == 0 ? QC_LQ_SIGNED : QC_LQ_UNSIGNED;
            for (int64_t i = 0; i < m * N; i++) { /* uniform in [-1, 1), or [0, 1) after a ReLU */
                float u = (float)((double)(next(&state) >> 11) * 0x1.0p-53);
                x[i] = code == 0 ? 2.0f * u - 1.0f : u;
            }
            check(qc_tensor_init(&p.x, x, QC_DT_F32, 2, xd, NULL), "x");
            check(qc_tensor_init(&p.y, y, QC_DT_F32, 2, yd, NULL), "y");
            double gemm = best_time(&p, 0, repeats), il_time = best_time(&p, 1, repeats);
            printf("%s\n  {\"codes\": \"%s x signed\", \"M\": %lld, \"gemm_s\": %.9f, \"gemm_interleaved_s\": %.9f}", sep,
                   code == 0 ? "signed" : "unsigned", (long long)m, gemm, il_time);
            sep = ",";
            free(x);
            free(y);
        }
    printf("\n]}\n");
    qc_ctx_free(p.ctx);
    free(planes);
    free(il);
    free(w_basis);
    return 0;
}
