/* The qcore command-line tool: shared declarations of its commands and helpers. */
#ifndef QCORE_CLI_H
#define QCORE_CLI_H

#include <getopt.h>
#include <stddef.h>

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

/* Prints "qcore <command>: <message>" to stderr; returns `code`. */
int fail(const char *command, int code, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* The exit code for a failed library call (file and format errors are input errors). */
int exit_code_of(qc_status status);

/* A context with `threads` (0: all cores) and, when stderr is a terminal and not `quiet`, a progress bar. */
qc_status make_context(qc_ctx **ctx, int threads, int quiet);

/* Named arrays for a model's graph inputs, read from NAME=FILE arguments (.npy, IDX or TensorProto files),
 * converted to each input's element type and reshaped to its declared sample shape. Samples run along
 * axis 0 of every array. */
typedef struct feed_set {
    size_t count;
    char **names;
    qc_array **arrays;
    qc_tensor *tensors;      /* converted and reshaped, owned data */
    int64_t samples;
} feed_set;

/* Reads `specs` (NAME=FILE) for `model`, keeping the first `max_samples` samples (0: all); `scale`
 * multiplies float inputs (e.g. 1/255 for raw pixels). On failure prints the reason and returns its exit
 * code. */
int feeds_read(feed_set *out, const char *command, const qc_model *model, char **specs, size_t count, double scale,
               int64_t max_samples);
void feeds_free(feed_set *f);

/* Views of samples [first, first + n) of every feed. */
void feeds_slice(const feed_set *f, int64_t first, int64_t n, qc_tensor *views);

/* The most --data feeds a command takes. */
#define QC_CLI_MAX_FEEDS 16

/* Applies option c (getopt_long's value) with its argument (NULL for a flag) to a command's state. */
typedef int (*option_fn)(void *state, int c, const char *arg);

/* Runs getopt_long over argv (short options -o, -q, -h): --help prints `help` and returns -1, an unknown
 * option is a usage error, every other goes to apply(state, ...); then exactly one argument must be left,
 * the model file, put in *model. Returns EXIT_DONE, -1 or the exit code of a wrong command line. */
int parse_command_line(const char *command, int argc, char **argv, const struct option *options, const char *help,
                       option_fn apply, void *state, const char **model);

/* EXIT_USAGE, with the reason, unless a command that needs calibration data has its -o and --data. */
int check_calibration_command(const char *command, const char *output, size_t num_data);

/* Parses `text` (the value of `flag`) as an integer in lo..hi into *out; else prints why and returns
 * EXIT_USAGE. */
int parse_integer(const char *command, const char *text, long lo, long hi, const char *flag, long *out);

/* Parses --input-scale's value (a finite number above 0) into *out; else prints why and returns EXIT_USAGE. */
int parse_scale(const char *command, const char *text, double *out);

/* Appends a --data INPUT=FILE spec (borrowed) to specs[*count] (room for QC_CLI_MAX_FEEDS); EXIT_USAGE past it. */
int add_feed_spec(const char *command, char **specs, size_t *count, const char *spec);

/* A model with its calibration data: the feeds, and a pipeline holding them as batches. */
typedef struct calibration {
    qc_model *model;
    feed_set feeds;
    qc_pipeline *pipeline;
} calibration;

/* Loads `model`, reads the feeds (`specs`, at most QC_CLI_MAX_FEEDS, scaled by `scale`) and adds their first
 * `samples` samples to a new pipeline (using `ctx`), `batch` samples per batch. On failure prints the
 * reason and returns its exit code; calibration_close frees what was made either way. */
int calibration_open(calibration *c, const char *command, const char *model, char **specs, size_t count, double scale,
                     long samples, long batch, qc_ctx *ctx);
void calibration_close(calibration *c);

#endif
