/* The README's C quick start: per-channel int8 quantization of a small weight with an MSE-searched
 * scale. Build against an installed libqcore:  cc quantize_weight.c $(pkg-config --cflags --libs qcore) */
#include <qcore/qcore.h>
#include <stdio.h>

int main(void)
{
    float w[4][8] = {{0}};                       /* a [out, in] weight */
    for (int i = 0; i < 32; i++) w[i / 8][i % 8] = (float)(i % 7) - 3.1f;
    float scale[4];
    int8_t q[4][8];
    int64_t wdims[2] = {4, 8}, pdims[1] = {4};
    qc_tensor tw, ts, tq;
    qc_ctx *ctx = NULL;
    qc_quant_options opts = QC_QUANT_OPTIONS_INIT;  /* int8, symmetric, signed */
    opts.granularity = QC_GRAN_CHANNEL;             /* one scale per output channel (axis 0) */
    opts.scale_method = QC_SCALE_MSE;

    if (qc_ctx_create(&ctx) != QC_OK ||
        qc_tensor_init(&tw, w, QC_DT_F32, 2, wdims, NULL) != QC_OK ||
        qc_tensor_init(&ts, scale, QC_DT_F32, 1, pdims, NULL) != QC_OK ||
        qc_tensor_init(&tq, q, QC_DT_I8, 2, wdims, NULL) != QC_OK ||
        qc_quant_choose_params(ctx, &ts, NULL, &tw, &opts) != QC_OK ||
        qc_quantize(ctx, &tq, &tw, &ts, NULL, &opts) != QC_OK) {
        fprintf(stderr, "qcore: %s\n", qc_last_error());
        qc_ctx_free(ctx);
        return 1;
    }
    printf("row 0 scale %g, q[0][0] = %d\n", scale[0], q[0][0]);
    qc_ctx_free(ctx);
    return 0;
}
