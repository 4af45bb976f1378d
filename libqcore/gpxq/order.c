/* The order in which inputs are processed (act-order) and the statistics rearranged into it. */
#include <stdlib.h>

#include "core/ctx.h"
#include "core/error.h"
#include "gpxq/gpxq.h"

int64_t qc__gpxq_dead_inputs(unsigned char *dead, const double *h, int64_t d)
{
    int64_t count = 0;
    for (int64_t i = 0; i < d; i++) {
        dead[i] = h[i * d + i] == 0.0;
        count += dead[i];
    }
    return count;
}

typedef struct keyed {
    double key;
    int64_t index;
} keyed;

/* Decreasing key, then increasing index: a total order, so qsort's instability cannot show. */
static int by_decreasing_key(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

qc_status qc__gpxq_order(int64_t *order, int64_t *position, const double *diag, int64_t d, int act_order,
                         const char *function)
{
    for (int64_t i = 0; i < d; i++) order[i] = i;
    if (act_order) {
        keyed *k = malloc((size_t)d * sizeof *k);
        if (k == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory to sort %lld inputs", (long long)d);
        for (int64_t i = 0; i < d; i++) k[i] = (keyed){diag[i], i};
        qsort(k, (size_t)d, sizeof *k, by_decreasing_key);
        for (int64_t i = 0; i < d; i++) order[i] = k[i].index;
        free(k);
    }
    for (int64_t i = 0; i < d; i++) position[order[i]] = i;
    return QC_OK;
}

void qc__gpxq_gather_lower(double *out, const double *m, int64_t d, const int64_t *order, int symmetric, int threads)
{
#pragma omp parallel for num_threads(threads) schedule(dynamic, 64)
    for (int64_t i = 0; i < d; i++) {
        double *row = out + i * d;
        for (int64_t j = 0; j <= i; j++)
            row[j] = symmetric ? qc__gpxq_sym(m, d, order[i], order[j]) : m[order[i] * d + order[j]];
        for (int64_t j = i + 1; j < d; j++) row[j] = 0.0;
    }
}

void qc__gpxq_gather_weights(double *work, float *work_f32, const qc_gpxq_layer *layer, const int64_t *order,
                             const unsigned char *dead)
{
    int64_t cols = layer->cols;
#pragma omp parallel for num_threads(layer->threads) schedule(static)
    for (int64_t r = 0; r < layer->rows; r++)
        for (int64_t i = 0, k = r * cols; i < cols; i++, k++) {
            float value = dead != NULL && dead[order[i]] ? 0.0f : layer->w[r * cols + order[i]];
            if (work_f32 != NULL) work_f32[k] = value;
            else work[k] = value;
        }
}

qc_status qc__gpxq_progress(const qc_gpxq_layer *layer, int64_t done)
{
    return qc__progress(layer->ctx, layer->function, layer->function, (uint64_t)done, (uint64_t)layer->cols);
}
