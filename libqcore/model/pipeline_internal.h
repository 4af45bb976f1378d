/* Internal: the pipeline handle (qc_model.h) and what its parts share. */
#ifndef QC_PIPELINE_INTERNAL_H
#define QC_PIPELINE_INTERNAL_H

#include <stddef.h>

#include "qcore/qc_model.h"

/* A linear layer of the source model. */
typedef struct qcp_layer {
    char *weight;          /* initializer name */
    char *node;            /* node name ("" when none) */
    const char *op_type;   /* static: "MatMul", "Gemm" or "Conv" */
    char *input;           /* the value W multiplies, in the source model */
    size_t node_index;     /* in the source model's node list */
    int transposed;        /* the initializer holds [out, in] (Gemm transB = 1, Conv); else [in, out] */
    int conv;              /* a Conv: W [out, in] is its [out, channels, kernel...] weight, inputs are im2col rows */
    int32_t ndim;          /* the initializer's shape */
    int64_t dims[QC_MAX_DIMS];
    int64_t in, out;
} qcp_layer;

/* A calibration batch: values of the graph inputs, owned. */
typedef struct qcp_batch {
    size_t count;
    char **names;
    qc_tensor *values;
} qcp_batch;

/* What a one-pass (non-sequential) collection gave, kept for the next run with the same key: a sweep over
 * accumulator widths, tiles, methods of the same statistics or weight grids then runs no model. */
typedef struct qcp_cache {
    int valid;
    int32_t activation_bits;
    int stats_kind;              /* 0: none (RTN), QC_GPXQ_OPTQ or QC_GPXQ_GPFQ */
    int64_t report_rows;
    float *act_scale;            /* per layer, the activation scales the statistics were collected with */
    int *keep;                   /* per layer */
    qc_gpxq_stats **stats;       /* per layer, entries shared by layers reading one value; owned */
    float **report_x;            /* per layer; owned */
    int64_t *report_n;
} qcp_cache;

/* The rotated model of the last run with a rotation (pipeline_rotate.c), kept for runs with the same one. */
typedef struct qcp_rotated {
    qc_rotation_kind kind;      /* QC_ROTATION_NONE: nothing kept */
    uint64_t seed;
    qc_model *model;            /* the rotated copy of the source model */
    qc_pipeline *inner;         /* a pipeline over it, holding copies of the batches */
    int32_t heads;              /* the recipe's rotate_heads */
    int32_t *norm_folded, *rotated, *online;   /* per (outer) layer */
    int32_t *heads_rotated;     /* per (outer) layer: qc_layer_report.heads_rotated */
    int32_t *unrotated;         /* per (outer) layer: named in the recipe's unrotated (version 5) */
    char **extra;               /* the inner pipeline's layers that are no outer layer: the online rotations */
    size_t num_extra;
} qcp_rotated;

struct qc_pipeline {
    const qc_model *model;
    qc_ctx *ctx;
    qcp_layer *layers;
    size_t num_layers;
    qcp_batch *batches;
    size_t num_batches;
    qc_layer_report *reports;   /* num_layers, from the last successful run; NULL before */
    double *range_lo, *range_hi;/* each layer input's range over the batches (float model); NULL until known */
    double *histogram;          /* QC_PIPELINE_HISTOGRAM_BINS counts per layer over [range_lo, range_hi], filled
                                   for the first layer reading each input; NULL until a recipe needs them */
    qcp_cache cache;
    char **ethosu_reasons;      /* per layer, the last run's reasons (owned; NULL when packed or not asked) */
    qcp_rotated rotated;
};

