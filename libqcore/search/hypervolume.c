/* The 2-D hypervolume of (cost: lower is better, metric: higher is better) points against a reference
 * point, and its expected improvement by one new point with a Gaussian metric. */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "search/search.h"

typedef struct point {
    double cost, metric;
} point;

static int by_cost(const void *a, const void *b)
{
    const point *p = a, *q = b;
    if (p->cost != q->cost) return p->cost < q->cost ? -1 : 1;
    return (p->metric < q->metric) - (p->metric > q->metric);
}

/* Sweeps the points in increasing cost: each adds the strip up to the next cost under the best metric so far. */
double qc__hypervolume(const double *cost, const double *metric, size_t n, double rc, double rm)
{
    point *p = malloc((n ? n : 1) * sizeof *p);
    if (p == NULL) return NAN;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (cost[i] < rc && metric[i] > rm) p[m++] = (point){cost[i], metric[i]};
    qsort(p, m, sizeof *p, by_cost);
    double area = 0, best = rm;
    for (size_t i = 0; i < m; i++) {
        best = fmax(best, p[i].metric);
        double next = i + 1 < m ? p[i + 1].cost : rc;
        area += (next - p[i].cost) * (best - rm);
    }
    free(p);
    return area;
}

qc_status qc_search_hypervolume(double *out, const double *cost, const double *metric, size_t n,
                                double reference_cost, double reference_metric)
{
    QC_CHECK_NOT_NULL(out);
    if (n > 0) {
        QC_CHECK_NOT_NULL(cost);
        QC_CHECK_NOT_NULL(metric);
    }
    if (isnan(reference_cost) || isnan(reference_metric))
        return QC_FAIL(QC_ERR_NUMERIC, "the reference point (%g, %g) has a NaN", reference_cost, reference_metric);
    for (size_t i = 0; i < n; i++)
        if (isnan(cost[i]) || isnan(metric[i]))
            return QC_FAIL(QC_ERR_NUMERIC, "point %zu (cost %g, metric %g) has a NaN", i, cost[i], metric[i]);
    *out = qc__hypervolume(cost, metric, n, reference_cost, reference_metric);
    if (isnan(*out)) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "cannot sort %zu points", n);
    return QC_OK;
}

/* E[max(M - a, 0)] for M ~ N(mean, sd^2). */
static double expected_excess(double mean, double sd, double a)
{
    if (!(sd > 0)) return fmax(mean - a, 0.0);
    double z = (mean - a) / sd;
    double pdf = exp(-0.5 * z * z) * 0.39894228040143267794 /* 1 / sqrt(2 pi) */, cdf = 0.5 * erfc(-z / sqrt(2.0));
    return (mean - a) * cdf + sd * pdf;
}

/* The new point's gain at metric level y is the cost strip from c to the cheapest front point reaching y
 * (or to rc): a step function of y with steps at the front's metrics, integrated against M's law. */
double qc__ehvi(const double *cost, const double *metric, size_t n, double rc, double rm, double c, double mean,
                double sd)
{
    if (!(c < rc)) return 0;
    double gain = 0, lo = rm;
    for (size_t i = 0; i < n; i++) {
        if (!(cost[i] < rc) || !(metric[i] > lo)) continue;
        double width = fmin(cost[i], rc) - c;
        if (width > 0)
            gain += width * (expected_excess(mean, sd, lo) - expected_excess(mean, sd, metric[i]));
        lo = metric[i];
    }
    return gain + (rc - c) * expected_excess(mean, sd, lo);
}
