"""The uniform quantizer on numpy arrays: grids, scale selection, quantize / dequantize / fake-quantize
with ONNX QuantizeLinear semantics, 4-bit packing. See include/qcore/qc_quant.h for the exact rules."""
from dataclasses import dataclass

import numpy as np

from ._errors import ShapeError, check
from ._ffi import ffi, lib
from ._tensor import as_array, as_scalar_or_array, check_rank, view
from .core import default_context

_GRANULARITY = {"tensor": lib.QC_GRAN_TENSOR, "channel": lib.QC_GRAN_CHANNEL, "group": lib.QC_GRAN_GROUP}
_SCALE_METHOD = {"minmax": lib.QC_SCALE_MINMAX, "percentile": lib.QC_SCALE_PERCENTILE, "mse": lib.QC_SCALE_MSE}
_INTEGER_DTYPES = (np.int8, np.uint8, np.int16, np.int32)
_SHAPE_ONLY = ffi.new("char[1]")


@dataclass
class QuantOptions:
    """A uniform grid and how its scales are chosen.

    bits: 2..16; signed: signed or unsigned levels; symmetric: fixed zero point (else fitted);
    narrow_range: drop the most negative signed level (or 0 when unsigned);
    granularity: 'tensor', 'channel' (one scale per index of `axis`) or 'group' (blocks of `group_size`
    along `axis`); scale_method: 'minmax', 'percentile' (uses `percentile`) or 'mse' (searches
    `mse_steps` clipping ratios from `mse_min_ratio` to 1).
    """

    bits: int = 8
    signed: bool = True
    symmetric: bool = True
    narrow_range: bool = False
    granularity: str = "tensor"
    axis: int = 0
    group_size: int = 128
    scale_method: str = "minmax"
    percentile: float = 99.99
    mse_steps: int = 100
    mse_min_ratio: float = 0.2

    def to_c(self, function="qcore.QuantOptions"):
        """The qc_quant_options struct (cffi owned), checked; errors are reported as `function`'s."""
        if self.granularity not in _GRANULARITY:
            raise ValueError("%s: argument 'opts': granularity must be one of %s, got %r"
                             % (function, ", ".join(_GRANULARITY), self.granularity))
        if self.scale_method not in _SCALE_METHOD:
            raise ValueError("%s: argument 'opts': scale_method must be one of %s, got %r"
                             % (function, ", ".join(_SCALE_METHOD), self.scale_method))
        o = ffi.new("qc_quant_options *")
        check(lib.qc_quant_options_init(o, lib.QC_QUANT_OPTIONS_VERSION))
        o.bits, o.is_signed, o.symmetric, o.narrow_range = self.bits, self.signed, self.symmetric, self.narrow_range
        o.granularity, o.axis, o.group_size = _GRANULARITY[self.granularity], self.axis, self.group_size
        o.scale_method, o.percentile = _SCALE_METHOD[self.scale_method], self.percentile
        o.mse_steps, o.mse_min_ratio = self.mse_steps, self.mse_min_ratio
        check(lib.qc_quant_options_check(o, ffi.NULL), function)
        return o

    def qrange(self):
        """(qmin, qmax) of the grid."""
        lo, hi = ffi.new("int32_t *"), ffi.new("int32_t *")
        check(lib.qc_quant_range(lo, hi, self.to_c("qcore.QuantOptions.qrange")))
        return lo[0], hi[0]

    def param_shape(self, shape, function="qcore.QuantOptions.param_shape"):
        """The shape of the scale and zero-point arrays for an input of `shape`."""
        check_rank(len(shape), "x", function)
        probe = np.empty(0, np.float32)
        t, _ = view(probe, shape=shape)
        t.data = _SHAPE_ONLY  # the call reads the shape only, but a view with elements needs data
        ndim, dims = ffi.new("int32_t *"), ffi.new("int64_t[%d]" % lib.QC_MAX_DIMS)
        check(lib.qc_quant_param_shape(ndim, dims, t, self.to_c(function)), function)
        return tuple(dims[i] for i in range(ndim[0]))

    def storage_dtype(self):
        """The narrowest numpy dtype holding the grid: int8, uint8, int16 or int32."""
        lo, hi = self.qrange()
        for dtype in _INTEGER_DTYPES:
            info = np.iinfo(dtype)
            if info.min <= lo and hi <= info.max:
                return np.dtype(dtype)
        raise AssertionError("unreachable: int32 holds every grid")


@dataclass
class PackedInt4:
    """4-bit integers packed as ONNX stores them: two per byte, low nibble first."""

    data: np.ndarray   # uint8, ceil(prod(shape) / 2) bytes
    shape: tuple
    signed: bool

    def unpack(self):
        """The values as an int8 (signed) or uint8 array of `shape`."""
        return unpack_int4(self.data, int(np.prod(self.shape, dtype=np.int64)), self.signed).reshape(self.shape)


def _ctx(ctx):
    return ctx if ctx is not None else default_context()


def choose_params(x, opts, ctx=None):
    """Chooses (scale float32, zero_point int32) for `x` (float32) under `opts`."""
    function = "qcore.choose_params"
    x = as_array(x, "x", [np.float32], function)
    c_opts = opts.to_c(function)
    shape = opts.param_shape(x.shape, function)
    scale, zero_point = np.empty(shape, np.float32), np.empty(shape, np.int32)
    xt, _xb = view(x)
    st, _sb = view(scale)
    zt, _zb = view(zero_point)
    _ctx(ctx).call(lib.qc_quant_choose_params, st, zt, xt, c_opts)
    return scale, zero_point


