"""The library's version, CPU features, and the context every call runs in."""
import logging
import sys
import threading

from ._errors import CancelledError, check
from ._ffi import ffi, lib

_LOG = logging.getLogger("qcore")
_LOG_LEVELS = {lib.QC_LOG_ERROR: logging.ERROR, lib.QC_LOG_WARNING: logging.WARNING,
               lib.QC_LOG_INFO: logging.INFO, lib.QC_LOG_DEBUG: logging.DEBUG}
_ARCHS = {"auto": lib.QC_ARCH_AUTO, "ref": lib.QC_ARCH_REF, "avx2": lib.QC_ARCH_AVX2, "avx512": lib.QC_ARCH_AVX512}
_FEATURES = {"avx2": lib.QC_CPU_AVX2, "avx512f": lib.QC_CPU_AVX512F, "avx512bw": lib.QC_CPU_AVX512BW,
             "avx512vl": lib.QC_CPU_AVX512VL, "avx512vpopcntdq": lib.QC_CPU_AVX512VPOPCNTDQ,
             "avx512vnni": lib.QC_CPU_AVX512VNNI, "popcnt": lib.QC_CPU_POPCNT, "avxvnni": lib.QC_CPU_AVXVNNI}


def library_version():
    """The loaded libqcore's version string, e.g. '1.0.0'."""
    return ffi.string(lib.qc_version_string()).decode()


def cpu_features():
    """The set of CPU features (with OS support) qcore detected, e.g. {'avx2', 'avx512f', ...}."""
    mask = lib.qc_cpu_features()
    return {name for name, bit in _FEATURES.items() if mask & bit}


def best_arch():
    """The fastest kernel set this machine runs: 'ref', 'avx2' or 'avx512'."""
    return ffi.string(lib.qc_arch_string(lib.qc_arch_best())).decode()


def arch_supported(arch):
    """True when this build and machine can run kernel set `arch`."""
    return bool(lib.qc_arch_supported(_arch_value(arch, "qcore.arch_supported")))


def _arch_value(arch, function):
    if arch not in _ARCHS:
        raise ValueError("%s: argument 'arch' must be one of %s, got %r" % (function, ", ".join(_ARCHS), arch))
    return _ARCHS[arch]


class ProgressBar:
    """A progress callback that draws one text bar per stage on a stream (stderr by default)."""

    def __init__(self, stream=None, width=30):
        self.stream = stream or sys.stderr
        self.width = width
        self._stage = None

    def __call__(self, stage, done, total):
        filled = self.width if total == 0 else int(self.width * done / total)
        end = "\n" if done >= total else ""
        self.stream.write("\r%-24s [%s%s] %d/%d%s" % (stage, "#" * filled, "." * (self.width - filled), done, total, end))
        self.stream.flush()


class Context:
    """Settings for qcore calls: threads (0 = all cores), seed, kernel set, and callbacks.

    progress: callable(stage, done, total) -> None or a true value to cancel (the call then raises
    CancelledError); log: callable(level, message), by default the 'qcore' logging logger.
    A Context is not thread-safe: use one per Python thread.
    """

    def __init__(self, threads=0, seed=0, arch=None, progress=None, log=None):
        handle = ffi.new("qc_ctx **")
        check(lib.qc_ctx_create(handle))
        self._ctx = ffi.gc(handle[0], lib.qc_ctx_free)
        self._pending = None
        self.threads = threads
        self.seed = seed
        if arch is not None:
            self.arch = arch
        self._log_cb = ffi.callback("void(void *, qc_log_level, const char *)", self._on_log)
        check(lib.qc_ctx_set_log(self._ctx, self._log_cb, ffi.NULL))
        self._log = log
        self._progress = None
        self._progress_cb = ffi.callback("int(void *, const char *, uint64_t, uint64_t)", self._on_progress,
                                         onerror=self._on_callback_error)
        self.progress = progress

    def _get(self, param):
        value = ffi.new("int64_t *")
        check(lib.qc_ctx_get_param(self._ctx, param, value))
        return value[0]

    @property
    def threads(self):
        return self._get(lib.QC_CTX_THREADS)

    @threads.setter
    def threads(self, value):
        check(lib.qc_ctx_set_param(self._ctx, lib.QC_CTX_THREADS, int(value)))

    @property
    def seed(self):
        return self._get(lib.QC_CTX_SEED) % (1 << 64)

    @seed.setter
    def seed(self, value):
        value = int(value) % (1 << 64)
        check(lib.qc_ctx_set_param(self._ctx, lib.QC_CTX_SEED, value - (1 << 64) if value >= 1 << 63 else value))

    @property
    def arch(self):
        """The kernel set in use ('ref', 'avx2', 'avx512'); set 'auto' to pick the best."""
        return ffi.string(lib.qc_arch_string(self._get(lib.QC_CTX_ARCH))).decode()

    @arch.setter
    def arch(self, value):
        check(lib.qc_ctx_set_param(self._ctx, lib.QC_CTX_ARCH, _arch_value(value, "qcore.Context")))

    @property
    def progress(self):
        return self._progress

    @progress.setter
    def progress(self, callback):
        self._progress = callback
        check(lib.qc_ctx_set_progress(self._ctx, self._progress_cb if callback else ffi.NULL, ffi.NULL))

    def _on_log(self, user, level, message):
        text = ffi.string(message).decode("utf-8", "replace")
        if self._log is not None:
            self._log(int(level), text)
        else:
            _LOG.log(_LOG_LEVELS.get(level, logging.INFO), text)

    def _on_progress(self, user, stage, done, total):
        return 1 if self._progress(ffi.string(stage).decode(), int(done), int(total)) else 0

    def _on_callback_error(self, exc_type, exc_value, traceback):
        self._pending = exc_value
        return 1  # stop the running call; call() re-raises the callback's exception

    def call(self, function, *args):
        """Runs lib.function(ctx, *args) and raises on failure, re-raising a callback's exception."""
        self._pending = None
        status = function(self._ctx, *args)
        if status == lib.QC_ERR_CANCELLED and self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        check(status)


_default = threading.local()


def default_context():
    """The calling thread's default Context (all cores, seed 0, best kernels)."""
    if getattr(_default, "ctx", None) is None:
        _default.ctx = Context()
    return _default.ctx


__all__ = ["Context", "ProgressBar", "arch_supported", "best_arch", "cpu_features", "default_context",
           "library_version", "CancelledError"]
