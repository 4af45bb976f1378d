/* The Ethos-U85 weight order (see qc_ethosu.h) and Regor's choice of traversal for U85. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ethosu/mlw.h"

#define OFM_GROUP 4   /* OFM channels a core reads together; cores take turns by group */

qc_status qc_ethosu85_reorder_options_init(qc_ethosu85_reorder_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_ETHOSU85_REORDER_OPTIONS_VERSION, "qc_ethosu85_reorder_options",
                                    __func__));
    qc_ethosu85_reorder_options defaults = QC_ETHOSU85_REORDER_OPTIONS_INIT;
    defaults.version = version;
    memcpy(opts, &defaults, sizeof defaults);
    return QC_OK;
}

static qc_status check_range(int32_t v, int32_t lo, int32_t hi, const char *name, const char *function)
{
    if (v < lo || v > hi)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option '%s' is %d, outside %d..%d", name, v, lo, hi);
    return QC_OK;
}

qc_status qc__ethosu85_check_options(const qc_ethosu85_reorder_options *o, const char *function)
{
    if (o->version == 0 || o->version > QC_ETHOSU85_REORDER_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION, "qc_ethosu85_reorder_options has version %u; this library "
                          "knows 1..%d", o->version, QC_ETHOSU85_REORDER_OPTIONS_VERSION);
    if (o->macs != 128 && o->macs != 256 && o->macs != 512 && o->macs != 1024 && o->macs != 2048)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'macs' is %d; expected 128, 256, 512, 1024 or 2048",
                          o->macs);
    if (o->cores != 1 && o->cores != 2 && o->cores != 4)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'cores' is %d; expected 1, 2 or 4", o->cores);
    if (o->core != QC_ETHOSU85_ALL_CORES) QC_TRY(check_range(o->core, 0, o->cores - 1, "core", function));
    QC_TRY(check_range(o->traversal, QC_ETHOSU85_DEPTH_FIRST, QC_ETHOSU85_DEPTHWISE, "traversal", function));
    if (o->ifm_bits != 8 && o->ifm_bits != 16)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ifm_bits' is %d; expected 8 or 16", o->ifm_bits);
    QC_TRY(check_range(o->ofm_ublock_depth, 4, 64, "ofm_ublock_depth", function));
    if (o->ofm_ublock_depth % (OFM_GROUP * o->cores) != 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ofm_ublock_depth' is %d, not a multiple of 4 x %d "
                          "cores", o->ofm_ublock_depth, o->cores);
    QC_TRY(check_range(o->ofm_block_depth, 1, 65536, "ofm_block_depth", function));
    QC_TRY(check_range(o->ifm_block_depth, 8, 256, "ifm_block_depth", function));
    if (o->ifm_block_depth % 8 != 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ifm_block_depth' is %d, not a multiple of 8",
                          o->ifm_block_depth);
    QC_TRY(check_range(o->stride_x, 1, 3, "stride_x", function));
    QC_TRY(check_range(o->stride_y, 1, 3, "stride_y", function));
    QC_TRY(check_range(o->dilation_x, 1, 2, "dilation_x", function));
    QC_TRY(check_range(o->dilation_y, 1, 2, "dilation_y", function));
    QC_TRY(check_range(o->sparse, 0, 1, "sparse", function));
    if (o->sparse && o->traversal == QC_ETHOSU85_DEPTHWISE)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "options 'sparse' and 'traversal' depthwise: depthwise "
                          "layers have no sparse layout");
    if (o->sparse && o->ifm_block_depth % 16 != 0)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ifm_block_depth' is %d; the sparse layout reads "
                          "IFM groups of 16", o->ifm_block_depth);
    if (o->traversal == QC_ETHOSU85_DEPTHWISE && o->core == QC_ETHOSU85_ALL_CORES && o->cores > 1)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "options 'traversal' depthwise and 'core' all cores: a "
                          "depthwise layer has one stream per core and no interleaved (FWD) form");
    return QC_OK;
}

