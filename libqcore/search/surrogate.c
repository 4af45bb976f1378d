/* The additive Bayesian linear surrogate of the metric,
 *     metric = m0 - alpha * proxy(choice) - sum_t delta[t, choice_t] + noise,
 * fitted on the evaluations, an evaluation at fidelity f weighted f / f_full (its noise variance taken as
 * noise^2 f_full / f, as for a metric averaged over fewer samples). The prior is centred on the proxy: (m0, alpha) from a
 * least-squares line of metric against summed proxy, delta ~ N(0, (0.5 alpha loss + floor)^2), floor = 0.01 alpha
 * times the mean non-zero proxy, so that few
 * evaluations rescale the proxy and more evaluations correct single (tensor, candidate) entries. The
 * options' prior_width multiplies the scale and delta widths (not the floor): an accurate proxy (measured
 * in the whole model) earns a narrower prior, so the first evaluations are not spent testing it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "linalg/linalg.h"
#include "search/search.h"

static const double DELTA_RELATIVE = 0.5; /* proxies trusted to within a factor ~2 */
/* Of the mean non-zero proxy: corrections on "free" candidates. Small, because the prior std of a
 * configuration's prediction grows with sqrt(tensors) floors: at 0.05 a 36-tensor configuration of nearly
 * free candidates (the flat, costly end of a front) was uncertain by more than the metric range left there,
 * and expected-improvement proposals were spent on it. */
static const double DELTA_FLOOR = 0.01;
static const double SCALE_STD = 1.0;     /* a tensor's sensitivity: 0 to 2 times the proxy's, within 1 std */
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
static void line_fit(qc__surrogate *s, const qc_search_space *space, const qc_search_front *e, const double *weight)
{
    double n = 0, sp = 0, sm = 0, spp = 0, spm = 0;
    for (size_t i = 0; i < e->size; i++) {
        double p = summed_proxy(space, e->choices + i * e->num_tensors), m = e->metric[i], w = weight[e->fidelity[i]];
        n += w, sp += w * p, sm += w * m, spp += w * p * p, spm += w * p * m;
    }
    double var = n > 0 ? spp / n - (sp / n) * (sp / n) : 0;
    double slope = var > 1e-300 ? (spm / n - (sp / n) * (sm / n)) / var : -1.0;
    s->alpha = slope < 0 ? -slope : 1e-6;
    s->m0 = n > 0 ? sm / n + s->alpha * sp / n : 0;
}

/* Parameters: m0, alpha, the sensitivity scale of each tensor, the delta of each entry. */
static size_t scale_index(size_t t)
{
    return 2 + t;
}

static size_t delta_index(const qc_search_space *space, size_t t, uint32_t c)
{
    return 2 + space->num_tensors + space->offset[t] + c;
}

/* Feature u (0 .. 2 + 2T) of a configuration of summed proxy `proxy`: m0 with +1, alpha with -proxy,
 * tensor t's scale with -proxy_t(choice_t), and the delta of t's chosen entry with -1. */
static void feature(const qc_search_space *space, const uint32_t *choice, double proxy, size_t u, size_t *idx,
                    double *val)
{
    size_t T = space->num_tensors;
    if (u < 2) {
        *idx = u, *val = u == 0 ? 1 : -proxy;
    } else if (u < 2 + T) {
        *idx = scale_index(u - 2), *val = -space->proxy[space->offset[u - 2] + choice[u - 2]];
    } else {
        *idx = delta_index(space, u - 2 - T, choice[u - 2 - T]), *val = -1;
    }
}

/* The sparse feature row of a configuration; returns the count (2 + 2T). */
static size_t features(const qc_search_space *space, const uint32_t *choice, size_t *idx, double *val)
{
    double proxy = summed_proxy(space, choice);
    size_t n = 2 + 2 * space->num_tensors;
    for (size_t u = 0; u < n; u++) feature(space, choice, proxy, u, idx + u, val + u);
    return n;
}

