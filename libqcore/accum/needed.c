/* The width each row and tile of a quantized layer needs: its exact worst case over the input range. */
#include "accum/accum.h"
#include "core/error.h"
#include "core/tensor_check.h"

void qc__accum_row_budgets(qc_accum_budget *budgets, const int32_t *row, int64_t k, int64_t tile)
{
    for (int64_t b = 0; b < qc__accum_tiles(k, tile); b++) budgets[b] = (qc_accum_budget){0, 0};
    for (int64_t i = 0; i < k; i++) qc__accum_budget_add(&budgets[i / tile], row[i]);
}

static qc_status check_bits_output(const qc_tensor *bits, int64_t rows, int64_t tiles, const char *function)
{
    QC_TRY(qc__tensor_expect(bits, function, "bits", QC_DT_I32));
    if (bits->ndim != 2 || bits->dims[0] != rows || bits->dims[1] != tiles) {
        char got[160];
        qc__shape_string(got, sizeof got, bits->ndim, bits->dims);
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'bits': shape %s, expected [%lld, %lld] (rows, tiles)", got,
                          (long long)rows, (long long)tiles);
    }
    return QC_OK;
}

qc_status qc_accum_bits_needed(qc_tensor *bits, const qc_tensor *q, int64_t input_min, int64_t input_max, int64_t tile)
{
    QC_TRY(qc__accum_check_weights(q, "q", __func__));
    int64_t rows = q->dims[0], k = q->dims[1];
    QC_TRY(qc__accum_check_range(input_min, input_max, "", __func__));
    QC_TRY(qc__accum_check_tile(tile, k, "argument 'tile'", __func__));
    if (tile == 0) tile = k;
    int64_t tiles = qc__accum_tiles(k, tile);
    QC_TRY(check_bits_output(bits, rows, tiles, __func__));
    qc_accum_budget *budgets = malloc((size_t)tiles * sizeof *budgets);
    if (budgets == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld tiles", (long long)tiles);
    int32_t *out = bits->data;
    for (int64_t r = 0; r < rows; r++) {
        qc__accum_row_budgets(budgets, (const int32_t *)q->data + r * k, k, tile);
        for (int64_t b = 0; b < tiles; b++) out[r * tiles + b] = qc__accum_budget_bits(budgets[b], input_min, input_max);
    }
    free(budgets);
    return QC_OK;
}
