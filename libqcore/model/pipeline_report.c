/* A layer's report after a pipeline run: stored size, output error on real inputs, the accumulator
 * width its integer weights need, and a P-bit simulation of its integer dot products on real inputs. */
#include <math.h>
#include <stdlib.h>

#include "error.h"
#include "ops/blas.h"
#include "pipeline_internal.h"

/* |X W^T - X Q^T|_F / |X W^T|_F over the report rows. */
static qc_status output_error(qcp_run *r, size_t i, double *out)
{
    const qcp_layer *l = &r->p->layers[i];
    int64_t n = r->report_n[i], size = l->out * l->in;
    float *w = malloc((size_t)size * sizeof *w), *y = malloc((size_t)(n * l->out) * sizeof *y);
    float *d = malloc((size_t)(n * l->out) * sizeof *d);
    qc_status st = w && y && d ? qcp__weight(r->p, i, w, r->function) : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) {
        qce__sgemm(r->threads, 0, 1, n, l->out, l->in, 1.0f, r->report_x[i], l->in, w, l->in, 0.0f, y, l->out);
        for (int64_t k = 0; k < size; k++) w[k] -= r->dequantized[i][k];
        qce__sgemm(r->threads, 0, 1, n, l->out, l->in, 1.0f, r->report_x[i], l->in, w, l->in, 0.0f, d, l->out);
        double num = 0, den = 0;
        for (int64_t k = 0; k < n * l->out; k++) num += (double)d[k] * d[k], den += (double)y[k] * y[k];
        *out = den > 0 ? sqrt(num / den) : 0.0;
    }
    free(w), free(y), free(d);
    return st;
}

/* q - zero point, the integers the accumulator sees. */
static int32_t *centered_levels(const qcp_run *r, size_t i)
{
    const qcp_layer *l = &r->p->layers[i];
    int32_t *c = malloc((size_t)(l->out * l->in) * sizeof *c);
    if (c == NULL) return NULL;
    int32_t qmin = 0, qmax = 0, fixed = 0;
    const qc_quant_options *grid = &r->grid[i];
    qc_quant_range(&qmin, &qmax, grid);
    if (!grid->is_signed) fixed = (qmin + qmax + 1) / 2;
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t k = 0; k < l->in; k++) {
            int64_t p = qcp__param_index(grid, o, k, l->in);
            c[o * l->in + k] = r->levels[i][o * l->in + k] - (r->zero_point[i] ? r->zero_point[i][p] : fixed);
        }
    return c;
}

static qc_status accumulator_need(const qcp_run *r, size_t i, const qc_tensor *c, const qc_accum_spec *spec,
                                  int32_t *out)
{
    const qcp_layer *l = &r->p->layers[i];
    int64_t tiles = spec->tile > 0 ? (l->in + spec->tile - 1) / spec->tile : 1, dims[2] = {l->out, tiles};
    int32_t *bits = malloc((size_t)(l->out * tiles) * sizeof *bits);
    qc_tensor tb;
    qc_status st = bits ? qc_tensor_init(&tb, bits, QC_DT_I32, 2, dims, NULL) : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = qc_accum_bits_needed(&tb, c, spec->input_min, spec->input_max, spec->tile);
    *out = 0;
    for (int64_t k = 0; st == QC_OK && k < l->out * tiles; k++) *out = bits[k] > *out ? bits[k] : *out;
    free(bits);
    return st;
}

/* The report rows as the integers the quantized input carries (they are multiples of the scale). */
static qc_status simulate(qcp_run *r, size_t i, const qc_tensor *c, const qc_accum_spec *spec, qc_accum_sim *sim)
{
    const qcp_layer *l = &r->p->layers[i];
    int64_t n = r->report_n[i], dims[2] = {n, l->in};
    int32_t *x = malloc((size_t)(n * l->in) * sizeof *x);
    if (x == NULL) return QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    for (int64_t k = 0; k < n * l->in; k++) x[k] = (int32_t)lrintf(r->report_x[i][k] / r->act_scale[i]);
    qc_tensor tx;
    qc_status st = qc_tensor_init(&tx, x, QC_DT_I32, 2, dims, NULL);
    if (st == QC_OK) st = qc_accum_simulate(r->p->ctx, sim, NULL, NULL, &tx, c, spec);
    free(x);
    return st;
}

