/* Internal: the context's fields, and the helpers calls use to log, report progress and size their
 * thread teams. */
#ifndef QC_CORE_CTX_H
#define QC_CORE_CTX_H

#include "kernels/dispatch.h"
#include "qcore/qc_core.h"

struct qc_ctx {
    int threads;          /* as set; 0 = all cores */
    uint64_t seed;
    qc_arch arch;         /* resolved: never QC_ARCH_AUTO */
    const qc_kernels *kernels;
    qc_log_level log_level;
    qc_log_fn log;
    void *log_user;
    qc_progress_fn progress;
    void *progress_user;
};

/* The number of threads a parallel region of `ctx` uses (>= 1). */
int qc__ctx_threads(const qc_ctx *ctx);

/* qc__ctx_threads, or 1 when `work` is below `serial_below`: entering a parallel region costs from
 * microseconds up to tens of them when the team's threads sleep, more than a small job takes on one core.
 * Each kernel states its bound in its own unit of work. */
int qc__ctx_threads_for(const qc_ctx *ctx, double work, double serial_below);

/* Passes a formatted message to the log callback when one is set and `level` is enabled. */
void qc__log(const qc_ctx *ctx, qc_log_level level, const char *format, ...) __attribute__((format(printf, 3, 4)));

/* Reports progress; returns QC_ERR_CANCELLED (with a message naming `function`) when the callback asks
 * to stop. */
qc_status qc__progress(const qc_ctx *ctx, const char *function, const char *stage, uint64_t done, uint64_t total);

#endif
