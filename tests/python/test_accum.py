"""The accumulator calculus (include/qcore/qc_accum.h): the bounds against their published formulas, the
static verifier against brute-force worst-case sums over every input, and the simulator against a numpy
register model (wrap-around and saturation) and against the ONNX executor's P-bit accumulator."""
import itertools
import math

import numpy as np
import pytest
from onnx import TensorProto, helper

import axe_oracle
import qcore


def test_input_ranges():
    assert qcore.input_range(8, False) == (0, 255)
    assert qcore.input_range(8, True) == (-128, 127)
    assert qcore.input_range(1, True) == (-1, 0)
    assert qcore.input_range(32, False) == (0, 2 ** 32 - 1)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", [1, 4, 8])
def test_a2q_bound_is_the_published_formula(bits, signed):
    """P = ceil(alpha + log2(1 + 2^-alpha) + 1), alpha = log2 |q|_1 + N - 1_signed (reference §3)."""
    for norm in [1, 2, 3, 7, 100, 127, 128, 129, 1000, 4095, 4096, 65535]:
        alpha = math.log2(norm) + bits - signed
        expected = math.ceil(alpha + math.log2(1 + 2 ** -alpha) + 1)
        assert qcore.accumulator_bits_a2q(norm, bits, signed) == expected, (norm, bits, signed)
    assert qcore.accumulator_bits_a2q(0, bits, signed) == 1


def test_datatype_bound():
    # The AXE README's "Equation 3": M = N = 4, K = 128, unsigned inputs give P* = 16.
    assert qcore.accumulator_bits_datatype(128, 4, 4, False) == 16
    for k, m, n, s in [(784, 4, 8, False), (512, 8, 8, True), (3, 2, 3, True), (4096, 4, 4, False)]:
        assert qcore.accumulator_bits_datatype(k, m, n, s) == qcore.accumulator_bits_a2q(k * 2 ** (m - 1), n, s)


def brute_force_bits(row, x_min, x_max):
    """The width every partial sum of `row`, in index order, needs over all inputs in the range."""
    grid = np.array(list(itertools.product(range(x_min, x_max + 1), repeat=len(row))), np.int64)
    partial = np.cumsum(grid * np.asarray(row, np.int64), axis=1)
    return axe_oracle.bits_for(max(partial.max(), -partial.min()))


@pytest.mark.parametrize("x_range", [(-4, 3), (0, 7), (-2, 5), (0, 1)])
def test_needed_bits_equal_brute_force_worst_case(rng, x_range):
    q = rng.integers(-9, 10, (12, 6)).astype(np.int32)
    q[0] = 0
    needed = qcore.accumulator_bits_needed(q, x_range, tile=0)
    tiled = qcore.accumulator_bits_needed(q, x_range, tile=4)
    assert needed.shape == (12, 1) and tiled.shape == (12, 2)
    for r in range(12):
        assert needed[r, 0] == brute_force_bits(q[r], *x_range)
        assert tiled[r, 0] == brute_force_bits(q[r, :4], *x_range)
        assert tiled[r, 1] == brute_force_bits(q[r, 4:], *x_range)


@pytest.mark.parametrize("tile", [0, 2, 4])
def test_verifier_reports_what_brute_force_finds(rng, tile):
    x_range = (-2, 3)
    q = rng.integers(-7, 8, (10, 6)).astype(np.int32)
    bits = 7
    report = qcore.verify_accumulator(q, bits, x_range, tile=tile)
    tiles = axe_oracle.tiles_of(6, tile)
    need = np.array([[brute_force_bits(q[r, cols], *x_range) for cols in tiles] for r in range(10)])
    failing = np.argwhere(need > bits)
    assert report.tiles == len(tiles)
    assert report.failing_tiles == len(failing)
    assert report.passed == (len(failing) == 0 and report.failing_outer_rows == 0)
    assert (report.first_row, report.first_tile) == (tuple(failing[0]) if len(failing) else (-1, -1))
    assert report.required_bits == need.max()
    whole = [brute_force_bits(q[r], *x_range) for r in range(10)]
    assert report.required_outer_bits == max(whole)
    assert report.outer_bits == bits + math.ceil(math.log2(len(tiles)))


def test_verifier_passes_exactly_at_the_boundary():
    # A = 2^15 - 1 = 32767: positive levels summing to A fit 16 bits for inputs in [0, 1], one more does not.
    assert qcore.verify_accumulator(np.array([[32000, 767, -32767]], np.int32), 16, (0, 1)).passed
    report = qcore.verify_accumulator(np.array([[32000, 768, -5]], np.int32), 16, (0, 1))
    assert not report.passed and report.required_bits == 17 and (report.first_row, report.first_tile) == (0, 0)
    # Signed inputs: the low side binds, -128 * 256 = -32768 < -A.
    assert not qcore.verify_accumulator(np.array([[128, 128]], np.int32), 16, (-128, 127)).passed
    assert qcore.verify_accumulator(np.array([[128, 127]], np.int32), 16, (-128, 127)).passed


