/*
 * qc_core.h: status codes, the thread-local last error, version, the context (threads, seed, kernel
 * choice, log and progress callbacks) and CPU feature detection.
 *
 * Conventions for the whole API (see README.md, "ABI policy"):
 *  - every function that can fail returns a qc_status; QC_OK is 0;
 *  - on failure, qc_last_error() returns a message naming the argument and the problem;
 *  - outputs come first in the parameter list;
 *  - pointer ownership is written next to each pointer parameter: "borrowed" (the library keeps no
 *    reference after returning), "owned" (the caller frees it with the matching qc_*_free function);
 *  - the library never prints, exits or aborts.
 */
#ifndef QC_CORE_H
#define QC_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "qcore/qc_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(QC_BUILDING_LIBRARY) && defined(__GNUC__)
#define QC_API __attribute__((visibility("default")))
#else
#define QC_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Status codes. The numeric values are part of the ABI and never change; new codes are appended.
 */
typedef enum qc_status {
    QC_OK = 0,
    QC_ERR_INVALID_ARG = 1,  /* an argument is NULL, out of its documented range, or inconsistent */
    QC_ERR_SHAPE = 2,        /* tensor shapes or ranks do not fit together */
    QC_ERR_DTYPE = 3,        /* a tensor has a data type the function does not accept */
    QC_ERR_LAYOUT = 4,       /* a tensor is not laid out as required (e.g. not C-contiguous) */
    QC_ERR_NUMERIC = 5,      /* NaN or Inf in an input, or a result that is mathematically undefined */
    QC_ERR_OUT_OF_MEMORY = 6,
    QC_ERR_IO = 7,           /* a file could not be read or written */
    QC_ERR_FORMAT = 8,       /* malformed input data (files, streams) */
    QC_ERR_UNSUPPORTED = 9,  /* valid request this build, CPU or version cannot serve */
    QC_ERR_VERSION = 10,     /* an options struct carries a version this library does not know */
    QC_ERR_SINGULAR = 11,    /* a factorization failed even after the documented retries */
    QC_ERR_OVERFLOW = 12,    /* a size or an integer result does not fit its type */
    QC_ERR_CANCELLED = 13,   /* the progress callback asked to stop */
    QC_ERR_INTERNAL = 14     /* a bug in qcore: please report it with qc_last_error()'s text */
} qc_status;

/* A short constant name for a status ("QC_ERR_SHAPE"); "unknown status" for values outside the enum.
 * Never NULL; the string is static. */
QC_API const char *qc_status_string(qc_status status);

/* The message of the last failure in the calling thread, such as
 * "qc_quantize: argument 'scale': expected 64 elements (dims[0] of x), got 63".
 * Never NULL (empty when nothing failed since qc_clear_error); owned by the library and valid until
 * the next qcore call in the same thread. */
QC_API const char *qc_last_error(void);

/* Empties the calling thread's last-error message. */
QC_API void qc_clear_error(void);

/* Records `message` (borrowed, copied; truncated to 511 bytes) as the calling thread's last error and
 * returns `status`. For libraries and callbacks built on qcore that report through its conventions
 * (libqcore-onnx does). Since 1.1. */
QC_API qc_status qc_error_set(qc_status status, const char *message);

/* ---------------------------------------------------------------------------------------------
 * Version: the library's run-time version; compare with the QC_VERSION_* macros of the headers
 * the caller was compiled against. Number = major*10000 + minor*100 + patch. */
QC_API unsigned qc_version_number(void);
/* "major.minor.patch"; static. */
QC_API const char *qc_version_string(void);

/* ---------------------------------------------------------------------------------------------
 * CPU features and kernel architectures.
 */
typedef enum qc_cpu_feature {
    QC_CPU_AVX2 = 1 << 0,             /* AVX2 + FMA, with the OS saving YMM state */
    QC_CPU_AVX512F = 1 << 1,          /* each AVX-512 bit also requires OS support of ZMM/opmask state */
    QC_CPU_AVX512BW = 1 << 2,
    QC_CPU_AVX512VL = 1 << 3,
    QC_CPU_AVX512VPOPCNTDQ = 1 << 4,
    QC_CPU_AVX512VNNI = 1 << 5,
    QC_CPU_POPCNT = 1 << 6,
    QC_CPU_AVXVNNI = 1 << 7           /* VEX-encoded VNNI (AVX-VNNI) */
} qc_cpu_feature;

/* Bitwise OR of the qc_cpu_feature values this CPU and OS support. Detected once. */
QC_API unsigned qc_cpu_features(void);

/* Kernel sets. Each optimized set needs the features listed; QC_ARCH_AUTO picks the best available. */
typedef enum qc_arch {
    QC_ARCH_AUTO = 0,
    QC_ARCH_REF = 1,    /* portable C: the reference every other kernel is tested against */
    QC_ARCH_AVX2 = 2,   /* needs QC_CPU_AVX2 */
    QC_ARCH_AVX512 = 3  /* needs QC_CPU_AVX512F|BW|VL (and VPOPCNTDQ, VNNI where a kernel uses them) */
} qc_arch;

