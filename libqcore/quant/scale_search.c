/* Scale selection for one parameter group: min-max, percentile, and the clipping ratio with the least
 * squared error of fake quantization (see qc_quant.h for the exact rules). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/scale_search.h"

static void min_max(const float *v, int64_t n, double *lo, double *hi)
{
    float a = 0.0f, b = 0.0f; /* ranges always include 0; values are finite, so plain compares vectorize */
    for (int64_t i = 0; i < n; i++) {
        a = v[i] < a ? v[i] : a;
        b = v[i] > b ? v[i] : b;
    }
    *lo = a;
    *hi = b;
}

static int compare_floats(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    return (a > b) - (a < b);
}

/* numpy.percentile's default ('linear') on sorted values, including its lerp for t >= 0.5. */
static double percentile_sorted(const float *sorted, int64_t n, double pct)
{
    double rank = pct / 100.0 * (double)(n - 1);
    int64_t below = (int64_t)floor(rank);
    if (below >= n - 1) return sorted[n - 1];
    double t = rank - (double)below, a = sorted[below], b = sorted[below + 1];
    return t >= 0.5 ? b - (b - a) * (1.0 - t) : a + (b - a) * t;
}

static void percentile_range(const float *v, int64_t n, float *scratch, const qc_grid *grid, double pct,
                             double *lo, double *hi)
{
    for (int64_t i = 0; i < n; i++) scratch[i] = grid->symmetric ? fabsf(v[i]) : v[i];
    qsort(scratch, (size_t)n, sizeof *scratch, compare_floats);
    *hi = percentile_sorted(scratch, n, pct);
    *lo = grid->symmetric ? -*hi : percentile_sorted(scratch, n, 100.0 - pct);
}

static double squared_error(const float *v, const float *approx, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)v[i] - (double)approx[i];
        sum += d * d;
    }
    return sum;
}

static qc_grid_run mse_search(const float *v, int64_t n, float *scratch, const qc_grid *grid,
                              const qc_quant_options *o, const qc_kernels *kernels)
{
    double lo, hi;
    min_max(v, n, &lo, &hi);
    qc_grid_run best = qc__grid_from_range(grid, lo, hi);
    double best_error = INFINITY;
    /* From the widest range down, replacing only on a strictly smaller error: ties keep the larger alpha. */
    for (int i = o->mse_steps - 1; i >= 0; i--) {
        double alpha = o->mse_min_ratio + (1.0 - o->mse_min_ratio) * (double)i / (double)(o->mse_steps - 1);
        qc_grid_run g = qc__grid_from_range(grid, alpha * lo, alpha * hi);
        kernels->fake_quantize_f32(scratch, v, (size_t)n, g);
        double e = squared_error(v, scratch, n);
        if (e < best_error) {
            best_error = e;
            best = g;
        }
    }
    return best;
}

qc_grid_run qc__choose_group_params(const float *values, int64_t n, float *scratch, const qc_grid *grid,
                                    const qc_quant_options *opts, const qc_kernels *kernels)
{
    double lo = 0.0, hi = 0.0;
    switch (opts->scale_method) {
    case QC_SCALE_MSE: return mse_search(values, n, scratch, grid, opts, kernels);
    case QC_SCALE_PERCENTILE:
        if (n > 0) percentile_range(values, n, scratch, grid, opts->percentile, &lo, &hi);
        break;
    case QC_SCALE_MINMAX: min_max(values, n, &lo, &hi); break;
    }
    return qc__grid_from_range(grid, lo, hi);
}