static double prior_std(const qc__surrogate *s, const qc_search_space *space, size_t j, double mean_proxy)
{
    size_t T = space->num_tensors;
    if (j == 0) return WIDE * (fabs(s->m0) + 1);
    if (j == 1) return WIDE * s->alpha;
    if (j < 2 + T) return s->width * SCALE_STD * s->alpha + 1e-12;
    return s->alpha * (s->width * DELTA_RELATIVE * space->proxy[j - 2 - T] + DELTA_FLOOR * mean_proxy) + 1e-12;
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
static void normal_equations(qc__surrogate *s, const qc_search_space *space, const qc_search_front *e,
                             const double *weight, double *a, double *b, size_t *idx, double *val)
{
    size_t p = s->params;
    double mean_proxy = mean_nonzero_proxy(space);
    memset(a, 0, p * p * sizeof *a);
    memset(b, 0, p * sizeof *b);
    for (size_t j = 0; j < p; j++) {
        double sd = prior_std(s, space, j, mean_proxy);
        a[j * p + j] = 1 / (sd * sd);
    }
    b[0] = s->m0 * a[0];
    b[1] = s->alpha * a[p + 1];
    for (size_t i = 0; i < e->size; i++) {
        double w = weight[e->fidelity[i]] / (s->noise * s->noise);
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
        st = qc__cholesky(l, (int64_t)p, (int64_t)p, NULL, function);
    }
    return st;
}

/* Covariance = A^-1 = L^-T L^-1 from A's Cholesky factor; mean = cov b. */
static qc_status posterior(qc__surrogate *s, const double *a, double *l, const double *b, const char *function)
{
    int64_t p = (int64_t)s->params;
    QC_TRY(factor(l, a, (size_t)p, function));
    QC_TRY(qc__triangular_inverse(l, p, p, function));
    qc__dsyrk_lower(1, p, p, 1.0, l, p, 0.0, s->cov, p);
    mirror_lower(s->cov, (size_t)p);
    qc__dgemm(1, 0, 0, p, 1, p, 1.0, s->cov, p, b, 1, 0.0, s->mean, 1);
    return QC_OK;
}

static double metric_range(const qc_search_front *e)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < e->size; i++) lo = fmin(lo, e->metric[i]), hi = fmax(hi, e->metric[i]);
    return hi > lo ? hi - lo : 0;
}

/* The noise std that explains the weighted residuals of the current fit (an evaluation at weight w has
 * variance noise^2 / w). */
static double residual_noise(const qc__surrogate *s, const qc_search_space *space, const qc_search_front *e,
                             const double *weight)
{
    double sum = 0, n = 0;
    for (size_t i = 0; i < e->size; i++) {
        const uint32_t *choice = e->choices + i * e->num_tensors;
        double m = 0, proxy = summed_proxy(space, choice), val;
        for (size_t u = 0, j; u < 2 + 2 * space->num_tensors; u++) feature(space, choice, proxy, u, &j, &val), m += val * s->mean[j];
        sum += weight[e->fidelity[i]] * (e->metric[i] - m) * (e->metric[i] - m), n++;
    }
    return n > 0 ? sqrt(sum / n) : 0;
}

static qc_status fit(qc__surrogate *s, const qc_search_space *space, const qc_search_front *evals, const double *weight,
                     double *a, double *l, double *b, size_t *idx, double *val, const char *function)
{
    normal_equations(s, space, evals, weight, a, b, idx, val);
    return posterior(s, a, l, b, function);
}

