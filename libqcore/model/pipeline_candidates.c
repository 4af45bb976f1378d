/* The candidates of a mixed-precision search: every searched layer's weight quantized at each candidate
 * width from one pass of statistics (the model with float weights and every searched layer's input
 * quantized), with its stored bytes and its output error on real inputs. The run's model, activation
 * quantizers in place and weights still float, becomes the model a search evaluates configurations on. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model_internal.h"
#include "pipeline_candidates.h"

void qcp__candidates_free(qcp_candidates *c)
{
    for (size_t k = 0; c->weights && k < c->num_layers * c->num_widths; k++) free(c->weights[k]);
    free(c->weights), free(c->bytes), free(c->output_error), free(c->layers), free(c->widths), free(c->lq_bits);
    free(c->ethosu_bytes), free(c->macs), free(c->act_scale), free(c->act_signed);
    qc_model_free(c->eval_model);
    memset(c, 0, sizeof *c);
}

static qc_status allocate(qcp_candidates *c, const qcp_run *r, const qcp_formats *f)
{
    size_t n = r->p->num_layers, count = f->num_widths + f->num_lq;
    c->layers = malloc(n * sizeof *c->layers);
    c->widths = malloc(count * sizeof *c->widths);
    c->lq_bits = calloc(count, sizeof *c->lq_bits);
    if (!c->layers || !c->widths || !c->lq_bits) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t i = 0; i < n; i++)
        if (!r->keep[i]) c->layers[c->num_layers++] = i;
    memcpy(c->widths, f->widths, f->num_widths * sizeof *f->widths);
    for (size_t k = 0; k < f->num_lq; k++) c->widths[f->num_widths + k] = c->lq_bits[f->num_widths + k] = f->lq_bits[k];
    c->num_widths = count;
    size_t cells = c->num_layers * count;
    c->weights = calloc(cells, sizeof *c->weights);
    c->bytes = calloc(cells, sizeof *c->bytes);
    c->output_error = calloc(cells, sizeof *c->output_error);
    c->ethosu_bytes = calloc(cells, sizeof *c->ethosu_bytes);
    c->macs = calloc(c->num_layers + 1, sizeof *c->macs);
    c->act_scale = calloc(c->num_layers + 1, sizeof *c->act_scale);
    c->act_signed = calloc(c->num_layers + 1, sizeof *c->act_signed);
    if (!c->weights || !c->bytes || !c->output_error || !c->ethosu_bytes || !c->macs || !c->act_scale || !c->act_signed)
        return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (size_t t = 0; t < c->num_layers; t++) c->act_scale[t] = r->act_scale[c->layers[t]], c->act_signed[t] = r->act_signed[c->layers[t]];
    return QC_OK;
}

/* Searched layer t at width widths[w]: its dequantized weight in ONNX layout, bytes and output error. */
static qc_status quantize_cell(qcp_run *r, qcp_candidates *c, size_t t, size_t w, qc_gpxq_stats *stats, int32_t ethosu)
{
    size_t i = c->layers[t], cell = t * c->num_widths + w;
    const qcp_layer *l = &r->p->layers[i];
    size_t count = (size_t)(l->out * l->in);
    if (c->widths[w] == 0) { /* the float weight: its own values, no error */
        c->bytes[cell] = (int64_t)count * 4;
        c->weights[cell] = malloc(count * sizeof(float));
        if (c->weights[cell] == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
        float *w_out_in = malloc(count * sizeof(float));
        qc_status st = w_out_in ? qcp__weight(r->p, i, w_out_in, r->function) : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
        if (st == QC_OK) qcp__to_onnx_layout(l, w_out_in, c->weights[cell]);
        free(w_out_in);
        return st;
    }
    r->grid[i].bits = c->widths[w];
    r->lq_bits[i] = c->lq_bits[w];
    qcp__release_layer(r, i);
    QCM_TRY(r->lq_bits[i] ? qcp__quantize_lq_layer(r, i) : qcp__quantize_layer(r, i, stats));
    r->lq_bits[i] = 0, r->reports[i].lq = 0;
    c->bytes[cell] = r->reports[i].weight_bytes;
    c->output_error[cell] = r->reports[i].output_error;
    if (ethosu && !c->lq_bits[w]) QCM_TRY(qcp__candidate_ethosu_bytes(r, i, ethosu, &c->ethosu_bytes[cell]));
    c->weights[cell] = malloc(count * sizeof(float));
    if (c->weights[cell] == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    qcp__to_onnx_layout(l, r->dequantized[i], c->weights[cell]);
    qcp__release_layer(r, i);
    return QC_OK;
}

static qc_status quantize_cells(qcp_run *r, qcp_candidates *c, qc_gpxq_stats **stats, int32_t ethosu)
{
    size_t done = 0, total = c->num_layers * c->num_widths;
    for (size_t t = 0; t < c->num_layers; t++)
        for (size_t w = 0; w < c->num_widths; w++) {
            QCM_TRY(quantize_cell(r, c, t, w, stats[c->layers[t]], ethosu));
            QCM_TRY(qc_ctx_report_progress(r->p->ctx, "quantizing candidates", ++done, total));
        }
    return QC_OK;
}

qc_status qcp__candidates(qc_pipeline *p, const qc_recipe *recipe, const qcp_formats *formats, int32_t ethosu_config,
                          qcp_candidates *out, const char *function)
{
    memset(out, 0, sizeof *out);
    qc_recipe rc = *recipe;
    rc.sequential = 0; /* one pass: every width of a layer sees the same inputs, so cells are comparable */
    if (rc.version >= 2) rc.num_layer_formats = 0, rc.layer_formats = NULL;
    if (rc.version >= 5) rc.num_lq_layers = 0, rc.lq_layers = NULL;
    QCM_TRY(qcp__check_recipe(p, &rc, function));
    if (p->num_batches == 0) return QCM_FAIL_IN(function, QC_ERR_INVALID_ARG, "argument 'pipeline': no calibration batch was added");
    qcp_run r;
    qc_gpxq_stats **stats = NULL;
    qc_status st = qcp__run_start(&r, p, &rc, function);
    if (st == QC_OK) st = qcp__input_ranges(&r);
    if (st == QC_OK) st = qcp__quantize_inputs(&r);
    if (st == QC_OK) st = allocate(out, &r, formats);
    if (st == QC_OK) st = qcp__one_pass_stats(&r, &stats);
    if (st == QC_OK) st = quantize_cells(&r, out, stats, ethosu_config);
    if (st == QC_OK) st = qcp__candidate_macs(&r, out);
    if (st == QC_OK) out->eval_model = r.qmodel, r.qmodel = NULL;
    qcp__run_finish(&r);
    if (st != QC_OK) qcp__candidates_free(out);
    return st;
}
