/* Which parameter each element uses (quant/layout.c). The oracle is the formula of layout.h written
 * per element: with the tensor viewed as [outer, extent, inner] around the axis, element (o, d, i)
 * uses 0 per tensor, d per channel and (o * groups + d / block) * inner + i per group. */
#include "quant/layout.h"
#include "test_util.h"

typedef struct shape_case {
    int ndim;
    int64_t dims[4];
    qc_granularity granularity;
    int axis;
    int64_t group_size;
} shape_case;

static const shape_case cases[] = {
    {0, {0}, QC_GRAN_TENSOR, 0, 1},
    {1, {7}, QC_GRAN_TENSOR, 0, 1},
    {1, {7}, QC_GRAN_CHANNEL, 0, 1},
    {1, {7}, QC_GRAN_GROUP, 0, 3},
    {1, {7}, QC_GRAN_GROUP, -1, 100}, /* one group longer than the axis */
    {3, {3, 5, 4}, QC_GRAN_TENSOR, 0, 1},
    {3, {3, 5, 4}, QC_GRAN_CHANNEL, 0, 1},  /* axis first */
    {3, {3, 5, 4}, QC_GRAN_CHANNEL, 1, 1},  /* axis in the middle */
    {3, {3, 5, 4}, QC_GRAN_CHANNEL, 2, 1},  /* axis last: inner 1 */
    {3, {3, 5, 4}, QC_GRAN_CHANNEL, -1, 1},
    {3, {3, 5, 4}, QC_GRAN_GROUP, 0, 2},    /* 2 does not divide 3 */
    {3, {3, 5, 4}, QC_GRAN_GROUP, 1, 1},
    {3, {3, 5, 4}, QC_GRAN_GROUP, 1, 2},
    {3, {3, 5, 4}, QC_GRAN_GROUP, 1, 3},
    {3, {3, 5, 4}, QC_GRAN_GROUP, 1, 4},    /* last group of one element, inner > 1 */
    {3, {3, 5, 4}, QC_GRAN_GROUP, 1, 5},
    {3, {3, 5, 4}, QC_GRAN_GROUP, -1, 3},   /* inner 1, 3 does not divide 4 */
    {3, {3, 5, 4}, QC_GRAN_GROUP, 2, 4},
    {3, {6, 1, 9}, QC_GRAN_CHANNEL, 1, 1},  /* extent 1 */
    {3, {6, 1, 9}, QC_GRAN_GROUP, 1, 2},
    {2, {5, 1}, QC_GRAN_CHANNEL, 0, 1},     /* inner 1 through a unit dim */
    {2, {5, 1}, QC_GRAN_GROUP, 0, 2},
    {2, {1, 5}, QC_GRAN_GROUP, 1, 2},
    {3, {2, 3, 0}, QC_GRAN_CHANNEL, 1, 1},  /* empty, inner 0 */
    {3, {2, 3, 0}, QC_GRAN_GROUP, 1, 2},
    {2, {0, 4}, QC_GRAN_CHANNEL, 1, 1},     /* empty, outer 0 */
    {2, {0, 4}, QC_GRAN_TENSOR, 0, 1},
    /* Long rows: the work is cut into pieces of at most 16384 elements. */
    {2, {3, 40000}, QC_GRAN_TENSOR, 0, 1},
    {2, {3, 40000}, QC_GRAN_CHANNEL, 0, 1},
    {2, {3, 40000}, QC_GRAN_CHANNEL, 1, 1},
    {2, {3, 40000}, QC_GRAN_GROUP, 1, 128},
    {2, {3, 40000}, QC_GRAN_GROUP, 1, 20000}, /* groups longer than a piece */
    {2, {3, 40000}, QC_GRAN_GROUP, 1, 30000}, /* ... and not dividing the row */
    {2, {3, 40000}, QC_GRAN_GROUP, 1, 32768},
    {2, {40000, 3}, QC_GRAN_GROUP, 0, 5000},
    {2, {2, 20000}, QC_GRAN_GROUP, 0, 1},
};

static qc_quant_options options_of(const shape_case *c)
{
    qc_quant_options o = QC_QUANT_OPTIONS_INIT;
    o.granularity = c->granularity;
    o.axis = c->axis;
    o.group_size = c->group_size;
    return o;
}

typedef struct view {
    int64_t outer, extent, inner, groups, block;
} view;

static view view_of(const shape_case *c)
{
    view v = {1, 1, 1, 1, c->granularity == QC_GRAN_GROUP ? c->group_size : 1};
    int axis = c->axis < 0 ? c->axis + c->ndim : c->axis;
    for (int i = 0; i < c->ndim; i++) {
        if (c->granularity == QC_GRAN_TENSOR || i == axis)
            v.extent *= c->dims[i];
        else if (i < axis)
            v.outer *= c->dims[i];
        else
            v.inner *= c->dims[i];
    }
    v.groups = (v.extent + v.block - 1) / v.block;
    return v;
}