static int64_t round_up(int64_t a, int64_t b)
{
    return (a + b - 1) / b * b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The loop extents of one stream, derived once from the options. */
typedef struct walk85 {
    const int16_t *w;
    int64_t O, H, W, I;
    int64_t ob_depth, ib_depth, iub_depth, inner_step, ofm_ub;
    int64_t round, dw_pad, cores, stride_x, stride_y, decomp_x, decomp_y;
    int dw;
} walk85;

static void walk85_init(walk85 *k, const int16_t *w, const int64_t s[4], const qc_ethosu85_reorder_options *o)
{
    int pk = o->traversal == QC_ETHOSU85_PART_KERNEL, wide = o->ifm_bits == 16, sparse = o->sparse;
    k->w = w;
    k->O = s[0], k->H = s[1], k->W = s[2], k->I = s[3];
    k->dw = o->traversal == QC_ETHOSU85_DEPTHWISE;
    k->ob_depth = o->ofm_block_depth;
    k->ib_depth = o->ifm_block_depth;
    k->iub_depth = k->dw ? 1 : pk && wide && !sparse ? 8 : o->ifm_block_depth;
    k->inner_step = k->dw ? 1 : sparse ? 16 : 8;
    k->ofm_ub = o->ofm_ublock_depth;
    k->round = pk ? (wide || sparse ? 10 : 5) : k->dw ? 10 : 1;
    k->dw_pad = !wide && o->macs <= 256 ? 0 : o->macs <= 512 ? 2 : 6;
    k->cores = o->cores;
    /* Depth-first reads the kernel at stride 1; the other traversals read it phase by phase. */
    k->stride_x = o->traversal == QC_ETHOSU85_DEPTH_FIRST ? 1 : o->stride_x;
    k->stride_y = o->traversal == QC_ETHOSU85_DEPTH_FIRST ? 1 : o->stride_y;
    k->decomp_x = 8 / o->dilation_x;
    k->decomp_y = 8 / o->dilation_y;
}

/* Appends `count` zeros. */
static size_t zeros(int16_t *out, size_t n, int64_t count)
{
    if (out != NULL) memset(out + n, 0, (size_t)count * sizeof *out);
    return n + (size_t)count;
}

/* One kernel element (wy, wx) of the micro-block at channels (ic0, oc0): IFM groups, this core's OFM
 * groups, the group's OFM channels, the IFM group's channels. */
static size_t element(int16_t *out, size_t n, const walk85 *k, int64_t core, int64_t wy, int64_t wx, int64_t ic0,
                      int64_t oc0)
{
    for (int64_t iui = 0; iui < k->iub_depth; iui += k->inner_step)
        for (int64_t og = core * OFM_GROUP; og < k->ofm_ub; og += OFM_GROUP * k->cores)
            for (int64_t oi = 0; oi < OFM_GROUP; oi++)
                for (int64_t iz = 0; iz < k->inner_step; iz++, n++) {
                    if (out == NULL) continue;
                    int64_t ic = ic0 + iui + iz, oc = oc0 + og + oi;
                    out[n] = ic < k->I && oc < k->O ? k->w[((oc * k->H + wy) * k->W + wx) * k->I + ic] : 0;
                }
    return n;
}

/* The elements of one sub-kernel for one OFM micro-block, with their padding. */
static size_t sub_kernel(int16_t *out, size_t n, const walk85 *k, int64_t core, int64_t sy, int64_t sx,
                         int64_t sub_h, int64_t sub_w, int64_t ic0, int64_t oc0)
{
    int64_t remaining = round_up(sub_w * sub_h, k->round);
    int64_t per_element = k->iub_depth * k->ofm_ub / k->cores;
    for (int64_t py = 0; py < k->stride_y; py++) {
        int64_t rows = (sub_h + k->stride_y - 1 - py) / k->stride_y;
        for (int64_t px = 0; px < k->stride_x; px++) {
            int64_t cols = (sub_w + k->stride_x - 1 - px) / k->stride_x;
            for (int64_t ky = 0; ky < rows; ky++)
                for (int64_t c = 0; c < cols; c++) {
                    int64_t kx = ky % 2 == 0 ? c : cols - 1 - c;   /* odd rows run backwards */
                    remaining--;
                    n = element(out, n, k, core, sy + py + ky * k->stride_y, sx + px + kx * k->stride_x, ic0, oc0);
                    if (k->dw && remaining % k->round == 0) n = zeros(out, n, k->dw_pad * k->ofm_ub / k->cores);
                }
        }
    }
    if (remaining > 0) n = zeros(out, n, (remaining + (k->dw ? k->dw_pad : 0)) * per_element);
    return n;
}

/* One IFM block of one OFM block: sub-kernels (columns outer), IFM micro-blocks, OFM micro-blocks. */
static size_t ifm_block(int16_t *out, size_t n, const walk85 *k, int64_t core, int64_t ib, int64_t ob)
{
    int64_t ob_clip = min64(k->ob_depth, k->O - ob), ib_clip = min64(k->ib_depth, k->I - ib);
    for (int64_t sx = 0; sx < k->W; sx += k->decomp_x) {
        int64_t sub_w = min64(k->W - sx, k->decomp_x);
        for (int64_t sy = 0; sy < k->H; sy += k->decomp_y) {
            int64_t sub_h = min64(k->H - sy, k->decomp_y);
            for (int64_t iuo = 0; iuo < (k->dw ? 1 : ib_clip); iuo += k->iub_depth)
                for (int64_t ouo = 0; ouo < ob_clip; ouo += k->ofm_ub)
                    n = sub_kernel(out, n, k, core, sy, sx, sub_h, sub_w, ib + iuo, ob + ouo);
        }
    }
    return n;
}

/* One core's stream; returns the count, writing into `out` when not NULL. */
static size_t walk_core(int16_t *out, size_t n, const walk85 *k, int64_t core)
{
    int64_t ifm_extent = k->dw ? 1 : k->I, last = 0;
    for (int64_t ob = 0, b = 0; ob < k->O; ob += k->ob_depth, b++) {
        /* Serpentine: odd OFM blocks walk back from the block the previous one ended on. */
        int64_t step = b % 2 == 0 ? k->ib_depth : -k->ib_depth;
        for (int64_t ib = last; ib >= 0 && ib < ifm_extent; ib += step) {
            last = ib;
            n = ifm_block(out, n, k, core, ib, ob);
        }
    }
    return n;
}

/* The whole order: one core's stream, or all cores' interleaved in blocks as FWD stores them. */
static size_t walk(int16_t *out, const walk85 *k, int core, int64_t block)
{
    if (core != QC_ETHOSU85_ALL_CORES || k->cores == 1) return walk_core(out, 0, k, core < 0 ? 0 : core);
    size_t per_core = walk_core(NULL, 0, k, 0);
    if (out == NULL) return per_core * (size_t)k->cores;
    int16_t *tmp = malloc(per_core * sizeof *tmp);
    if (tmp == NULL) return 0;
    for (int64_t c = 0; c < k->cores; c++) {
        walk_core(tmp, 0, k, c);
        /* Every core's stream has the same length, a multiple of the block. */
        for (size_t b = 0; b * (size_t)block < per_core; b++)
            memcpy(out + (b * (size_t)k->cores + (size_t)c) * (size_t)block, tmp + b * (size_t)block,
                   (size_t)block * sizeof *tmp);
    }
    free(tmp);
    return per_core * (size_t)k->cores;
}

qc_status qc__ethosu85_reorder_checked(int16_t **out, size_t *count, const int16_t *ohwi, const int64_t shape[4],
                                       const qc_ethosu85_reorder_options *o, const char *function)
{
    QC_TRY(qc__ethosu_check_shape(shape, function));
    QC_TRY(qc__ethosu85_check_options(o, function));
    if (o->traversal == QC_ETHOSU85_DEPTHWISE && shape[3] != 1)
        return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'shape': depthwise weights are [O, H, W, 1], got I = "
                          "%lld", (long long)shape[3]);
    walk85 k;
    walk85_init(&k, ohwi, shape, o);
    int64_t block = k.ofm_ub * k.iub_depth * k.round / k.cores;
    size_t n = walk(NULL, &k, o->core, block);
    int16_t *buf = malloc((n ? n : 1) * sizeof *buf);
    if (buf == NULL || (walk(buf, &k, o->core, block) == 0 && n != 0)) {
        free(buf);
        return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate %zu reordered weights", n);
    }
    *out = buf;
    *count = n;
    return QC_OK;
}

