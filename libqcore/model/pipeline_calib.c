/* The pipeline's passes over the calibration batches: input ranges from the float model, then each
 * group's statistics and report rows from the model as quantized so far. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pipeline_internal.h"

qc_status qcp__value_of(const qc_session *s, const qcp_batch *b, const char *name, qc_tensor *out)
{
    for (size_t k = 0; k < b->count; k++)
        if (strcmp(b->names[k], name) == 0) {
            *out = b->values[k];
            return QC_OK;
        }
    return qc_session_value(s, name, out);
}

/* Layer i's input `name` in the last run on batch b, as rows (see qcp__layer_rows; *owned to free). */
static qc_status rows_of(const qcp_run *r, const qc_session *s, const qcp_batch *b, size_t i, const char *name,
                         qc_tensor *rows, float **owned)
{
    qc_tensor v;
    *owned = NULL;
    QCM_TRY(qcp__value_of(s, b, name, &v));
    return qcp__layer_rows(r->p, i, &v, rows, owned, r->function);
}

static int first_reader(size_t i, char *const *names)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(names[j], names[i]) == 0) return 0;
    return 1;
}

qc_status qcp__float_session(qcp_run *r)
{
    return r->fp ? QC_OK : qc_session_create(&r->fp, r->p->model, r->p->ctx);
}

static qc_status record_ranges(qcp_run *r)
{
    qc_pipeline *p = r->p;
    size_t n = p->num_layers;
    p->range_lo = malloc(n * sizeof *p->range_lo);
    p->range_hi = malloc(n * sizeof *p->range_hi);
    if (!p->range_lo || !p->range_hi) {
        free(p->range_lo), free(p->range_hi);
        p->range_lo = p->range_hi = NULL;
        return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    }
    memcpy(p->range_lo, r->lo, n * sizeof *r->lo);
    memcpy(p->range_hi, r->hi, n * sizeof *r->hi);
    return QC_OK;
}

qc_status qcp__input_ranges(qcp_run *r)
{
    qc_pipeline *p = r->p;
    if (p->range_lo) {
        memcpy(r->lo, p->range_lo, p->num_layers * sizeof *r->lo);
        memcpy(r->hi, p->range_hi, p->num_layers * sizeof *r->hi);
        return QC_OK;
    }
    char **inputs = malloc(p->num_layers * sizeof *inputs);
    qc_status st = inputs ? qcp__float_session(r) : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < p->num_layers; i++) {
        inputs[i] = p->layers[i].input;
        r->lo[i] = INFINITY, r->hi[i] = -INFINITY;
        if (st == QC_OK && first_reader(i, inputs)) st = qc_session_capture(r->fp, inputs[i]);
    }
    for (size_t b = 0; st == QC_OK && b < p->num_batches; b++) {
        st = qcp__bind_batch(r->fp, &p->batches[b]);
        if (st == QC_OK) st = qc_session_run(r->fp);
        for (size_t i = 0; st == QC_OK && i < p->num_layers; i++) {
            qc_tensor x;
            st = qcp__value_of(r->fp, &p->batches[b], inputs[i], &x);
            if (st == QC_OK && x.dtype != QC_DT_F32)
                st = QCM_FAIL_IN(r->function, QC_ERR_UNSUPPORTED, "layer input '%s' is %s; the pipeline quantizes float32 layers",
                                 inputs[i], qc_dtype_string(x.dtype));
            const float *v = x.data;
            for (int64_t k = 0; st == QC_OK && k < qc_tensor_numel(&x); k++) {
                if (!isfinite(v[k]))
                    st = QCM_FAIL_IN(r->function, QC_ERR_NUMERIC, "layer input '%s' holds %g (element %lld) in batch %zu",
                                     inputs[i], v[k], (long long)k, b);
                r->lo[i] = fmin(r->lo[i], v[k]), r->hi[i] = fmax(r->hi[i], v[k]);
            }
        }
    }
    free(inputs);
    return st == QC_OK ? record_ranges(r) : st;
}