/* One run's working state (pipeline_run.c). Per layer arrays have p->num_layers entries. */
typedef struct qcp_run {
    qc_pipeline *p;
    const qc_recipe *r;
    const char *function;
    qc_model *qmodel;        /* the result, edited as the run goes */
    qc_session *quantized;   /* over qmodel: its activations quantized, its weights replaced as they are done */
    qc_session *fp;          /* over the source model (GPFQ's X, and the ranges) */
    int *keep;               /* 1: layer kept in float */
    int *float_weight;       /* 1: the weight stays float, its input is quantized (a layer format of 0 bits) */
    int32_t *lq_bits;        /* K of a recipe lq_layers entry (its weight LQ levels); 0: not LQ */
    qc_quant_options *grid;  /* each layer's weight grid: the recipe's, at its layer format's width */
    double *lo, *hi;         /* each layer input's range over the calibration batches (float model) */
    float *act_scale;        /* 0 when the input stays float */
    int *act_signed;
    char **qinput;           /* the value each layer reads in qmodel (a DequantizeLinear output when quantized) */
    float **report_x;        /* up to report_rows rows of each layer's (quantized) input, [rows, in] */
    int64_t *report_n;
    int rows_lent;           /* report_x belongs to the pipeline's cache */
    int32_t **levels;        /* the integer weights q [out, in] (zero point included); an LQ layer's codes */
    float **scale;           /* the grid's scales; an LQ layer's bases [out, K] */
    int32_t **zero_point;    /* NULL for symmetric grids */
    float **dequantized;     /* [out, in] */
    qc_layer_report *reports;   /* this run's, handed to the pipeline when it succeeds */
    int threads;
} qcp_run;

/* Checks a recipe against the pipeline's layers (names, widths, grids); `function` names the caller. */
qc_status qcp__check_recipe(const qc_pipeline *p, const qc_recipe *recipe, const char *function);

/* The bytes of a recipe of `version`: an older caller's struct ends before the later versions' fields. */
size_t qcp__recipe_size(uint32_t version);

/* The layer whose weight is `weight` (NULL matches none), or p->num_layers. */
size_t qcp__layer_named(const qc_pipeline *p, const char *weight);

/* The index of the first of names[0..n) equal to `name` (NULL entries match none), or n. */
size_t qcp__name_index(const char *const *names, size_t n, const char *name);

/* The first of formats[0..n) naming `weight`, or NULL. */
const qc_layer_format *qcp__format_of(const qc_layer_format *formats, size_t n, const char *weight);

/* Starts a run of `recipe` on p: per-layer state, grids, reports, and r->qmodel a clone of the source
 * model. qcp__run_finish frees whatever the run still owns (also after a failed start). */
qc_status qcp__run_start(qcp_run *r, qc_pipeline *p, const qc_recipe *recipe, const char *function);
void qcp__run_finish(qcp_run *r);

/* Puts every quantized layer's activation quantizer into r->qmodel and records each layer's input name
 * there (r->qinput); needs the input ranges (qcp__input_ranges). */
qc_status qcp__quantize_inputs(qcp_run *r);

/* Every layer's one-pass statistics (stats[i], NULL for RTN and kept layers), lent by the pipeline's
 * cache (collected and stored there first when it does not hold them). */
qc_status qcp__one_pass_stats(qcp_run *r, qc_gpxq_stats ***stats);

/* The statistics kind the recipe's method needs (0 for RTN). */
int qcp__stats_kind(const qc_recipe *recipe);

/* Whether the cache holds this run's one-pass statistics; if so, lends them (stats, report rows) to r. */
int qcp__cache_lend(qcp_run *r, qc_gpxq_stats ***stats);

/* Hands this run's one-pass statistics and report rows to the cache (which then lends them to r); on
 * failure nothing is taken. */
qc_status qcp__cache_store(qcp_run *r, qc_gpxq_stats **stats);

/* Empties the cache and the recorded ranges (new batches). */
void qcp__cache_clear(qc_pipeline *p);

/* Each layer input's range over the batches in the float model (r->lo, r->hi), and the histograms when the
 * recipe needs them: recorded by the first run after the batches changed that needs them, which runs
 * every batch. */
qc_status qcp__input_ranges(qcp_run *r);

/* The float model's histogram of each layer input over the batches (p->histogram), made by a pass over
 * them when the recipe's activation scale needs it and the pipeline does not hold it; needs the ranges. */
qc_status qcp__input_histograms(qcp_run *r);

/* The clip t of layer i's input (its scale is t / qmax) by the recipe's activation_scale. */
double qcp__input_clip(const qcp_run *r, size_t i);

/* The first layer reading the same input as layer i. */
size_t qcp__first_reader(const qc_pipeline *p, size_t i);

/* Value `name` of the session's last run on batch b (a graph input is the batch's own value; sessions do
 * not keep inputs). */