qc_status qc_ethosu85_reorder(int16_t **out, size_t *out_count, const int16_t *ohwi, const int64_t shape[4],
                              const qc_ethosu85_reorder_options *opts)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(out_count);
    QC_CHECK_NOT_NULL(ohwi);
    QC_CHECK_NOT_NULL(shape);
    QC_CHECK_NOT_NULL(opts);
    return qc__ethosu85_reorder_checked(out, out_count, ohwi, shape, opts, __func__);
}

qc_status qc_ethosu85_part_kernel_first(int *out, int64_t ifm_depth, int64_t kernel_h, int64_t kernel_w, int sparse)
{
    QC_CHECK_NOT_NULL(out);
    if (sparse != 0 && sparse != 1)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'sparse' is %d; expected 0 or 1", sparse);
    if (ifm_depth < 1 || kernel_h < 1 || kernel_w < 1 || ifm_depth > INT32_MAX || kernel_h > INT32_MAX ||
        kernel_w > INT32_MAX || kernel_h * kernel_w > INT32_MAX)
        return QC_FAIL(QC_ERR_INVALID_ARG, "arguments 'ifm_depth', 'kernel_h', 'kernel_w' are %lld, %lld, %lld; "
                       "each must be 1..2^31 - 1 (and the kernel area too)", (long long)ifm_depth,
                       (long long)kernel_h, (long long)kernel_w);
    int64_t k = kernel_h * kernel_w;
    /* Regor's rounding of the kernel area: whole groups of s, the rest counted as at least r. */
    int64_t s = sparse ? 10 : 5, r = sparse ? 4 : 2;
    int64_t k_rounded = k / s * s + (k % s > r ? k % s : r);
    double c = (double)ifm_depth;
    double kernel_first = c / (double)round_up(ifm_depth, 16) * ((double)k / (double)k_rounded);
    double depth_first = c / (double)round_up(ifm_depth, sparse ? 128 : 64);
    *out = kernel_first >= depth_first;
    return QC_OK;
}
