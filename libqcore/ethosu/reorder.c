/* The U55/U65 weight order (see qc_ethosu.h) and Vela's choice of block traversal. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ethosu/mlw.h"

#define OPTIONS_SIZE_V1 sizeof(qc_ethosu_reorder_options)

qc_status qc_ethosu_reorder_options_init(qc_ethosu_reorder_options *opts, unsigned version)
{
    QC_CHECK_NOT_NULL(opts);
    QC_TRY(qc__check_struct_version(version, QC_ETHOSU_REORDER_OPTIONS_VERSION, "qc_ethosu_reorder_options",
                                    __func__));
    qc_ethosu_reorder_options defaults = QC_ETHOSU_REORDER_OPTIONS_INIT;
    defaults.version = version;
    memcpy(opts, &defaults, OPTIONS_SIZE_V1);
    return QC_OK;
}

static qc_status check_int(int32_t v, int32_t lo, int32_t hi, const char *name, const char *function)
{
    if (v < lo || v > hi)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option '%s' is %d, outside %d..%d", name, v, lo, hi);
    return QC_OK;
}

static qc_status check_options(const qc_ethosu_reorder_options *o, const char *function)
{
    if (o->version == 0 || o->version > QC_ETHOSU_REORDER_OPTIONS_VERSION)
        return QC_FAIL_IN(function, QC_ERR_VERSION, "qc_ethosu_reorder_options has version %u; this library knows "
                          "1..%d", o->version, QC_ETHOSU_REORDER_OPTIONS_VERSION);
    QC_TRY(check_int(o->ifm_ublock_depth, 1, 64, "ifm_ublock_depth", function));
    QC_TRY(check_int(o->ofm_ublock_depth, 1, 64, "ofm_ublock_depth", function));
    QC_TRY(check_int(o->ofm_block_depth, 1, 65536, "ofm_block_depth", function));
    QC_TRY(check_int(o->depthwise, 0, 1, "depthwise", function));
    QC_TRY(check_int(o->part_kernel, 0, 1, "part_kernel", function));
    QC_TRY(check_int(o->decomp_h, 1, 64, "decomp_h", function));
    QC_TRY(check_int(o->decomp_w, 1, 64, "decomp_w", function));
    if (o->ifm_bits != 8 && o->ifm_bits != 16)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG, "option 'ifm_bits' is %d; expected 8 or 16", o->ifm_bits);
    if (o->depthwise && o->part_kernel)
        return QC_FAIL_IN(function, QC_ERR_INVALID_ARG,
                          "options 'depthwise' and 'part_kernel' are both set; a depthwise kernel has no "
                          "part-kernel-first order");
    return QC_OK;
}

qc_status qc__ethosu_check_shape(const int64_t shape[4], const char *function)
{
    static const char *axis[4] = {"O", "H", "W", "I"};
    int64_t total = 1;
    for (int i = 0; i < 4; i++) {
        if (shape[i] < 1 || shape[i] > INT32_MAX)
            return QC_FAIL_IN(function, QC_ERR_SHAPE, "argument 'shape': %s = %lld, expected 1..2^31 - 1", axis[i],
                              (long long)shape[i]);
        total *= shape[i];
        if (total > INT32_MAX)
            return QC_FAIL_IN(function, QC_ERR_OVERFLOW, "argument 'shape': more than 2^31 - 1 weights");
    }
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

/* One pass over the NPU order: writes into `out` when not NULL, and returns the count either way, so the
 * size and the values come from the same loops. */
static size_t walk(int16_t *out, const int16_t *w, const int64_t s[4], const qc_ethosu_reorder_options *o)
{
    const int64_t O = s[0], H = s[1], W = s[2], I = s[3];
    const int64_t iub = o->ifm_ublock_depth, oub = o->ofm_ublock_depth;
    const int pk = o->part_kernel, dw = o->depthwise;
    const int64_t ifm_block = pk || o->ifm_bits == 16 ? 16 : 32;
    size_t n = 0;
    for (int64_t ob = 0; ob < O; ob += o->ofm_block_depth) {
        int64_t ob_depth = min64(o->ofm_block_depth, O - ob);
        for (int64_t ib = 0; ib < (dw ? 1 : I); ib += ifm_block) {
            int64_t ib_depth = dw ? iub : pk ? min64(ifm_block, I - ib) : ifm_block;
            for (int64_t sy = 0; sy < H; sy += o->decomp_h) {
                int64_t sub_h = min64(H - sy, o->decomp_h);
                for (int64_t sx = 0; sx < W; sx += o->decomp_w) {
                    int64_t sub_w = min64(W - sx, o->decomp_w);
                    int64_t elements = sub_w * sub_h;
                    /* Part-kernel-first reads 4 (8-bit) or 2 (16-bit) kernel elements at once, depthwise 4. */
                    if (pk) elements = round_up(elements, o->ifm_bits == 16 ? 2 : 4);
                    else if (dw) elements = round_up(elements, 4);
                    int64_t outer = pk ? ib_depth : 1, inner = pk ? 1 : ib_depth;
                    for (int64_t iu_out = 0; iu_out < outer; iu_out += iub)
                        for (int64_t ou = 0; ou < ob_depth; ou += oub)
                            for (int64_t e = 0; e < elements; e++) {
                                int64_t kx = e % sub_w, ky = e / sub_w;
                                for (int64_t iu_in = 0; iu_in < inner; iu_in += iub)
                                    for (int64_t oz = 0; oz < oub; oz++)
                                        for (int64_t iz = 0; iz < (dw ? 1 : iub); iz++, n++) {
                                            if (out == NULL) continue;
                                            int64_t ic = ib + iu_in + iu_out + iz, oc = ob + ou + oz;
                                            int inside = ic < I && oc < O && ky < sub_h;
                                            out[n] = inside ? w[((oc * H + sy + ky) * W + sx + kx) * I + ic] : 0;
                                        }
                            }
                }
            }
        }
    }
    return n;
}

