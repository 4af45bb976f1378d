"""Bad input to OPTQ, GPFQ and their statistics gives the documented error, naming the argument."""
import numpy as np
import pytest

import qcore

CHANNEL = qcore.QuantOptions(bits=4, granularity="channel", axis=0)


@pytest.fixture
def layer(rng):
    w = rng.standard_normal((6, 8)).astype(np.float32)
    x = rng.standard_normal((50, 8))
    return w, 2 / 50 * x.T @ x


@pytest.mark.parametrize("where, pattern", [
    ("w", r"qc_optq: argument 'w': element \[2, 5\] is nan"),
    ("h", r"qc_optq: argument 'h': element \[3, 1\] is inf"),
])
def test_non_finite_inputs(layer, where, pattern):
    w, h = layer[0].copy(), layer[1].copy()
    if where == "w":
        w[2, 5] = np.nan
    else:
        h[3, 1] = np.inf
    with pytest.raises(qcore.NumericError, match=pattern):
        qcore.optq(w, h, CHANNEL)


@pytest.mark.parametrize("w_shape, h_shape, pattern", [
    ((6, 8), (7, 7), r"argument 'h': shape \[7, 7\], expected \[8, 8\]"),
    ((6, 8), (8, 8, 1), r"argument 'h': shape \[8, 8, 1\], expected \[8, 8\]"),
    ((48,), (8, 8), r"argument 'w': expected a non-empty \[out, in\] matrix, got rank 1"),
    ((0, 8), (8, 8), r"argument 'w': expected a non-empty \[out, in\] matrix, got rank 2 with an empty axis"),
])
def test_wrong_shapes(w_shape, h_shape, pattern):
    with pytest.raises(qcore.ShapeError, match=pattern):
        qcore.optq(np.zeros(w_shape, np.float32), np.eye(8).reshape(h_shape) if np.prod(h_shape) == 64 else
                   np.eye(h_shape[0]), CHANNEL if len(w_shape) == 2 else qcore.QuantOptions(bits=4))


@pytest.mark.parametrize("grid, pattern", [
    (qcore.QuantOptions(bits=1, granularity="channel", axis=0), r"bits = 1 is outside 2\.\.16"),
    (qcore.QuantOptions(bits=17, granularity="channel", axis=0), r"bits = 17 is outside 2\.\.16"),
    (qcore.QuantOptions(bits=4, granularity="channel", axis=1), r"per-channel parameters need axis 0"),
    (qcore.QuantOptions(bits=4, granularity="group", axis=0), r"per-group parameters need axis 1"),
])
def test_bad_grids(layer, grid, pattern):
    with pytest.raises(qcore.InvalidArgumentError, match=pattern):
        qcore.optq(*layer, grid)


@pytest.mark.parametrize("opts, pattern", [
    (qcore.GpxqOptions(block_size=0), r"block_size = 0 must be >= 1"),
    (qcore.GpxqOptions(damp_ratio=-0.1), r"damp_ratio = -0\.1 is outside \[0, 1e\+06\]"),
    (qcore.GpxqOptions(damp_ratio=float("nan")), r"damp_ratio = nan is outside"),
    (qcore.GpxqOptions(max_retries=21), r"max_retries = 21 is outside 0\.\.20"),
])
def test_bad_options(layer, opts, pattern):
    with pytest.raises(qcore.InvalidArgumentError, match=pattern):
        qcore.optq(*layer, CHANNEL, opts)
    with pytest.raises(qcore.InvalidArgumentError, match=pattern):
        qcore.gpfq(layer[0], layer[1], layer[1], CHANNEL, opts)


def test_wrong_dtypes(layer):
    w, h = layer
    with pytest.raises(qcore.DTypeError, match="argument 'h'"):
        qcore.optq(w, h.astype(np.float32), CHANNEL)
    with pytest.raises(qcore.DTypeError, match="argument 'w'"):
        qcore.optq(w.astype(np.float64), h, CHANNEL)


def test_gpfq_rejects_a_negative_diagonal_and_a_misshapen_g(layer):
    w, h = layer
    bad = h.copy()
    bad[4, 4] = -1.0
    with pytest.raises(qcore.NumericError, match=r"qc_gpfq: argument 'h': diagonal entry 4 is -1"):
        qcore.gpfq(w, bad, h, CHANNEL)
    with pytest.raises(qcore.ShapeError, match=r"qc_gpfq: argument 'g': shape \[8, 7\]"):
        qcore.gpfq(w, h, np.zeros((8, 7)), CHANNEL)


def test_statistics_errors(rng):
    with pytest.raises(ValueError, match="'optq' or 'gpfq'"):
        qcore.GpxqStats("gptq", 4)
    with pytest.raises(qcore.InvalidArgumentError, match=r"argument 'dim': 0 is outside"):
        qcore.GpxqStats("optq", 0)
    optq = qcore.GpxqStats("optq", 4)
    with pytest.raises(qcore.InvalidArgumentError, match="no sample has been added"):
        optq.hessian()
    with pytest.raises(qcore.ShapeError, match=r"argument 'x': shape \[3, 5\], expected \[batch, 4\]"):
        optq.add(np.zeros((3, 5)))
    with pytest.raises(qcore.InvalidArgumentError, match="'x_quant' must be NULL for OPTQ"):
        optq.add(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises(qcore.InvalidArgumentError, match="G exists for GPFQ statistics only"):
        optq.cross()
    x = rng.standard_normal((3, 4))
    x[1, 2] = np.nan
    with pytest.raises(qcore.NumericError, match=r"argument 'x': element 6 is nan"):
        optq.add(x)
    assert optq.count == 0
    gpfq = qcore.GpxqStats("gpfq", 4)
    with pytest.raises(qcore.InvalidArgumentError, match="'x_quant' is NULL"):
        gpfq.add(np.zeros((3, 4)))
    with pytest.raises(qcore.ShapeError, match="'x' and 'x_quant'|x_quant"):
        gpfq.add(np.zeros((3, 4)), np.zeros((2, 4)))
