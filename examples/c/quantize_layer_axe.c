/* One linear layer quantized to 4 bits with OPTQ, with and without AXE's accumulator-aware constraints,
 * then checked with qc_accum_verify: with AXE (P = 16, tiles of T = 64 inputs) every tile of every row fits
 * a 16-bit accumulator for every unsigned 8-bit input; plain OPTQ needs more. Random data from qcore's
 * counter-based generator (fixed seed), so the output is the same on every machine.
 * Build against an installed libqcore:  cc quantize_layer_axe.c $(pkg-config --cflags --libs qcore) */
#include <qcore/qcore.h>
#include <stdio.h>

enum { OUT = 64, IN = 256, SAMPLES = 1024, P = 16, T = 64 };

/* Calibration inputs as a ReLU layer gives them, |N(0, 1)|, and W uniform in [-1, 1): flat weights use many
 * large levels, so a plain 4-bit row of 64 inputs can need more than 16 bits. */
static qc_status make_data(qc_ctx *ctx, qc_tensor *w, qc_tensor *x)
{
    qc_status st = qc_random_uniform(ctx, w, 1);
    if (st == QC_OK) st = qc_random_normal(ctx, x, 2);
    float *v = w->data;
    for (int64_t i = 0; st == QC_OK && i < qc_tensor_numel(w); i++) v[i] = 2 * v[i] - 1;
    v = x->data;
    for (int64_t i = 0; st == QC_OK && i < qc_tensor_numel(x); i++) v[i] = v[i] < 0 ? -v[i] : v[i];
    return st;
}

/* OPTQ with `accumulator_bits` (0: AXE off), then the worst-case check of its levels for P and T. */
static qc_status quantize(qc_ctx *ctx, qc_accum_report *report, qc_tensor *q, qc_tensor *scale, const qc_tensor *w,
                          const qc_tensor *h, int32_t accumulator_bits)
{
    qc_quant_options grid = QC_QUANT_OPTIONS_INIT; /* symmetric: the levels are the centred levels */
    grid.bits = 4, grid.granularity = QC_GRAN_CHANNEL, grid.axis = 0;
    qc_gpxq_options opts = QC_GPXQ_OPTIONS_INIT;
    opts.accumulator_bits = accumulator_bits, opts.input_bits = 8, opts.input_signed = 0, opts.tile_size = T;
    qc_accum_spec spec = QC_ACCUM_SPEC_INIT; /* inputs in [0, 255] */
    spec.bits = P, spec.tile = T;
    qc_status st = qc_optq(ctx, q, scale, NULL, NULL, NULL, w, h, &grid, &opts);
    return st == QC_OK ? qc_accum_verify(report, q, &spec) : st;
}

int main(void)
{
    static float w[OUT][IN], x[SAMPLES][IN], scale[OUT];
    static double h[IN][IN];
    static int32_t q[OUT][IN];
    int64_t wdims[2] = {OUT, IN}, xdims[2] = {SAMPLES, IN}, hdims[2] = {IN, IN}, sdims[1] = {OUT};
    qc_tensor tw, tx, th, tq, ts;
    qc_ctx *ctx = NULL;
    qc_gpxq_stats *stats = NULL;
    qc_accum_report axe = QC_ACCUM_REPORT_INIT, plain = QC_ACCUM_REPORT_INIT;

    qc_status st = qc_ctx_create(&ctx);
    if (st == QC_OK) st = qc_ctx_set_param(ctx, QC_CTX_SEED, 2024);
    if (st == QC_OK) st = qc_tensor_init(&tw, w, QC_DT_F32, 2, wdims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&tx, x, QC_DT_F32, 2, xdims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&th, h, QC_DT_F64, 2, hdims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&tq, q, QC_DT_I32, 2, wdims, NULL);
    if (st == QC_OK) st = qc_tensor_init(&ts, scale, QC_DT_F32, 1, sdims, NULL);
    if (st == QC_OK) st = make_data(ctx, &tw, &tx);
    if (st == QC_OK) st = qc_gpxq_stats_create(&stats, QC_GPXQ_OPTQ, IN);
    if (st == QC_OK) st = qc_gpxq_stats_add(ctx, stats, &tx, NULL); /* in batches, for data that streams */
    if (st == QC_OK) st = qc_gpxq_stats_hessian(&th, stats);
    if (st == QC_OK) st = quantize(ctx, &plain, &tq, &ts, &tw, &th, 0);
    if (st == QC_OK) st = quantize(ctx, &axe, &tq, &ts, &tw, &th, P);
    qc_gpxq_stats_free(stats);
    qc_ctx_free(ctx);
    if (st != QC_OK) {
        fprintf(stderr, "qcore: %s\n", qc_last_error());
        return 1;
    }
    printf("W4, 8-bit unsigned inputs, %dx%d weight, tiles of %d:\n", OUT, IN, T);
    printf("OPTQ:     passed %d, failing tiles %lld, max need %d bits\n", plain.passed, (long long)plain.failing_tiles,
           plain.required_bits);
    printf("OPTQ+AXE: passed %d, failing tiles %lld, max need %d bits (P = %d)\n", axe.passed,
           (long long)axe.failing_tiles, axe.required_bits, P);
    return axe.passed && axe.required_bits <= P ? 0 : 1;
}