def test_verifier_checks_the_outer_accumulator():
    q = np.full((3, 8), 7, np.int32)
    q[1, :] = 1
    # A tile of four 7s needs 1 + bitlen(4 * 7 * 15 = 420) = 10 bits; a row of them 1 + bitlen(840) = 11.
    report = qcore.verify_accumulator(q, 10, (0, 15), tile=4, outer_bits=10)
    assert report.failing_tiles == 0 and report.failing_outer_rows == 2 and report.first_outer_row == 0
    assert not report.passed and report.required_outer_bits == 11
    implied = qcore.verify_accumulator(q, 10, (0, 15), tile=4)
    assert implied.passed and implied.outer_bits == 11


def register_model(x, q, bits, tile, outer_bits):
    """numpy oracle of the registers: per dot product, inner tiles then the outer sum of tile values."""
    def step(reg, term, lo, hi, mode):
        reg += term
        if lo <= reg <= hi:
            return reg, 0
        if mode == "wrap":
            return (reg - lo) % (hi - lo + 1) + lo, 1
        return min(max(reg, lo), hi), 1

    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    olo, ohi = -(1 << (outer_bits - 1)), (1 << (outer_bits - 1)) - 1
    tiles = axe_oracle.tiles_of(q.shape[1], tile)
    out = {"y_wrap": np.zeros((len(x), len(q)), np.int64), "y_saturate": np.zeros((len(x), len(q)), np.int64)}
    counts = dict.fromkeys(["wrap_events", "wrap_outer_events", "wrap_overflowing_products", "saturate_events",
                            "saturate_outer_events", "saturate_overflowing_products", "max_abs_partial_sum",
                            "max_abs_outer_sum"], 0)
    for s in range(len(x)):
        for r in range(len(q)):
            terms = x[s].astype(np.int64) * q[r].astype(np.int64)
            exact_tiles = [np.cumsum(terms[cols]) for cols in tiles]
            counts["max_abs_partial_sum"] = max(counts["max_abs_partial_sum"],
                                                max(int(np.abs(e).max()) for e in exact_tiles))
            counts["max_abs_outer_sum"] = max(counts["max_abs_outer_sum"],
                                              int(np.abs(np.cumsum([e[-1] for e in exact_tiles])).max()))
            for mode in ("wrap", "saturate"):
                outer, inner_events, outer_events = 0, 0, 0
                for cols in tiles:
                    reg = 0
                    for t in terms[cols]:
                        reg, e = step(reg, int(t), lo, hi, mode)
                        inner_events += e
                    if len(tiles) == 1:
                        outer = reg
                    else:
                        outer, e = step(outer, reg, olo, ohi, mode)
                        outer_events += e
                out["y_" + mode][s, r] = outer
                counts[mode + "_events"] += inner_events
                counts[mode + "_outer_events"] += outer_events
                counts[mode + "_overflowing_products"] += inner_events + outer_events > 0
    return out, counts


@pytest.mark.parametrize("bits, tile, outer_bits", [(10, 0, 0), (12, 0, 0), (9, 16, 0), (9, 16, 10), (11, 5, 12)])
@pytest.mark.parametrize("threads", [1, 2])
def test_simulator_matches_the_register_model(rng, bits, tile, outer_bits, threads):
    x = rng.integers(-128, 128, (6, 48)).astype(np.int32)
    q = rng.integers(-8, 8, (5, 48)).astype(np.int32)
    sim = qcore.simulate_accumulator(x, q, bits, (-128, 127), tile=tile, outer_bits=outer_bits,
                                     ctx=qcore.Context(threads=threads))
    tiles = len(axe_oracle.tiles_of(48, tile))
    implied = outer_bits or bits + math.ceil(math.log2(tiles))
    values, counts = register_model(x, q, bits, tile, implied)
    np.testing.assert_array_equal(sim.y_wrap, values["y_wrap"])
    np.testing.assert_array_equal(sim.y_saturate, values["y_saturate"])
    assert sim.dot_products == 30
    for name, value in counts.items():
        assert getattr(sim, name) == value, name
    assert sim.wrap_events > 0  # narrow enough for the simulation to have work


def test_simulator_without_overflow_gives_the_exact_products(rng):
    x = rng.integers(0, 256, (7, 33)).astype(np.int32)
    q = rng.integers(-8, 8, (4, 33)).astype(np.int32)
    sim = qcore.simulate_accumulator(x, q, 32, (0, 255), tile=8)
    exact = x.astype(np.int64) @ q.T.astype(np.int64)
    np.testing.assert_array_equal(sim.y_wrap, exact)
    np.testing.assert_array_equal(sim.y_saturate, exact)
    assert sim.wrap_events == sim.saturate_events == sim.wrap_outer_events == 0


