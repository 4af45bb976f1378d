/* AXE: the accumulator-aware constraints on OPTQ, GPFQ and RTN (qc_gpxq.h). The soft global constraint
 * shrinks each argument by the threshold that would project its tile onto the L1 ball an accumulator of
 * P bits tolerates; the strict local constraint clamps each level to what the tile's remaining budgets
 * allow, so the guarantee holds whatever the soft constraint and the error feedback did. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "gpxq/gpxq.h"

/* Per-group grids: a tile must lie inside one group, since the accumulator adds integers of one scale. */
static qc_status check_tile(const qc_gpxq_layer *layer, int64_t tile, const char *function)
{
    QC_TRY(qc__accum_check_tile(tile, layer->cols, "argument 'opts': tile_size", function));
    int64_t t = tile == 0 ? layer->cols : tile;
    if (layer->groups == 1 || layer->group_size % t == 0) return QC_OK;
    return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                      "argument 'opts': tile_size = %lld does not divide the group size %lld: a tile would add levels "
                      "of two groups, which have different scales", (long long)t, (long long)layer->group_size);
}

qc_status qc__axe_begin(qc_gpxq_layer *layer, const qc_gpxq_options *opts)
{
    qc_gpxq_axe *axe = &layer->axe;
    *axe = (qc_gpxq_axe){0};
    if (opts->accumulator_bits == 0) return QC_OK;
    QC_TRY(check_tile(layer, opts->tile_size, layer->function));
    QC_TRY(qc_accum_input_range(&axe->x_min, &axe->x_max, opts->input_bits, opts->input_signed));
    axe->bits = opts->accumulator_bits;
    axe->soft = opts->soft_threshold;
    axe->tile = opts->tile_size == 0 ? layer->cols : opts->tile_size;
    axe->tiles = qc__accum_tiles(layer->cols, axe->tile);
    axe->radius = (ldexp(1.0, axe->bits) - 2.0) / (double)(axe->x_max - axe->x_min);
    axe->threshold = calloc((size_t)(layer->rows * axe->tiles), sizeof *axe->threshold);
    axe->budget = calloc((size_t)(layer->rows * axe->tiles), sizeof *axe->budget);
    axe->tally = calloc((size_t)(layer->rows * axe->tiles), sizeof *axe->tally);
    if (axe->threshold == NULL || axe->budget == NULL || axe->tally == NULL)
        return QC_FAIL_IN(layer->function, QC_ERR_OUT_OF_MEMORY, "no memory for AXE's %lld x %lld tiles",
                          (long long)layer->rows, (long long)axe->tiles);
    return QC_OK;
}

void qc__axe_free(qc_gpxq_axe *axe)
{
    free(axe->threshold);
    free(axe->budget);
    free(axe->tally);
    axe->threshold = NULL;
    axe->budget = NULL;
    axe->tally = NULL;
}

static int by_decreasing(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

/* Duchi et al.'s threshold theta projecting a vector with magnitudes a[0..n) onto the L1 ball of `radius`
 * (0 when it already lies inside). Sorts `a`. */
static double l1_threshold(double *a, int64_t n, double radius)
{
    double norm = 0.0;
    for (int64_t i = 0; i < n; i++) norm += a[i];
    if (norm <= radius) return 0.0;
    qsort(a, (size_t)n, sizeof *a, by_decreasing);
    double sum = 0.0, theta = 0.0;
    for (int64_t j = 0; j < n; j++) {
        sum += a[j];
        double t = (sum - radius) / (double)(j + 1);
        if (a[j] > t) theta = t; /* the condition holds on a prefix: the last j that meets it is rho */
    }
    return theta;
}

typedef struct tile_source {
    const qc_gpxq_layer *layer;
    const float *running;
    const int64_t *position;
    const unsigned char *dead;
} tile_source;

static double source_value(const tile_source *s, int64_t row, int64_t col)
{
    const qc_gpxq_layer *l = s->layer;
    if (s->running != NULL) return s->running[row * l->cols + s->position[col]];
    return s->dead != NULL && s->dead[col] ? 0.0 : (double)l->w[row * l->cols + col];
}

/* lambda = s theta of u = w/s - mean(w/s) over tile b of `row`; `buf` holds a tile. */
static double tile_threshold(const tile_source *s, int64_t row, int64_t b, double *buf)
{
    const qc_gpxq_axe *axe = &s->layer->axe;
    int64_t c0 = b * axe->tile, c1 = c0 + axe->tile < s->layer->cols ? c0 + axe->tile : s->layer->cols;
    double scale = (double)qc__gpxq_param(s->layer, row, c0).scale, mean = 0.0;
    for (int64_t c = c0; c < c1; c++) {
        buf[c - c0] = source_value(s, row, c) / scale;
        mean += buf[c - c0];
    }
    mean /= (double)(c1 - c0);
    for (int64_t i = 0; i < c1 - c0; i++) buf[i] = fabs(buf[i] - mean);
    return scale * l1_threshold(buf, c1 - c0, axe->radius);
}

qc_status qc__axe_thresholds(qc_gpxq_layer *layer, int64_t col0, int64_t col1, const float *running,
                             const int64_t *position, const unsigned char *dead)
{
    qc_gpxq_axe *axe = &layer->axe;
    if (axe->bits == 0 || !axe->soft) return QC_OK;
    tile_source s = {layer, running, position, dead};
    int64_t b0 = col0 / axe->tile, b1 = (col1 + axe->tile - 1) / axe->tile;
    int failed = 0;
#pragma omp parallel num_threads(layer->threads) reduction(| : failed)
    {
        double *buf = malloc((size_t)axe->tile * sizeof *buf);
        failed = buf == NULL;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < layer->rows; r++)
            for (int64_t b = b0; b < b1 && buf != NULL; b++)
                axe->threshold[r * axe->tiles + b] = tile_threshold(&s, r, b, buf);
        free(buf);
    }
    if (failed) return QC_FAIL_IN(layer->function, QC_ERR_OUT_OF_MEMORY, "no memory to sort a tile of %lld weights",
                                  (long long)axe->tile);
    return QC_OK;
}

