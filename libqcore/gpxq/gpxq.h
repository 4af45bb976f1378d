/* Internal: what OPTQ and GPFQ share: checked options, the layer being quantized (its grid, parameters and
 * integer output), the processing order and the gathered statistics. */
#ifndef QC_GPXQ_INTERNAL_H
#define QC_GPXQ_INTERNAL_H

#include <math.h>

#include "accum/accum.h"
#include "kernels/dispatch.h"
#include "qcore/qc_gpxq.h"
#include "quant/grid.h"

/* ---- options (options.c) --------------------------------------------------------------------- */

/* Checks `opts` (NULL: the defaults) into `out`, on behalf of `function`. */
qc_status qc__gpxq_options(qc_gpxq_options *out, const qc_gpxq_options *opts, const char *function);

/* QC_ERR_VERSION unless `result` is NULL or carries a known version. */
qc_status qc__gpxq_result_check(const qc_gpxq_result *result, const char *function);

/* Fills the fields of `result` (may be NULL) that its version has. */
void qc__gpxq_result_store(qc_gpxq_result *result, const qc_gpxq_result *values);

/* ---- the layer (layer.c) ---------------------------------------------------------------------- */

/* What AXE did in one (row, tile) slot, for qc_gpxq_result (summed in slot order, whatever the threads). */
typedef struct qc_gpxq_axe_tally {
    int64_t soft_changed, clamped;
    double soft_removed; /* in levels */
} qc_gpxq_axe_tally;

/* AXE's state (axe.c); bits == 0 when AXE is off. Rows are independent: row r only touches its own slots
 * [r * tiles, (r + 1) * tiles), so rows may run on different threads. */
typedef struct qc_gpxq_axe {
    int32_t bits;
    int soft;
    int64_t x_min, x_max;
    int64_t tile, tiles;        /* tile >= 1; tiles per row */
    double radius;              /* Z = (2^P - 2) / (x_max - x_min), the L1 radius in levels */
    double *threshold;          /* [rows, tiles]: lambda, in weight units */
    qc_accum_budget *budget;    /* [rows, tiles]: the centred levels chosen so far */
    qc_gpxq_axe_tally *tally;   /* [rows, tiles] */
} qc_gpxq_axe;

typedef struct qc_gpxq_layer {
    const qc_ctx *ctx;
    const char *function;
    const qc_quant_options *grid_opts;
    qc_grid grid;
    int64_t rows, cols;      /* W is [rows, cols] */
    int64_t groups;          /* parameters per row: 1 per tensor or channel, ceil(cols / group_size) per group */
    int64_t group_size;      /* columns per parameter (cols unless per group) */
    int64_t row_stride;      /* parameters per row in `params`: 0 per tensor (one shared), else `groups` */
    int threads;
    const float *w;          /* borrowed input */
    qc_grid_run *params;     /* one per parameter of qc_quant_param_shape(W), row-major */
    int32_t *levels;         /* [rows, cols], original column order */
    qc_gpxq_axe axe;
} qc_gpxq_layer;

/* The output tensors of one call (borrowed; zero_point and dequantized may be NULL). */
typedef struct qc_gpxq_outputs {
    qc_tensor *q, *scale, *zero_point, *dequantized;
} qc_gpxq_outputs;

/* Checks the options (into *opts_out), `result`'s version, ctx, W, the outputs and the grid, and allocates
 * the layer's levels, parameters and AXE state. */
qc_status qc__gpxq_begin(qc_gpxq_layer *layer, qc_gpxq_options *opts_out, const qc_ctx *ctx, const qc_gpxq_outputs *out,
                         const qc_gpxq_result *result, const qc_tensor *w, const qc_quant_options *grid,
                         const qc_gpxq_options *opts, const char *function);
void qc__gpxq_layer_free(qc_gpxq_layer *layer);

/* Checks that `m` (argument `name`) is a finite f64 [cols, cols] matrix. */
qc_status qc__gpxq_check_square(const qc_gpxq_layer *layer, const qc_tensor *m, const char *name);

/* The grid of weight (row, original column). */
static inline qc_grid_run qc__gpxq_param(const qc_gpxq_layer *layer, int64_t row, int64_t col)
{
    return layer->params[row * layer->row_stride + col / layer->group_size];
}