static int64_t expected_param(const shape_case *c, const view *v, int64_t e)
{
    int64_t o = e / (v->extent * v->inner), d = (e / v->inner) % v->extent, i = e % v->inner;
    switch (c->granularity) {
    case QC_GRAN_TENSOR: return 0;
    case QC_GRAN_CHANNEL: return d;
    case QC_GRAN_GROUP: return (o * v->groups + d / v->block) * v->inner + i;
    }
    return -1;
}

static int64_t numel_of(const shape_case *c)
{
    int64_t n = 1;
    for (int i = 0; i < c->ndim; i++) n *= c->dims[i];
    return n;
}

static qc_tensor tensor_of(const shape_case *c, float *data)
{
    return tu_tensor(data, QC_DT_F32, c->ndim, c->dims);
}

/* Number of parameters from the public shape function (the oracle for layout.params). */
static int64_t public_param_count(const qc_tensor *x, const qc_quant_options *o)
{
    int32_t ndim;
    int64_t dims[QC_MAX_DIMS];
    TU_EXPECT_OK(qc_quant_param_shape(&ndim, dims, x, o));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    return n;
}

static void check_runs(const shape_case *c, size_t index)
{
    int64_t n = numel_of(c);
    float dummy = 0.0f;
    qc_tensor x = tensor_of(c, n ? &dummy : NULL); /* the layout reads shapes only */
    qc_quant_options o = options_of(c);
    qc_quant_layout l;
    qc__quant_layout_init(&l, &x, &o);
    view v = view_of(c);
    cr_assert_eq(l.params, public_param_count(&x, &o), "case %zu: parameter count", index);
    int64_t *param = malloc((size_t)(n > 0 ? n : 1) * sizeof *param);
    for (int64_t e = 0; e < n; e++) param[e] = -1;
    int64_t runs = qc__quant_layout_runs(&l);
    for (int64_t k = 0; k < runs; k++) {
        qc_quant_run r = qc__quant_layout_run(&l, k);
        cr_assert(r.length >= 1 && r.per >= 1 && r.offset >= 0 && r.offset + r.length <= n,
                  "case %zu run %lld: offset %lld length %lld per %lld of %lld elements", index, (long long)k,
                  (long long)r.offset, (long long)r.length, (long long)r.per, (long long)n);
        for (int64_t j = 0; j < r.length; j++) {
            cr_assert_eq(param[r.offset + j], -1, "case %zu: element %lld in two runs", index,
                         (long long)(r.offset + j));
            param[r.offset + j] = r.param + j / r.per;
        }
    }
    for (int64_t e = 0; e < n; e++)
        cr_assert_eq(param[e], expected_param(c, &v, e), "case %zu: element %lld uses parameter %lld", index,
                     (long long)e, (long long)param[e]);
    free(param);
}

Test(quant_layout, runs_cover_every_element_once_with_its_parameter)
{
    for (size_t i = 0; i < TU_COUNT(cases); i++) check_runs(&cases[i], i);
}

/* Elements of each parameter in increasing order: members[first[p] .. first[p + 1]). */
typedef struct buckets {
    int64_t *first, *members;
} buckets;

static buckets bucket_elements(const shape_case *c, const view *v, int64_t params, int64_t n)
{
    buckets b = {calloc((size_t)params + 2, sizeof(int64_t)), malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t))};
    for (int64_t e = 0; e < n; e++) b.first[expected_param(c, v, e) + 2]++;
    for (int64_t p = 0; p < params; p++) b.first[p + 2] += b.first[p + 1];
    for (int64_t e = 0; e < n; e++) b.members[b.first[expected_param(c, v, e) + 1]++] = e;
    return b;
}

static void check_groups(const shape_case *c, size_t index)
{
    int64_t n = numel_of(c);
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    for (int64_t e = 0; e < n; e++) x[e] = (float)e; /* each value names its element */
    qc_tensor tx = tensor_of(c, n ? x : NULL);
    qc_quant_options o = options_of(c);
    qc_quant_layout l;
    qc__quant_layout_init(&l, &tx, &o);
    view v = view_of(c);
    buckets b = bucket_elements(c, &v, l.params, n);
    int64_t capacity = qc__quant_layout_group_size(&l);
    float *buf = malloc((size_t)(capacity > 0 ? capacity : 1) * sizeof *buf);
    for (int64_t p = 0; p < l.params; p++) {
        int64_t count = qc__quant_layout_group_count(&l, p), offset = -1;
        cr_assert_eq(count, b.first[p + 1] - b.first[p], "case %zu: parameter %lld has %lld elements", index,
                     (long long)p, (long long)count);
        cr_assert_leq(count, capacity, "case %zu: group_size bounds every group", index);
        const float *values = buf;
        if (qc__quant_layout_group_contiguous(&l, p, &offset))
            values = x + offset;
        else
            qc__quant_layout_gather(&l, p, x, buf);
        for (int64_t j = 0; j < count; j++)
            cr_assert_eq((int64_t)values[j], b.members[b.first[p] + j], "case %zu: parameter %lld, value %lld", index,
                         (long long)p, (long long)j);
    }
    free(buf);
    free(b.first);
    free(b.members);
    free(x);
}

Test(quant_layout, each_group_yields_exactly_its_elements)
{
    for (size_t i = 0; i < TU_COUNT(cases); i++) check_groups(&cases[i], i);
}
