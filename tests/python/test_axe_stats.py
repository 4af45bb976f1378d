"""AXE's statistics in the result (qc_gpxq_result version 2, qcore.AxeStats): how many levels each
constraint changed, where the soft threshold was active, the L1 mass it removed and the slack left, against
the numpy oracle counting the same events (axe_oracle.statistics) and against the finished levels
themselves (qcore.verify_accumulator, a numpy worst case).

RTN+AXE has the oracle's arithmetic, so every count must agree exactly. OPTQ and GPFQ sum in a different
order than the oracle (test_axe.py), so a level may rarely differ by one; the counts are compared exactly
when all levels agree, which the tests require on most configurations so that the comparison has teeth.
OPTQ's running weights are float32 (qc_gpxq.h's precision rule) and a float32 sum order apart from the
oracle's, so even then its L1 mass removed agrees to float32 precision (64 ulps, relative) rather than
double, and the counts that compare two roundings of a running weight (soft_changed, clamped) may differ
by a weight or two that sits within float32 ulps of a rounding tie."""
import numpy as np
import pytest

import axe_oracle
import gpxq_oracle
import qcore
from qcore._ffi import ffi, lib
from qcore._tensor import view
from test_axe import (CONFIGS, axe_pair, gpfq_stats, mlp_layers, rtn_with_oracle,  # noqa: F401 (a fixture)
                      run_with_oracle)
from test_gpxq_optq import correlated_inputs, grid_pair, hessian

COUNTS = ["slots", "soft_slots", "soft_changed", "clamped", "clamped_slots", "min_slack", "bits_needed"]


FLOAT32_REL = 64 * np.finfo(np.float32).eps
TIE_COUNTS = ("soft_changed", "clamped")


def assert_stats_equal(stats, expected, float32_weights=False):
    """Equal counts and L1 mass; with float32_weights (OPTQ), within the float32 allowances above."""
    ties = 2 if float32_weights else 0
    for name in COUNTS:
        slack = ties if name in TIE_COUNTS else 0
        assert abs(getattr(stats, name) - expected[name]) <= slack, (name, getattr(stats, name), expected[name])
    rel = FLOAT32_REL if float32_weights else 1e-9
    assert stats.soft_removed == pytest.approx(expected["soft_removed"], rel=rel, abs=1e-9)


def worst_case_stats(centred, bits, x_range, tile):
    """min_slack and bits_needed recomputed from the finished levels with numpy, per (row, tile)."""
    limit = (1 << (bits - 1)) - 1
    slack, needed = limit, 1
    for row in centred.astype(np.int64):
        for cols in axe_oracle.tiles_of(len(row), tile):
            high, low = axe_oracle.worst_case(row[cols], *x_range)
            slack, needed = min(slack, limit - max(high, -low)), max(needed, axe_oracle.bits_for(max(high, -low)))
    return slack, needed


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("soft", [True, False])
def test_rtn_statistics_equal_the_oracle(rng, config, soft):
    layer, reference, axe = rtn_with_oracle(rng, config, soft)
    np.testing.assert_array_equal(layer.q, reference)
    expected = axe_oracle.statistics(axe)
    assert_stats_equal(layer.axe, expected)
    assert expected["slots"] == 24 * len(axe_oracle.tiles_of(96, config[-1]))
    if not soft:
        assert layer.axe.soft_slots == layer.axe.soft_changed == 0 and layer.axe.soft_removed == 0.0


@pytest.mark.parametrize("algorithm", ["optq", "gpfq"])
@pytest.mark.parametrize("act_order", [False, True])
def test_optq_and_gpfq_statistics_equal_the_oracle(rng, algorithm, act_order):
    compared = 0
    for config in CONFIGS:
        layer, reference, axe = run_with_oracle(rng, algorithm, config, act_order)
        if np.array_equal(layer.q, reference):
            assert_stats_equal(layer.axe, axe_oracle.statistics(axe), algorithm == "optq")
            compared += 1
    assert compared >= len(CONFIGS) - 2, "too few configurations agreed level for level to compare their counts"