static int64_t stored_bytes(const qc_quant_options *grid, const qcp_layer *l, int64_t params)
{
    return (l->out * l->in * grid->bits + 7) / 8 + params * (grid->symmetric ? 4 : 8);
}

static int64_t parameter_count(const qc_quant_options *grid, const qcp_layer *l)
{
    if (grid->granularity == QC_GRAN_CHANNEL) return l->out;
    if (grid->granularity == QC_GRAN_GROUP) return l->out * ((l->in + grid->group_size - 1) / grid->group_size);
    return 1;
}

/* The input's quantizer in the report, when it has one (0: the input stays float). */
static int report_input(qcp_run *r, size_t i)
{
    qc_layer_report *rep = &r->reports[i];
    if (r->act_scale[i] <= 0) return 0;
    rep->input_bits = r->r->activation_bits;
    rep->input_signed = r->act_signed[i];
    rep->input_scale = r->act_scale[i];
    return 1;
}

qc_status qcp__report_float_weight(qcp_run *r, size_t i)
{
    report_input(r, i);
    return QC_OK;
}

qc_status qcp__report_lq_layer(qcp_run *r, size_t i)
{
    const qcp_layer *l = &r->p->layers[i];
    qc_layer_report *rep = &r->reports[i];
    rep->quantized = 1, rep->lq = 1;
    rep->weight_bits = r->lq_bits[i];
    rep->weight_bytes = qcp__lq_bytes(l->out, l->in, r->lq_bits[i]);
    report_input(r, i);
    return r->report_n[i] > 0 ? output_error(r, i, &rep->output_error) : QC_OK;
}

qc_status qcp__report_layer(qcp_run *r, size_t i, const qc_gpxq_result *result)
{
    const qcp_layer *l = &r->p->layers[i];
    qc_layer_report *rep = &r->reports[i];
    rep->quantized = 1;
    rep->weight_bits = r->grid[i].bits;
    rep->weight_bytes = stored_bytes(&r->grid[i], l, parameter_count(&r->grid[i], l));
    rep->gpxq = *result;
    if (r->report_n[i] > 0) QCM_TRY(output_error(r, i, &rep->output_error));
    if (!report_input(r, i)) return QC_OK;
    qc_accum_spec spec = QC_ACCUM_SPEC_INIT;
    QCM_TRY(qc_accum_input_range(&spec.input_min, &spec.input_max, rep->input_bits, rep->input_signed));
    spec.tile = qcp__tile(r, i);
    spec.bits = r->r->report_bits ? r->r->report_bits : r->r->gpxq.accumulator_bits ? r->r->gpxq.accumulator_bits : 32;
    if (spec.bits > QC_ACCUM_MAX_SIMULATED_BITS) spec.bits = QC_ACCUM_MAX_SIMULATED_BITS;
    rep->report_bits = spec.bits;
    int64_t dims[2] = {l->out, l->in};
    int32_t *c = centered_levels(r, i);
    qc_tensor tc;
    qc_status st = c ? qc_tensor_init(&tc, c, QC_DT_I32, 2, dims, NULL) : QCM_FAIL_IN(r->function, QC_ERR_OUT_OF_MEMORY, "no memory");
    if (st == QC_OK) st = accumulator_need(r, i, &tc, &spec, &rep->accumulator_bits);
    rep->simulation = (qc_accum_sim)QC_ACCUM_SIM_INIT;
    if (st == QC_OK && r->report_n[i] > 0) st = simulate(r, i, &tc, &spec, &rep->simulation);
    free(c);
    return st;
}
