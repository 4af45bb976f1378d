/* The pipeline's memory between runs: one-pass statistics and report rows, reused while the recipe asks
 * for the same ones (same activation bits and scales, statistics kind, report rows and kept layers). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pipeline_internal.h"

int qcp__stats_kind(const qc_recipe *recipe)
{
    return recipe->method == QC_METHOD_RTN ? 0 : recipe->method == QC_METHOD_GPFQ ? QC_GPXQ_GPFQ : QC_GPXQ_OPTQ;
}

/* RTN needs only the report rows, which any kept pass over the same inputs has. */
static int same_key(const qcp_cache *c, const qcp_run *r)
{
    int kind = qcp__stats_kind(r->r);
    if (!c->valid || c->activation_bits != r->r->activation_bits || (kind != 0 && c->stats_kind != kind) ||
        c->report_rows != r->r->report_rows)
        return 0;
    size_t n = r->p->num_layers;
    return memcmp(c->keep, r->keep, n * sizeof *r->keep) == 0 && memcmp(c->act_scale, r->act_scale, n * sizeof *r->act_scale) == 0;
}

static void lend(qcp_run *r)
{
    const qcp_cache *c = &r->p->cache;
    for (size_t i = 0; i < r->p->num_layers; i++) r->report_x[i] = c->report_x[i], r->report_n[i] = c->report_n[i];
    r->rows_lent = 1;
}

int qcp__cache_lend(qcp_run *r, qc_gpxq_stats ***stats)
{
    if (!same_key(&r->p->cache, r)) return 0;
    lend(r);
    *stats = r->p->cache.stats;
    return 1;
}

static void free_cached(qcp_cache *c, size_t n)
{
    if (c->stats) qcp__free_stats(c->stats, n);
    for (size_t i = 0; c->report_x && i < n; i++) free(c->report_x[i]);
    free(c->stats), free(c->report_x), free(c->report_n), free(c->keep), free(c->act_scale);
    memset(c, 0, sizeof *c);
}

qc_status qcp__cache_store(qcp_run *r, qc_gpxq_stats **stats)
{
    size_t n = r->p->num_layers;
    qcp_cache *c = &r->p->cache;
    free_cached(c, n);
    c->keep = malloc(n * sizeof *c->keep);
    c->report_x = malloc(n * sizeof *c->report_x);
    c->report_n = malloc(n * sizeof *c->report_n);
    c->act_scale = malloc(n * sizeof *c->act_scale);
    if (!c->keep || !c->report_x || !c->report_n || !c->act_scale) { /* the run keeps what it has */
        free_cached(c, n);
        return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    memcpy(c->keep, r->keep, n * sizeof *c->keep);
    memcpy(c->report_x, r->report_x, n * sizeof *c->report_x);
    memcpy(c->report_n, r->report_n, n * sizeof *c->report_n);
    memcpy(c->act_scale, r->act_scale, n * sizeof *c->act_scale);
    c->stats = stats;
    c->activation_bits = r->r->activation_bits;
    c->stats_kind = qcp__stats_kind(r->r);
    c->report_rows = r->r->report_rows;
    c->valid = 1;
    r->rows_lent = 1;
    return QC_OK;
}

void qcp__cache_clear(qc_pipeline *p)
{
    free_cached(&p->cache, p->num_layers);
    free(p->range_lo), free(p->range_hi), free(p->histogram);
    p->range_lo = p->range_hi = NULL;
    p->histogram = NULL;
}
