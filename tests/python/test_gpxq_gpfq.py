"""GPFQ (qcore.gpfq, include/qcore/qc_gpxq.h) against independent numpy implementations: the original
algorithm over the samples themselves (gpxq_oracle.gpfq_original, Lybrand & Saab), which qcore's
lower-triangular form equals exactly when no damping is added, and the lower-triangular formula with damping
(gpxq_oracle.gpfq_triangular). Both oracles sum in another order than qcore's BLAS products, so as for
OPTQ the criterion is >= 99.9 % equal integers, any difference one level (a rounding tie); they agree
exactly on every layer here."""
import numpy as np
import pytest

import gpxq_layers
import gpxq_oracle
import qcore
from test_gpxq_optq import assert_agrees, correlated_inputs, grid_pair, rtn


def gpfq_stats(x, xq, batch=None):
    stats = qcore.GpxqStats("gpfq", x.shape[1])
    batch = batch or x.shape[0]
    for start in range(0, x.shape[0], batch):
        stats.add(x[start:start + batch], xq[start:start + batch])
    return stats.hessian(), stats.cross()


def random_pair(rng, n, d):
    """Float-path inputs and a perturbed quantized path, with one input the quantized path never sees."""
    x = correlated_inputs(rng, n, d)
    xq = (x + 0.1 * rng.standard_normal((n, d))).astype(np.float32)
    xq[:, 3] = 0
    return x, xq


@pytest.fixture(scope="module")
def fc2_paths():
    """fc2 of the MLP: X from the float fc1, Xq from fc1 quantized to 4 bits (round-to-nearest)."""
    weights = gpxq_layers.mlp_weights()
    images = gpxq_layers.images()
    w1 = weights["fc1.weight"]
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    q, scale, zero_point = rtn(w1, grid)
    w1q = qcore.dequantize(q, scale, zero_point, grid)
    x = gpxq_layers.relu_layer(images, w1, weights["fc1.bias"])
    xq = gpxq_layers.relu_layer(images, w1q, weights["fc1.bias"])
    return weights["fc2.weight"], x, xq


def test_streamed_statistics_match_numpy(rng):
    x, xq = random_pair(rng, 301, 30)
    h, g = gpfq_stats(x, xq.astype(np.float64), batch=100)
    x64, xq64 = x.astype(np.float64), xq.astype(np.float64)
    np.testing.assert_allclose(h, xq64.T @ xq64, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(g, xq64.T @ x64, rtol=1e-12, atol=1e-9)
    assert np.array_equal(h, h.T)


@pytest.mark.parametrize("bits, signed, symmetric, granularity, group_size", [
    (4, True, True, "channel", 128), (3, True, False, "channel", 128), (2, False, False, "group", 16),
    (4, True, True, "group", 20), (5, True, False, "tensor", 128),
])
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("block_size", [1, 32])
def test_undamped_gpfq_is_the_original_algorithm(rng, bits, signed, symmetric, granularity, group_size, act_order,
                                                  block_size):
    x, xq = random_pair(rng, 300, 80)
    w = rng.standard_normal((36, 80)).astype(np.float32)
    h, g = gpfq_stats(x, xq)
    grid, oracle_grid = grid_pair(bits, signed, symmetric, granularity, group_size)
    layer = qcore.gpfq(w, h, g, grid, qcore.GpxqOptions(damp_ratio=0.0, act_order=act_order, block_size=block_size))
    reference, params = gpxq_oracle.gpfq_original(w, x, xq, oracle_grid, act_order=act_order)
    assert_agrees(layer.q, reference)
    assert layer.dead_inputs == 1 and layer.damp == 0.0
    np.testing.assert_array_equal(layer.q[:, 3], np.broadcast_to(layer.zero_point.reshape(-1)[:1] if
                                  granularity == "tensor" else layer.zero_point.reshape(36, -1)[:, 0], (36,)))


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("damp_ratio", [0.01, 0.5])
def test_damped_gpfq_matches_the_triangular_formula(rng, act_order, damp_ratio):
    x, xq = random_pair(rng, 250, 64)
    w = rng.standard_normal((20, 64)).astype(np.float32)
    h, g = gpfq_stats(x, xq)
    grid, oracle_grid = grid_pair(4, True, False, "group", 16)
    layer = qcore.gpfq(w, h, g, grid, qcore.GpxqOptions(damp_ratio=damp_ratio, act_order=act_order, block_size=10))
    reference, _ = gpxq_oracle.gpfq_triangular(w, h, g, oracle_grid, damp_ratio=damp_ratio, act_order=act_order)
    assert_agrees(layer.q, reference)
    assert layer.damp == pytest.approx(damp_ratio * np.mean(np.diag(h)), rel=1e-12)


@pytest.mark.parametrize("act_order", [False, True])
def test_real_layer_matches_the_original_algorithm(fc2_paths, act_order):
    w, x, xq = fc2_paths
    h, g = gpfq_stats(x, xq, batch=500)
    grid, oracle_grid = grid_pair(4, True, True, "channel")
    layer = qcore.gpfq(w, h, g, grid, qcore.GpxqOptions(damp_ratio=0.0, act_order=act_order))
    reference, _ = gpxq_oracle.gpfq_original(w, x, xq, oracle_grid, act_order=act_order)
    assert_agrees(layer.q, reference)
    assert layer.dead_inputs == np.sum(np.all(xq == 0, axis=0))


def test_real_layer_error_is_below_round_to_nearest(fc2_paths):
    """||X W^T - Xq Q^T||: GPFQ corrects the quantized path's input error too; RTN cannot."""
    w, x, xq = fc2_paths
    h, g = gpfq_stats(x, xq)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    layer = qcore.gpfq(w, h, g, grid, qcore.GpxqOptions(damp_ratio=0.0))
    q, scale, zero_point = rtn(w, grid)
    target = x.astype(np.float64) @ w.T.astype(np.float64)
    gpfq_error = np.linalg.norm(target - xq.astype(np.float64) @ layer.dequantized.T.astype(np.float64))
    rtn_error = np.linalg.norm(target - xq.astype(np.float64) @
                               qcore.dequantize(q, scale, zero_point, grid).T.astype(np.float64))
    assert gpfq_error < 0.8 * rtn_error


def test_uncorrelated_inputs_give_round_to_nearest_exactly(rng):
    """H = G diagonal: no input can correct another, and the argument is w itself."""
    w = rng.standard_normal((25, 40)).astype(np.float32)
    h = np.diag(rng.uniform(0.5, 2.0, 40))
    grid = qcore.QuantOptions(bits=3, symmetric=False, granularity="channel", axis=0)
    layer = qcore.gpfq(w, h, h, grid, qcore.GpxqOptions(damp_ratio=0.0, act_order=True, block_size=6))
    q, scale, _ = rtn(w, grid)
    np.testing.assert_array_equal(layer.q, q)
    np.testing.assert_array_equal(layer.scale, scale)


def test_thread_count_does_not_change_the_levels(rng):
    x, xq = random_pair(rng, 400, 150)
    w = rng.standard_normal((120, 150)).astype(np.float32)
    h, g = gpfq_stats(x, xq)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    results = [qcore.gpfq(w, h, g, grid, ctx=qcore.Context(threads=t)).q for t in (1, 2, 3)]
    for q in results[1:]:
        np.testing.assert_array_equal(q, results[0])