def test_simulator_agrees_with_the_onnx_executor(rng):
    """Same definitions as qc_session_set_accumulator (MatMulInteger, one register per dot product)."""
    a = rng.integers(-128, 128, (5, 64)).astype(np.int8)
    b = rng.integers(-128, 128, (64, 7)).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.INT8, [5, 64]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [64, 7])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [5, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = qcore.Session(qcore.Model.from_bytes(model.SerializeToString()))
    sim = qcore.simulate_accumulator(a.astype(np.int32), np.ascontiguousarray(b.T, np.int32), 14, (-128, 127))
    for mode, y in (("wrap", sim.y_wrap), ("saturate", sim.y_saturate)):
        session.set_accumulator(14, mode)
        np.testing.assert_array_equal(session.run({"a": a, "b": b})["y"], y)
        stats = session.accumulator_stats()
        assert stats["overflow_events"] == getattr(sim, mode + "_events")
        assert stats["overflowing_products"] == getattr(sim, mode + "_overflowing_products")
        assert stats["max_abs_partial_sum"] == sim.max_abs_partial_sum
        assert stats["dot_products"] == sim.dot_products


Q = np.ones((2, 8), np.int32)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: qcore.verify_accumulator(Q, 1, (0, 255)), qcore.InvalidArgumentError,
     r"qcore.verify_accumulator: argument 'spec': bits = 1 is outside 2\.\.64"),
    (lambda: qcore.verify_accumulator(Q, 65, (0, 255)), qcore.InvalidArgumentError, r"bits = 65 is outside 2\.\.64"),
    (lambda: qcore.simulate_accumulator(Q, Q, 33, (0, 255)), qcore.InvalidArgumentError,
     r"qc_accum_simulate: argument 'spec': bits = 33 is outside 2\.\.32"),
    (lambda: qcore.verify_accumulator(Q, 16, (0, 255), tile=9), qcore.InvalidArgumentError,
     r"argument 'spec': tile = 9 is outside 0\.\.8 \(0 for K; K = 8 inputs per row\)"),
    (lambda: qcore.verify_accumulator(Q, 16, (0, 255), tile=-1), qcore.InvalidArgumentError, r"tile = -1 is outside"),
    (lambda: qcore.verify_accumulator(Q, 16, (1, 255)), qcore.InvalidArgumentError,
     r"argument 'spec': input_min = 1 is outside \[-2\^32, 0\]"),
    (lambda: qcore.verify_accumulator(Q, 16, (-5, 0)), qcore.InvalidArgumentError, r"input_max = 0 is outside \[1, 2\^32\]"),
    (lambda: qcore.verify_accumulator(Q, 16, (0, 255), tile=2, outer_bits=97), qcore.InvalidArgumentError,
     r"outer_bits = 97 is outside 2\.\.96"),
    (lambda: qcore.verify_accumulator(Q.astype(np.int64), 16, (0, 255)), qcore.DTypeError, r"argument 'q'"),
    (lambda: qcore.verify_accumulator(np.ones(8, np.int32), 16, (0, 255)), qcore.ShapeError,
     r"argument 'q': shape \[8\], expected a 2-D matrix"),
    (lambda: qcore.simulate_accumulator(np.full((1, 8), 256, np.int32), Q, 16, (0, 255)), qcore.InvalidArgumentError,
     r"argument 'x': element \[0, 0\] = 256 is outside the spec's input range \[0, 255\]"),
    (lambda: qcore.simulate_accumulator(np.ones((1, 7), np.int32), Q, 16, (0, 255)), qcore.ShapeError,
     r"argument 'x': 7 inputs per sample, but q has K = 8"),
    (lambda: qcore.simulate_accumulator(np.full((1, 8), 2 ** 31 - 1, np.int32), np.full((1, 8), 2 ** 31 - 1, np.int32),
                                        16, (0, 2 ** 32)), qcore.IntegerOverflowError, r"reaches 2\^62"),
    (lambda: qcore.input_range(33, False), qcore.InvalidArgumentError, r"argument 'bits': 33 is outside 1\.\.32"),
    (lambda: qcore.accumulator_bits_a2q(-1, 8, False), qcore.InvalidArgumentError, r"argument 'l1_norm': -1"),
    (lambda: qcore.accumulator_bits_datatype(0, 4, 8, False), qcore.InvalidArgumentError, r"argument 'k': 0"),
    (lambda: qcore.accumulator_bits_datatype(8, 4, 0, False), qcore.InvalidArgumentError,
     r"argument 'input_bits': 0 is outside 1\.\.32"),
])
def test_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
