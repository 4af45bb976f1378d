/* Internal: the Ethos-U weight-stream ("mlw") format and the pieces of its encoder and decoder. The
 * public side is qc_ethosu.h; the format is described there. */
#ifndef QC_ETHOSU_MLW_H
#define QC_ETHOSU_MLW_H

#include <stddef.h>
#include <stdint.h>

#include "qcore/qc_ethosu.h"

#define MLW_MAX_SLICE 32767    /* SLICELEN is 15 bits and holds n - 1 */
#define MLW_ZDIV_NONE 6        /* ZDIV value of a slice without zero runs */
#define MLW_ZDIV_EOS 7         /* ZDIV value that ends a stream */
#define MLW_WDIV_RAW 7         /* WDIV value of an uncompressed slice */
#define MLW_PALETTE_MAX 32
#define MLW_NPALVAL 512        /* palvals: (|w| << 1) | sign for |w| <= 255 */
#define MLW_NO_RAW 100         /* "uncompressed width" of a section that may not be uncompressed */

/* palval of a weight: magnitude in the upper bits, sign in bit 0. */
static inline int mlw_palval(int w)
{
    return w < 0 ? (-w << 1) | 1 : w << 1;
}

/* The palette and coding mode of one section (a run of weights sharing a palette). */
typedef struct mlw_palette {
    int16_t lut[MLW_PALETTE_MAX];  /* palvals, most frequent first */
    int16_t index_of[511];         /* weight + 255 -> the index coded in the weight stream */
    int size;                      /* palette entries (0, or 2..32) */
    int bits;                      /* PALBITS: width of a palette entry, or of a raw palval without palette */
    int zero_runs;                 /* zeros are coded as runs beside the weight stream */
    int only_palette;              /* every non-run weight is in the palette */
    int direct_offset;             /* unused palvals counted up from 0, skipped by direct indices */
    int only_zeros;                /* the section is all zeros (with zero runs) */
} mlw_palette;

/* Growable LSB-first bit writer. */
typedef struct mlw_writer {
    uint8_t *buf;
    size_t cap;      /* bytes allocated */
    size_t bytes;    /* whole bytes written */
    uint64_t acc;    /* pending bits, LSB first */
    int nacc;        /* number of pending bits (< 32 between calls) */
    int failed;      /* an allocation failed; later writes are dropped */
} mlw_writer;

int mlw_writer_init(mlw_writer *w, size_t cap);
/* Moves 32 pending bits to the buffer. */
void mlw_spill(mlw_writer *w);

/* Appends the low `len` (0..32) bits of `value`. */
static inline void mlw_put(mlw_writer *w, int len, uint32_t value)
{
    if (len <= 0) return;
    uint64_t mask = len >= 32 ? 0xffffffffu : ((1u << len) - 1u);
    w->acc |= ((uint64_t)value & mask) << w->nacc;
    w->nacc += len;
    if (w->nacc >= 32) mlw_spill(w);
}
/* Bits written so far. */
static inline size_t mlw_bitpos(const mlw_writer *w)
{
    return w->bytes * 8 + (size_t)w->nacc;
}
/* Writes the pending bits (the last byte zero-filled above them). */
void mlw_flush(mlw_writer *w);

/* Section starts (palette restarts) as the reference encoder chooses them. `out` receives a malloc'ed
 * array of positions, the first 0; returns their number, or 0 when out of memory. */
size_t mlw_palette_sections(size_t **out, const int16_t *w, size_t n);

/* The palette and mode of the section w[0..n). */
void mlw_palette_make(mlw_palette *p, const int16_t *w, size_t n);

/* Width of an uncompressed index: the palette's index width when every weight is in it, the widest
 * palval without palette, else uncompressed slices are not allowed. */
int mlw_palette_raw_width(const mlw_palette *p);

/* GRC parameter search over `n` values (weight indices, or zero runs when `zero_runs`): the chosen
 * configuration of each run of values and the run's exclusive end. `free_ends` (borrowed, ascending)
 * are positions where a parameter change costs nothing. Returns the number of runs, or 0 when out of
 * memory. `cfg` and `end` must hold n entries; n < 2^31. */
size_t mlw_grc_search(uint8_t *cfg, uint32_t *end, const int *values, size_t n, int zero_runs, int raw_bits,
                      const uint32_t *free_ends, size_t n_free);

/* GRC configuration tables: (truncated << 4) | divisor, 0x20 = uncompressed. */
extern const uint8_t mlw_weight_cfg[13];
#define MLW_N_WEIGHT_CFG 13
#define MLW_N_ZRUN_CFG 4

