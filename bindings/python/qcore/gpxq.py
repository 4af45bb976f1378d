"""OPTQ (GPTQ) and GPFQ on numpy arrays: streaming input statistics and the two layer-wise quantizers.
See include/qcore/qc_gpxq.h for the exact rules.

    stats = qcore.GpxqStats("optq", w.shape[1])
    for x in batches:                     # float32 or float64 [batch, in]
        stats.add(x)
    layer = qcore.optq(w, stats, qcore.QuantOptions(bits=4, granularity="channel", axis=0))
    layer.q, layer.scale, layer.dequantized, layer.damp_ratio   # stats.hessian() gives the same integers

With AXE, every row of layer.centered() fits a 16-bit accumulator for all unsigned 8-bit inputs:

    opts = qcore.GpxqOptions(accumulator_bits=16, input_bits=8, input_signed=False, tile_size=0)
    layer = qcore.optq(w, stats.hessian(), grid, opts)      # or qcore.gpfq(...), qcore.rtn(w, grid, opts)
"""
from dataclasses import dataclass

import numpy as np

from ._errors import check
from ._ffi import ffi, lib
from ._tensor import as_array, view
from .core import default_context

_METHODS = {"optq": lib.QC_GPXQ_OPTQ, "gpfq": lib.QC_GPXQ_GPFQ}


@dataclass
class GpxqOptions:
    """damp_ratio: delta = damp_ratio * mean(diag H) is added to H's diagonal; act_order: process inputs by
    decreasing diag H; max_retries: OPTQ factorizations retried with 10x the damping; block_size: inputs
    per lazy (BLAS-3) update.

    AXE (accumulator-aware; off while accumulator_bits is 0): accumulator_bits P (2..64), the width every
    produced row must fit for all inputs of input_bits N with input_signed; tile_size T (0 for the whole
    row) inputs per inner accumulator; soft_threshold: apply the soft global (L1) constraint as well as
    the strict one."""

    damp_ratio: float = 0.01
    act_order: bool = False
    max_retries: int = 6
    block_size: int = 128
    accumulator_bits: int = 0
    input_bits: int = 8
    input_signed: bool = False
    tile_size: int = 0
    soft_threshold: bool = True

    def to_c(self):
        o = ffi.new("qc_gpxq_options *")
        check(lib.qc_gpxq_options_init(o, lib.QC_GPXQ_OPTIONS_VERSION))
        o.damp_ratio, o.act_order = self.damp_ratio, int(bool(self.act_order))
        o.max_retries, o.block_size = self.max_retries, self.block_size
        o.accumulator_bits, o.input_bits, o.input_signed = self.accumulator_bits, self.input_bits, int(bool(self.input_signed))
        o.tile_size, o.soft_threshold = self.tile_size, int(bool(self.soft_threshold))
        return o


@dataclass
class AxeStats:
    """How hard AXE worked on a layer (qc_gpxq_result's version-2 fields; all 0 when AXE is off). A slot is
    one (row, tile) pair, one inner accumulator.

    slots: rows x tiles constrained; soft_slots: slots whose soft L1 threshold was active (lambda > 0);
    soft_changed: weights whose level the soft threshold changed; soft_removed: the L1 mass it removed, in
    grid levels; clamped: weights whose level the strict constraint's limits changed; clamped_slots: slots
    with at least one; min_slack: the smallest room A - worst case left in any slot (accumulator units,
    A = 2^(P-1) - 1); bits_needed: the width the worst slot's final levels need."""

    slots: int = 0
    soft_slots: int = 0
    soft_changed: int = 0
    soft_removed: float = 0.0
    clamped: int = 0
    clamped_slots: int = 0
    min_slack: int = 0
    bits_needed: int = 0

    @classmethod
    def from_c(cls, result):
        return cls(result.axe_slots, result.axe_soft_slots, result.axe_soft_changed, result.axe_soft_removed,
                   result.axe_clamped, result.axe_clamped_slots, result.axe_min_slack, result.axe_bits_needed)


@dataclass
class QuantizedLayer:
    """A quantized weight: integer levels q (int32, zero point included), scale (float32) and zero_point
    (int32) in qc_quant's parameter layout, dequantized weights (float32), and what the call did: the damping
    ratio and value used, failed factorizations retried, the inputs found dead (zero diagonal), and AXE's
    statistics (AxeStats)."""

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    dequantized: np.ndarray
    damp_ratio: float
    damp: float
    retries: int
    dead_inputs: int
    group_size: int = 0
    axe: AxeStats = None

    def centered(self):
        """The levels minus their zero points (int32, w's shape): the integers an accumulator multiplies,
        as qcore.verify_accumulator and qcore.simulate_accumulator take them."""
        z = self.zero_point.astype(np.int64)
        if z.ndim == 1:
            z = z[:, None]
        elif z.ndim == 2:
            z = np.repeat(z, self.group_size, axis=1)[:, :self.q.shape[1]]
        return (self.q - z).astype(np.int32)


