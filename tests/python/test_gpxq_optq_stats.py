"""OPTQ straight from its statistics (qcore.optq(w, stats) -> qc_optq_from_stats): the oracle is qc_optq on
the H those statistics give (itself checked against numpy in test_gpxq_optq.py), which must give the very
same outputs, since both read the same doubles; and the statistics, whose spare triangle is the
factorization's workspace, must be left exactly as they were, whatever the outcome."""
import numpy as np
import pytest

import gpxq_oracle
import qcore
from test_gpxq_optq import assert_agrees, correlated_inputs, grid_pair


def streamed(x, batches=3):
    stats = qcore.GpxqStats("optq", x.shape[1])
    for part in np.array_split(x, batches):
        stats.add(part)
    return stats


def assert_same_layer(a, b):
    for name in ("q", "scale", "zero_point", "dequantized"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.damp_ratio, a.damp, a.retries, a.dead_inputs) == (b.damp_ratio, b.damp, b.retries, b.dead_inputs)


@pytest.mark.parametrize("bits, signed, symmetric, granularity, group_size", [
    (4, True, True, "channel", 128), (4, False, False, "channel", 128), (3, True, True, "group", 32),
    (4, True, False, "tensor", 128),
])
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("block_size", [7, 128])
def test_same_outputs_as_from_the_hessian(rng, bits, signed, symmetric, granularity, group_size, act_order,
                                          block_size):
    x = correlated_inputs(rng, 300, 150)
    x[:, [3, 77]] = 0.0  # dead inputs
    w = rng.standard_normal((37, 150)).astype(np.float32)
    stats = streamed(x)
    h = stats.hessian()
    grid, oracle_grid = grid_pair(bits, signed, symmetric, granularity, group_size)
    opts = qcore.GpxqOptions(act_order=act_order, block_size=block_size)
    from_stats = qcore.optq(w, stats, grid, opts)
    assert_same_layer(from_stats, qcore.optq(w, h, grid, opts))
    assert from_stats.dead_inputs == 2
    reference, params = gpxq_oracle.optq(w, h, oracle_grid, act_order=act_order)
    assert_agrees(from_stats.q, reference, params)
    np.testing.assert_array_equal(stats.hessian(), h)


def test_statistics_are_unchanged_and_can_grow(rng):
    x = correlated_inputs(rng, 400, 64)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    stats = streamed(x[:250])
    before = stats.hessian()
    qcore.optq(w, stats, grid, qcore.GpxqOptions(act_order=True))
    assert stats.count == 250
    np.testing.assert_array_equal(stats.hessian(), before)
    stats.add(x[250:])  # the spare triangle holds the factor now: adding must not read it
    fresh = streamed(x[:250])
    fresh.add(x[250:])
    np.testing.assert_array_equal(stats.hessian(), fresh.hessian())
    assert_same_layer(qcore.optq(w, stats, grid), qcore.optq(w, fresh.hessian(), grid))


def test_retries_and_failures_leave_the_statistics_unchanged(rng):
    x = np.repeat(rng.standard_normal((50, 1)), 6, axis=1)  # rank 1: singular without damping
    w = rng.standard_normal((3, 6)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    stats = streamed(x)
    before = stats.hessian()
    layer = qcore.optq(w, stats, grid, qcore.GpxqOptions(damp_ratio=0.0))
    assert layer.retries == 1 and layer.damp_ratio == 1e-4
    assert_same_layer(layer, qcore.optq(w, before, grid, qcore.GpxqOptions(damp_ratio=0.0)))
    with pytest.raises(qcore.SingularError, match=r"qc_optq_from_stats: argument 'stats': H \+ delta I is not positive "
                                                  r"definite with damp_ratio 0 \(delta = 0\) after 0 retries"):
        qcore.optq(w, stats, grid, qcore.GpxqOptions(damp_ratio=0.0, max_retries=0))
    np.testing.assert_array_equal(stats.hessian(), before)


def test_bad_statistics(rng):
    w = rng.standard_normal((3, 6)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    with pytest.raises(qcore.InvalidArgumentError, match="qc_optq_from_stats: argument 'stats': no sample"):
        qcore.optq(w, qcore.GpxqStats("optq", 6), grid)
    gpfq = qcore.GpxqStats("gpfq", 6)
    gpfq.add(np.ones((2, 6)), np.ones((2, 6)))
    with pytest.raises(qcore.InvalidArgumentError, match="argument 'stats': GPFQ statistics, OPTQ needs OPTQ"):
        qcore.optq(w, gpfq, grid)
    with pytest.raises(qcore.ShapeError, match="argument 'stats': statistics of 5 inputs, but w has 6 inputs"):
        qcore.optq(w, streamed(rng.standard_normal((10, 5))), grid)


@pytest.mark.parametrize("method", ["optq", "gpfq", "rtn"])
def test_outputs_into_given_arrays(rng, method):
    """out=(q, dequantized): the same values as new arrays, written into (and returned as) the caller's."""
    x = correlated_inputs(rng, 200, 40)
    w = rng.standard_normal((9, 40)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    stats = streamed(x)
    gpfq = qcore.GpxqStats("gpfq", 40)
    gpfq.add(x, x)

    def run(out=None):
        if method == "optq":
            return qcore.optq(w, stats, grid, out=out)
        if method == "gpfq":
            return qcore.gpfq(w, gpfq.hessian(), gpfq.cross(), grid, out=out)
        return qcore.rtn(w, grid, out=out)
    q, deq = np.full(w.shape, -5, np.int32), np.full(w.shape, np.nan, np.float32)
    layer = run((q, deq))
    assert layer.q is q and layer.dequantized is deq
    assert_same_layer(layer, run())
    with pytest.raises(qcore.ShapeError, match=r"arguments 'q' \[9, 39\] and 'w' \[9, 40\]"):
        run((np.empty((9, 39), np.int32), deq))
    with pytest.raises(qcore.DTypeError, match=r"argument 'out\[1\] \(dequantized\)'"):
        run((q, np.empty(w.shape, np.float64)))
    with pytest.raises(TypeError, match="'out' must be None or a"):
        run(q)
