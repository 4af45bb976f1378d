/* The qcore command-line tool: shared declarations of its commands and helpers. */
#ifndef QCORE_CLI_H
#define QCORE_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include <qcore/qcore.h>
#include <qcore/qc_model.h>

/* Exit codes, the same for every command. */
enum {
    EXIT_DONE = 0,       /* success */
    EXIT_FAILED = 1,     /* the work failed (the library's message says why) */
    EXIT_USAGE = 2,      /* the command line is wrong */
    EXIT_INPUT = 3       /* an input file is missing, unreadable or malformed */
};

typedef int (*command_fn)(int argc, char **argv);

int cmd_inspect(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_lq(int argc, char **argv);
int cmd_pack_ethosu(int argc, char **argv);
int cmd_search(int argc, char **argv);

/* Prints "qcore <command>: <message>" to stderr; returns `code`. */
int fail(const char *command, int code, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* The index in first..last of `names` spelled `text` (a flag's value), or -1. */
int name_index(const char *const *names, int first, int last, const char *text);

/* Parses a decimal integer in lo..hi given to `flag`; on failure prints why and returns EXIT_USAGE. */
int parse_integer(const char *command, const char *text, long lo, long hi, const char *flag, long *out);

/* The exit code for a failed library call (file and format errors are input errors). */
int exit_code_of(qc_status status);

/* A context with `threads` (0: all cores) and, when stderr is a terminal and not `quiet`, a progress bar. */
qc_status make_context(qc_ctx **ctx, int threads, int quiet);

/* Named arrays for a model's graph inputs, read from NAME=FILE arguments (.npy, IDX or TensorProto files),
 * converted to each input's element type and reshaped to its declared sample shape. Samples run along
 * axis 0 of every array, except where the model fixes an input's whole shape and the array has exactly
 * that shape (an LSTM state, a sample rate): that array is fed whole with every batch. */
typedef struct feed_set {
    size_t count;
    char **names;
    qc_array **arrays;
    qc_tensor *tensors;      /* converted and reshaped, owned data */
    unsigned char *whole;    /* per feed: 1 when fed whole with every batch */
    int64_t samples;         /* of the split feeds (1 when every feed is whole) */
} feed_set;

/* Reads `specs` (NAME=FILE) for `model`, keeping the first `max_samples` samples (0: all); `scale`
 * multiplies float inputs (e.g. 1/255 for raw pixels). On failure prints the reason and returns its exit
 * code. */
int feeds_read(feed_set *out, const char *command, const qc_model *model, char **specs, size_t count, double scale,
               int64_t max_samples);
void feeds_free(feed_set *f);

/* Views of samples [first, first + n) of every feed (the whole array of a whole feed). */
void feeds_slice(const feed_set *f, int64_t first, int64_t n, qc_tensor *views);

/* Applies option c (getopt_long's value) with its argument (NULL for a flag) to a command's state. */
typedef int (*option_fn)(void *state, int c, const char *arg);

/* Runs getopt_long over argv (short options -o, -q, -h): --help prints `help` and returns -1, an unknown
 * option is a usage error, every other goes to apply(state, ...); then exactly one argument must be left,
 * the model file, put in *model. Returns EXIT_DONE, -1 or the exit code of a wrong command line. */
int parse_command_line(const char *command, int argc, char **argv, const struct option *options, const char *help,
                       option_fn apply, void *state, const char **model);

/* Parses an Ethos-U configuration name (qc_ethosu_config_string) among QC_ETHOSU_U55_32 .. `last` into *out;
 * else prints the names and returns EXIT_USAGE. */
int parse_ethosu_config(const char *command, const char *flag, const char *text, int last, int32_t *out);

/* The recipe options of qcore quantize and qcore search, and their recipe files. */
enum { MAX_RECIPE_LAYERS = 4096 };

typedef struct recipe_options {
    qc_recipe recipe;
    const char *keep[MAX_RECIPE_LAYERS];          /* --keep-float (borrowed from argv or a recipe file) */
    size_t num_keep;
    const char *unrotated[MAX_RECIPE_LAYERS];     /* --unrotated (borrowed likewise) */
    size_t num_unrotated;
    qc_layer_format formats[MAX_RECIPE_LAYERS];   /* --layer-bits (names owned) */
    size_t num_formats;
    qc_layer_format lq[MAX_RECIPE_LAYERS];        /* --lq-layer (names owned) */
    size_t num_lq;
    int files_read, files_seen;                   /* --recipe files read first, and --recipe options parsed */
} recipe_options;

/* getopt_long entries of the options both commands take (recipe_option applies them); quantize adds
 * RECIPE_WIDTH_OPTIONS, the widths a search chooses itself. */
#define RECIPE_LONG_OPTIONS                                                                                           \
    {"method", required_argument, 0, 'm'}, {"group", required_argument, 0, 'g'}, {"asymmetric", no_argument, 0, 'A'},  \
        {"act-bits", required_argument, 0, 'a'}, {"accumulator-bits", required_argument, 0, 'P'},                    \
        {"tile", required_argument, 0, 'T'}, {"keep-float", required_argument, 0, 'k'},                               \
        {"one-pass", no_argument, 0, '1'}, {"recipe", required_argument, 0, 'R'}
#define RECIPE_WIDTH_OPTIONS                                                                                          \
    {"weight-bits", required_argument, 0, 'w'}, {"layer-bits", required_argument, 0, 'L'},                            \
        {"lq-layer", required_argument, 0, 'K'}
/* Rotations before calibration (recipe version 3), which quantize and search share. */
#define RECIPE_ROTATION_OPTIONS                                                                                       \
    {"rotation", required_argument, 0, 'X'}, {"rotation-seed", required_argument, 0, 'V'},                            \
        {"rotate-heads", no_argument, 0, 'H'}, {"unrotated", required_argument, 0, 'U'}
#define RECIPE_ROTATION_HELP                                                                                          \
    "      --rotation KIND        none (default), haar or hadamard: fold norms and rotate every MatMul/Gemm layer's\n"  \
    "                             input before calibration (the float function is unchanged; online rotations stay\n" \
    "                             float MatMuls); the report says which layers were rotated\n"                        \
    "      --rotation-seed N      the rotations' seed (default 0)\n"                                                   \
    "      --rotate-heads         also rotate each attention block's heads (V and O projections, found from the\n"    \
    "                             graph) with the same kind and seed; needs --rotation\n"                             \
    "      --unrotated WEIGHT     leave that layer's input unrotated (the others reading it are rotated); needs\n"    \
    "                             --rotation; repeatable\n"
/* qcore quantize's alone (recipe version 3): Ethos-U figures in the report (search has its own flag). */
#define RECIPE_QUANTIZE_OPTIONS RECIPE_ROTATION_OPTIONS, {"ethosu-config", required_argument, 0, 'u'}
#define RECIPE_QUANTIZE_HELP                                                                                          \
    RECIPE_ROTATION_HELP                                                                                              \
    "      --ethosu-config NAME   pack each quantized layer for that Ethos-U (names as qcore pack-ethosu --config)\n"  \
    "                             and report its encoded weight and bias/scale bytes; layers it cannot take say why\n"

/* Their help lines (--one-pass, --weight-bits and --layer-bits are each command's own). */
#define RECIPE_HELP                                                                                                   \
    "      --method M             rtn, optq or gpfq (default optq)\n"                                                 \
    "      --group G              per-group scales, G inputs per group (default: one scale per output channel)\n"     \
    "      --asymmetric           fitted weight zero points (default symmetric)\n"                                    \
    "      --act-bits N           bits of every layer input, 2..16, or 0 for float (default 8)\n"                     \
    "      --accumulator-bits P   AXE: guarantee that no dot product overflows a P-bit accumulator\n"                 \
    "      --tile T               AXE: accumulate T inputs per inner register (default: the whole row)\n"             \
    "      --keep-float WEIGHT    keep that layer (named by its weight, see qcore inspect) in float; repeatable\n"    \
    "      --recipe FILE          options from FILE, one 'name = value' per line (# comments); flags override\n"

/* qc_recipe_init's recipe and no names; on failure prints why and returns EXIT_FAILED. */
int recipe_options_init(recipe_options *r, const char *command);
/* Applies recipe option c (getopt_long's value) with its argument; a value of no recipe option is a usage
 * error. --recipe itself does nothing here (recipe_files_read reads the files first). */
int recipe_option(recipe_options *r, const char *command, int c, const char *arg);
/* Points the recipe at the --keep-float, --unrotated, --layer-bits and --lq-layer lists (after the last option). */
void recipe_options_finish(recipe_options *r);
void recipe_options_free(recipe_options *r);
/* "rtn", "optq" or "gpfq", as --method takes it. */
const char *recipe_method_name(qc_layer_method m);
/* "none", "haar" or "hadamard", as --rotation takes it. */
const char *recipe_rotation_name(qc_rotation_kind k);

/* Reads every --recipe FILE (or --recipe=FILE) of argv in order, each line going to apply(state, ...) as the
 * long option of that name in `options` would (a value holds no spaces); so that flags, parsed afterwards,
 * override it. recipe_option then refuses a --recipe this did not see (an abbreviation). */
int recipe_files_read(recipe_options *r, const char *command, int argc, char **argv, const struct option *options,
                      option_fn apply, void *state);

/* `r` as a recipe file recipe_files_read gives back (method, act-bits, grid, AXE, one-pass, rotation, rotate-heads,
 * unrotated, ethosu-config, keep-float, layer-bits and lq-layer lines; weight-bits only without layer formats or LQ layers). EXIT_FAILED when a weight name cannot be
 * written (a space or '#'), before anything is written. */
int recipe_write(FILE *out, const char *command, const qc_recipe *r);

/* EXIT_USAGE, with the reason, unless a command that needs calibration data has its -o and --data. */
int check_calibration_command(const char *command, const char *output, size_t num_data);

/* Parses `flag`'s value, a finite number above 0, into *out; else prints why and returns EXIT_USAGE. */
int parse_positive(const char *command, const char *flag, const char *text, double *out);

/* Parses --input-scale's value (a finite number above 0) into *out; else prints why and returns EXIT_USAGE. */
int parse_scale(const char *command, const char *text, double *out);

/* Appends a --data INPUT=FILE spec (borrowed) to specs[*count] (room for MAX_FEEDS); EXIT_USAGE past it. */
int add_feed_spec(const char *command, char **specs, size_t *count, const char *spec);

/* A model with its calibration data: the feeds, and a pipeline holding them as batches. */
typedef struct calibration {
    qc_model *model;
    feed_set feeds;
    qc_pipeline *pipeline;
} calibration;

/* Loads `model`, reads the feeds (`specs`, at most MAX_FEEDS, scaled by `scale`) and adds their first
 * `samples` samples to a new pipeline (using `ctx`), `batch` samples per batch. On failure prints the
 * reason and returns its exit code; calibration_close frees what was made either way. */
int calibration_open(calibration *c, const char *command, const char *model, char **specs, size_t count, double scale,
                     long samples, long batch, qc_ctx *ctx);
void calibration_close(calibration *c);
/* Graph inputs a command reads at most (one --data each). */
enum { MAX_FEEDS = 16 };

/* How a model's output is compared with a reference's. */
typedef enum metric {
    METRIC_COSINE = 0,       /* mean over samples of the cosine between the two rows */
    METRIC_MSE = 1,          /* mean squared difference over all elements */
    METRIC_AGREEMENT = 2     /* fraction of samples deciding alike: top-1 class, or a single value's side of 0.5 */
} metric;

/* Sums over the samples scored so far. */
typedef struct scores {
    const char *output;      /* the output scored (borrowed from the model) */
    int64_t samples, elements, correct, agree;
    double cosine_sum, squared_sum, max_diff;
} scores;

/* What score_models runs: `model` on the feeds, compared with `reference` (may be NULL) and scored against
 * integer `labels` (u8, i32 or i64, one per sample; may be NULL). */
typedef struct score_job {
    const qc_model *model, *reference;
    const qc_tensor *labels;
    const char *output;      /* the graph output scored; NULL: the first */
    int64_t samples, batch;  /* samples scored (0: all) in runs of `batch` */
} score_job;

/* Parses "cosine", "mse" or "agreement"; on failure prints why and returns EXIT_USAGE. */
int metric_parse(const char *command, const char *text, metric *out);
const char *metric_name(metric m);
double metric_value(const scores *s, metric m);

/* Loads integer class labels from `path` (u8, i32 or i64; at least `samples` of them). On failure prints
 * why and returns its exit code. */
int labels_read(const char *command, const char *path, int64_t samples, qc_array **out);
/* Label i of what labels_read loaded. */
int64_t label_at(const qc_tensor *labels, int64_t i);

/* Runs the job batch by batch, adding to `s` (zeroed by the caller). On failure prints why and returns its
 * exit code. */
int score_models(scores *s, const char *command, qc_ctx *ctx, const score_job *job, const feed_set *f);

/* The comparison with the reference as JSON members ("output", every metric, "metric" and its "fidelity"). */
void print_fidelity(FILE *out, const scores *s, metric m);

/* `s` as a JSON string literal (quotes and control characters escaped). */
void json_string(FILE *out, const char *s);

/* An output file that appears whole or not at all: written to a temporary file beside `path`
 * (PATH.tmp-XXXXXX, so that the rename stays on one file system), then renamed over it. */
typedef struct atomic_file {
    FILE *f;                 /* write here */
    const char *path;
    char *temp;
} atomic_file;

/* Creates the temporary file; on failure prints why and returns EXIT_FAILED. */
int atomic_open(atomic_file *a, const char *command, const char *path);

/* Flushes, syncs and closes the temporary file; on failure prints why, removes it and returns EXIT_FAILED.
 * The file then waits for atomic_commit or atomic_discard. */
int atomic_close(atomic_file *a, const char *command);

/* Renames a closed temporary file over its path; on failure prints why and removes it. */
int atomic_commit(atomic_file *a, const char *command);

/* Removes the temporary file (open or closed); a zeroed or committed atomic_file is left alone. */
void atomic_discard(atomic_file *a);

#endif
