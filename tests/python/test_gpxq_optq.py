"""OPTQ (qcore.optq, include/qcore/qc_gpxq.h) against an independent numpy implementation of the published
update rule (gpxq_oracle.optq), on random layers and on the Fashion-MNIST MLP's layers with real images.

Agreement. qcore applies the updates of each block of inputs to later blocks as one BLAS-3 product and gets
U = chol(H^-1)^T from a single factorization of the reversed H (per tensor and channel it uses that factor
itself, in the equivalent R form of qc_gpxq.h, with no inverse); the oracle applies rank-1 updates one input
at a time and factors inv(H). Both update the weights in float32 (qc_gpxq.h's precision rule), rounding and
summing differently, so a weight may come out a few float32 ulps apart, and one that lands within that of a
half-level boundary (a rounding tie) may round the other way; OPTQ's error feedback then carries the
difference along the rest of that row. Hence the criterion: at least 99.9 % of the integers equal, and in
every row that differs, the first difference (in processing order) is at a weight whose oracle argument
w / scale lies within 1e-3 levels of a tie (a wrong update would put it anywhere). Per-group scales, chosen
from updated float32 weights, agree within 64 float32 ulps; scales chosen from W agree exactly. Where the
arithmetic is the same (a diagonal H: OPTQ is then round-to-nearest) equality must be exact.
"""
import numpy as np
import pytest

import gpxq_layers
import gpxq_oracle
import qcore

AGREEMENT = 0.999
SCALE_ULPS = 64
TIE_LEVELS = 1e-3


def grid_pair(bits, signed, symmetric, granularity, group_size=128):
    """The same grid for qcore and for the oracle."""
    axis = 1 if granularity == "group" else 0
    return (qcore.QuantOptions(bits=bits, signed=signed, symmetric=symmetric, granularity=granularity, axis=axis,
                               group_size=group_size),
            gpxq_oracle.Grid(bits, signed, symmetric, granularity, group_size))


def assert_agrees(q, reference, params=None):
    """The agreement criterion (module docstring); with the oracle's Params, each row's first difference
    (in processing order) must be at a rounding tie of the oracle, else every difference one level."""
    equal = np.mean(q == reference)
    assert equal >= AGREEMENT, "only %.4f%% of the levels agree with the oracle" % (100 * equal)
    if params is None:
        assert np.abs(q.astype(np.int64) - reference).max(initial=0) <= 1
        return
    for r in np.nonzero((q != reference).any(axis=1))[0]:
        columns = np.nonzero(q[r] != reference[r])[0]
        first = columns[np.argmin(params.step[columns])]
        assert params.tie_distance[r, first] < TIE_LEVELS, (
            "row %d first differs at input %d, %.3g levels from a rounding tie" % (r, first,
                                                                                 params.tie_distance[r, first]))


def correlated_inputs(rng, n, d):
    """Inputs whose features are correlated (a non-diagonal H) and of unequal scales (act-order matters)."""
    return (rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * rng.uniform(0.2, 2.0, d)).astype(np.float32)


def hessian(x):
    stats = qcore.GpxqStats("optq", x.shape[1])
    stats.add(x)
    return stats.hessian()


def rtn(w, grid):
    scale, zero_point = qcore.choose_params(w, grid)
    return qcore.quantize(w, scale, zero_point, grid, dtype=np.int32), scale, zero_point


def output_error(x, w, dequantized):
    return np.linalg.norm(x.astype(np.float64) @ (w.astype(np.float64) - dequantized.astype(np.float64)).T)


@pytest.fixture(scope="module")
def mlp():
    weights = gpxq_layers.mlp_weights()
    x1 = gpxq_layers.images()
    x2 = gpxq_layers.relu_layer(x1, weights["fc1.weight"], weights["fc1.bias"])
    return {"fc1": (weights["fc1.weight"], x1), "fc2": (weights["fc2.weight"], x2)}


CHUNK_ROWS = 256  # qc_gpxq.h: a batch is added in chunks of 256 rows
UNIT_ROUNDOFF_F32 = 2.0 ** -24


def chunks(batch):
    return [batch[start:start + CHUNK_ROWS] for start in range(0, len(batch), CHUNK_ROWS)]


def chunk_bound(batch):
    """qc_gpxq.h's bound on a float32 batch's products: gamma_k sum |x_si| |x_sj| per chunk of k rows."""
    total = 0.0
    for c in chunks(np.abs(batch.astype(np.float64))):
        k = len(c) * UNIT_ROUNDOFF_F32
        total = total + k / (1 - k) * (c.T @ c)
    return total


