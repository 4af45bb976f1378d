/* Scoring a model on data, shared by qcore eval and qcore quantize: top-1 accuracy against labels, and the
 * fidelity of one output to a reference model's (cosine, squared error, agreement of decisions). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const METRICS[] = {"cosine", "mse", "agreement"};

int metric_parse(const char *command, const char *text, metric *out)
{
    int m = name_index(METRICS, 0, (int)(sizeof METRICS / sizeof *METRICS) - 1, text);
    if (m < 0) return fail(command, EXIT_USAGE, "--metric takes cosine, mse or agreement, got '%s'", text);
    *out = (metric)m;
    return EXIT_DONE;
}

const char *metric_name(metric m)
{
    return METRICS[m];
}

double metric_value(const scores *s, metric m)
{
    switch (m) {
    case METRIC_COSINE: return s->cosine_sum / (double)s->samples;
    case METRIC_MSE: return s->squared_sum / (double)s->elements;
    default: return (double)s->agree / (double)s->samples;
    }
}

int labels_read(const char *command, const char *path, int64_t samples, qc_array **out)
{
    qc_status st = qc_array_load(out, path, QC_ARRAY_AUTO);
    if (st != QC_OK) return fail(command, exit_code_of(st), "%s", qc_last_error());
    const qc_tensor *t = qc_array_tensor(*out);
    if (qc_tensor_numel(t) < samples || (t->dtype != QC_DT_U8 && t->dtype != QC_DT_I32 && t->dtype != QC_DT_I64))
        return fail(command, EXIT_INPUT, "'%s' must hold an integer label (u8, i32 or i64) per sample (%lld)", path,
                    (long long)samples);
    return EXIT_DONE;
}

int64_t label_at(const qc_tensor *labels, int64_t i)
{
    return labels->dtype == QC_DT_U8    ? ((const uint8_t *)labels->data)[i]
           : labels->dtype == QC_DT_I32 ? ((const int32_t *)labels->data)[i]
                                        : ((const int64_t *)labels->data)[i];
}

/* Runs the session on samples [first, first + n); *out views output `name`. */
static int run_batch(const char *command, qc_session *s, const feed_set *f, const char *name, int64_t first, int64_t n,
                     qc_tensor *out)
{
    qc_tensor views[MAX_FEEDS];
    feeds_slice(f, first, n, views);
    qc_status st = QC_OK;
    for (size_t k = 0; st == QC_OK && k < f->count; k++) st = qc_session_set_input(s, f->names[k], &views[k]);
    if (st == QC_OK) st = qc_session_run(s);
    if (st == QC_OK) st = qc_session_value(s, name, out);
    if (st != QC_OK) return fail(command, EXIT_FAILED, "%s", qc_last_error());
    if (out->dtype != QC_DT_F32) return fail(command, EXIT_FAILED, "output '%s' is not float32", name);
    if (out->ndim < 1 || out->dims[0] != n || qc_tensor_numel(out) % n != 0)
        return fail(command, EXIT_FAILED, "output '%s' does not hold one row per sample along axis 0", name);
    return EXIT_DONE;
}

static int64_t argmax(const float *row, int64_t width)
{
    int64_t best = 0;
    for (int64_t c = 1; c < width; c++) best = row[c] > row[best] ? c : best;
    return best;
}

static void score_labels(scores *s, const qc_tensor *y, const qc_tensor *labels, int64_t first, int64_t n)
{
    int64_t classes = qc_tensor_numel(y) / n;
    for (int64_t i = 0; i < n; i++) s->correct += argmax((const float *)y->data + i * classes, classes) == label_at(labels, first + i);
}

/* Per sample: the cosine of the two rows, their squared differences, and whether they decide alike (the
 * same top-1 class; for one value per sample, such as a probability, the same side of 0.5). */
static void score_reference(scores *s, const qc_tensor *y, const qc_tensor *ref, int64_t n)
{
    int64_t width = qc_tensor_numel(y) / n;
    for (int64_t i = 0; i < n; i++) {
        const float *a = (const float *)y->data + i * width, *b = (const float *)ref->data + i * width;
        double ab = 0, aa = 0, bb = 0;
        for (int64_t k = 0; k < width; k++) {
            double d = (double)a[k] - b[k];
            ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
            s->squared_sum += d * d;
            s->max_diff = fmax(s->max_diff, fabs(d));
        }
        s->cosine_sum += aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb);
        s->agree += width == 1 ? (a[0] > 0.5f) == (b[0] > 0.5f) : argmax(a, width) == argmax(b, width);
    }
    s->elements += width * n;
}

static int output_name(const char *command, const qc_model *m, const char *wanted, const char **out)
{
    qc_value_info v;
    for (size_t i = 0; i < qc_model_count(m, QC_MODEL_OUTPUTS); i++)
        if (qc_model_output(m, i, &v) == QC_OK && (wanted == NULL || strcmp(v.name, wanted) == 0)) {
            *out = v.name;
            return EXIT_DONE;
        }
    if (wanted == NULL) return fail(command, EXIT_FAILED, "the model has no graph output");
    return fail(command, EXIT_USAGE, "the model has no graph output '%s' (see qcore inspect)", wanted);
}

int score_models(scores *s, const char *command, qc_ctx *ctx, const score_job *job, const feed_set *f)
{
    qc_session *session = NULL, *reference = NULL;
    int code = output_name(command, job->model, job->output, &s->output);
    qc_status st = code == EXIT_DONE ? qc_session_create(&session, job->model, ctx) : QC_OK;
    if (code == EXIT_DONE && st == QC_OK && job->reference) st = qc_session_create(&reference, job->reference, ctx);
    if (code == EXIT_DONE && st != QC_OK) code = fail(command, EXIT_FAILED, "%s", qc_last_error());
    int64_t total = job->samples > 0 && job->samples < f->samples ? job->samples : f->samples;
    for (int64_t first = 0; code == EXIT_DONE && first < total; first += job->batch) {
        int64_t n = total - first < job->batch ? total - first : job->batch;
        qc_tensor y, yr;
        code = run_batch(command, session, f, s->output, first, n, &y);
        if (code == EXIT_DONE && job->labels) score_labels(s, &y, job->labels, first, n);
        if (code == EXIT_DONE && reference) code = run_batch(command, reference, f, s->output, first, n, &yr);
        if (code == EXIT_DONE && reference && qc_tensor_numel(&yr) != qc_tensor_numel(&y))
            code = fail(command, EXIT_USAGE, "the reference's output '%s' has another shape", s->output);
        if (code == EXIT_DONE && reference) score_reference(s, &y, &yr, n);
        s->samples += n;
        qc_ctx_report_progress(ctx, "evaluating", (uint64_t)(first + n), (uint64_t)total);
    }
    qc_session_free(reference);
    qc_session_free(session);
    return code;
}

void print_fidelity(FILE *out, const scores *s, metric m)
{
    fprintf(out, "\"output\": ");
    json_string(out, s->output);
    fprintf(out, ", \"mean_cosine\": %.9g, \"mse\": %.9g, \"agreement\": %.9g, \"max_abs_diff\": %.9g, "
                 "\"metric\": \"%s\", \"fidelity\": %.9g",
            metric_value(s, METRIC_COSINE), metric_value(s, METRIC_MSE), metric_value(s, METRIC_AGREEMENT), s->max_diff,
            metric_name(m), metric_value(s, m));
}
