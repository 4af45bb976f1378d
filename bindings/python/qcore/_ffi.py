"""Loads libqcore and libqcore-onnx with cffi in ABI mode, declared from the C headers (the generated
_cdef.h)."""
import os

import cffi

REQUIRED_MAJOR = 1
_HERE = os.path.dirname(os.path.abspath(__file__))


def _read_declarations():
    path = os.environ.get("QCORE_CDEF") or os.path.join(_HERE, "_cdef.h")
    with open(path, encoding="utf-8") as f:
        return f.read()


def _library_candidates(stem, variable):
    """The environment variable first (a build tree), then the copy bundled by pip, then the system's."""
    if os.environ.get(variable):
        return [os.environ[variable]]
    prefix = "%s.so" % stem
    bundled = [os.path.join(_HERE, name) for name in sorted(os.listdir(_HERE)) if name.startswith(prefix)]
    return bundled + ["%s.so.%d" % (stem, REQUIRED_MAJOR)]


def _open(ffi, stem, variable):
    errors = []
    for candidate in _library_candidates(stem, variable):
        try:
            return ffi.dlopen(candidate)
        except OSError as e:
            errors.append("%s: %s" % (candidate, e))
    raise ImportError("qcore: cannot load %s.so.%d (%s)" % (stem, REQUIRED_MAJOR, "; ".join(errors)))


# libgomp reads its wait policy once, when it loads (with libqcore, just below). Its default lets idle
# workers spin between parallel regions; on small machines they then take the cores the next op needs
# (MiniLM at batch 1 on 2 cores: 121 ms spinning, 55 ms passive). A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ffi = cffi.FFI()
ffi.cdef(_read_declarations())
lib = _open(ffi, "libqcore", "QCORE_LIBRARY")
# libqcore-onnx needs libqcore.so.1, which is now loaded: the dynamic linker matches it by SONAME.
onnx_lib = _open(ffi, "libqcore-onnx", "QCORE_ONNX_LIBRARY")

_major = lib.qc_version_number() // 10000
if _major != REQUIRED_MAJOR:
    raise ImportError(
        "qcore: the loaded libqcore is version %s, but this package needs major version %d"
        % (ffi.string(lib.qc_version_string()).decode(), REQUIRED_MAJOR)
    )