def test_real_layers_statistics_equal_the_oracle(mlp_layers):  # noqa: F811
    """The Fashion-MNIST MLP's fc1 and fc2 at W4, P = 14, T = 64: AXE works hard here (the oracle must see
    both constraints active), and qcore counts what the oracle counts."""
    grid, oracle_grid = grid_pair(4, True, True, "channel")
    for name, w, x, h, _ in mlp_layers[:2]:
        opts, axe = axe_pair(w.shape[0], w.shape[1], 14, 8, False, 64)
        layer = qcore.optq(w, h, grid, opts)
        reference, _ = gpxq_oracle.optq(w, h, oracle_grid, axe=axe)
        expected = axe_oracle.statistics(axe)
        assert expected["soft_slots"] > 0 and expected["clamped"] > 0, name
        if np.array_equal(layer.q, reference):
            assert_stats_equal(layer.axe, expected, float32_weights=True)
        else:  # a level off by one moves the counts by little
            for key in ("soft_slots", "clamped", "soft_changed"):
                assert abs(getattr(layer.axe, key) - expected[key]) <= 0.01 * expected["slots"] + 2, (name, key)
        rtn_opts, rtn_axe = axe_pair(w.shape[0], w.shape[1], 14, 8, False, 64)
        axe_oracle.rtn(w, oracle_grid, rtn_axe)
        assert_stats_equal(qcore.rtn(w, grid, rtn_opts).axe, axe_oracle.statistics(rtn_axe))


@pytest.mark.parametrize("algorithm", ["rtn", "optq", "gpfq"])
@pytest.mark.parametrize("bits, tile", [(12, 32), (16, 0), (20, 64)])
def test_slack_and_width_describe_the_finished_levels(rng, algorithm, bits, tile):
    """min_slack and bits_needed agree with the worst cases of the returned levels (numpy) and with the
    static verifier; AXE guarantees slack >= 0 and bits_needed <= P."""
    x = correlated_inputs(rng, 400, 128)
    w = rng.standard_normal((32, 128)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    opts = qcore.GpxqOptions(accumulator_bits=bits, tile_size=tile)
    h = hessian(x)
    layer = {"rtn": lambda: qcore.rtn(w, grid, opts), "optq": lambda: qcore.optq(w, h, grid, opts),
             "gpfq": lambda: qcore.gpfq(w, *gpfq_stats(x, x), grid, opts)}[algorithm]()
    centred = layer.centered()
    slack, needed = worst_case_stats(centred, bits, (0, 255), tile)
    assert (layer.axe.min_slack, layer.axe.bits_needed) == (slack, needed)
    assert 0 <= slack and needed <= bits
    assert needed == qcore.verify_accumulator(centred, bits, (0, 255), tile=tile).required_bits


@pytest.mark.parametrize("algorithm", ["rtn", "optq", "gpfq"])
def test_statistics_are_zero_when_axe_is_off_or_p_is_ample(rng, algorithm):
    x = correlated_inputs(rng, 300, 64)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    h = hessian(x)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)

    def run(opts):
        if algorithm == "rtn":
            return qcore.rtn(w, grid, opts)
        return qcore.optq(w, h, grid, opts) if algorithm == "optq" else qcore.gpfq(w, *gpfq_stats(x, x), grid, opts)

    assert run(qcore.GpxqOptions()).axe == qcore.AxeStats()
    ample = run(qcore.GpxqOptions(accumulator_bits=64, tile_size=16))
    assert (ample.axe.slots, ample.axe.soft_slots, ample.axe.soft_changed, ample.axe.soft_removed) == (64, 0, 0, 0.0)
    assert (ample.axe.clamped, ample.axe.clamped_slots) == (0, 0)
    slack, needed = worst_case_stats(ample.centered(), 64, (0, 255), 16)
    assert (ample.axe.min_slack, ample.axe.bits_needed) == (slack, needed)
    assert slack > 2 ** 62  # 4-bit levels of 16 inputs use a tiny fraction of 2^63 - 1