class GpxqStats:
    """Input statistics of one layer, accumulated batch by batch in double (O(dim^2) memory).

    method 'optq': H = (2/n) sum x x^T. method 'gpfq': H = sum xq xq^T and G = sum xq x^T, with xq the
    inputs as the quantized model sees them and x as the float model does."""

    def __init__(self, method, dim):
        if method not in _METHODS:
            raise ValueError("qcore.GpxqStats: argument 'method' must be 'optq' or 'gpfq', got %r" % (method,))
        handle = ffi.new("qc_gpxq_stats **")
        check(lib.qc_gpxq_stats_create(handle, _METHODS[method], dim), "qcore.GpxqStats")
        self._stats = ffi.gc(handle[0], lib.qc_gpxq_stats_free)
        self.method, self.dim = method, dim

    def add(self, x, x_quant=None, ctx=None):
        """Adds a batch x [batch, dim] (float32 or float64); GPFQ also needs x_quant, same shape."""
        function = "qcore.GpxqStats.add"
        xt, _xb = view(as_array(x, "x", [np.float32, np.float64], function))
        qt, _qb = (ffi.NULL, None) if x_quant is None else view(
            as_array(x_quant, "x_quant", [np.float32, np.float64], function))
        (ctx or default_context()).call(lib.qc_gpxq_stats_add, self._stats, xt, qt)

    @property
    def count(self):
        """Samples added so far."""
        out = ffi.new("int64_t *")
        check(lib.qc_gpxq_stats_count(out, self._stats))
        return out[0]

    def hessian(self):
        """H as a float64 [dim, dim] array."""
        return self._matrix(lib.qc_gpxq_stats_hessian, "qcore.GpxqStats.hessian")

    def cross(self):
        """G = sum xq x^T as a float64 [dim, dim] array (GPFQ statistics only)."""
        return self._matrix(lib.qc_gpxq_stats_cross, "qcore.GpxqStats.cross")

    def _matrix(self, c_function, function):
        out = np.empty((self.dim, self.dim), np.float64)
        t, _b = view(out)
        check(c_function(t, self._stats), function)
        return out


def optq(w, h, grid, opts=None, ctx=None, out=None):
    """OPTQ of the float32 weight w [out, in] with H (float64 [in, in], or the GpxqStats("optq", in) that
    accumulate it) under the QuantOptions `grid` (per channel: axis 0; per group: axis 1). Returns a
    QuantizedLayer. From GpxqStats, H is read from the statistics without a copy (qc_optq_from_stats: the
    same integers as with stats.hessian(), less memory); the statistics are unchanged.
    out: None, or (q, dequantized), C-contiguous writable int32 and float32 arrays of w's shape that receive
    the levels and dequantized weights (and are the returned layer's), e.g. to reuse them layer after layer;
    they are written only when the call succeeds. The same holds for gpfq and rtn."""
    function = "qcore.optq"
    if isinstance(h, GpxqStats):
        return _run(lib.qc_optq_from_stats, function, w, [], grid, opts, ctx, handles=[h._stats], out=out)
    matrices = [(as_array(h, "h", [np.float64], function))]
    return _run(lib.qc_optq, function, w, matrices, grid, opts, ctx, out=out)


def gpfq(w, h, g, grid, opts=None, ctx=None, out=None):
    """GPFQ of the float32 weight w [out, in] with H = sum xq xq^T and G = sum xq x^T (float64 [in, in])."""
    function = "qcore.gpfq"
    matrices = [as_array(h, "h", [np.float64], function), as_array(g, "g", [np.float64], function)]
    return _run(lib.qc_gpfq, function, w, matrices, grid, opts, ctx, out=out)


def rtn(w, grid, opts=None, ctx=None, out=None):
    """Round-to-nearest of the float32 weight w [out, in] with parameters chosen from w; with
    opts.accumulator_bits set, AXE's constrained rounding (RTN+AXE). Returns a QuantizedLayer."""
    return _run(lib.qc_rtn, "qcore.rtn", w, [], grid, opts, ctx, out=out)


def _outputs(out, shape, function):
    """(q, dequantized): new arrays, or the caller's `out` once checked (the library checks the shapes)."""
    if out is None:
        return np.empty(shape, np.int32), np.empty(shape, np.float32)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError("%s: argument 'out' must be None or a (q, dequantized) tuple" % function)
    return (as_array(out[0], "out[0] (q)", [np.int32], function, writable=True),
            as_array(out[1], "out[1] (dequantized)", [np.float32], function, writable=True))


def _run(c_function, function, w, matrices, grid, opts, ctx, handles=(), out=None):
    w = as_array(w, "w", [np.float32], function)
    c_grid = grid.to_c(function)
    c_opts = (opts or GpxqOptions()).to_c()
    shape = grid.param_shape(w.shape, function)
    q, dequantized = _outputs(out, w.shape, function)
    scale, zero_point = np.empty(shape, np.float32), np.empty(shape, np.int32)
    result = ffi.new("qc_gpxq_result *", [lib.QC_GPXQ_RESULT_VERSION])
    views = [view(a) for a in (q, scale, zero_point, dequantized, w, *matrices)]
    (ctx or default_context()).call(c_function, *[v for v, _ in views[:4]], result, *[v for v, _ in views[4:]],
                                    *handles, c_grid, c_opts)
    group_size = min(grid.group_size, w.shape[1]) if grid.granularity == "group" else 0
    return QuantizedLayer(q, scale, zero_point, dequantized, result.damp_ratio, result.damp, result.retries,
                          result.dead_inputs, group_size, AxeStats.from_c(result))


__all__ = ["AxeStats", "GpxqOptions", "GpxqStats", "QuantizedLayer", "gpfq", "optq", "rtn"]