/* sign(w) max(|w| - lambda, 0): the proximal step of a lambda |w|_1 penalty. */
static double soft_threshold(double w, double lambda)
{
    return w > 0.0 ? fmax(w - lambda, 0.0) : fmin(w + lambda, 0.0);
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* round(v / s) clamped to the grid's centred levels. */
static int64_t grid_level(double v, qc_grid_run g)
{
    return (int64_t)clamp(nearbyint(v / (double)g.scale), (double)(g.qmin - g.zero_point),
                          (double)(g.qmax - g.zero_point));
}

int32_t qc__axe_level(qc_gpxq_axe *axe, int64_t row, int64_t col, double w, qc_grid_run g)
{
    int64_t slot = row * axe->tiles + col / axe->tile, lo, hi;
    qc_gpxq_axe_tally *tally = &axe->tally[slot];
    int64_t level = grid_level(w, g);
    double lambda = axe->threshold[slot];
    if (lambda > 0.0) {
        tally->soft_removed += fmin(fabs(w), lambda) / (double)g.scale;
        int64_t shrunk = grid_level(soft_threshold(w, lambda), g);
        tally->soft_changed += shrunk != level;
        level = shrunk;
    }
    qc__accum_level_limits(&lo, &hi, axe->budget[slot], axe->x_min, axe->x_max, axe->bits);
    int64_t centred = level < lo ? lo : level > hi ? hi : level;
    tally->clamped += centred != level;
    qc__accum_budget_add(&axe->budget[slot], centred);
    return (int32_t)(centred + g.zero_point);
}

/* A - the larger magnitude of the slot's worst cases: the room a worst-case input leaves. */
static int64_t slack(const qc_gpxq_axe *axe, qc_accum_budget b)
{
    qc_i128 high = qc__accum_high(b, axe->x_min, axe->x_max), low = -qc__accum_low(b, axe->x_min, axe->x_max);
    return (int64_t)(qc__accum_limit(axe->bits) - (high > low ? high : low));
}

void qc__axe_summarize(qc_gpxq_result *values, const qc_gpxq_layer *layer)
{
    const qc_gpxq_axe *axe = &layer->axe;
    if (axe->bits == 0) return;
    int64_t slots = layer->rows * axe->tiles;
    values->axe_slots = slots;
    values->axe_min_slack = INT64_MAX;
    for (int64_t i = 0; i < slots; i++) {
        const qc_gpxq_axe_tally *t = &axe->tally[i];
        values->axe_soft_slots += axe->threshold[i] > 0.0;
        values->axe_soft_changed += t->soft_changed;
        values->axe_soft_removed += t->soft_removed;
        values->axe_clamped += t->clamped;
        values->axe_clamped_slots += t->clamped > 0;
        int64_t room = slack(axe, axe->budget[i]);
        values->axe_min_slack = room < values->axe_min_slack ? room : values->axe_min_slack;
        int32_t need = qc__accum_budget_bits(axe->budget[i], axe->x_min, axe->x_max);
        values->axe_bits_needed = need > values->axe_bits_needed ? need : values->axe_bits_needed;
    }
}
