/* The additive Bayesian linear surrogate of the metric,
 *     metric = m0 - alpha * proxy(choice) - sum_t delta[t, choice_t] + noise,
 * fitted on the full-fidelity evaluations. The prior is centred on the proxy: (m0, alpha) from a
 * least-squares line of metric against summed proxy, delta ~ N(0, (0.5 alpha loss + floor)^2), so that few
 * evaluations rescale the proxy and more evaluations correct single (tensor, candidate) entries. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "linalg/linalg.h"
#include "search/search.h"

static const double DELTA_RELATIVE = 0.5; /* proxies trusted to within a factor ~2 */
static const double DELTA_FLOOR = 0.05;   /* of the mean non-zero proxy: corrections on "free" candidates */
static const double WIDE = 10;            /* prior std of m0 and alpha, relative to their scale */
enum { MAX_RETRIES = 12 };

void qc__surrogate_free(qc__surrogate *s)
{
    free(s->mean);
    free(s->cov);
    memset(s, 0, sizeof *s);
}

static double summed_proxy(const qc_search_space *space, const uint32_t *choice)
{
    double p = 0;
    for (size_t t = 0; t < space->num_tensors; t++) p += space->proxy[space->offset[t] + choice[t]];
    return p;
}

/* m0 and alpha from the least-squares line metric = m0 - alpha * proxy (alpha kept positive). */
static void line_fit(qc__surrogate *s, const qc_search_space *space, const qc_search_front *e, size_t full)
{
    double n = 0, sp = 0, sm = 0, spp = 0, spm = 0;
    for (size_t i = 0; i < e->size; i++) {
        if (e->fidelity[i] != full) continue;
        double p = summed_proxy(space, e->choices + i * e->num_tensors), m = e->metric[i];
        n++, sp += p, sm += m, spp += p * p, spm += p * m;
    }
    double var = n > 0 ? spp / n - (sp / n) * (sp / n) : 0;
    double slope = var > 1e-300 ? (spm / n - (sp / n) * (sm / n)) / var : -1.0;
    s->alpha = slope < 0 ? -slope : 1e-6;
    s->m0 = n > 0 ? sm / n + s->alpha * sp / n : 0;
}

/* Feature u of the sparse row of features(): its index into theta and its value. */
static size_t feature_index(const qc_search_space *space, const uint32_t *choice, size_t u)
{
    return u < 2 ? u : 2 + space->offset[u - 2] + choice[u - 2];
}

static double feature_value(size_t u, double proxy)
{
    return u == 0 ? 1 : u == 1 ? -proxy : -1;
}

/* The sparse feature row of a configuration: theta[0] (m0) with +1, theta[1] (alpha) with -proxy, and the
 * delta of each tensor's chosen entry with -1. Returns the count (T + 2). */
static size_t features(const qc_search_space *space, const uint32_t *choice, size_t *idx, double *val)
{
    double proxy = summed_proxy(space, choice);
    for (size_t u = 0; u < space->num_tensors + 2; u++)
        idx[u] = feature_index(space, choice, u), val[u] = feature_value(u, proxy);
    return space->num_tensors + 2;
}

static double prior_std(const qc__surrogate *s, const qc_search_space *space, size_t j, double mean_proxy)
{
    if (j == 0) return WIDE * (fabs(s->m0) + 1);
    if (j == 1) return WIDE * s->alpha;
    return s->alpha * (DELTA_RELATIVE * space->proxy[j - 2] + DELTA_FLOOR * mean_proxy) + 1e-12;
}

static double mean_nonzero_proxy(const qc_search_space *space)
{
    double sum = 0;
    size_t n = 0;
    for (size_t e = 0; e < space->offset[space->num_tensors]; e++)
        if (space->proxy[e] > 0) sum += space->proxy[e], n++;
    return n ? sum / (double)n : 1.0;
}

/* Precision matrix (lower) and right-hand side of the posterior. */
static void normal_equations(qc__surrogate *s, const qc_search_space *space, const qc_search_front *e, size_t full,
                             double *a, double *b, size_t *idx, double *val)
{
    size_t p = 2 + s->entries;
    double mean_proxy = mean_nonzero_proxy(space), w = 1 / (s->noise * s->noise);
    memset(a, 0, p * p * sizeof *a);
    memset(b, 0, p * sizeof *b);
    for (size_t j = 0; j < p; j++) {
        double sd = prior_std(s, space, j, mean_proxy);
        a[j * p + j] = 1 / (sd * sd);
    }
    b[0] = s->m0 * a[0];
    b[1] = s->alpha * a[p + 1];
    for (size_t i = 0; i < e->size; i++) {
        if (e->fidelity[i] != full) continue;
        size_t n = features(space, e->choices + i * e->num_tensors, idx, val);
        for (size_t u = 0; u < n; u++) {
            b[idx[u]] += w * val[u] * e->metric[i];
            for (size_t v = 0; v < n; v++)
                if (idx[v] <= idx[u]) a[idx[u] * p + idx[v]] += w * val[u] * val[v];
        }
    }
}