@pytest.mark.parametrize("d", [40, 150])  # 150: H is mirrored in 64 x 64 tiles, with a partial last one
def test_streamed_hessian_is_two_over_n_x_transpose_x(rng, d):
    """float64 batches: products in double; float32 batches: each chunk's products in float32 (within
    gamma_k of the exact ones), added in double."""
    x = rng.standard_normal((900, d))
    f32 = [x[:7].astype(np.float32), x[300:900].astype(np.float32)]  # 600 rows: chunks of 256, 256, 88
    stats = qcore.GpxqStats("optq", d)
    stats.add(f32[0])
    stats.add(x[7:7])
    stats.add(x[7:300])
    stats.add(f32[1])
    exact = np.concatenate([f32[0].astype(np.float64), x[7:300], f32[1].astype(np.float64)])
    expected = 2.0 / 900 * exact.T @ exact
    assert stats.count == 900
    h = stats.hessian()
    assert np.array_equal(h, h.T)
    slack = 2.0 / 900 * (chunk_bound(f32[0]) + chunk_bound(f32[1])) + 1e-12 * np.abs(expected)
    assert (np.abs(h - expected) <= slack).all()
    assert not np.allclose(h, expected, rtol=1e-12, atol=0)  # float32 products, not double
    doubles = qcore.GpxqStats("optq", d)
    doubles.add(x[7:300])
    np.testing.assert_allclose(doubles.hessian(), 2.0 / 293 * x[7:300].T @ x[7:300], rtol=1e-12, atol=1e-12)


def test_float32_chunks_are_accumulated_in_double():
    """1 + 2^-30 needs double: a float32 running sum over the batches would lose the second batch."""
    stats = qcore.GpxqStats("optq", 2)
    stats.add(np.ones((1, 2), np.float32))
    stats.add(np.full((1, 2), 2.0 ** -15, np.float32))  # its products, 2^-30, are exact in float32
    np.testing.assert_array_equal(stats.hessian(), np.full((2, 2), 1 + 2.0 ** -30))


def test_float32_chunks_that_could_overflow_are_multiplied_in_double(rng):
    """256 |x|^2 >= 2^120: in float32, 100 squares of 3e18 (9e38) would overflow to inf."""
    x = np.full((100, 3), 3e18, np.float32) * rng.uniform(0.9, 1.0, (100, 3)).astype(np.float32)
    stats = qcore.GpxqStats("optq", 3)
    stats.add(x)
    exact = x.astype(np.float64)
    np.testing.assert_allclose(stats.hessian(), 2.0 / 100 * exact.T @ exact, rtol=1e-12)


@pytest.mark.parametrize("bits, signed, symmetric, granularity, group_size", [
    (4, True, True, "channel", 128), (3, True, False, "channel", 128), (8, False, True, "channel", 128),
    (4, True, True, "group", 32), (2, False, False, "group", 16), (4, True, False, "tensor", 128),
    (4, True, True, "group", 40),
])
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("block_size", [1, 24, 128])
def test_random_layers_match_the_oracle(rng, bits, signed, symmetric, granularity, group_size, act_order, block_size):
    x = correlated_inputs(rng, 400, 96)
    w = rng.standard_normal((40, 96)).astype(np.float32)
    h = hessian(x)
    grid, oracle_grid = grid_pair(bits, signed, symmetric, granularity, group_size)
    layer = qcore.optq(w, h, grid, qcore.GpxqOptions(act_order=act_order, block_size=block_size))
    reference, params = gpxq_oracle.optq(w, h, oracle_grid, act_order=act_order)
    assert_agrees(layer.q, reference, params)
    expected_scale = params.scale.reshape(-1)[:layer.scale.size].reshape(layer.scale.shape)  # per tensor: all equal
    if granularity == "group":  # chosen from updated float32 weights: a float32 sum order apart (see above)
        np.testing.assert_allclose(layer.scale, expected_scale, rtol=SCALE_ULPS * np.finfo(np.float32).eps, atol=0)
    else:  # chosen from W itself
        np.testing.assert_array_equal(layer.scale, expected_scale)
    assert layer.retries == 0 and layer.damp_ratio == 0.01


