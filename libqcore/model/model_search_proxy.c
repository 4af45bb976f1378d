/* The model-level proxy of a model search: each searched layer's candidate swapped alone into the
 * evaluation session (every other weight float, activations as the recipe says), run on the first
 * calibration batches at create, or on the first evaluation batches (qc_model_search_measure_proxy),
 * scored by the squared relative error of the evaluated output against the same session with every
 * weight float, each sample's error measured to the nearest non-negative multiple of its
 * reference output. A layer-level error misses how much a layer's error grows on its way to the output
 * (attention and FFN layers of a transformer differ by an order of magnitude); this pass measures it, at one
 * executor run per candidate and batch (or per layer and batch, scaled across uniform widths by the layer's
 * own errors, and per LQ candidate and batch). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_search_internal.h"

/* Searched layer t's float weight back into the session, from the evaluation model's initializer. */
static qc_status restore_float(qc_model_search *s, size_t t, const char *function)
{
    const char *name = s->work->layers[s->cand.layers[t]].weight;
    size_t k;
    qc_initializer_info info;
    QCM_TRY(qc_model_find_initializer(s->cand.eval_model, name, &k));
    QCM_TRY(qc_model_initializer(s->cand.eval_model, k, &info));
    void *copy = malloc(info.nbytes ? info.nbytes : 1); /* the view need not be aligned */
    if (copy == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    memcpy(copy, info.data, info.nbytes);
    qc_tensor w;
    qc_status st = qc_tensor_init(&w, copy, QC_DT_F32, info.ndim, info.dims, NULL);
    if (st == QC_OK) st = qc_session_set_initializer(s->eval, name, &w);
    free(copy);
    return st;
}

/* The evaluated output of batch b, all weights float: copied into ref[b]. */
static qc_status reference_output(qc_model_search *s, const qcp_batch *batches, size_t b, float **ref, size_t *numel,
                                  const char *function)
{
    int64_t rows, cols;
    const float *y;
    QCM_TRY(qcp__bind_batch(s->eval, &batches[b]));
    QCM_TRY(qc_session_run(s->eval));
    QCM_TRY(qcms__output_rows(s->eval, s->output, &rows, &cols, &y, function));
    qcms__learn_classes(s, &batches[b], rows, cols); /* evaluation labels can be checked at add_batch */
    numel[b] = (size_t)(rows * cols);
    ref[b] = malloc((numel[b] ? numel[b] : 1) * sizeof(float));
    if (ref[b] == NULL) return QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    memcpy(ref[b], y, numel[b] * sizeof(float));
    return QC_OK;
}

/* Sample y's squared distance to the nearest non-negative multiple of its reference r: both metrics the
 * search evaluates (top-1 class and cosine to the float output) ignore a positive scale of a sample's
 * output, and a learned-levels (LQ) weight, a least-squares fit, shrinks the output by such a scale (by
 * 0.63-0.95 on the Fashion CNN), which the plain squared error counted as 2-5 times its harmful part. */
static double scaled_distance(const float *y, const float *r, int64_t cols)
{
    double yr = 0, rr = 0, d = 0;
    for (int64_t k = 0; k < cols; k++) yr += (double)y[k] * r[k], rr += (double)r[k] * r[k];
    double a = rr > 0 && yr > 0 ? yr / rr : 0;
    for (int64_t k = 0; k < cols; k++) d += ((double)y[k] - a * r[k]) * ((double)y[k] - a * r[k]); /* no cancellation */
    return d;
}

/* Squared relative error of the session's outputs on `batches` against ref, each sample (output row) to
 * the nearest non-negative multiple of its reference. */
static qc_status output_error(qc_model_search *s, const qcp_batch *batches, size_t count, float *const *ref,
                              const size_t *numel, double *out, const char *function)
{
    double err = 0, norm = 0;
    for (size_t b = 0; b < count; b++) {
        int64_t rows, cols;
        const float *y;
        QCM_TRY(qcp__bind_batch(s->eval, &batches[b]));
        QCM_TRY(qc_session_run(s->eval));
        QCM_TRY(qcms__output_rows(s->eval, s->output, &rows, &cols, &y, function));
        if ((size_t)(rows * cols) != numel[b])
            return QCM_FAIL_IN(function, QC_ERR_SHAPE, "output '%s' changed size between runs of proxy batch %zu",
                               s->output, b);
        for (int64_t n = 0; n < rows; n++) err += scaled_distance(y + n * cols, ref[b] + n * cols, cols);
        for (size_t k = 0; k < numel[b]; k++) norm += (double)ref[b][k] * ref[b][k];
    }
    *out = norm > 0 ? err / norm : err; /* an all-zero reference: the absolute error */
    return QC_OK;
}

/* The index of the lowest uniform integer width (w when there is none). */
static size_t lowest_width(const qcp_candidates *c)
{
    size_t low = c->num_widths;
    for (size_t k = 0; k < c->num_widths; k++)
        if (c->widths[k] != 0 && c->lq_bits[k] == 0 && (low == c->num_widths || c->widths[k] < c->widths[low])) low = k;
    return low;
}

/* Whether the scaled proxy measures candidate c: the lowest uniform width, and every LQ candidate, whose
 * error is of another kind (a least-squares fit of a few levels, blind to the data, against a grid rounded
 * by OPTQ on the calibration inputs), so that the uniform widths' ratio of layer to model error does not
 * carry over: on the Fashion CNN's classifier, a 2-bit LQ weight has 3 times the 2-bit grid's layer error
 * on the calibration rows, yet costs a fifth of its accuracy (0.65 against 3.55 points). */
static int measured(const qcp_candidates *c, size_t k, size_t low)
{
    return c->widths[k] != 0 && (k == low || c->lq_bits[k] != 0);
}

/* Layer t's other uniform widths from its measured lowest one, by the layer errors' ratios: the layer's
 * amplification to the output is taken as the same at every width. */
static void scale_widths(const qc_model_search *s, size_t t, size_t low, double *model_error)
{
    size_t w = s->cand.num_widths;
    if (low == w) return; /* no uniform width: every integer candidate (LQ) was measured */
    double base = s->cand.output_error[t * w + low], at_low = model_error[t * w + low];
    for (size_t c = 0; c < w; c++) {
        double e = s->cand.output_error[t * w + c];
        if (c != low && s->cand.widths[c] != 0 && s->cand.lq_bits[c] == 0)
            model_error[t * w + c] = base > 0 ? at_low * (e * e) / (base * base) : at_low;
    }
}

/* The passes into model_error ([layers * widths], zeroed), the session holding float weights before and
 * after (after only on success). */
static qc_status measure(qc_model_search *s, const qcp_batch *batches, size_t count, int scaled, float **ref,
                         size_t *numel, double *model_error, const char *function)
{
    size_t n = s->cand.num_layers, w = s->cand.num_widths, low = lowest_width(&s->cand), done = 0, total = 0;
    for (size_t c = 0; c < w; c++) total += s->cand.widths[c] != 0 && (!scaled || measured(&s->cand, c, low)) ? n : 0;
    for (size_t b = 0; b < count && total > 0; b++) QCM_TRY(reference_output(s, batches, b, ref, numel, function));
    for (size_t t = 0; t < n && total > 0; t++) {
        for (size_t c = 0; c < w; c++) {
            if (s->cand.widths[c] == 0 || (scaled && !measured(&s->cand, c, low))) continue; /* float: the reference, 0 */
            QCM_TRY(qcms__swap_in(s, t, (uint32_t)c));
            QCM_TRY(output_error(s, batches, count, ref, numel, &model_error[t * w + c], function));
            QCM_TRY(qc_ctx_report_progress(s->p->ctx, "model-level proxies", ++done, total));
        }
        QCM_TRY(restore_float(s, t, function));
        if (scaled) scale_widths(s, t, low, model_error);
    }
    return QC_OK;
}

/* The model proxy from the first `count` of `batches` into s->model_error, which is replaced only on
 * success (a failed or cancelled measurement keeps the proxy the search had). */
static qc_status measure_into_search(qc_model_search *s, const qcp_batch *batches, size_t count, int scaled,
                                     const char *function)
{
    double *model_error = calloc(s->cand.num_layers * s->cand.num_widths, sizeof *model_error);
    float **ref = calloc(count, sizeof *ref);
    size_t *numel = calloc(count, sizeof *numel);
    qc_status st = model_error && ref && numel ? measure(s, batches, count, scaled, ref, numel, model_error, function)
                                               : QCM_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t b = 0; ref && b < count; b++) free(ref[b]);
    free(ref), free(numel);
    if (st != QC_OK) {
        free(model_error);
        return st;
    }
    free(s->model_error);
    s->model_error = model_error;
    return QC_OK;
}

