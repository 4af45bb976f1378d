/* Mapping elements to quantization parameters, and cutting the work into runs for the kernels. */
#include "quant/grid.h"
#include "quant/layout.h"

enum { PIECE = 16384 }; /* elements per run when a row is long: enough to amortise, small enough to share */

static int64_t product(const int64_t *dims, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= dims[i];
    return p;
}

/* Rows and the parameter step inside a row, for each granularity (see layout.h). */
static void set_rows(qc_quant_layout *l)
{
    int whole_rows_of_inner = l->inner != 1; /* inner 0 too: rows of no element */
    l->rows = whole_rows_of_inner ? l->outer * l->extent : l->outer;
    l->row_length = whole_rows_of_inner ? l->inner : l->extent;
    switch (l->granularity) {
    case QC_GRAN_TENSOR: l->per = l->row_length; break;
    case QC_GRAN_CHANNEL: l->per = whole_rows_of_inner ? l->row_length : 1; break;
    case QC_GRAN_GROUP: l->per = whole_rows_of_inner ? 1 : l->block; break;
    }
}

void qc__quant_layout_init(qc_quant_layout *l, const qc_tensor *x, const qc_quant_options *o)
{
    l->granularity = o->granularity;
    if (o->granularity == QC_GRAN_TENSOR) {
        l->outer = 1;
        l->extent = qc_tensor_numel(x);
        l->inner = 1;
    } else {
        int axis = qc__quant_axis(o, x->ndim);
        l->outer = product(x->dims, 0, axis);
        l->extent = x->dims[axis];
        l->inner = product(x->dims, axis + 1, x->ndim);
    }
    l->block = o->granularity == QC_GRAN_GROUP ? o->group_size : 1;
    l->groups = l->block > 0 ? (l->extent + l->block - 1) / l->block : 0;
    switch (o->granularity) {
    case QC_GRAN_TENSOR: l->params = 1; break;
    case QC_GRAN_CHANNEL: l->params = l->extent; break;
    case QC_GRAN_GROUP: l->params = l->outer * l->groups * l->inner; break;
    }
    set_rows(l);
    /* A piece holds whole parameter stretches when they are short, else part of one stretch: a long
     * stretch is cut only when it fills the row, since a piece must not run into the next parameter. */
    int64_t per = l->per;
    l->piece = per <= 0 ? 0 : per < PIECE ? per * (PIECE / per) : per < l->row_length ? per : PIECE;
    if (l->piece > l->row_length) l->piece = l->row_length;
    l->pieces_per_row = l->piece > 0 ? (l->row_length + l->piece - 1) / l->piece : 0;
}

int64_t qc__quant_layout_runs(const qc_quant_layout *l)
{
    return l->rows * l->pieces_per_row;
}

static int64_t row_first_param(const qc_quant_layout *l, int64_t r)
{
    if (l->inner == 1) return l->granularity == QC_GRAN_GROUP ? r * l->groups : 0;
    int64_t o = r / l->extent, d = r % l->extent;
    switch (l->granularity) {
    case QC_GRAN_TENSOR: return 0;
    case QC_GRAN_CHANNEL: return d;
    case QC_GRAN_GROUP: return (o * l->groups + d / l->block) * l->inner;
    }
    return 0;
}

qc_quant_run qc__quant_layout_run(const qc_quant_layout *l, int64_t k)
{
    int64_t per = l->per;
    int64_t r = k / l->pieces_per_row, p = k % l->pieces_per_row;
    int64_t start = p * l->piece;
    qc_quant_run run;
    run.offset = r * l->row_length + start;
    run.length = l->row_length - start < l->piece ? l->row_length - start : l->piece;
    run.param = row_first_param(l, r) + (per >= l->row_length ? 0 : start / per);
    run.per = per >= l->row_length ? run.length : per;
    return run;
}

int64_t qc__quant_layout_group_size(const qc_quant_layout *l)
{
    switch (l->granularity) {
    case QC_GRAN_TENSOR: return l->extent;
    case QC_GRAN_CHANNEL: return l->outer * l->inner;
    case QC_GRAN_GROUP: return l->block < l->extent ? l->block : l->extent;
    }
    return 0;
}

/* Element ranges of parameter p: o in [o0, o1), d in [d0, d1), i in [i0, i1). */
typedef struct box {
    int64_t o0, o1, d0, d1, i0, i1;
} box;

static box group_box(const qc_quant_layout *l, int64_t p)
{
    switch (l->granularity) {
    case QC_GRAN_CHANNEL: return (box){0, l->outer, p, p + 1, 0, l->inner};
    case QC_GRAN_GROUP: {
        int64_t i = p % l->inner, g = (p / l->inner) % l->groups, o = p / (l->inner * l->groups);
        int64_t d1 = (g + 1) * l->block < l->extent ? (g + 1) * l->block : l->extent;
        return (box){o, o + 1, g * l->block, d1, i, i + 1};
    }
    default: return (box){0, 1, 0, l->extent, 0, 1};
    }
}

int64_t qc__quant_layout_group_count(const qc_quant_layout *l, int64_t p)
{
    box b = group_box(l, p);
    return (b.o1 - b.o0) * (b.d1 - b.d0) * (b.i1 - b.i0);
}

int qc__quant_layout_group_contiguous(const qc_quant_layout *l, int64_t p, int64_t *offset)
{
    box b = group_box(l, p);
    *offset = (b.o0 * l->extent + b.d0) * l->inner + b.i0;
    int full_inner = b.i1 - b.i0 == l->inner;
    int single_d = b.d1 - b.d0 == 1, full_d = b.d1 - b.d0 == l->extent, single_o = b.o1 - b.o0 == 1;
    return (full_inner || (single_d && single_o)) && (full_d || single_o);
}

void qc__quant_layout_gather(const qc_quant_layout *l, int64_t p, const float *x, float *buf)
{
    box b = group_box(l, p);
    int64_t n = 0;
    for (int64_t o = b.o0; o < b.o1; o++)
        for (int64_t d = b.d0; d < b.d1; d++)
            for (int64_t i = b.i0; i < b.i1; i++) buf[n++] = x[(o * l->extent + d) * l->inner + i];
}
