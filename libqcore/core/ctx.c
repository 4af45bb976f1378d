/* The context: settings every call may need, kept out of process-wide state. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/cpu.h"
#include "core/ctx.h"
#include "core/error.h"

enum { MAX_THREADS = 1024 };

qc_status qc_ctx_param_bounds(qc_bounds *out, qc_ctx_param param)
{
    QC_CHECK_NOT_NULL(out);
    switch (param) {
    case QC_CTX_THREADS: *out = (qc_bounds){0, MAX_THREADS}; return QC_OK;
    case QC_CTX_SEED: *out = (qc_bounds){INT64_MIN, INT64_MAX}; return QC_OK;
    case QC_CTX_ARCH: *out = (qc_bounds){QC_ARCH_AUTO, QC_ARCH_AVX512}; return QC_OK;
    case QC_CTX_LOG_LEVEL: *out = (qc_bounds){QC_LOG_ERROR, QC_LOG_DEBUG}; return QC_OK;
    }
    return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'param': unknown context parameter %d", (int)param);
}

static qc_status select_arch(qc_ctx *ctx, qc_arch arch, const char *function)
{
    if (!qc_arch_supported(arch))
        return QC_FAIL_IN(function, QC_ERR_UNSUPPORTED,
                          "kernel set '%s' cannot run here (not built, or this CPU/OS lacks its features; best is '%s')",
                          qc_arch_string(arch), qc_arch_string(qc_arch_best()));
    ctx->arch = arch == QC_ARCH_AUTO ? qc_arch_best() : arch;
    ctx->kernels = qc__kernels_for(ctx->arch);
    return QC_OK;
}

static qc_status arch_from_environment(qc_arch *out)
{
    const char *name = getenv("QC_ARCH");
    *out = QC_ARCH_AUTO;
    if (name == NULL || name[0] == '\0') return QC_OK;
    if (!qc__arch_from_string(out, name))
        return QC_FAIL_IN("qc_ctx_create", QC_ERR_INVALID_ARG,
                          "environment variable QC_ARCH='%.40s' is not one of auto, ref, avx2, avx512", name);
    return QC_OK;
}

qc_status qc_ctx_create(qc_ctx **out)
{
    QC_CHECK_NOT_NULL(out);
    *out = NULL;
    qc_arch arch;
    QC_TRY(arch_from_environment(&arch));
    qc_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) return QC_FAIL(QC_ERR_OUT_OF_MEMORY, "no memory for a context");
    ctx->log_level = QC_LOG_INFO;
    qc_status st = select_arch(ctx, arch, "qc_ctx_create");
    if (st != QC_OK) {
        free(ctx);
        return st;
    }
    *out = ctx;
    return QC_OK;
}

void qc_ctx_free(qc_ctx *ctx)
{
    free(ctx);
}

qc_status qc_ctx_set_param(qc_ctx *ctx, qc_ctx_param param, int64_t value)
{
    QC_CHECK_NOT_NULL(ctx);
    qc_bounds b;
    if (qc_ctx_param_bounds(&b, param) != QC_OK) /* reported under this function's name */
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'param': unknown context parameter %d", (int)param);
    if (value < b.lower || value > b.upper)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'value': %lld is outside [%lld, %lld] for parameter %d",
                       (long long)value, (long long)b.lower, (long long)b.upper, (int)param);
    switch (param) {
    case QC_CTX_THREADS: ctx->threads = (int)value; break;
    case QC_CTX_SEED: ctx->seed = (uint64_t)value; break;
    case QC_CTX_ARCH: return select_arch(ctx, (qc_arch)value, __func__);
    case QC_CTX_LOG_LEVEL: ctx->log_level = (qc_log_level)value; break;
    }
    return QC_OK;
}

qc_status qc_ctx_get_param(const qc_ctx *ctx, qc_ctx_param param, int64_t *value)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(value);
    switch (param) {
    case QC_CTX_THREADS: *value = ctx->threads; return QC_OK;
    case QC_CTX_SEED: *value = (int64_t)ctx->seed; return QC_OK;
    case QC_CTX_ARCH: *value = ctx->arch; return QC_OK;
    case QC_CTX_LOG_LEVEL: *value = ctx->log_level; return QC_OK;
    }
    return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'param': unknown context parameter %d", (int)param);
}

qc_status qc_ctx_set_log(qc_ctx *ctx, qc_log_fn fn, void *user)
{
    QC_CHECK_NOT_NULL(ctx);
    ctx->log = fn;
    ctx->log_user = user;
    return QC_OK;
}

qc_status qc_ctx_set_progress(qc_ctx *ctx, qc_progress_fn fn, void *user)
{
    QC_CHECK_NOT_NULL(ctx);
    ctx->progress = fn;
    ctx->progress_user = user;
    return QC_OK;
}

int qc__ctx_threads_for(const qc_ctx *ctx, double work, double serial_below)
{
    return work < serial_below ? 1 : qc__ctx_threads(ctx);
}

int qc__ctx_threads(const qc_ctx *ctx)
{
#ifdef _OPENMP
    if (ctx->threads > 0) return ctx->threads;
    int cores = omp_get_num_procs();
    return cores > 0 ? cores : 1;
#else
    (void)ctx;
    return 1;
#endif
}

void qc__log(const qc_ctx *ctx, qc_log_level level, const char *format, ...)
{
    if (ctx->log == NULL || level > ctx->log_level) return;
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    ctx->log(ctx->log_user, level, message);
}

qc_status qc__progress(const qc_ctx *ctx, const char *function, const char *stage, uint64_t done, uint64_t total)
{
    if (ctx->progress == NULL || ctx->progress(ctx->progress_user, stage, done, total) == 0) return QC_OK;
    return QC_FAIL_IN(function, QC_ERR_CANCELLED, "stopped by the progress callback during '%s' (%llu of %llu)",
                      stage, (unsigned long long)done, (unsigned long long)total);
}

qc_status qc_ctx_report_progress(const qc_ctx *ctx, const char *stage, uint64_t done, uint64_t total)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(stage);
    return qc__progress(ctx, __func__, stage, done, total);
}

qc_status qc_ctx_log(const qc_ctx *ctx, qc_log_level level, const char *message)
{
    QC_CHECK_NOT_NULL(ctx);
    QC_CHECK_NOT_NULL(message);
    if (level < QC_LOG_ERROR || level > QC_LOG_DEBUG)
        return QC_FAIL(QC_ERR_INVALID_ARG, "argument 'level': %d is not a qc_log_level", (int)level);
    qc__log(ctx, level, "%s", message);
    return QC_OK;
}
