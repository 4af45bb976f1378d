/* The static verifier: every row and tile of a quantized layer against the worst case over all inputs in
 * the range, for the inner and the outer accumulator. */
#include "accum/accum.h"
#include "core/error.h"

enum { MAX_VERIFIED_OUTER_BITS = 96 };

static qc_status check_report(const qc_accum_report *report)
{
    if (report == NULL) return QC_FAIL_IN("qc_accum_verify", QC_ERR_INVALID_ARG, "argument 'report' is NULL");
    if (report->version == 0 || report->version > QC_ACCUM_REPORT_VERSION)
        return QC_FAIL_IN("qc_accum_verify", QC_ERR_VERSION,
                          "argument 'report': version = %u is unknown (this library knows 1..%d; use QC_ACCUM_REPORT_INIT)",
                          (unsigned)report->version, QC_ACCUM_REPORT_VERSION);
    return QC_OK;
}

/* Records one row: its tiles against the inner width, its whole sum against the outer one. */
static void verify_row(qc_accum_report *r, const qc_accum_budget *budgets, int64_t row, const qc_accum_spec *spec)
{
    qc_accum_budget total = {0, 0};
    for (int64_t b = 0; b < r->tiles; b++) {
        int32_t need = qc__accum_budget_bits(budgets[b], spec->input_min, spec->input_max);
        r->required_bits = need > r->required_bits ? need : r->required_bits;
        total.pos += budgets[b].pos;
        total.neg += budgets[b].neg;
        if (need <= spec->bits) continue;
        if (r->failing_tiles++ == 0) {
            r->first_row = row;
            r->first_tile = b;
        }
    }
    int32_t need = qc__accum_budget_bits(total, spec->input_min, spec->input_max);
    r->required_outer_bits = need > r->required_outer_bits ? need : r->required_outer_bits;
    if (r->tiles > 1 && need > spec->outer_bits && r->failing_outer_rows++ == 0) r->first_outer_row = row;
}

qc_status qc_accum_verify(qc_accum_report *report, const qc_tensor *q, const qc_accum_spec *spec)
{
    QC_TRY(check_report(report));
    QC_TRY(qc__accum_check_weights(q, "q", __func__));
    int64_t rows = q->dims[0], k = q->dims[1];
    qc_accum_spec s;
    QC_TRY(qc__accum_spec(&s, spec, k, QC_ACCUM_MAX_BITS, MAX_VERIFIED_OUTER_BITS, __func__));
    qc_accum_report r = {.version = report->version, .tiles = qc__accum_tiles(k, s.tile), .first_row = -1,
                         .first_tile = -1, .first_outer_row = -1, .outer_bits = s.outer_bits};
    qc_accum_budget *budgets = malloc((size_t)r.tiles * sizeof *budgets);
    if (budgets == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for %lld tiles", (long long)r.tiles);
    for (int64_t row = 0; row < rows; row++) {
        qc__accum_row_budgets(budgets, (const int32_t *)q->data + row * k, k, s.tile);
        verify_row(&r, budgets, row, &s);
    }
    free(budgets);
    r.passed = r.failing_tiles == 0 && r.failing_outer_rows == 0;
    *report = r;
    return QC_OK;
}