qc_status qcms__model_proxy(qc_model_search *s, size_t proxy_batches, int scaled, const char *function)
{
    size_t batches = proxy_batches ? proxy_batches : s->p->num_batches;
    if (batches > s->p->num_batches)
        return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'proxy_batches': %zu is more than the pipeline's %zu calibration batches",
                           proxy_batches, s->p->num_batches);
    return measure_into_search(s, s->p->batches, batches, scaled, function);
}

/* Every searched layer's float weight into the evaluation session (an evaluation left a configuration
 * there), the unrotated paths off. */
static qc_status all_float(qc_model_search *s, const char *function)
{
    for (size_t t = 0; t < s->cand.num_layers; t++) {
        QCM_TRY(qcms__path_off(s, t));
        QCM_TRY(restore_float(s, t, function));
    }
    return QC_OK;
}

qc_status qc_model_search_measure_proxy(qc_model_search *s, int32_t proxy, size_t batches)
{
    QCM_CHECK_NOT_NULL(s);
    if (proxy < QC_MODEL_PROXY_LAYER || proxy > QC_MODEL_PROXY_MODEL_SCALED)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'proxy': %d is not a qc_model_proxy", (int)proxy);
    if (proxy == QC_MODEL_PROXY_LAYER) {
        if (batches != 0)
            return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'batches': %zu is for a model proxy; the layer proxy runs no batch", batches);
        free(s->model_error);
        s->model_error = NULL;
        return QC_OK;
    }
    if (s->num_batches == 0)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'search': no evaluation batch was added to measure the proxy on");
    if (batches > s->num_batches)
        return QCM_FAIL(QC_ERR_INVALID_ARG, "argument 'batches': %zu is more than the search's %zu evaluation batches", batches,
                        s->num_batches);
    QCM_TRY(all_float(s, __func__));
    return measure_into_search(s, s->batches, batches ? batches : s->num_batches, proxy == QC_MODEL_PROXY_MODEL_SCALED,
                               __func__);
}

qc_status qc_model_search_proxy(const qc_model_search *s, size_t layer, uint32_t c, double *out)
{
    QCM_CHECK_NOT_NULL(s);
    QCM_CHECK_NOT_NULL(out);
    QCM_TRY(qcms__check_candidate(s, layer, c, __func__));
    double e = qcms__cell(s, layer, c).output_error;
    *out = e * e;
    if (s->model_error == NULL) return QC_OK;
    /* A twin's model error is its rotated sibling's, scaled by their layer errors' ratio (the layer's
     * amplification to the output taken as the same rotated or not). */
    uint32_t sibling = qcms__is_twin(s, c) ? (uint32_t)s->twin_width[c - s->cand.num_widths] : c;
    double base = s->cand.output_error[layer * s->cand.num_widths + sibling], measured = s->model_error[layer * s->cand.num_widths + sibling];
    *out = sibling == c || base <= 0 ? measured : measured * (e * e) / (base * base);
    return QC_OK;
}
