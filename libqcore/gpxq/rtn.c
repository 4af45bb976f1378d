/* Round-to-nearest with the layer machinery of OPTQ and GPFQ, so that AXE's constraints apply to it too
 * (RTN+AXE): each row is rounded input by input in index order, without error feedback. */
#include "core/error.h"
#include "gpxq/gpxq.h"

static void round_rows(qc_gpxq_layer *layer)
{
#pragma omp parallel for num_threads(layer->threads) schedule(static)
    for (int64_t r = 0; r < layer->rows; r++)
        for (int64_t c = 0; c < layer->cols; c++)
            layer->levels[r * layer->cols + c] = qc__gpxq_level(layer, r, c, (double)layer->w[r * layer->cols + c]);
}

qc_status qc_rtn(qc_ctx *ctx, qc_tensor *q, qc_tensor *scale, qc_tensor *zero_point, qc_tensor *dequantized,
                 qc_gpxq_result *result, const qc_tensor *w, const qc_quant_options *grid, const qc_gpxq_options *opts)
{
    qc_gpxq_layer layer;
    qc_gpxq_options checked;
    qc_gpxq_outputs out = {q, scale, zero_point, dequantized};
    QC_TRY(qc__gpxq_begin(&layer, &checked, ctx, &out, result, w, grid, opts, __func__));
    qc_status st = qc__gpxq_choose_from_w(&layer, NULL);
    if (st == QC_OK) {
        round_rows(&layer);
        qc_gpxq_result res = {0};
        qc__gpxq_finish(&layer, &out, result, &res);
    }
    qc__gpxq_layer_free(&layer);
    return st;
}