def quantize(x, scale, zero_point, opts, dtype=None, ctx=None):
    """Quantizes float32 `x`. dtype: a numpy integer dtype (default: the grid's storage_dtype()), or
    'int4'/'uint4' for a PackedInt4 result (grids of at most 4 bits). zero_point may be None for a
    symmetric grid."""
    function = "qcore.quantize"
    x = as_array(x, "x", [np.float32], function)
    c_opts = opts.to_c(function)
    if dtype in ("int4", "uint4"):
        packed = np.empty((x.size + 1) // 2, np.uint8)
        qt, _qb = view(packed, lib.QC_DT_INT4 if dtype == "int4" else lib.QC_DT_UINT4, x.shape)
        result = PackedInt4(packed, x.shape, dtype == "int4")
    else:
        result = np.empty(x.shape, opts.storage_dtype() if dtype is None else np.dtype(dtype))
        as_array(result, "dtype", _INTEGER_DTYPES, function)
        qt, _qb = view(result)
    xt, _xb = view(x)
    _call(lib.qc_quantize, ctx, qt, xt, scale, zero_point, c_opts, function)
    return result


def dequantize(q, scale, zero_point, opts, ctx=None):
    """Dequantizes `q` (an integer array or a PackedInt4) to float32."""
    function = "qcore.dequantize"
    if isinstance(q, PackedInt4):
        data = as_array(q.data, "q.data", [np.uint8], function)
        check_rank(len(q.shape), "q", function)
        count = int(np.prod(q.shape, dtype=np.int64))
        if data.size < (count + 1) // 2:
            raise ShapeError("%s: argument 'q': %d bytes cannot hold the %d values of shape %s"
                             % (function, data.size, count, tuple(q.shape)))
        qt, _qb = view(data, lib.QC_DT_INT4 if q.signed else lib.QC_DT_UINT4, q.shape)
        shape = q.shape
    else:
        q = as_array(q, "q", _INTEGER_DTYPES, function)
        qt, _qb = view(q)
        shape = q.shape
    c_opts = opts.to_c(function)
    x = np.empty(shape, np.float32)
    xt, _xb = view(x)
    _call(lib.qc_dequantize, ctx, xt, qt, scale, zero_point, c_opts, function)
    return x


def fake_quantize(x, scale, zero_point, opts, out=None, ctx=None):
    """dequantize(quantize(x)) in one pass; `out` (float32, x's shape) may be `x` itself."""
    function = "qcore.fake_quantize"
    x = as_array(x, "x", [np.float32], function)
    c_opts = opts.to_c(function)
    if out is None:
        out = np.empty_like(x)
    elif as_array(out, "out", [np.float32], function, writable=True).shape != x.shape:
        raise ShapeError("%s: arguments 'out' %s and 'x' %s must have the same shape"
                         % (function, list(out.shape), list(x.shape)))
    yt, _yb = view(out)
    xt, _xb = view(x)
    _call(lib.qc_fake_quantize, ctx, yt, xt, scale, zero_point, c_opts, function)
    return out


def _call(c_function, ctx, out_view, in_view, scale, zero_point, c_opts, function):
    """c_function(ctx, out, in, scale, zero_point, opts) with the parameter arrays checked."""
    st, _sb = view(as_scalar_or_array(scale, "scale", np.float32, function))
    if zero_point is None:
        zt, _zb = ffi.NULL, None
    else:
        zt, _zb = view(as_scalar_or_array(zero_point, "zero_point", np.int32, function))
    _ctx(ctx).call(c_function, out_view, in_view, st, zt, c_opts)


def pack_int4(values, signed=True):
    """Packs int8 values (in [-8, 7], or [0, 15] unsigned) two per byte, low nibble first."""
    values = as_array(values, "values", [np.int8], "qcore.pack_int4")
    out = np.empty((values.size + 1) // 2, np.uint8)
    check(lib.qc_pack_int4(ffi.from_buffer("uint8_t[]", out), ffi.from_buffer("int8_t[]", values), values.size,
                           int(bool(signed))))
    return out


def unpack_int4(packed, n, signed=True):
    """Unpacks n 4-bit values from ceil(n/2) bytes into int8 (signed) or uint8."""
    function = "qcore.unpack_int4"
    packed = as_array(packed, "packed", [np.uint8], function)
    if packed.size < (n + 1) // 2:
        raise ShapeError("%s: argument 'packed': %d bytes cannot hold %d values" % (function, packed.size, n))
    out = np.empty(n, np.int8)
    check(lib.qc_unpack_int4(ffi.from_buffer("int8_t[]", out), ffi.from_buffer("uint8_t[]", packed), n,
                             int(bool(signed))))
    return out if signed else out.view(np.uint8)


def _statistic(c_function, function, *arrays):
    views = [view(as_array(a, name, [np.float32, np.float64], function)) for a, name in arrays]
    out = ffi.new("double *")
    check(c_function(out, *[v for v, _ in views]))
    return out[0]


def sqnr_db(ref, approx):
    """10 log10(sum ref^2 / sum (ref - approx)^2); inf when equal."""
    return _statistic(lib.qc_stat_sqnr_db, "qcore.sqnr_db", (ref, "ref"), (approx, "approx"))


def relative_mse(ref, approx):
    """sum (ref - approx)^2 / sum ref^2."""
    return _statistic(lib.qc_stat_relative_mse, "qcore.relative_mse", (ref, "ref"), (approx, "approx"))


def kurtosis(x):
    """Pearson kurtosis (3 for a Gaussian)."""
    return _statistic(lib.qc_stat_kurtosis, "qcore.kurtosis", (x, "x"))


def max_over_rms(x):
    """max |x| / sqrt(mean x^2)."""
    return _statistic(lib.qc_stat_max_over_rms, "qcore.max_over_rms", (x, "x"))