@pytest.mark.parametrize("name", ["fc1", "fc2"])
@pytest.mark.parametrize("bits, symmetric, granularity, act_order", [
    (4, True, "channel", False), (3, False, "group", True), (4, True, "group", False),
])
def test_real_layers_match_the_oracle(mlp, name, bits, symmetric, granularity, act_order):
    w, x = mlp[name]
    h = hessian(x)
    grid, oracle_grid = grid_pair(bits, True, symmetric, granularity, 64)
    layer = qcore.optq(w, h, grid, qcore.GpxqOptions(act_order=act_order))
    reference, params = gpxq_oracle.optq(w, h, oracle_grid, act_order=act_order)
    assert_agrees(layer.q, reference, params)


@pytest.mark.parametrize("name", ["fc1", "fc2"])
@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("act_order", [False, True])
def test_optq_output_error_is_not_above_round_to_nearest(mlp, name, bits, act_order):
    """||X W^T - X Q^T|| on the calibration data: OPTQ minimizes it greedily, with RTN's own scales."""
    w, x = mlp[name]
    grid = qcore.QuantOptions(bits=bits, granularity="channel", axis=0)
    layer = qcore.optq(w, hessian(x), grid, qcore.GpxqOptions(act_order=act_order))
    q, scale, zero_point = rtn(w, grid)
    rtn_error = output_error(x, w, qcore.dequantize(q, scale, zero_point, grid))
    live = np.any(x != 0, axis=0)  # RTN's scales come from all of W; OPTQ's from W with dead inputs zeroed
    if live.all():
        np.testing.assert_array_equal(layer.scale, scale)
    assert output_error(x, w, layer.dequantized) < 0.8 * rtn_error


def test_diagonal_hessian_gives_round_to_nearest_exactly(rng):
    w = rng.standard_normal((30, 50)).astype(np.float32)
    h = np.diag(rng.uniform(0.5, 2.0, 50))
    grid = qcore.QuantOptions(bits=4, symmetric=False, granularity="channel", axis=0)
    layer = qcore.optq(w, h, grid, qcore.GpxqOptions(act_order=True, block_size=7))
    q, scale, zero_point = rtn(w, grid)
    np.testing.assert_array_equal(layer.q, q)
    np.testing.assert_array_equal(layer.scale, scale)
    np.testing.assert_array_equal(layer.zero_point, zero_point)


@pytest.mark.parametrize("granularity", ["channel", "group", "tensor"])
def test_dequantized_weights_are_what_qcore_dequantize_gives(rng, granularity):
    x = correlated_inputs(rng, 200, 64)
    w = rng.standard_normal((20, 64)).astype(np.float32)
    grid = qcore.QuantOptions(bits=5, symmetric=False, granularity=granularity,
                              axis=1 if granularity == "group" else 0, group_size=24)
    layer = qcore.optq(w, hessian(x), grid)
    assert layer.scale.shape == grid.param_shape(w.shape)
    lo, hi = grid.qrange()
    assert layer.q.min() >= lo and layer.q.max() <= hi
    np.testing.assert_array_equal(layer.dequantized, qcore.dequantize(layer.q, layer.scale, layer.zero_point, grid))


def test_dead_inputs_of_a_real_layer_are_zeroed(mlp):
    """Border pixels of Fashion-MNIST are 0 in every image: their H diagonal is 0."""
    w, x = mlp["fc1"]
    h = hessian(x)
    dead = np.diag(h) == 0
    assert dead.sum() > 0
    grid = qcore.QuantOptions(bits=4, symmetric=False, granularity="channel", axis=0)
    layer = qcore.optq(w, h, grid)
    assert layer.dead_inputs == dead.sum()
    np.testing.assert_array_equal(layer.q[:, dead], np.broadcast_to(layer.zero_point[:, None], layer.q[:, dead].shape))
    assert np.all(layer.dequantized[:, dead] == 0)


def test_act_order_result_follows_a_permutation_of_the_inputs(rng):
    """With act-order the processing order depends on H's diagonal only, not on how inputs are numbered."""
    x = correlated_inputs(rng, 300, 48)
    w = rng.standard_normal((16, 48)).astype(np.float32)
    h = hessian(x)
    perm = rng.permutation(48)
    grid = qcore.QuantOptions(bits=3, granularity="channel", axis=0)
    opts = qcore.GpxqOptions(act_order=True, block_size=5)
    a = qcore.optq(w, h, grid, opts)
    b = qcore.optq(np.ascontiguousarray(w[:, perm]), np.ascontiguousarray(h[np.ix_(perm, perm)]), grid, opts)
    np.testing.assert_array_equal(a.q[:, perm], b.q)
    assert not np.array_equal(a.q, qcore.optq(w, h, grid).q)


