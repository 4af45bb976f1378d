/* Batch-1 latency and batch-64 throughput of the Fashion-MNIST MLP (Gemm, Relu, Gemm, Relu, Gemm) in one
 * process, one thread, through C calls only (no Python in the timed path):
 *   - "openblas": the float32 model as a chain of OpenBLAS calls on the model's own weights: cblas_sgemv
 *     (batch 1) or cblas_sgemm (batch 64), then the bias and the ReLU (the seed's "OpenBLAS fp32 model");
 *   - every model file given: qcore's executor through the public C API (qc_session_set_input,
 *     qc_session_run, qc_session_value, the logits copied out), on a context of one thread.
 * Usage: lq_latency FP32_MODEL IMAGES_IDX IMAGES REPEATS LABEL=MODEL...
 * IMAGES_IDX is Fashion-MNIST's t10k images (IDX, gzip allowed); the first IMAGES images (at least 64) are
 * run one at a time for the latency (mean per image, best of REPEATS passes) and the first 64 as one batch
 * for the throughput (best of REPEATS * 8 batches), by the wall clock and by the process's CPU time.
 * Prints one JSON object on stdout. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qcore/qcore.h"
#include "qcore/qc_model.h"

enum { IN = 784, H1 = 512, H2 = 256, OUT = 10, BATCH = 64 };

/* Wall time and the process's CPU time: every engine here runs on the calling thread alone, so CPU time is
 * its time without the waits other processes on the shared cores cause (the figures the ratios use). */
typedef struct stamp {
    double wall, cpu;
} stamp;

static double seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static stamp now(void)
{
    stamp s = {seconds(CLOCK_MONOTONIC), seconds(CLOCK_PROCESS_CPUTIME_ID)};
    return s;
}

/* The best (smallest) of each clock's span since t0, divided by `per`. */
static void keep_best(stamp *best, stamp t0, double per)
{
    stamp t1 = now();
    double wall = (t1.wall - t0.wall) / per, cpu = (t1.cpu - t0.cpu) / per;
    if (wall < best->wall) best->wall = wall;
    if (cpu < best->cpu) best->cpu = cpu;
}

static void die(const char *what)
{
    fprintf(stderr, "lq_latency: %s: %s\n", what, qc_last_error());
    exit(1);
}

/* ---- the OpenBLAS chain ------------------------------------------------------------------------- */

typedef struct fp32_mlp {
    float *w[3], *b[3]; /* w[l] [out, in] as the model stores it (Gemm transB = 1) */
    int in[3], out[3];
    float *h1, *h2;     /* [BATCH, H1], [BATCH, H2] */
} fp32_mlp;

static float *initializer(const qc_model *m, const char *name, size_t floats)
{
    size_t i;
    qc_initializer_info info;
    if (qc_model_find_initializer(m, name, &i) != QC_OK || qc_model_initializer(m, i, &info) != QC_OK) die(name);
    if (info.nbytes != floats * sizeof(float)) {
        fprintf(stderr, "lq_latency: %s holds %zu bytes, expected %zu\n", name, info.nbytes, floats * sizeof(float));
        exit(1);
    }
    float *out = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    memcpy(out, info.data, info.nbytes);
    return out;
}

static void fp32_load(fp32_mlp *f, const qc_model *m)
{
    static const char *weights[3] = {"fc1.weight", "fc2.weight", "fc3.weight"};
    static const char *biases[3] = {"fc1.bias", "fc2.bias", "fc3.bias"};
    const int dims[4] = {IN, H1, H2, OUT};
    for (int l = 0; l < 3; l++) {
        f->in[l] = dims[l], f->out[l] = dims[l + 1];
        f->w[l] = initializer(m, weights[l], (size_t)dims[l] * (size_t)dims[l + 1]);
        f->b[l] = initializer(m, biases[l], (size_t)dims[l + 1]);
    }
    f->h1 = aligned_alloc(64, BATCH * H1 * sizeof(float));
    f->h2 = aligned_alloc(64, BATCH * H2 * sizeof(float));
}