/* Parameter index of a column within a row (0 unless per group). */
static inline int64_t qc__gpxq_group_of(const qc_gpxq_layer *layer, int64_t col)
{
    return col / layer->group_size;
}

/* Chooses every parameter from W with the columns flagged in `dead` (may be NULL) set to 0, and AXE's
 * thresholds from the same values. */
qc_status qc__gpxq_choose_from_w(qc_gpxq_layer *layer, const unsigned char *dead);

/* Chooses parameter `group` of every row from OPTQ's running weights `work` ([rows, cols] float32, column i
 * holding original column order[i]; `position` is the inverse of `order`), and AXE's thresholds of the
 * group's tiles from the same values. Per group only. */
qc_status qc__gpxq_choose_group(qc_gpxq_layer *layer, int64_t group, const float *work, const int64_t *position);

/* nearbyint(v) in the default rounding mode (halves to even), without its call: glibc's nearbyint saves
 * and restores the floating-point environment, which serializes the CPU on every weight. Adding and
 * subtracting 1.5 * 2^52 rounds any |v| < 2^51 to an integer in the current mode; larger values are
 * left to nearbyint (beyond 2^52 they are integers already). Needs IEEE evaluation (no -ffast-math). */
static inline double qc__gpxq_round_even(double v)
{
    const double magic = 0x1.8p52;
    return fabs(v) < 0x1p51 ? (v + magic) - magic : nearbyint(v);
}

/* q = clamp(round_half_even(w / scale) + zero_point, qmin, qmax), in double. */
static inline int32_t qc__gpxq_quantize(double w, qc_grid_run g)
{
    double v = qc__gpxq_round_even(w / (double)g.scale) + (double)g.zero_point;
    v = v < (double)g.qmin ? (double)g.qmin : v;
    v = v > (double)g.qmax ? (double)g.qmax : v;
    return (int32_t)v;
}

/* ---- AXE (axe.c) ----------------------------------------------------------------------------- */

/* Checks the tile size against the layer and allocates the state when opts enable AXE. */
qc_status qc__axe_begin(qc_gpxq_layer *layer, const qc_gpxq_options *opts);
void qc__axe_free(qc_gpxq_axe *axe);

/* The thresholds lambda of the tiles covering columns [col0, col1) (tile-aligned) of every row, once their
 * scales are chosen, from the values the scales were chosen from: `running` (OPTQ's float32 [rows, cols] in
 * processing order, `position` the inverse order) when not NULL, else W with the columns `dead` flags (may be NULL)
 * set to 0. Nothing happens when AXE or its soft constraint is off. */
qc_status qc__axe_thresholds(qc_gpxq_layer *layer, int64_t col0, int64_t col1, const float *running,
                             const int64_t *position, const unsigned char *dead);

/* The level of weight (row, col) from its argument w under AXE's constraints, updating the budgets and
 * the slot's tally. */
int32_t qc__axe_level(qc_gpxq_axe *axe, int64_t row, int64_t col, double w, qc_grid_run g);

/* Fills the AXE fields of `values` (qc_gpxq_result version 2) from the tallies and final budgets of
 * `layer`'s rows; all 0 when AXE is off. */
void qc__axe_summarize(qc_gpxq_result *values, const qc_gpxq_layer *layer);

/* The level of weight (row, col) from its argument w and its grid g (qc__gpxq_param's): plain rounding, or
 * AXE's when it is on. */
static inline int32_t qc__gpxq_level_in(qc_gpxq_layer *layer, int64_t row, int64_t col, double w, qc_grid_run g)
{
    return layer->axe.bits == 0 ? qc__gpxq_quantize(w, g) : qc__axe_level(&layer->axe, row, col, w, g);
}

/* qc__gpxq_level_in with the weight's own grid. */
static inline int32_t qc__gpxq_level(qc_gpxq_layer *layer, int64_t row, int64_t col, double w)
{
    return qc__gpxq_level_in(layer, row, col, w, qc__gpxq_param(layer, row, col));
}

static inline double qc__gpxq_dequantize(int32_t q, qc_grid_run g)
{
    return (double)(q - g.zero_point) * (double)g.scale;
}