def test_group_scales_come_from_the_updated_weights(rng):
    """The first group is chosen before any update (RTN's scale); later groups see OPTQ's updates."""
    x = correlated_inputs(rng, 300, 64)
    w = rng.standard_normal((12, 64)).astype(np.float32)
    grid = qcore.QuantOptions(bits=3, granularity="group", axis=1, group_size=16)
    layer = qcore.optq(w, hessian(x), grid)
    rtn_scale, _ = qcore.choose_params(w, grid)
    np.testing.assert_array_equal(layer.scale[:, 0], rtn_scale[:, 0])
    assert np.mean(layer.scale[:, 1:] != rtn_scale[:, 1:]) > 0.5


def indefinite_hessian(rng, d, negative_fraction):
    """A symmetric H whose smallest eigenvalue is -negative_fraction * (mean of the other eigenvalues)."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.linspace(1.0, 2.0, d)
    eig[0] = -negative_fraction * eig[1:].mean()
    h = (q * eig) @ q.T
    return (h + h.T) / 2


def test_failed_factorization_is_retried_with_ten_times_the_damping(rng):
    """Smallest eigenvalue about -0.03 of the mean diagonal: 0.01 damping fails, 0.1 succeeds."""
    h = indefinite_hessian(rng, 40, 0.03)
    w = rng.standard_normal((10, 40)).astype(np.float32)
    grid, oracle_grid = grid_pair(4, True, True, "channel")
    logs = []
    ctx = qcore.Context(log=lambda level, message: logs.append(message))
    layer = qcore.optq(w, h, grid, ctx=ctx)
    assert layer.retries == 1
    assert layer.damp_ratio == pytest.approx(0.1, rel=1e-15)
    assert layer.damp == pytest.approx(0.1 * np.mean(np.diag(h)), rel=1e-12)
    assert any("not positive definite" in m for m in logs)
    reference, _ = gpxq_oracle.optq(w, h, oracle_grid, damp_ratio=0.1)
    assert_agrees(layer.q, reference)


def test_retry_from_zero_damping_starts_at_1e_4(rng):
    h = np.ones((6, 6))  # exactly singular: the second pivot is 0
    w = rng.standard_normal((3, 6)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    layer = qcore.optq(w, h, grid, qcore.GpxqOptions(damp_ratio=0.0))
    assert layer.retries == 1 and layer.damp_ratio == 1e-4 and layer.damp == 1e-4
    with pytest.raises(qcore.SingularError, match=r"damp_ratio 0 \(delta = 0\) after 0 retries"):
        qcore.optq(w, h, grid, qcore.GpxqOptions(damp_ratio=0.0, max_retries=0))


def test_factorization_failing_every_retry_is_an_error(rng):
    h = indefinite_hessian(rng, 30, 100.0)
    w = rng.standard_normal((4, 30)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    with pytest.raises(qcore.SingularError) as e:
        qcore.optq(w, h, grid, qcore.GpxqOptions(max_retries=2))
    message = str(e.value)
    assert message.startswith("qc_optq: argument 'h': H + delta I is not positive definite with damp_ratio 1 ")
    assert "after 2 retries: Cholesky fails at input" in message


def test_thread_count_does_not_change_the_levels(rng):
    x = correlated_inputs(rng, 500, 200)
    w = rng.standard_normal((150, 200)).astype(np.float32)
    h = hessian(x)
    grid = qcore.QuantOptions(bits=4, granularity="group", axis=1, group_size=32)
    opts = qcore.GpxqOptions(act_order=True, block_size=64)
    results = [qcore.optq(w, h, grid, opts, ctx=qcore.Context(threads=t)).q for t in (1, 2, 3)]
    for q in results[1:]:
        np.testing.assert_array_equal(q, results[0])


def test_progress_reaches_every_input_and_can_cancel(rng):
    x = correlated_inputs(rng, 100, 50)
    w = rng.standard_normal((5, 50)).astype(np.float32)
    h = hessian(x)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    seen = []
    qcore.optq(w, h, grid, qcore.GpxqOptions(block_size=16),
               ctx=qcore.Context(progress=lambda stage, done, total: seen.append((stage, done, total))))
    assert seen == [("qc_optq", done, 50) for done in (16, 32, 48, 50)]
    with pytest.raises(qcore.CancelledError):
        qcore.optq(w, h, grid, ctx=qcore.Context(progress=lambda stage, done, total: True))