/* y [rows, out] = x [rows, in] W^T + b, then max(0, y) unless it is the last layer. */
static void fp32_layer(const fp32_mlp *f, int l, int rows, const float *x, float *y)
{
    int in = f->in[l], out = f->out[l];
    if (rows == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, f->w[l], in, x, 1, 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, f->w[l], in, 0.0f, y, out);
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * out;
        for (int o = 0; o < out; o++) {
            float v = yr[o] + f->b[l][o];
            yr[o] = l < 2 && v < 0.0f ? 0.0f : v;
        }
    }
}

static void fp32_run(const fp32_mlp *f, int rows, const float *x, float *logits)
{
    fp32_layer(f, 0, rows, x, f->h1);
    fp32_layer(f, 1, rows, f->h1, f->h2);
    fp32_layer(f, 2, rows, f->h2, logits);
}

/* ---- qcore sessions ------------------------------------------------------------------------------ */

static void session_run(qc_session *s, int rows, const float *x, float *logits)
{
    qc_tensor in, out;
    int64_t dims[2] = {rows, IN};
    if (qc_tensor_init(&in, (void *)x, QC_DT_F32, 2, dims, NULL) != QC_OK) die("qc_tensor_init");
    if (qc_session_set_input(s, "input", &in) != QC_OK) die("qc_session_set_input");
    if (qc_session_run(s) != QC_OK) die("qc_session_run");
    if (qc_session_value(s, "logits", &out) != QC_OK) die("qc_session_value");
    memcpy(logits, out.data, (size_t)rows * OUT * sizeof(float));
}

/* ---- timing -------------------------------------------------------------------------------------- */

typedef struct engine {
    const fp32_mlp *fp32; /* or */
    qc_session *session;
} engine;

static void run(const engine *e, int rows, const float *x, float *logits)
{
    if (e->fp32)
        fp32_run(e->fp32, rows, x, logits);
    else
        session_run(e->session, rows, x, logits);
}

/* Seconds per image over `images` single-image runs, best of `repeats` passes (after one warm pass). */
static stamp latency(const engine *e, const float *x, int images, int repeats)
{
    float logits[OUT];
    stamp best = {1e30, 1e30};
    run(e, 1, x, logits);
    for (int pass = 0; pass < repeats; pass++) {
        stamp t0 = now();
        for (int i = 0; i < images; i++) run(e, 1, x + (size_t)i * IN, logits);
        keep_best(&best, t0, images);
    }
    return best;
}

/* Seconds per image of one batch of 64, best of `runs` runs (after one warm run). */
static stamp batch_time(const engine *e, const float *x, int runs)
{
    float logits[BATCH * OUT];
    stamp best = {1e30, 1e30};
    run(e, BATCH, x, logits);
    for (int r = 0; r < runs; r++) {
        stamp t0 = now();
        run(e, BATCH, x, logits);
        keep_best(&best, t0, BATCH);
    }
    return best;
}

/* Agreement of the engine's argmax with the OpenBLAS chain's on the first `images` images (a sanity check
 * that the timed runs compute the model, not a benchmark figure). */
