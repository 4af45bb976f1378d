/* qc_quant_choose_params: one scale search per parameter group, spread over the context's threads, with
 * progress reported between batches of groups. Results go to the outputs only when every group is done. */
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "core/tensor_check.h"
#include "quant/params_check.h"
#include "quant/scale_search.h"

enum { GROUPS_PER_BATCH = 256 };

static qc_status check_outputs(const qc_tensor *scale, const qc_tensor *zero_point, const qc_tensor *x,
                               const qc_quant_options *opts, const qc_grid *grid, const char *function)
{
    QC_TRY(qc__tensor_expect(scale, function, "scale", QC_DT_F32));
    QC_TRY(qc__quant_check_param_shape(scale, "scale", x, opts, function));
    if (zero_point == NULL) {
        if (!grid->symmetric)
            return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'zero_point' is NULL but the grid is asymmetric");
        return QC_OK;
    }
    QC_TRY(qc__tensor_expect(zero_point, function, "zero_point", QC_DT_I32));
    return qc__quant_check_param_shape(zero_point, "zero_point", x, opts, function);
}

typedef struct search_state {
    const qc_quant_layout *layout;
    const qc_grid *grid;
    const qc_quant_options *opts;
    const qc_kernels *kernels;
    const float *x;
    qc_grid_run *results;
} search_state;

static void search_group(const search_state *s, int64_t p, float *gathered, float *scratch)
{
    int64_t offset, n = qc__quant_layout_group_count(s->layout, p);
    const float *values = s->x;
    if (qc__quant_layout_group_contiguous(s->layout, p, &offset)) {
        values += offset;
    } else {
        qc__quant_layout_gather(s->layout, p, s->x, gathered);
        values = gathered;
    }
    s->results[p] = qc__choose_group_params(values, n, scratch, s->grid, s->opts, s->kernels);
}

/* Groups [first, last) over the team; 0 on success, -1 when a thread lacked memory. */
static int search_batch(const qc_ctx *ctx, const search_state *s, int64_t first, int64_t last)
{
    int64_t n = qc__quant_layout_group_size(s->layout);
    int failed = 0;
#pragma omp parallel num_threads(qc__ctx_threads(ctx)) reduction(| : failed)
    {
        float *buffers = malloc(2 * (size_t)(n > 0 ? n : 1) * sizeof *buffers);
        failed = buffers == NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t p = first; p < last; p++)
            if (buffers) search_group(s, p, buffers, buffers + n);
        free(buffers);
    }
    return failed ? -1 : 0;
}

qc_status qc_quant_choose_params(qc_ctx *ctx, qc_tensor *scale, qc_tensor *zero_point, const qc_tensor *x,
                                 const qc_quant_options *opts)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_TRY(qc__tensor_expect(x, __func__, "x", QC_DT_F32));
    qc_grid grid;
    QC_TRY(qc__quant_grid(&grid, opts, x, __func__));
    QC_TRY(check_outputs(scale, zero_point, x, opts, &grid, __func__));
    int64_t bad = qc__first_nonfinite(x->data, qc_tensor_numel(x));
    if (bad >= 0)
        return QC_FAIL(QC_ERR_NUMERIC, "argument 'x': element %lld is %g; inputs must be finite", (long long)bad,
                       (double)((const float *)x->data)[bad]);
    qc_quant_layout layout;
    qc__quant_layout_init(&layout, x, opts);
    qc_grid_run *results = malloc((size_t)(layout.params > 0 ? layout.params : 1) * sizeof *results);
    if (results == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld parameters", (long long)layout.params);
    search_state s = {&layout, &grid, opts, ctx->kernels, x->data, results};
    qc_status st = QC_OK;
    for (int64_t first = 0; first < layout.params && st == QC_OK; first += GROUPS_PER_BATCH) {
        int64_t last = first + GROUPS_PER_BATCH < layout.params ? first + GROUPS_PER_BATCH : layout.params;
        if (search_batch(ctx, &s, first, last) != 0)
            st = QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for the scale search buffers");
        else
            st = qc__progress(ctx, __func__, "choose scales", (uint64_t)last, (uint64_t)layout.params);
    }
    for (int64_t p = 0; st == QC_OK && p < layout.params; p++) {
        ((float *)scale->data)[p] = results[p].scale;
        if (zero_point) ((int32_t *)zero_point->data)[p] = results[p].zero_point;
    }
    free(results);
    return st;
}
