"""The accumulator calculus on numpy arrays: accumulator widths from bounds, the static verifier of a
quantized layer against a P-bit (tiled) accumulator, and the simulation of P-bit registers on real integer
inputs. See include/qcore/qc_accum.h for the exact rules.

    lo, hi = qcore.input_range(8, signed=False)               # (0, 255)
    report = qcore.verify_accumulator(layer.centered(), 16, (lo, hi), tile=64)
    report.passed, report.first_row, report.required_bits
    sim = qcore.simulate_accumulator(x_levels, layer.centered(), 16, (lo, hi))
    sim.wrap_events, sim.max_abs_partial_sum
"""
from dataclasses import dataclass

import numpy as np

from ._errors import check
from ._ffi import ffi, lib
from ._tensor import as_array, view
from .core import default_context


def input_range(bits, signed):
    """The integer range (min, max) of `bits`-bit inputs: [-2^(N-1), 2^(N-1) - 1] or [0, 2^N - 1]."""
    lo, hi = ffi.new("int64_t *"), ffi.new("int64_t *")
    check(lib.qc_accum_input_range(lo, hi, bits, int(bool(signed))), "qcore.input_range")
    return lo[0], hi[0]


def accumulator_bits_a2q(l1_norm, input_bits, input_signed):
    """A2Q's bound: the smallest P with l1_norm * 2^(N - signed) <= 2^(P-1) - 1."""
    out = ffi.new("int32_t *")
    check(lib.qc_accum_bits_a2q(out, int(l1_norm), input_bits, int(bool(input_signed))), "qcore.accumulator_bits_a2q")
    return out[0]


def accumulator_bits_datatype(k, weight_bits, input_bits, input_signed):
    """The data-type bound: A2Q's at the largest L1 norm of k M-bit weights, k * 2^(M-1)."""
    out = ffi.new("int32_t *")
    check(lib.qc_accum_bits_datatype(out, int(k), weight_bits, input_bits, int(bool(input_signed))),
          "qcore.accumulator_bits_datatype")
    return out[0]


def accumulator_bits_needed(q, input_range, tile=0):
    """The width each (row, tile) of the centred integer weights q (int32 [rows, K]) needs for inputs in
    input_range = (min, max): int32 [rows, ceil(K / T)]."""
    function = "qcore.accumulator_bits_needed"
    q = as_array(q, "q", [np.int32], function)
    k = q.shape[1] if q.ndim == 2 else 0
    tiles = -(-k // tile) if 0 < tile and k > 0 else 1  # C reports a bad tile size or shape
    out = np.empty((q.shape[0] if q.ndim else 0, tiles), np.int32)
    qt, _qb = view(q)
    bt, _bb = view(out)
    check(lib.qc_accum_bits_needed(bt, qt, int(input_range[0]), int(input_range[1]), int(tile)), function)
    return out


def _spec(bits, input_range, tile, outer_bits):
    spec = ffi.new("qc_accum_spec *")
    check(lib.qc_accum_spec_init(spec, lib.QC_ACCUM_SPEC_VERSION))
    spec.bits, spec.input_min, spec.input_max = bits, int(input_range[0]), int(input_range[1])
    spec.tile, spec.outer_bits = int(tile), outer_bits
    return spec


def _struct_values(cdata):
    """The fields of a versioned result struct but its version, as a dict."""
    return {name: getattr(cdata, name) for name, _ in ffi.typeof(cdata[0]).fields if name != "version"}


@dataclass
class AccumulatorReport:
    """What qcore.verify_accumulator found: passed (no input in the range can overflow), tiles per row, the
    failing (row, tile) pairs (count and the first, -1 when none), the rows whose tile sums exceed the
    outer width, the largest inner and outer widths needed, and the outer width checked."""

    passed: bool
    tiles: int
    failing_tiles: int
    first_row: int
    first_tile: int
    failing_outer_rows: int
    first_outer_row: int
    required_bits: int
    outer_bits: int
    required_outer_bits: int


def verify_accumulator(q, bits, input_range, tile=0, outer_bits=0):
    """Checks the centred integer weights q (int32 [rows, K]) against a `bits`-bit accumulator (tiles of
    `tile` inputs, 0 for K; outer accumulator of `outer_bits`, 0 for the implied width) for every input in
    input_range = (min, max). Returns an AccumulatorReport."""
    function = "qcore.verify_accumulator"
    q = as_array(q, "q", [np.int32], function)
    report = ffi.new("qc_accum_report *", [lib.QC_ACCUM_REPORT_VERSION])
    qt, _qb = view(q)
    check(lib.qc_accum_verify(report, qt, _spec(bits, input_range, tile, outer_bits)), function)
    values = _struct_values(report)
    values["passed"] = bool(values["passed"])
    return AccumulatorReport(**values)


@dataclass
class AccumulatorSimulation:
    """What qcore.simulate_accumulator saw: dot products, the largest |partial sum| inside a tile and of
    the tiles' running sum (exact arithmetic), and per register behaviour (wrap, saturate) the inner and
    outer overflow events and the dot products with at least one; y_wrap and y_saturate (int64
    [n, rows]) are the final register values."""

    dot_products: int
    max_abs_partial_sum: int
    max_abs_outer_sum: int
    wrap_events: int
    wrap_outer_events: int
    wrap_overflowing_products: int
    saturate_events: int
    saturate_outer_events: int
    saturate_overflowing_products: int
    y_wrap: np.ndarray
    y_saturate: np.ndarray


def simulate_accumulator(x, q, bits, input_range, tile=0, outer_bits=0, ctx=None):
    """Simulates the dot products of integer inputs x (int32 [n, K], each in input_range) with the centred
    integer weights q (int32 [rows, K]) through `bits`-bit registers (2..32), wrapping and saturating."""
    function = "qcore.simulate_accumulator"
    x = as_array(x, "x", [np.int32], function)
    q = as_array(q, "q", [np.int32], function)
    n = x.shape[0] if x.ndim >= 1 else 0
    rows = q.shape[0] if q.ndim >= 1 else 0
    y_wrap, y_saturate = np.empty((n, rows), np.int64), np.empty((n, rows), np.int64)
    stats = ffi.new("qc_accum_sim *", [lib.QC_ACCUM_SIM_VERSION])
    views = [view(a) for a in (y_wrap, y_saturate, x, q)]
    (ctx or default_context()).call(lib.qc_accum_simulate, stats, *[v for v, _ in views],
                                    _spec(bits, input_range, tile, outer_bits))
    return AccumulatorSimulation(**_struct_values(stats), y_wrap=y_wrap, y_saturate=y_saturate)


__all__ = ["AccumulatorReport", "AccumulatorSimulation", "accumulator_bits_a2q", "accumulator_bits_datatype",
           "accumulator_bits_needed", "input_range", "simulate_accumulator", "verify_accumulator"]