static qc_status reorder_checked(int16_t **out, size_t *count, const int16_t *ohwi, const int64_t shape[4],
                                 const qc_ethosu_reorder_options *o, const char *function)
{
    QC_TRY(qc__ethosu_check_shape(shape, function));
    QC_TRY(check_options(o, function));
    size_t n = walk(NULL, ohwi, shape, o);
    int16_t *buf = malloc(n * sizeof *buf);
    if (buf == NULL) return QC_FAIL_IN(function, QC_ERR_OUT_OF_MEMORY, "cannot allocate %zu reordered weights", n);
    walk(buf, ohwi, shape, o);
    *out = buf;
    *count = n;
    return QC_OK;
}

qc_status qc_ethosu_reorder(int16_t **out, size_t *out_count, const int16_t *ohwi, const int64_t shape[4],
                            const qc_ethosu_reorder_options *opts)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(out_count);
    QC_CHECK_NOT_NULL(ohwi);
    QC_CHECK_NOT_NULL(shape);
    QC_CHECK_NOT_NULL(opts);
    return reorder_checked(out, out_count, ohwi, shape, opts, __func__);
}

qc_status qc__ethosu_reorder_encode_checked(uint8_t **out, size_t *out_size, size_t *reordered_count,
                                            const int16_t *ohwi, const int64_t shape[4],
                                            const qc_ethosu_reorder_options *opts, const char *function)
{
    int16_t *ordered;
    size_t n;
    /* Checked before reordering, so that a bad weight is reported at its OHWI index. */
    QC_TRY(qc__ethosu_check_shape(shape, function));
    QC_TRY(qc__ethosu_check_weights(ohwi, (size_t)(shape[0] * shape[1] * shape[2] * shape[3]), "ohwi", function));
    QC_TRY(reorder_checked(&ordered, &n, ohwi, shape, opts, function));
    qc_status st = qc__ethosu_encode_checked(out, out_size, ordered, n, function);
    free(ordered);
    if (st == QC_OK && reordered_count != NULL) *reordered_count = n;
    return st;
}

qc_status qc_ethosu_reorder_encode(uint8_t **out, size_t *out_size, size_t *reordered_count, const int16_t *ohwi,
                                   const int64_t shape[4], const qc_ethosu_reorder_options *opts)
{
    QC_CHECK_NOT_NULL(out);
    QC_CHECK_NOT_NULL(out_size);
    QC_CHECK_NOT_NULL(ohwi);
    QC_CHECK_NOT_NULL(shape);
    QC_CHECK_NOT_NULL(opts);
    return qc__ethosu_reorder_encode_checked(out, out_size, reordered_count, ohwi, shape, opts, __func__);
}

qc_status qc_ethosu_part_kernel_first(int *out, int64_t ifm_depth, int64_t kernel_h, int64_t kernel_w, int ifm_bits)
{
    QC_CHECK_NOT_NULL(out);
    if (ifm_depth < 1 || kernel_h < 1 || kernel_w < 1 || ifm_depth > INT32_MAX || kernel_h > INT32_MAX ||
        kernel_w > INT32_MAX)
        return QC_FAIL(QC_ERR_INVALID_ARG, "arguments 'ifm_depth', 'kernel_h', 'kernel_w' are %lld, %lld, %lld; "
                       "each must be 1..2^31 - 1", (long long)ifm_depth, (long long)kernel_h, (long long)kernel_w);
    if (ifm_bits != 8 && ifm_bits != 16)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'ifm_bits' is %d; expected 8 or 16", ifm_bits);
    /* Utilizations in double, as Vela computes them in Python floats. */
    double c = (double)ifm_depth, k = (double)(kernel_h * kernel_w);
    double depth_first = c / (double)round_up(ifm_depth, ifm_bits == 8 ? 32 : 16);
    double part_kernel = c / (double)round_up(ifm_depth, 8) * (k / (double)round_up(kernel_h * kernel_w,
                                                                                   ifm_bits == 8 ? 4 : 2));
    *out = part_kernel >= depth_first || ifm_depth <= 8;
    return QC_OK;
}