/* Writes the levels, parameters and (when asked) the dequantized weights to the outputs, and `values` to
 * `result` (may be NULL). The layer's levels are freed once copied (the layer can then only be freed). */
void qc__gpxq_finish(qc_gpxq_layer *layer, const qc_gpxq_outputs *out, qc_gpxq_result *result,
                     const qc_gpxq_result *values);

/* The working arrays both algorithms need (layer.c). The per-row values are double (GPFQ) or float32
 * (OPTQ, whose updates run in float32, see qc_gpxq.h): only that pair is allocated, the other is NULL. */
typedef struct qc_gpxq_work {
    int64_t d, block;        /* inputs, and inputs per block (at most d) */
    unsigned char *dead;     /* per input: its diagonal of H is 0 */
    double *diag;            /* per input: the diagonal the processing order sorts */
    int64_t *order;          /* processing position -> input */
    int64_t *position;       /* input -> processing position */
    double *square;          /* [d, d]: a matrix in processing order */
    double *running;         /* [rows, d]: per-row running values in processing order */
    double *block_values;    /* [rows, block]: per-row values of the current block */
    float *running_f32;      /* float32 versions of the two above */
    float *block_values_f32;
} qc_gpxq_work;

/* `single`: allocate the float32 per-row values instead of the double ones; `square`: allocate `square`
 * (else it stays NULL). */
qc_status qc__gpxq_work_alloc(qc_gpxq_work *work, const qc_gpxq_layer *layer, int64_t block_size, int single,
                              int square);
/* Frees the arrays and empties `work` (so a second call does nothing). */
void qc__gpxq_work_free(qc_gpxq_work *work);

/* ---- the statistics' storage (stats.c), for OPTQ straight from the statistics ------------------ */

/* Checks that `stats` holds OPTQ statistics of `dim` inputs and at least one sample, on behalf of
 * `function`; *sums receives their [dim, dim] storage, whose lower triangle (diagonal included) holds
 * sum x x^T and whose strict upper triangle is unused, and *scale the factor 2/n that makes H of it. */
qc_status qc__gpxq_stats_sums(double **sums, double *scale, qc_gpxq_stats *stats, int64_t dim, const char *function);

/* A copy of the diagonal of the sums (NULL when out of memory), for qc__gpxq_stats_restore_diagonal. */
double *qc__gpxq_stats_save_diagonal(const qc_gpxq_stats *stats);

/* Writes the copy back into the sums' diagonal and frees it (NULL: nothing to do). */
void qc__gpxq_stats_restore_diagonal(qc_gpxq_stats *stats, double *saved);

/* ---- order and statistics (order.c) ---------------------------------------------------------- */

/* H[i][j] for a matrix of which only the lower triangle is read. */
static inline double qc__gpxq_sym(const double *h, int64_t d, int64_t i, int64_t j)
{
    return i >= j ? h[i * d + j] : h[j * d + i];
}

/* Flags inputs whose diagonal of H is 0 (dead[i] = 1); returns their count. */
int64_t qc__gpxq_dead_inputs(unsigned char *dead, const double *h, int64_t d);

/* The processing order: 0..d-1, or by decreasing `diag` (ties by index) when act_order. `position`
 * receives the inverse permutation. */
qc_status qc__gpxq_order(int64_t *order, int64_t *position, const double *diag, int64_t d, int act_order,
                         const char *function);

/* out[i][j] = M[order[i]][order[j]] for j <= i, 0 above the diagonal (out is [d, d]). `symmetric`: M's
 * lower triangle stands for the whole matrix. */
void qc__gpxq_gather_lower(double *out, const double *m, int64_t d, const int64_t *order, int symmetric, int threads);

/* The running weights: work[r][i] = W[r][order[i]], with the columns `dead` flags (may be NULL) set to 0,
 * into `work` (double) or `work_f32` (float32), whichever is not NULL. */
void qc__gpxq_gather_weights(double *work, float *work_f32, const qc_gpxq_layer *layer, const int64_t *order,
                             const unsigned char *dead);

/* Reports progress of `done` of the layer's columns. */
qc_status qc__gpxq_progress(const qc_gpxq_layer *layer, int64_t done);

#endif