qc_status qcp__value_of(const qc_session *s, const qcp_batch *b, const char *name, qc_tensor *out);

/* The float-model session, created on first use. */
qc_status qcp__float_session(qcp_run *r);

/* Collects statistics for layers [first, end) (all reading the same value when sequential) over every
 * batch, and their report rows; stats[k] for layer first + k (NULL for RTN and kept layers). */
qc_status qcp__collect(qcp_run *r, size_t first, size_t end, qc_gpxq_stats **stats);

/* Frees the statistics objects of a qcp__collect (shared ones once). */
void qcp__free_stats(qc_gpxq_stats **stats, size_t count);

/* W [out, in] (or its dequantized copy) of layer l in its ONNX layout, into `onnx`. */
void qcp__to_onnx_layout(const qcp_layer *l, const float *w, float *onnx);

/* Frees layer i's quantized weights (levels, parameters, dequantized copy) so that it can be quantized again. */
void qcp__release_layer(qcp_run *r, size_t i);

/* Quantizes layer i from its statistics (NULL for RTN) and fills its report. */
qc_status qcp__quantize_layer(qcp_run *r, size_t i, const qc_gpxq_stats *stats);

/* Puts layer i's activation quantizer (r->act_scale[i], r->act_signed[i], the recipe's bits) in front
 * of every quantized layer reading its input. */
qc_status qcp__quantize_input(qcp_run *r, size_t i);

/* Adds `value`'s quantizer to m: [Clip +] QuantizeLinear + DequantizeLinear with zero point 0 in the ONNX
 * type holding `bits` (signed or not); the dequantized value's name goes to out[size]. Nothing reads it yet. */
qc_status qcp__add_input_quantizer(qc_model *m, const char *value, int bits, int is_signed, float scale, char *out,
                                   size_t size);

/* Weight-only LQ levels of W [out, in] (row-major, finite) with K bits: one QC_LQ_SIGNED basis per row by
 * qc_lq_fit (default options), each weight's code by qc_lq_encode, its level by qc_lq_decode. `levels`
 * [out, in], `codes` [out, in] (may be NULL) and `basis` [out, K] (may be NULL) are written. */
qc_status qcp__lq_weight(qc_ctx *ctx, const float *w, int64_t out, int64_t in, int32_t k, float *levels, uint8_t *codes,
                         float *basis, const char *function);

/* The stored bytes of an LQ weight [out, in] of K bits: bit-planes and float32 bases,
 * out x (K ceil(in / 8) + 4 K). */
int64_t qcp__lq_bytes(int64_t out, int64_t in, int32_t k);

/* Layer i's weight as LQ levels of r->lq_bits[i] bits (levels in r->dequantized, codes in r->levels, bases in
 * r->scale), put into the quantized session in sequential runs, and its report. */
qc_status qcp__quantize_lq_layer(qcp_run *r, size_t i);

/* Fills layer i's report for an LQ weight (its levels in r->dequantized[i]). */
qc_status qcp__report_lq_layer(qcp_run *r, size_t i);

/* Puts layer i's dequantized weight into the quantized-path session (later layers see it). */
qc_status qcp__replace_in_session(qcp_run *r, size_t i);

/* Writes LQ layer i's weight into r->qmodel as UINT4 codes, a level table and GatherElements (qc_model.h,
 * "LQ weights in a recipe"). */
qc_status qcp__export_lq_layer(qcp_run *r, size_t i);

/* Writes every quantized weight into r->qmodel as integers + DequantizeLinear. */
qc_status qcp__export_weights(qcp_run *r);

/* The index of the node of `model` that reads initializer `weight` as its second input. */
qc_status qcp__node_reading(const qc_model *model, const char *weight, size_t *index, const char *function);

/* Layer i's weight as W [out, in] f32 into `w` (out * in floats). */
qc_status qcp__weight(const qc_pipeline *p, size_t i, float *w, const char *function);

/* The recipe's tile size for layer i: a tile of at least the row is the row (0). */
int64_t qcp__tile(const qcp_run *r, size_t i);

/* Index into the grid's parameters (scale, zero point) of W [out, in]'s element (o, k). */
int64_t qcp__param_index(const qc_quant_options *grid, int64_t o, int64_t k, int64_t in);