static int argmax(const float *v)
{
    int best = 0;
    for (int i = 1; i < OUT; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static int agreement(const engine *e, const engine *ref, const float *x, int images)
{
    int same = 0;
    for (int i = 0; i < images; i++) {
        float a[OUT], b[OUT];
        run(e, 1, x + (size_t)i * IN, a);
        run(ref, 1, x + (size_t)i * IN, b);
        same += argmax(a) == argmax(b);
    }
    return same;
}

static float *images_f32(const char *path, int count)
{
    qc_array *a;
    if (qc_array_load(&a, path, QC_ARRAY_AUTO) != QC_OK) die(path);
    const qc_tensor *t = qc_array_tensor(a);
    if (t->dtype != QC_DT_U8 || qc_tensor_numel(t) < (int64_t)count * IN) {
        fprintf(stderr, "lq_latency: %s: expected at least %d uint8 images of %d pixels\n", path, count, IN);
        exit(1);
    }
    float *x = aligned_alloc(64, (size_t)count * IN * sizeof(float));
    const uint8_t *p = t->data;
    for (size_t i = 0; i < (size_t)count * IN; i++) x[i] = (float)p[i] / 255.0f;
    qc_array_free(a);
    return x;
}

static void print_row(const char *label, const char *path, stamp lat, stamp per_image, int agree, int images, int last)
{
    printf("    {\"engine\": \"%s\", \"model\": \"%s\", \"latency_us\": %.3f, \"throughput_per_s\": %.1f, "
           "\"wall_latency_us\": %.3f, \"wall_throughput_per_s\": %.1f, "
           "\"argmax_agreement_with_openblas\": %d, \"agreement_images\": %d}%s\n",
           label, path, lat.cpu * 1e6, 1.0 / per_image.cpu, lat.wall * 1e6, 1.0 / per_image.wall, agree, images,
           last ? "" : ",");
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: lq_latency FP32_MODEL IMAGES_IDX IMAGES REPEATS [LABEL=MODEL ...]\n");
        return 2;
    }
    int images = atoi(argv[3]), repeats = atoi(argv[4]);
    if (images < BATCH || repeats < 1) {
        fprintf(stderr, "lq_latency: IMAGES must be >= %d and REPEATS >= 1\n", BATCH);
        return 2;
    }
    openblas_set_num_threads(1);
    qc_ctx *ctx;
    if (qc_ctx_create(&ctx) != QC_OK || qc_ctx_set_param(ctx, QC_CTX_THREADS, 1) != QC_OK) die("qc_ctx");
    int64_t arch = 0;
    qc_ctx_get_param(ctx, QC_CTX_ARCH, &arch);
    qc_model *fp32_model;
    if (qc_model_load(&fp32_model, argv[1]) != QC_OK) die(argv[1]);
    fp32_mlp mlp;
    fp32_load(&mlp, fp32_model);
    float *x = images_f32(argv[2], images);
    engine blas = {&mlp, NULL};

    printf("{\n  \"openblas_core\": \"%s\",\n  \"openblas_config\": \"%s\",\n  \"qcore_arch\": \"%s\",\n"
           "  \"threads\": 1,\n  \"images\": %d,\n  \"repeats\": %d,\n  \"rows\": [\n",
           openblas_get_corename(), openblas_get_config(), qc_arch_string((qc_arch)arch), images, repeats);
    int agree_images = images < 256 ? images : 256;
    print_row("openblas fp32 chain", argv[1], latency(&blas, x, images, repeats), batch_time(&blas, x, repeats * 8),
              agree_images, agree_images, argc == 5);
    for (int a = 5; a < argc; a++) {
        char *eq = strchr(argv[a], '=');
        if (eq == NULL) {
            fprintf(stderr, "lq_latency: expected LABEL=MODEL, got %s\n", argv[a]);
            return 2;
        }
        *eq = '\0';
        qc_model *m;
        qc_session *s;
        if (qc_model_load(&m, eq + 1) != QC_OK) die(eq + 1);
        if (qc_session_create(&s, m, ctx) != QC_OK) die("qc_session_create");
        engine e = {NULL, s};
        stamp lat = latency(&e, x, images, repeats), thr = batch_time(&e, x, repeats * 8);
        print_row(argv[a], eq + 1, lat, thr, agreement(&e, &blas, x, agree_images), agree_images, a == argc - 1);
        qc_session_free(s);
        qc_model_free(m);
    }
    printf("  ]\n}\n");
    qc_model_free(fp32_model);
    qc_ctx_free(ctx);
    free(x);
    return 0;
}
