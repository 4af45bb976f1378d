"""Counter-based random numbers (Philox4x64-10): the same draws for any thread count."""
import numpy as np

from ._errors import DTypeError, check
from ._ffi import ffi, lib
from ._tensor import view
from .core import default_context


def random_bits(n, seed, stream=0, offset=0):
    """Words offset..offset+n-1 of stream `stream` under `seed`, as uint64."""
    out = np.empty(n, np.uint64)
    check(lib.qc_random_bits(ffi.from_buffer("uint64_t[]", out), n, seed, stream, offset))
    return out


def _fill(function, shape, dtype, stream, ctx):
    out = np.empty(shape, dtype)
    if out.dtype not in (np.float32, np.float64):
        raise DTypeError("qcore.random_%s: argument 'dtype' must be float32 or float64, got %s"
                         % ("normal" if function == lib.qc_random_normal else "uniform", out.dtype))
    t, _keep = view(out)
    (ctx or default_context()).call(function, t, stream)
    return out


def random_normal(shape, dtype=np.float32, stream=0, ctx=None):
    """Standard normal draws from the context's seed (see qc_random_normal)."""
    return _fill(lib.qc_random_normal, shape, dtype, stream, ctx)


def random_uniform(shape, dtype=np.float32, stream=0, ctx=None):
    """Uniform draws in [0, 1) from the context's seed (see qc_random_uniform)."""
    return _fill(lib.qc_random_uniform, shape, dtype, stream, ctx)
