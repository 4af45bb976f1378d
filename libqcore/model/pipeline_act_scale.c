/* Activation scales beyond min-max (qc_model.h, "Activation scales"): a histogram of each layer input in
 * the float model, then the percentile or the clip with the least expected squared error. The histogram
 * has a fixed number of bins, so memory does not grow with the calibration data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pipeline_internal.h"

#define BINS QC_PIPELINE_HISTOGRAM_BINS

size_t qcp__first_reader(const qc_pipeline *p, size_t i)
{
    size_t j = 0;
    while (strcmp(p->layers[j].input, p->layers[i].input) != 0) j++;
    return j;
}

static int needs_histograms(const qc_recipe *rc)
{
    return rc->version >= 2 && rc->activation_bits != 0 && rc->activation_scale != QC_SCALE_MINMAX;
}

/* Adds the n values of x to `counts`, BINS equal bins over [lo, hi] (the values' own range). */
static void add_values(double *counts, const float *x, int64_t n, double lo, double hi)
{
    double per_unit = hi > lo ? BINS / (hi - lo) : 0.0;
    for (int64_t k = 0; k < n; k++) {
        int64_t bin = (int64_t)(((double)x[k] - lo) * per_unit);
        counts[bin < 0 ? 0 : bin >= BINS ? BINS - 1 : bin] += 1.0;
    }
}

static qc_status add_batch(qcp_run *r, const qcp_batch *b, double *histogram)
{
    const qc_pipeline *p = r->p;
    for (size_t i = 0; i < p->num_layers; i++) {
        if (qcp__first_reader(p, i) != i) continue;
        qc_tensor x;
        QCM_TRY(qcp__value_of(r->fp, b, p->layers[i].input, &x));
        add_values(histogram + i * BINS, x.data, qc_tensor_numel(&x), p->range_lo[i], p->range_hi[i]);
    }
    return QC_OK;
}

qc_status qcp__input_histograms(qcp_run *r)
{
    qc_pipeline *p = r->p;
    if (!needs_histograms(r->r) || p->histogram) return QC_OK;
    double *histogram = calloc(p->num_layers * BINS, sizeof *histogram);
    if (histogram == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory for the activation histograms");
    qc_status st = qcp__float_session(r); /* the ranges pass checked the values; a later run's session is new */
    for (size_t i = 0; st == QC_OK && i < p->num_layers; i++)
        if (qcp__first_reader(p, i) == i) st = qc_session_capture(r->fp, p->layers[i].input);
    for (size_t b = 0; st == QC_OK && b < p->num_batches; b++) {
        st = qcp__bind_batch(r->fp, &p->batches[b]);
        if (st == QC_OK) st = qc_session_run(r->fp);
        if (st == QC_OK) st = add_batch(r, &p->batches[b], histogram);
    }
    if (st == QC_OK) p->histogram = histogram;
    else free(histogram);
    return st;
}

/* Mass of the histogram with |x| <= t, each bin uniform over its width. */
static double mass_within(const double *counts, double lo, double width, double t)
{
    double mass = 0.0;
    for (int j = 0; j < BINS; j++) {
        if (counts[j] == 0.0) continue;
        double a = fmax(lo + j * width, -t), b = fmin(lo + (j + 1) * width, t);
        if (b > a) mass += counts[j] * (b - a) / width;
    }
    return mass;
}

/* The percentile of |x|: bisection on mass_within, which is continuous and non-decreasing in t. */
static double percentile_clip(const double *counts, double lo, double hi, double pct)
{
    double total = 0.0, width = (hi - lo) / BINS, below = 0.0, above = fmax(-lo, hi);
    for (int j = 0; j < BINS; j++) total += counts[j];
    double target = pct / 100.0 * total;
    for (int it = 0; it < 100 && above - below > 1e-12 * above; it++) {
        double mid = 0.5 * (below + above);
        if (mass_within(counts, lo, width, mid) < target) below = mid;
        else above = mid;
    }
    return above;
}

static double cube(double v)
{
    return v * v * v;
}

/* The integral from 0 to x of e(y)^2, e(y) = y - s clamp(round(y / s), qmin, qmax), qmin <= 0 <= qmax:
 * whole periods of the rounding sawtooth give s^3 / 12 each, and beyond the clip e is linear. */
static double error_integral(double x, double s, double qmin, double qmax)
{
    double top = (qmax + 0.5) * s, bottom = (qmin - 0.5) * s;
    if (x > top) return error_integral(top, s, qmin, qmax) + (cube(x - qmax * s) - cube(0.5 * s)) / 3.0;
    if (x < bottom) return error_integral(bottom, s, qmin, qmax) + (cube(x - qmin * s) + cube(0.5 * s)) / 3.0;
    double k = floor(x / s + 0.5);
    return k * cube(s) / 12.0 + (cube(x - k * s) + cube(s) / 8.0) / 3.0 - cube(s) / 24.0;
}

static double expected_error(const double *counts, double lo, double width, double s, double qmin, double qmax)
{
    double sum = 0.0;
    for (int j = 0; j < BINS; j++)
        if (counts[j] != 0.0) {
            double a = lo + j * width, b = lo + (j + 1) * width;
            sum += counts[j] / width * (error_integral(b, s, qmin, qmax) - error_integral(a, s, qmin, qmax));
        }
    return sum;
}

/* From the widest clip down, replacing only on a strictly smaller error: ties keep the larger alpha. */
static double mse_clip(const qc_recipe *rc, const double *counts, double lo, double hi, int is_signed)
{
    int bits = rc->activation_bits;
    double qmax = is_signed ? ldexp(1.0, bits - 1) - 1 : ldexp(1.0, bits) - 1, qmin = is_signed ? -qmax - 1 : 0;
    double amax = fmax(-lo, hi), m = rc->activation_mse_min_ratio, width = (hi - lo) / BINS;
    double best = amax, best_error = INFINITY;
    for (int i = rc->activation_mse_steps - 1; i >= 0; i--) {
        double t = (m + (1.0 - m) * i / (rc->activation_mse_steps - 1)) * amax;
        double e = expected_error(counts, lo, width, t / qmax, qmin, qmax);
        if (e < best_error) best_error = e, best = t;
    }
    return best;
}

double qcp__input_clip(const qcp_run *r, size_t i)
{
    double lo = r->lo[i], hi = r->hi[i], amax = fmax(-lo, hi);
    if (!needs_histograms(r->r) || !(hi > lo) || !(amax > 0)) return amax;
    const double *counts = r->p->histogram + qcp__first_reader(r->p, i) * BINS;
    if (r->r->activation_scale == QC_SCALE_PERCENTILE) return percentile_clip(counts, lo, hi, r->r->activation_percentile);
    return mse_clip(r->r, counts, lo, hi, lo < 0);
}
