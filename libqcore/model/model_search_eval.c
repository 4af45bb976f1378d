/* A model search's evaluation: batches with labels (top-1 accuracy) or without (mean cosine similarity of
 * each sample's output to the float model's), and a configuration's weights swapped into one session.
 * Bad evaluation data is refused with the batch named rather than scored: a NaN metric would poison the
 * search's surrogate, and a label no output can match would be counted wrong without a word. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_search_internal.h"

/* Index of the first NaN or Inf among n floats, or -1. */
static int64_t first_nonfinite(const float *v, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(v[k])) return k;
    return -1;
}

/* QC_ERR_NUMERIC naming the first NaN in the float inputs of evaluation batch `index`. An Inf may be
 * meant (an additive attention mask of -Inf), as calibration inputs may hold it; where it breaks the float
 * model, its output (checked for a batch without labels) says so. */
static qc_status check_inputs(const qcp_batch *b, size_t index, const char *function)
{
    for (size_t k = 0; k < b->count; k++) {
        const qc_tensor *v = &b->values[k];
        int64_t n = v->dtype == QC_DT_F32 || v->dtype == QC_DT_F64 ? qc_tensor_numel(v) : 0;
        for (int64_t e = 0; e < n; e++) {
            double x = v->dtype == QC_DT_F32 ? ((const float *)v->data)[e] : ((const double *)v->data)[e];
            if (isnan(x))
                return QCM_FAIL_IN(function, QC_ERR_NUMERIC, "input '%s' holds %g (element %lld) in evaluation batch %zu",
                                   b->names[k], x, (long long)e, index);
        }
    }
    return QC_OK;
}

/* The samples of a batch: its first input's first dimension (the rows of the first output). */
static int64_t batch_samples(const qcp_batch *b)
{
    return b->values[0].ndim > 0 ? b->values[0].dims[0] : 1;
}

void qcms__learn_classes(qc_model_search *s, const qcp_batch *batch, int64_t rows, int64_t cols)
{
    if (rows > 0 && rows == batch_samples(batch)) s->classes = cols;
}

/* QC_ERR_INVALID_ARG for a label of evaluation batch `index` below 0, or not below `classes` (0: not
 * known yet): argmax can never equal it, so the sample would be counted wrong whatever the model says. */
static qc_status check_labels(const int64_t *labels, int64_t samples, int64_t classes, size_t index, const char *function)
{
    for (int64_t n = 0; n < samples; n++) {
        if (labels[n] < 0)
            return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                               "argument 'labels': label %lld of sample %lld in evaluation batch %zu is negative",
                               (long long)labels[n], (long long)n, index);
        if (classes > 0 && labels[n] >= classes)
            return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG,
                               "argument 'labels': label %lld of sample %lld in evaluation batch %zu is not below the "
                               "output's %lld classes", (long long)labels[n], (long long)n, index, (long long)classes);
    }
    return QC_OK;
}

static qc_status copy_labels(int64_t **out, const qc_tensor *labels, int64_t samples, const char *function)
{
    *out = NULL;
    if (labels == NULL) return QC_OK;
    QCM_TRY(qc_tensor_check(labels, "labels"));
    if (labels->dtype != QC_DT_I64 || labels->ndim != 1 || labels->dims[0] != samples || !qc_tensor_is_contiguous(labels))
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "argument 'labels': want contiguous int64 [%lld], got %s with %d dims",
                           (long long)samples, qc_dtype_string(labels->dtype), (int)labels->ndim);
    *out = malloc((size_t)(samples > 0 ? samples : 1) * sizeof **out);
    if (*out == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    memcpy(*out, labels->data, (size_t)samples * sizeof **out);
    return QC_OK;
}

static qc_status grow(qc_model_search *s, const char *function)
{
    size_t n = s->num_batches + 1;
    qcp_batch *b = realloc(s->batches, n * sizeof *b);
    if (b) s->batches = b;
    int64_t **l = b ? realloc(s->labels, n * sizeof *l) : NULL;
    if (l) s->labels = l;
    float **r = l ? realloc(s->reference, n * sizeof *r) : NULL;
    if (r) s->reference = r;
    return r ? QC_OK : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
}

/* Batch b's float-model output, the reference of its samples' cosines. */
static qc_status reference(qc_model_search *s, size_t b, const char *function)
{
    if (s->fp == NULL) QCM_TRY(qc_session_create(&s->fp, s->p->model, s->p->ctx));
    QCM_TRY(qcp__bind_batch(s->fp, &s->batches[b]));
    QCM_TRY(qc_session_run(s->fp));
    int64_t rows, cols;
    const float *y;
    QCM_TRY(qcms__output_rows(s->fp, s->output, &rows, &cols, &y, function));
    int64_t bad = first_nonfinite(y, rows * cols);
    if (bad >= 0) /* every sample's cosine to it would be NaN */
        return QCM_FAIL_IN(function, QC_ERR_NUMERIC,
                           "the float model's output '%s' holds %g (element %lld) on evaluation batch %zu", s->output, y[bad],
                           (long long)bad, b);
    s->reference[b] = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof(float));
    if (s->reference[b] == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    memcpy(s->reference[b], y, (size_t)(rows * cols) * sizeof(float));
    return QC_OK;
}

/* Batch b's inputs and labels checked, and (without labels) its float reference computed now, so that a
 * batch the metric cannot score is refused before it is kept. */
static qc_status check_batch(qc_model_search *s, size_t b, const char *function)
{
    QCM_TRY(check_inputs(&s->batches[b], b, function));
    if (s->labels[b]) return check_labels(s->labels[b], batch_samples(&s->batches[b]), s->classes, b, function);
    return reference(s, b, function);
}