/* Appends rows of x to layer i's report rows until report_rows are kept. */
static qc_status keep_report_rows(qcp_run *r, size_t i, const qc_tensor *x)
{
    int64_t in = r->p->layers[i].in, want = r->r->report_rows - r->report_n[i];
    int64_t take = x->dims[0] < want ? x->dims[0] : want;
    if (take <= 0) return QC_OK;
    if (r->report_x[i] == NULL) {
        r->report_x[i] = malloc((size_t)r->r->report_rows * (size_t)in * sizeof(float));
        if (r->report_x[i] == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory for report rows");
    }
    memcpy(r->report_x[i] + r->report_n[i] * in, x->data, (size_t)(take * in) * sizeof(float));
    r->report_n[i] += take;
    return QC_OK;
}

/* Statistics objects for layers [first, end): one per distinct input, shared by the layers reading it. */
static qc_status make_stats(qcp_run *r, size_t first, size_t end, qc_gpxq_stats **stats)
{
    qc_gpxq_method method = r->r->method == QC_METHOD_GPFQ ? QC_GPXQ_GPFQ : QC_GPXQ_OPTQ;
    for (size_t i = first; i < end; i++) {
        stats[i - first] = NULL;
        if (r->keep[i] || r->r->method == QC_METHOD_RTN) continue;
        for (size_t j = first; j < i && stats[i - first] == NULL; j++)
            if (!r->keep[j] && strcmp(r->qinput[j], r->qinput[i]) == 0) stats[i - first] = stats[j - first];
        if (stats[i - first] == NULL) QCM_TRY(qc_gpxq_stats_create(&stats[i - first], method, r->p->layers[i].in));
    }
    return QC_OK;
}

static int owns_stats(qc_gpxq_stats **stats, size_t k)
{
    for (size_t j = 0; j < k; j++)
        if (stats[j] == stats[k]) return 0;
    return 1;
}

static qc_status add_batch_rows(qcp_run *r, const qcp_batch *b, size_t i, size_t k, qc_gpxq_stats **stats)
{
    const qcp_layer *l = &r->p->layers[i];
    qc_tensor xq, x;
    float *owned_q = NULL, *owned = NULL;
    qc_status st = rows_of(r, r->quantized, b, i, r->qinput[i], &xq, &owned_q);
    if (st == QC_OK) st = keep_report_rows(r, i, &xq);
    if (st == QC_OK && stats[k] && owns_stats(stats, k)) {
        if (r->r->method != QC_METHOD_GPFQ) st = qc_gpxq_stats_add(r->p->ctx, stats[k], &xq, NULL);
        else if ((st = rows_of(r, r->fp, b, i, l->input, &x, &owned)) == QC_OK)
            st = qc_gpxq_stats_add(r->p->ctx, stats[k], &x, &xq);
    }
    free(owned_q), free(owned);
    return st;
}

qc_status qcp__collect(qcp_run *r, size_t first, size_t end, qc_gpxq_stats **stats)
{
    const qc_pipeline *p = r->p;
    QCM_TRY(make_stats(r, first, end, stats));
    if (r->quantized == NULL) QCM_TRY(qc_session_create(&r->quantized, r->qmodel, p->ctx));
    if (r->r->method == QC_METHOD_GPFQ) QCM_TRY(qcp__float_session(r));
    for (size_t i = first; i < end; i++) {
        r->report_n[i] = 0;
        if (!r->keep[i]) QCM_TRY(qc_session_capture(r->quantized, r->qinput[i]));
        if (!r->keep[i] && r->r->method == QC_METHOD_GPFQ) QCM_TRY(qc_session_capture(r->fp, p->layers[i].input));
    }
    for (size_t b = 0; b < p->num_batches; b++) {
        QCM_TRY(qcp__bind_batch(r->quantized, &p->batches[b]));
        QCM_TRY(qc_session_run(r->quantized));
        if (r->r->method == QC_METHOD_GPFQ) {
            QCM_TRY(qcp__bind_batch(r->fp, &p->batches[b]));
            QCM_TRY(qc_session_run(r->fp));
        }
        for (size_t i = first; i < end; i++)
            if (!r->keep[i]) QCM_TRY(add_batch_rows(r, &p->batches[b], i, i - first, stats));
    }
    return QC_OK;
}

void qcp__free_stats(qc_gpxq_stats **stats, size_t count)
{
    for (size_t k = 0; k < count; k++)
        if (owns_stats(stats, k)) qc_gpxq_stats_free(stats[k]);
}
