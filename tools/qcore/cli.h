/* The qcore command-line tool: shared declarations of its commands and helpers. */
#ifndef QCORE_CLI_H
#define QCORE_CLI_H

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
int cmd_pack_ethosu(int argc, char **argv);

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