static void mirror_lower(double *a, size_t p)
{
    for (size_t i = 0; i < p; i++)
        for (size_t j = i + 1; j < p; j++) a[i * p + j] = a[j * p + i];
}

/* Cholesky of the precision matrix (lower, p x p) from `a`; when rounding makes it indefinite (a prior
 * far wider than the noise), retried with a diagonal jitter growing tenfold from 1e-12 of its mean. */
static qc_status factor(double *l, const double *a, size_t p, const char *function)
{
    double mean_diag = 0;
    for (size_t j = 0; j < p; j++) mean_diag += a[j * p + j] / (double)p;
    qc_status st = QC_ERR_SINGULAR;
    for (int retry = 0; retry <= MAX_RETRIES && st == QC_ERR_SINGULAR; retry++) {
        memcpy(l, a, p * p * sizeof *l);
        double jitter = retry ? 1e-12 * mean_diag * pow(10.0, retry - 1) : 0;
        for (size_t j = 0; j < p; j++) l[j * p + j] += jitter;
        st = qc__cholesky(1, l, (int64_t)p, (int64_t)p, NULL, function);
    }
    return st;
}

/* Covariance = A^-1 = L^-T L^-1 from A's Cholesky factor; mean = cov b. */
static qc_status posterior(qc__surrogate *s, const double *a, double *l, const double *b, const char *function)
{
    int64_t p = (int64_t)(2 + s->entries);
    QC_TRY(factor(l, a, (size_t)p, function));
    QC_TRY(qc__triangular_inverse(1, l, p, p, function));
    qc__dsyrk_lower(1, p, p, 1.0, l, p, 0.0, s->cov, p);
    mirror_lower(s->cov, (size_t)p);
    qc__dgemm(1, 0, 0, p, 1, p, 1.0, s->cov, p, b, 1, 0.0, s->mean, 1);
    return QC_OK;
}

static double metric_range(const qc_search_front *e, size_t full)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < e->size; i++)
        if (e->fidelity[i] == full) lo = fmin(lo, e->metric[i]), hi = fmax(hi, e->metric[i]);
    return hi > lo ? hi - lo : 0;
}

qc_status qc__surrogate_fit(qc__surrogate *s, const qc_search_space *space, const qc_search_front *evals, size_t full,
                            double noise, const char *function)
{
    size_t p = 2 + space->offset[space->num_tensors];
    if (s->mean == NULL) {
        s->entries = p - 2;
        s->mean = malloc(p * sizeof *s->mean);
        s->cov = malloc(p * p * sizeof *s->cov);
    }
    double *a = malloc(p * p * sizeof *a), *l = malloc(p * p * sizeof *l), *b = malloc(p * sizeof *b);
    double *val = malloc(p * sizeof *val);
    size_t *idx = malloc(p * sizeof *idx);
    qc_status st = QC_OK;
    if (!s->mean || !s->cov || !a || !l || !b || !val || !idx)
        st = QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate a surrogate of %zu parameters", p);
    if (st == QC_OK) {
        line_fit(s, space, evals, full);
        double range = metric_range(evals, full);
        s->noise = noise > 0 ? noise : range > 0 ? 1e-3 * range : 1e-6 * (fabs(s->m0) + 1);
        normal_equations(s, space, evals, full, a, b, idx, val);
        st = posterior(s, a, l, b, function);
    }
    s->fitted = st == QC_OK;
    free(a), free(l), free(b), free(val), free(idx);
    return st;
}

void qc__surrogate_predict(const qc__surrogate *s, const qc_search_space *space, const uint32_t *choice, double *mean,
                           double *sd)
{
    size_t n = space->num_tensors + 2, p = 2 + s->entries;
    double proxy = summed_proxy(space, choice), m = 0, var = 0;
    for (size_t u = 0; u < n; u++) {
        size_t iu = feature_index(space, choice, u);
        double vu = feature_value(u, proxy);
        m += vu * s->mean[iu];
        for (size_t v = 0; v < n; v++)
            var += vu * feature_value(v, proxy) * s->cov[iu * p + feature_index(space, choice, v)];
    }
    *mean = m;
    *sd = sqrt(fmax(var, 0));
}

void qc__surrogate_losses(const qc__surrogate *s, const qc_search_space *space, double *loss)
{
    for (size_t e = 0; e < s->entries; e++) loss[e] = s->mean[1] * space->proxy[e] + s->mean[2 + e];
}