/* "auto", "ref", "avx2", "avx512"; "unknown" otherwise. Static. */
QC_API const char *qc_arch_string(qc_arch arch);

/* The best kernel set this machine supports (never QC_ARCH_AUTO). */
QC_API qc_arch qc_arch_best(void);

/* 1 when this build contains the kernels of `arch` and this machine can run them, else 0. */
QC_API int qc_arch_supported(qc_arch arch);

/* ---------------------------------------------------------------------------------------------
 * Context: everything a call may need beside its data. A context is not thread-safe: use one per
 * thread that calls into qcore (the library's own threads are managed inside each call).
 */
typedef struct qc_ctx qc_ctx;

/* Integer-valued context settings, set with qc_ctx_set_param and read with qc_ctx_get_param. */
typedef enum qc_ctx_param {
    QC_CTX_THREADS = 1,   /* worker threads per call; 0 = one per available core (default 0) */
    QC_CTX_SEED = 2,      /* seed of every random draw (default 0); results never depend on THREADS */
    QC_CTX_ARCH = 3,      /* a qc_arch value; default: QC_ARCH environment variable, else AUTO */
    QC_CTX_LOG_LEVEL = 4  /* a qc_log_level: messages above it are not passed to the log callback */
} qc_ctx_param;

typedef struct qc_bounds {
    int64_t lower;
    int64_t upper;
} qc_bounds;

/* The accepted range of a setting. QC_ERR_INVALID_ARG for an unknown `param`. */
QC_API qc_status qc_ctx_param_bounds(qc_bounds *out, qc_ctx_param param);

/* Creates a context with default settings. Reads the QC_ARCH environment variable ("ref", "avx2",
 * "avx512", "auto"); an unknown value gives QC_ERR_INVALID_ARG, and a kernel set this machine
 * cannot run gives QC_ERR_UNSUPPORTED. `out` receives a context owned by the caller (qc_ctx_free). */
QC_API qc_status qc_ctx_create(qc_ctx **out);

/* Frees a context; NULL is accepted. */
QC_API void qc_ctx_free(qc_ctx *ctx);

/* Sets a setting; QC_ERR_INVALID_ARG when `value` is outside qc_ctx_param_bounds, and
 * QC_ERR_UNSUPPORTED for QC_CTX_ARCH values this machine cannot run. */
QC_API qc_status qc_ctx_set_param(qc_ctx *ctx, qc_ctx_param param, int64_t value);

/* Reads a setting. For QC_CTX_THREADS the value set is returned (0 means "all cores");
 * for QC_CTX_ARCH, AUTO is resolved to the kernel set actually used. */
QC_API qc_status qc_ctx_get_param(const qc_ctx *ctx, qc_ctx_param param, int64_t *value);

typedef enum qc_log_level {
    QC_LOG_ERROR = 0,
    QC_LOG_WARNING = 1,
    QC_LOG_INFO = 2,
    QC_LOG_DEBUG = 3
} qc_log_level;

/* Receives log messages; `message` is borrowed for the duration of the call. */
typedef void (*qc_log_fn)(void *user, qc_log_level level, const char *message);

/* Receives progress of long work: `stage` names the step (borrowed for the call), `done` of `total`
 * units are finished. Called from the thread that made the qcore call. Return 0 to go on, non-zero to
 * stop: the running call then returns QC_ERR_CANCELLED and leaves its outputs untouched. */
typedef int (*qc_progress_fn)(void *user, const char *stage, uint64_t done, uint64_t total);

/* Installs (or with fn = NULL removes) the log callback. `user` is borrowed: it must outlive ctx. */
QC_API qc_status qc_ctx_set_log(qc_ctx *ctx, qc_log_fn fn, void *user);

/* Installs (or with fn = NULL removes) the progress callback. `user` is borrowed. */
QC_API qc_status qc_ctx_set_progress(qc_ctx *ctx, qc_progress_fn fn, void *user);

/* Passes `done` of `total` for `stage` (borrowed) to the context's progress callback, if any. Returns
 * QC_OK, or QC_ERR_CANCELLED (with a message naming `stage`) when the callback asks to stop. For code
 * built on qcore that reports its own long work through the same callback. Since 1.1. */
QC_API qc_status qc_ctx_report_progress(const qc_ctx *ctx, const char *stage, uint64_t done, uint64_t total);

/* Passes `message` (borrowed) to the context's log callback when one is set and `level` is enabled.
 * Since 1.1. */
QC_API qc_status qc_ctx_log(const qc_ctx *ctx, qc_log_level level, const char *message);

#ifdef __cplusplus
}
#endif

#endif /* QC_CORE_H */