/* Fills the report of layer i, whose weight stays float while its input is quantized. */
qc_status qcp__report_float_weight(qcp_run *r, size_t i);

/* Fills layer i's report from its results and report rows. */
qc_status qcp__report_layer(qcp_run *r, size_t i, const qc_gpxq_result *result);

/* Rows of `in` features from layer i's input value `v` (as the session gives it): a view of v for
 * MatMul and Gemm, im2col rows in *owned (malloc'd; the caller frees) for Conv. */
qc_status qcp__layer_rows(const qc_pipeline *p, size_t i, const qc_tensor *v, qc_tensor *rows, float **owned,
                          const char *function);

/* Fills p->layers with the source model's linear layers, in graph order. */
qc_status qcp__find_layers(qc_pipeline *p, const char *function);

/* Frees the layer list. */
void qcp__free_layers(qc_pipeline *p);

/* A batch holding copies of `values` (checked: non-NULL names, valid tensors); on failure b holds nothing. */
qc_status qcp__batch_copy(qcp_batch *b, size_t count, const char *const *names, const qc_tensor *values,
                          const char *function);
void qcp__batch_free(qcp_batch *b);

/* Binds batch b's values as the session's inputs. */
qc_status qcp__bind_batch(qc_session *s, const qcp_batch *b);

/* Runs a recipe with a rotation (rc->rotation != QC_ROTATION_NONE) on the pipeline's rotated model (made
 * or reused), its online rotations kept in float; `reports` (p->num_layers, owned by the caller) receives
 * the outer layers' reports with their rotation fields. */
qc_status qcp__run_rotated(qc_pipeline *p, const qc_recipe *rc, qc_model **out, qc_layer_report *reports,
                           const char *function);

/* Forgets the rotated model (new batches, or the pipeline freed). */
void qcp__rotated_clear(qc_pipeline *p);

/* Makes `r` (emptied first; left empty on failure) for rc's rotation and seed: the pipeline's model copied,
 * norms folded, inputs rotated, and an inner pipeline over the copy holding copies of p's batches. */
qc_status qcp__rotated_build(qc_pipeline *p, const qc_recipe *rc, qcp_rotated *r, const char *function);

/* f32 rotations' orthogonality check (qc_model_rotate_*'s tolerance; suits f32 matrices). */
#define QCP_ROTATION_TOLERANCE 1e-4

/* A status of a fold or rotation that only says this node or layer does not qualify. */
int qcp__does_not_qualify(qc_status st);

/* R [n, n] of the kind drawn with `stream` into `r` (its data malloc'd; the caller frees it); *drawn = 0
 * (and nothing allocated) when the kind has no matrix of that size. */
qc_status qcp__draw_rotation(qc_ctx *ctx, qc_rotation_kind kind, int64_t n, uint64_t stream, qc_tensor *r, int *drawn,
                             const char *function);

/* Rotates the heads of every attention block of r->model (the recipe's rotate_heads; draws from ctx) and
 * marks their V and O layers in r->heads_rotated; QC_ERR_UNSUPPORTED naming 'rotate_heads' when no block
 * could be rotated. */
qc_status qcp__rotate_heads(const qc_pipeline *p, qcp_rotated *r, qc_ctx *ctx, const char *function);

/* Frees what `r` holds and zeroes it; a zeroed struct is accepted. */
void qcp__rotated_free(qcp_rotated *r);

/* rc for r's inner pipeline into `out`: no rotation or packing, the online rotations kept in float (*keep,
 * malloc'd, holds the keep_float list; the caller frees it after the run). */
qc_status qcp__rotated_recipe(const qcp_rotated *r, const qc_recipe *rc, qc_recipe *out, const char ***keep,
                              const char *function);

/* Packs each quantized layer of `qmodel` for rc->ethosu_config into `reports`; `reasons` (p->num_layers
 * entries, zeroed) receives the owned reasons of layers that were not packed. */
qc_status qcp__ethosu_reports(const qc_pipeline *p, const qc_recipe *rc, const qc_model *qmodel, qc_layer_report *reports,
                              char **reasons, const char *function);

/* Frees `count` reasons and the array. */
void qcp__free_reasons(char **reasons, size_t count);

#endif