qc_status qc_model_search_add_batch(qc_model_search *s, size_t count, const char *const *names, const qc_tensor *values,
                                    const qc_tensor *labels)
{
    QCM_CHECK_NOT_NULL(s);
    if (s->num_batches > 0 && (labels != NULL) != (s->labels[0] != NULL))
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'labels': the first batch %s labels; every batch must match it",
                        s->labels[0] ? "has" : "has no");
    QCM_TRY(grow(s, __func__));
    qcp_batch b;
    QCM_TRY(qcp__batch_copy(&b, count, names, values, __func__));
    int64_t *l = NULL;
    size_t k = s->num_batches;
    qc_status st = copy_labels(&l, labels, batch_samples(&b), __func__);
    s->batches[k] = b, s->labels[k] = l, s->reference[k] = NULL;
    if (st == QC_OK) st = check_batch(s, k, __func__);
    if (st != QC_OK) { /* nothing kept: the search is as it was */
        qcp__batch_free(&b), free(l), free(s->reference[k]);
        s->reference[k] = NULL;
        return st;
    }
    s->num_batches++;
    return QC_OK;
}

/* The first output of the last run, as [samples, features]. */
qc_status qcms__output_rows(const qc_session *session, const char *name, int64_t *rows, int64_t *cols, const float **data,
                             const char *function)
{
    qc_tensor y;
    QCM_TRY(qc_session_value(session, name, &y));
    if (y.dtype != QC_DT_F32 || y.ndim < 1 || !qc_tensor_is_contiguous(&y))
        return QCM_FAIL_IN(function, QC_ERR_UNSUPPORTED, "output '%s' is %s with %d dims; the search evaluates float32 outputs",
                           name, qc_dtype_string(y.dtype), (int)y.ndim);
    *rows = y.dims[0], *cols = y.dims[0] > 0 ? qc_tensor_numel(&y) / y.dims[0] : 0, *data = y.data;
    return QC_OK;
}

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;
    for (int64_t k = 1; k < n; k++)
        if (v[k] > v[best]) best = k;
    return best;
}

static double cosine(const float *a, const float *b, int64_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int64_t k = 0; k < n; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
}

/* Whether no answer can be read from output row y: a NaN, or for top-1 a +Inf (overflow: no single top
 * class), for a cosine any Inf. A -Inf is a legitimate class score (the log of an underflowed
 * probability) and leaves the top class readable. */
static int unreadable(const float *y, int64_t cols, int top1)
{
    for (int64_t k = 0; k < cols; k++)
        if (isnan(y[k]) || (isinf(y[k]) && (!top1 || y[k] > 0))) return 1;
    return 0;
}

/* Sample n of batch b's score, its output row y: 1 when its top-1 class is its label (else 0), or its cosine
 * to the float output; an unreadable row scores 0, a wrong answer or the cosine of an all-zero output (a NaN
 * would make the mean NaN). */
static double sample_score(const qc_model_search *s, size_t b, int64_t n, const float *y, int64_t cols)
{
    int top1 = s->labels[b] != NULL;
    if (unreadable(y, cols, top1)) return 0.0;
    return top1 ? (double)(argmax(y, cols) == s->labels[b][n]) : cosine(y, s->reference[b] + n * cols, cols);
}

/* Adds batch b's per-sample scores to *sum and its samples to *count. */
static qc_status score_batch(qc_model_search *s, size_t b, double *sum, int64_t *count, const char *function)
{
    QCM_TRY(qcp__bind_batch(s->eval, &s->batches[b]));
    QCM_TRY(qc_session_run(s->eval));
    int64_t rows, cols, samples = batch_samples(&s->batches[b]);
    const float *y;
    QCM_TRY(qcms__output_rows(s->eval, s->output, &rows, &cols, &y, function));
    if (s->labels[b] && rows != samples)
        return QCM_FAIL_IN(function, QC_ERR_SHAPE, "output '%s' has %lld rows for the %lld labels of evaluation batch %zu",
                           s->output, (long long)rows, (long long)samples, b);
    qcms__learn_classes(s, &s->batches[b], rows, cols);
    if (s->labels[b]) QCM_TRY(check_labels(s->labels[b], samples, cols, b, function));
    for (int64_t n = 0; n < rows; n++) *sum += sample_score(s, b, n, y + n * cols, cols);
    *count += rows;
    return QC_OK;
}

static qc_status swap_in(qc_model_search *s, const uint32_t *choice)
{
    for (size_t t = 0; t < s->cand.num_layers; t++) QCM_TRY(qcms__swap_in(s, t, choice[t]));
    return QC_OK;
}

qc_status qc_model_search_evaluate(qc_model_search *s, const uint32_t *choice, double fraction, double *metric)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(choice);
    QCM_CHECK_NOT_NULL(metric);
    if (!(fraction > 0 && fraction <= 1))
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'fraction': %g is not in (0, 1]", fraction);
    if (s->num_batches == 0) return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'search': no evaluation batch was added");
    for (size_t t = 0; t < s->cand.num_layers; t++) QCM_TRY(qcms__check_candidate(s, t, choice[t], __func__));
    QCM_TRY(swap_in(s, choice));
    size_t batches = (size_t)ceil(fraction * (double)s->num_batches);
    double sum = 0;
    int64_t count = 0;
    for (size_t b = 0; b < batches && b < s->num_batches; b++) QCM_TRY(score_batch(s, b, &sum, &count, __func__));
    *metric = count > 0 ? sum / (double)count : 0.0;
    return QC_OK;
}
