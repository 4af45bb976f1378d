/* A model search's evaluation: batches with labels (top-1 accuracy) or without (mean cosine similarity of
 * each sample's output to the float model's), and a configuration's weights swapped into one session. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_search_internal.h"

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
    qc_status st = copy_labels(&l, labels, b.values[0].ndim > 0 ? b.values[0].dims[0] : 1, __func__);
    if (st != QC_OK) {
        qcp__batch_free(&b);
        return st;
    }
    s->batches[s->num_batches] = b, s->labels[s->num_batches] = l, s->reference[s->num_batches] = NULL;
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

/* Batch b's float-model output, computed once. */
static qc_status reference(qc_model_search *s, size_t b, const char *function)
{
    if (s->reference[b]) return QC_OK;
    if (s->fp == NULL) QCM_TRY(qc_session_create(&s->fp, s->p->model, s->p->ctx));
    QCM_TRY(qcp__bind_batch(s->fp, &s->batches[b]));
    QCM_TRY(qc_session_run(s->fp));
    int64_t rows, cols;
    const float *y;
    QCM_TRY(qcms__output_rows(s->fp, s->output, &rows, &cols, &y, function));
    s->reference[b] = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof(float));
    if (s->reference[b] == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    memcpy(s->reference[b], y, (size_t)(rows * cols) * sizeof(float));
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

/* Adds batch b's per-sample scores (correct: 0/1; else cosine) to *sum and its samples to *count. */
static qc_status score_batch(qc_model_search *s, size_t b, double *sum, int64_t *count, const char *function)
{
    if (s->labels[b] == NULL) QCM_TRY(reference(s, b, function));
    QCM_TRY(qcp__bind_batch(s->eval, &s->batches[b]));
    QCM_TRY(qc_session_run(s->eval));
    int64_t rows, cols;
    const float *y;
    QCM_TRY(qcms__output_rows(s->eval, s->output, &rows, &cols, &y, function));
    for (int64_t n = 0; n < rows; n++)
        *sum += s->labels[b] ? (double)(argmax(y + n * cols, cols) == s->labels[b][n]) : cosine(y + n * cols, s->reference[b] + n * cols, cols);
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