/* A slice's parameters. */
typedef struct slice {
    const int *wv;    /* weight indices */
    const int *zv;    /* zero runs (NULL without zero runs) */
    size_t n;         /* weights */
    size_t nz;        /* zero runs: n + 1 in a section's first slice, else n */
    int new_palette;
    int wdiv, wtrunc, wraw;   /* wdiv: divisor, or the raw width when wraw */
    int zdiv;
} slice;

/* Writes one slice: header (and palette when new), then its chunks. */
void mlw_write_slice(mlw_writer *out, const slice *sl, const mlw_palette *p);

/* Ends a stream: ZDIV = 7, one bits to the byte boundary, 0xFF to a multiple of 16 bytes. */
void mlw_write_end(mlw_writer *out);

/* Ends a stream whose sections were written (`failed`: a section ran out of memory): the end marker, then
 * the buffer handed to *out, or freed with QC_ERR_OUT_OF_MEMORY for `function` on any failure. */
qc_status mlw_stream_finish(mlw_writer *wr, int failed, uint8_t **out, size_t *out_size, size_t n, const char *function);

/* The palette of a section from its value frequencies (weight + 255), with zero runs decided by the
 * caller; `at_least_half`: the palette is used when it covers at least half of the weights (Regor),
 * else more than half (the legacy encoder). */
void mlw_palette_from(mlw_palette *p, const int32_t freq[511], int zero_runs, int at_least_half);

/* Regor's encoder (mlw_regor.c), errors reported as `function`'s. */
qc_status qc__ethosu_encode_regor_checked(uint8_t **out, size_t *out_size, const int16_t *w, size_t n,
                                          const char *function);

/* Encodes one section into `out`. Returns 0, or -1 when out of memory. */
int mlw_encode_section(mlw_writer *out, const int16_t *w, size_t n, const mlw_palette *p);

/* QC_ERR_INVALID_ARG naming argument `name` and the first element outside -255..255, or an empty or
 * oversized input; reported as `function`'s. */
qc_status qc__ethosu_check_weights(const int16_t *w, size_t n, const char *name, const char *function);

/* qc_ethosu_encode's work, errors reported as `function`'s. */
qc_status qc__ethosu_encode_checked(uint8_t **out, size_t *out_size, const int16_t *w, size_t n,
                                    const char *function);

/* QC_ERR_SHAPE unless every extent of the OHWI `shape` is 1..2^31 - 1, QC_ERR_OVERFLOW beyond 2^31 - 1
 * weights; reported as `function`'s. */
qc_status qc__ethosu_check_shape(const int64_t shape[4], const char *function);

/* qc_ethosu_reorder_encode's work on checked pointers, errors reported as `function`'s. */
qc_status qc__ethosu_reorder_encode_checked(uint8_t **out, size_t *out_size, size_t *reordered_count,
                                            const int16_t *ohwi, const int64_t shape[4],
                                            const qc_ethosu_reorder_options *opts, const char *function);

/* A packed layer (pack.c): its growing stream and range table. */
struct qc_ethosu_layer {
    uint8_t *data;
    size_t size, cap;
    qc_ethosu_range *ranges;
    size_t nranges;
};

/* Appends n bytes (zeros when `bytes` is NULL) to the layer's stream; -1 when out of memory. */
int qc__ethosu_layer_append(qc_ethosu_layer *l, const uint8_t *bytes, size_t n);

/* U85 layer packing (pack85.c): the per-channel checks for the accumulator of `ifm_bits`, and the
 * layer's bricks (opts checked, version 2 fields filled). */
qc_status qc__ethosu85_check_channels(const int64_t *bias, const int64_t *scale, const int32_t *shift, int64_t n,
                                      int ifm_bits, const char *function);
qc_status qc__ethosu85_pack(qc_ethosu_layer *l, const int16_t *ohwi, const int64_t s[4], const int64_t *bias,
                            const int64_t *scale, const int32_t *shift, const qc_ethosu_layer_options *o,
                            const char *function);

/* Whether `config` is an Ethos-U85 configuration (arch.c). */
int qc__ethosu_is_u85(qc_ethosu_config config);

/* Ethos-U85 (reorder85.c, fwd.c): checks and work of the public functions, errors as `function`'s. */
qc_status qc__ethosu85_check_options(const qc_ethosu85_reorder_options *o, const char *function);
qc_status qc__ethosu85_reorder_checked(int16_t **out, size_t *count, const int16_t *ohwi, const int64_t shape[4],
                                       const qc_ethosu85_reorder_options *o, const char *function);
qc_status qc__ethosu85_fwd_encode_checked(uint8_t **out, size_t *out_size, const int16_t *w, size_t n,
                                          const char *function);

#endif