def test_a_narrow_accumulator_makes_axe_work(rng):
    """The counts respond to P: at P = 12 over 256 inputs both constraints are active in most slots; at
    P = 20 the strict limits never bind. (The test can fail: a library that counted nothing fails it.)"""
    w = rng.standard_normal((32, 256)).astype(np.float32)
    h = hessian(correlated_inputs(rng, 600, 256))
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    narrow = qcore.optq(w, h, grid, qcore.GpxqOptions(accumulator_bits=12, tile_size=64)).axe
    wide = qcore.optq(w, h, grid, qcore.GpxqOptions(accumulator_bits=20, tile_size=64)).axe
    assert narrow.slots == wide.slots == 32 * 4
    assert narrow.soft_slots > narrow.slots // 2 and narrow.soft_changed > 0 and narrow.soft_removed > 0
    assert wide.clamped == wide.soft_slots == 0
    assert narrow.min_slack < wide.min_slack


def test_statistics_do_not_depend_on_the_thread_count(rng):
    """The counts are the same for 1 and 2 threads. RTN+AXE involves no BLAS, so even soft_removed is the
    same bit for bit; so is OPTQ's, whose products run in fixed tiles and whose factorization runs on one
    thread (linalg/blas.c, linalg.h)."""
    w = rng.standard_normal((48, 192)).astype(np.float32)
    h = hessian(correlated_inputs(rng, 500, 192))
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    opts = qcore.GpxqOptions(accumulator_bits=13, tile_size=64, act_order=True)
    one, two = (qcore.rtn(w, grid, opts, ctx=qcore.Context(threads=t)) for t in (1, 2))
    assert one.axe == two.axe and one.axe.clamped > 0  # == compares soft_removed exactly
    one, two = (qcore.optq(w, h, grid, opts, ctx=qcore.Context(threads=t)) for t in (1, 2))
    np.testing.assert_array_equal(one.q, two.q)
    for name in COUNTS:
        assert getattr(one.axe, name) == getattr(two.axe, name), name
    assert one.axe.soft_removed == two.axe.soft_removed and one.axe.clamped > 0


def c_rtn(w, grid, result):
    """qc_rtn through cffi with a caller-made result struct (the Python wrapper always uses the newest)."""
    q, deq = np.empty(w.shape, np.int32), np.empty(w.shape, np.float32)
    scale, zero_point = np.empty(grid.param_shape(w.shape, "test"), np.float32), np.empty(w.shape[0], np.int32)
    views = [view(a)[0] for a in (q, scale, zero_point, deq, w)]
    ctx = qcore.core.default_context()
    opts = qcore.GpxqOptions(accumulator_bits=12, tile_size=32).to_c()
    return ctx.call(lib.qc_rtn, *views[:4], result, views[4], grid.to_c("test"), opts)


def test_a_version_1_result_is_filled_without_the_new_fields(rng):
    """A version-1 caller's struct ends at dead_inputs: the library must not write past it."""
    w = rng.standard_normal((8, 64)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    result = ffi.new("qc_gpxq_result *", [1, -1.0, -1.0, -1, -1, 77, 77, 77, 7.5, 77, 77, 77, 77])
    c_rtn(w, grid, result)
    assert (result.version, result.damp_ratio, result.retries, result.dead_inputs) == (1, 0.0, 0, 0)
    assert (result.axe_slots, result.axe_soft_removed, result.axe_bits_needed) == (77, 7.5, 77)
    current = ffi.new("qc_gpxq_result *", [lib.QC_GPXQ_RESULT_VERSION])
    c_rtn(w, grid, current)
    assert current.axe_slots == 8 * 2 and current.axe_bits_needed <= 12


@pytest.mark.parametrize("version", [0, 3])
def test_unknown_result_versions_are_refused(rng, version):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    with pytest.raises(qcore.VersionError, match=r"argument 'result': version = %d is unknown \(this library knows "
                       r"1\.\.2; use QC_GPXQ_RESULT_INIT\)" % version):
        c_rtn(w, grid, ffi.new("qc_gpxq_result *", [version]))