qc_status qc__surrogate_fit(qc__surrogate *s, const qc_search_space *space, const qc_search_front *evals,
                            const double *weight, double noise, double prior_width, const char *function)
{
    size_t p = 2 + space->num_tensors + space->offset[space->num_tensors];
    if (s->mean == NULL) {
        s->entries = space->offset[space->num_tensors], s->params = p;
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
        line_fit(s, space, evals, weight);
        s->width = prior_width;
        double range = metric_range(evals);
        s->noise = noise > 0 ? noise : range > 0 ? 1e-3 * range : 1e-6 * (fabs(s->m0) + 1);
        st = fit(s, space, evals, weight, a, l, b, idx, val, function);
        double seen = noise > 0 || st != QC_OK ? 0 : residual_noise(s, space, evals, weight);
        if (seen > s->noise) { /* automatic noise: refit with what the residuals show */
            s->noise = seen;
            st = fit(s, space, evals, weight, a, l, b, idx, val, function);
        }
    }
    s->fitted = st == QC_OK;
    free(a), free(l), free(b), free(val), free(idx);
    return st;
}

void qc__surrogate_predict(const qc__surrogate *s, const qc_search_space *space, const uint32_t *choice, double *mean,
                           double *sd)
{
    size_t n = 2 + 2 * space->num_tensors, p = s->params;
    double proxy = summed_proxy(space, choice), m = 0, var = 0;
    for (size_t u = 0; u < n; u++) {
        size_t iu, iv;
        double vu, vv;
        feature(space, choice, proxy, u, &iu, &vu);
        m += vu * s->mean[iu];
        for (size_t v = 0; v < n; v++) {
            feature(space, choice, proxy, v, &iv, &vv);
            var += vu * vv * s->cov[iu * p + iv];
        }
    }
    *mean = m;
    *sd = sqrt(fmax(var, 0));
}

void qc__surrogate_losses(const qc__surrogate *s, const qc_search_space *space, double *loss)
{
    for (size_t t = 0; t < space->num_tensors; t++)
        for (uint32_t c = 0; c < space->num_candidates[t]; c++) {
            double proxy = space->proxy[space->offset[t] + c];
            loss[space->offset[t] + c] = (s->mean[1] + s->mean[scale_index(t)]) * proxy + s->mean[delta_index(space, t, c)];
        }
}

void qc__surrogate_base(const qc__surrogate *s, const qc_search_space *space, const uint32_t *choice, double *g,
                        double *mean, double *var)
{
    size_t n = 2 + 2 * space->num_tensors, p = s->params;
    double proxy = summed_proxy(space, choice);
    memset(g, 0, p * sizeof *g);
    *mean = 0, *var = 0;
    for (size_t u = 0; u < n; u++) {
        size_t iu;
        double vu;
        feature(space, choice, proxy, u, &iu, &vu);
        const double *row = s->cov + iu * p;
        for (size_t j = 0; j < p; j++) g[j] += vu * row[j];
        *mean += vu * s->mean[iu];
    }
    for (size_t u = 0; u < n; u++) {
        size_t iu;
        double vu;
        feature(space, choice, proxy, u, &iu, &vu);
        *var += vu * g[iu];
    }
}

void qc__surrogate_move(const qc__surrogate *s, const qc_search_space *space, const double *g, double base_mean,
                        double base_var, const size_t *members, size_t count, uint32_t from, uint32_t to,
                        size_t *idx, double *val, double *mean, double *sd)
{
    size_t n = 1, p = s->params;
    double dproxy = 0;
    for (size_t k = 0; k < count; k++) {
        size_t t = members[k];
        double d = space->proxy[space->offset[t] + to] - space->proxy[space->offset[t] + from];
        dproxy += d;
        idx[n] = scale_index(t), val[n++] = -d;
        idx[n] = delta_index(space, t, from), val[n++] = 1;
        idx[n] = delta_index(space, t, to), val[n++] = -1;
    }
    idx[0] = 1, val[0] = -dproxy;
    double m = base_mean, v = base_var;
    for (size_t a = 0; a < n; a++) {
        m += val[a] * s->mean[idx[a]];
        v += 2 * val[a] * g[idx[a]];
        for (size_t b = 0; b < n; b++) v += val[a] * val[b] * s->cov[idx[a] * p + idx[b]];
    }
    *mean = m;
    *sd = sqrt(fmax(v, 0));
}
