"""AXE (accumulator-aware OPTQ, GPFQ and RTN; include/qcore/qc_gpxq.h) against independent numpy
implementations of its update rules (axe_oracle with gpxq_oracle), and its guarantee: every produced row
passes the static verifier, and no partial sum leaves P bits on adversarial or real inputs, where plain
rounding at the same P overflows.

Agreement criterion as for OPTQ and GPFQ (test_gpxq_optq.py): at least 99.9 % of the integers equal and any
difference one level, since qcore sums in a different order (blocks, BLAS) than the oracles; RTN+AXE has
the oracle's arithmetic and must agree exactly."""
import numpy as np
import pytest

import axe_oracle
import gpxq_layers
import gpxq_oracle
import qcore
from test_gpxq_optq import assert_agrees, correlated_inputs, grid_pair, hessian


def gpfq_stats(x, xq):
    stats = qcore.GpxqStats("gpfq", x.shape[1])
    stats.add(x, xq)
    return stats.hessian(), stats.cross()


def axe_pair(rows, k, bits, in_bits, in_signed, tile, soft=True):
    opts = qcore.GpxqOptions(accumulator_bits=bits, input_bits=in_bits, input_signed=in_signed, tile_size=tile,
                             soft_threshold=soft)
    return opts, axe_oracle.Axe(rows, k, bits, in_bits, in_signed, tile, soft)


def adversarial_inputs(q, x_range, tile):
    """Per row and tile the inputs that drive the sum highest and lowest: x_max against positive levels
    and x_min against negative ones, and the mirror (reference §3: the worst case of every partial sum)."""
    x_min, x_max = x_range
    high = np.where(q > 0, x_max, x_min)
    low = np.where(q > 0, x_min, x_max)
    return np.ascontiguousarray(np.concatenate([high, low]), np.int32)


def assert_no_overflow(q, bits, x_range, tile):
    """The guarantee, statically and on adversarial inputs."""
    report = qcore.verify_accumulator(q, bits, x_range, tile=tile)
    assert report.passed, report
    sim = qcore.simulate_accumulator(adversarial_inputs(q, x_range, tile), q, bits, x_range, tile=tile)
    assert sim.wrap_events == sim.saturate_events == sim.wrap_outer_events == 0
    assert sim.max_abs_partial_sum <= 2 ** (bits - 1) - 1
    return sim


CONFIGS = [  # (weight bits, signed, symmetric, granularity, group size, P, input bits, input signed, tile)
    (4, True, True, "channel", 128, 14, 8, False, 0),
    (4, True, True, "channel", 128, 12, 8, False, 32),
    (4, True, False, "channel", 128, 13, 8, True, 24),
    (3, True, True, "group", 32, 11, 4, False, 16),
    (4, False, True, "group", 48, 12, 6, True, 48),
    (4, True, True, "tensor", 128, 15, 8, False, 0),
    (8, True, True, "channel", 128, 16, 8, False, 40),
]


def rtn_with_oracle(rng, config, soft):
    """(qcore's layer, the oracle's levels, the oracle's Axe) of RTN+AXE under one of CONFIGS."""
    wbits, signed, symmetric, granularity, group, bits, in_bits, in_signed, tile = config
    w = rng.standard_normal((24, 96)).astype(np.float32)
    grid, oracle_grid = grid_pair(wbits, signed, symmetric, granularity, group)
    opts, axe = axe_pair(24, 96, bits, in_bits, in_signed, tile, soft)
    layer = qcore.rtn(w, grid, opts)
    reference, _ = axe_oracle.rtn(w, oracle_grid, axe)
    return layer, reference, axe


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("soft", [True, False])
def test_rtn_axe_matches_the_oracle_exactly(rng, config, soft):
    layer, reference, _ = rtn_with_oracle(rng, config, soft)
    np.testing.assert_array_equal(layer.q, reference)
    bits, in_bits, in_signed, tile = config[5:]
    assert_no_overflow(layer.centered(), bits, axe_oracle.input_range(in_bits, in_signed), tile)


def run_with_oracle(rng, algorithm, config, act_order):
    """(qcore's layer, the oracle's levels, the oracle's Axe) of OPTQ or GPFQ with AXE under one of CONFIGS,
    on a random layer with correlated inputs."""
    wbits, signed, symmetric, granularity, group, bits, in_bits, in_signed, tile = config
    x = correlated_inputs(rng, 300, 96)
    w = rng.standard_normal((24, 96)).astype(np.float32)
    grid, oracle_grid = grid_pair(wbits, signed, symmetric, granularity, group)
    opts, axe = axe_pair(24, 96, bits, in_bits, in_signed, tile)
    opts.act_order, opts.block_size = act_order, 20
    if algorithm == "optq":
        h = hessian(x)
        layer = qcore.optq(w, h, grid, opts)
        reference, _ = gpxq_oracle.optq(w, h, oracle_grid, act_order=act_order, axe=axe)
    else:
        h, g = gpfq_stats(x, (x + 0.05 * rng.standard_normal(x.shape)).astype(np.float32))
        layer = qcore.gpfq(w, h, g, grid, opts)
        reference, _ = gpxq_oracle.gpfq_triangular(w, h, g, oracle_grid, act_order=act_order, axe=axe)
    return layer, reference, axe


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("algorithm", ["optq", "gpfq"])
def test_gpxq_axe_matches_the_oracle(rng, algorithm, config, act_order):
    layer, reference, _ = run_with_oracle(rng, algorithm, config, act_order)
    assert_agrees(layer.q, reference)
    bits, in_bits, in_signed, tile = config[5:]
    assert_no_overflow(layer.centered(), bits, axe_oracle.input_range(in_bits, in_signed), tile)


def test_a_wide_accumulator_leaves_the_algorithms_unchanged(rng):
    """P = 64 never binds and the L1 radius (2^64 - 2) / 255 holds every tile: the plain integers."""
    x = correlated_inputs(rng, 200, 64)
    w = rng.standard_normal((16, 64)).astype(np.float32)
    h = hessian(x)
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    wide = qcore.GpxqOptions(accumulator_bits=64, tile_size=16)
    np.testing.assert_array_equal(qcore.optq(w, h, grid, wide).q, qcore.optq(w, h, grid).q)
    np.testing.assert_array_equal(qcore.rtn(w, grid, wide).q, qcore.rtn(w, grid).q)
    scale, zero_point = qcore.choose_params(w, grid)
    np.testing.assert_array_equal(qcore.rtn(w, grid).q, qcore.quantize(w, scale, zero_point, grid, dtype=np.int32))


@pytest.mark.parametrize("seed", range(12))
def test_guarantee_on_random_layers_where_plain_rounding_overflows(seed):
    """Random shapes, grids, widths and tiles: every AXE result verifies and survives adversarial inputs;
    plain OPTQ at the same P is caught overflowing by the same test on most of them."""
    rng = np.random.default_rng(1000 + seed)
    rows, k = int(rng.integers(4, 40)), int(rng.integers(16, 200))
    tile = int(rng.choice([0, 8, 16, 32])) if k >= 32 else 0
    in_bits, in_signed = int(rng.choice([4, 8])), bool(rng.integers(2))
    x_range = axe_oracle.input_range(in_bits, in_signed)
    bits = int(rng.integers(8, 17))
    grid = qcore.QuantOptions(bits=int(rng.choice([3, 4, 8])), symmetric=bool(rng.integers(2)),
                              granularity="channel", axis=0)
    w = (rng.standard_normal((rows, k)) * rng.uniform(0.1, 3.0, (rows, 1))).astype(np.float32)
    h = hessian(correlated_inputs(rng, 3 * k, k))
    opts = qcore.GpxqOptions(accumulator_bits=bits, input_bits=in_bits, input_signed=in_signed, tile_size=tile,
                             act_order=bool(rng.integers(2)), soft_threshold=bool(rng.integers(2)))
    for layer in (qcore.optq(w, h, grid, opts), qcore.rtn(w, grid, opts)):
        assert_no_overflow(layer.centered(), bits, x_range, tile)
    plain = qcore.optq(w, h, grid).centered()
    report = qcore.verify_accumulator(plain, bits, x_range, tile=tile)
    if not report.passed:  # the test can fail: the adversarial inputs find the overflow the verifier predicts
        sim = qcore.simulate_accumulator(adversarial_inputs(plain, x_range, tile), plain, bits, x_range, tile=tile)
        assert sim.wrap_events + sim.wrap_outer_events > 0


def test_plain_optq_overflows_where_axe_does_not(rng):
    w = rng.standard_normal((32, 256)).astype(np.float32)
    h = hessian(correlated_inputs(rng, 600, 256))
    grid = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    plain = qcore.optq(w, h, grid).centered()
    report = qcore.verify_accumulator(plain, 12, (0, 255), tile=64)
    assert not report.passed and report.failing_tiles > 0 and report.first_row >= 0
    sim = qcore.simulate_accumulator(adversarial_inputs(plain, (0, 255), 64), plain, 12, (0, 255), tile=64)
    assert sim.wrap_events > 0 and sim.saturate_events > 0
    axe = qcore.optq(w, h, grid, qcore.GpxqOptions(accumulator_bits=12, tile_size=64)).centered()
    assert_no_overflow(axe, 12, (0, 255), 64)


# ---- the Fashion-MNIST MLP at W4A8 on real activations ------------------------------------------------

def uint8_levels(x):
    """Activations (>= 0) as unsigned 8-bit levels with a per-tensor min-max scale (zero point 0)."""
    scale = float(x.max()) / 255
    return np.clip(np.rint(x / scale), 0, 255).astype(np.int32)


@pytest.fixture(scope="module")
def mlp_layers():
    weights = gpxq_layers.mlp_weights()
    x1 = gpxq_layers.images()
    x2 = gpxq_layers.relu_layer(x1, weights["fc1.weight"], weights["fc1.bias"])
    x3 = gpxq_layers.relu_layer(x2, weights["fc2.weight"], weights["fc2.bias"])
    return [(name, weights[name + ".weight"], x, hessian(x), gpfq_stats(x, x))
            for name, x in (("fc1", x1), ("fc2", x2), ("fc3", x3))]


W4 = qcore.QuantOptions(bits=4, granularity="channel", axis=0)


@pytest.mark.parametrize("bits", [12, 14, 16, 18, 20])
@pytest.mark.parametrize("tile", [0, 64])
def test_real_layers_never_overflow_with_axe(mlp_layers, bits, tile):
    """Every layer, every algorithm: verified, and zero overflows on the real activations (the first
    256 images), where round-to-nearest without AXE overflows at the narrow widths."""
    rtn_events = 0
    for name, w, x, h, hg in mlp_layers:
        levels = uint8_levels(x[:256])
        opts = qcore.GpxqOptions(accumulator_bits=bits, input_bits=8, tile_size=tile, act_order=True)
        for layer in (qcore.rtn(w, W4, opts), qcore.optq(w, h, W4, opts), qcore.gpfq(w, *hg, W4, opts)):
            q = layer.centered()
            assert_no_overflow(q, bits, (0, 255), tile)
            sim = qcore.simulate_accumulator(levels, q, bits, (0, 255), tile=tile)
            assert sim.wrap_events == sim.saturate_events == sim.wrap_outer_events == 0, name
        plain = qcore.rtn(w, W4).centered()
        rtn_events += qcore.simulate_accumulator(levels, plain, bits, (0, 255), tile=tile).wrap_events
    if bits <= 14:
        assert rtn_events > 0  # the comparison has teeth: plain RTN does overflow here


@pytest.mark.parametrize("name", ["fc1", "fc2"])
def test_real_layers_match_the_oracle(mlp_layers, name):
    _, w, x, h, _ = next(layer for layer in mlp_layers if layer[0] == name)
    grid, oracle_grid = grid_pair(4, True, True, "channel")
    opts, axe = axe_pair(w.shape[0], w.shape[1], 14, 8, False, 64)
    layer = qcore.optq(w, h, grid, opts)
    reference, _ = gpxq_oracle.optq(w, h, oracle_grid, axe=axe)
    assert_agrees(layer.q, reference)


# ---- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("opts, pattern", [
    (qcore.GpxqOptions(accumulator_bits=1), r"argument 'opts': accumulator_bits \(0 for no AXE\) = 1 is outside 2\.\.64"),
    (qcore.GpxqOptions(accumulator_bits=65), r"accumulator_bits \(0 for no AXE\) = 65 is outside 2\.\.64"),
    (qcore.GpxqOptions(accumulator_bits=16, input_bits=0), r"argument 'opts': input_bits = 0 is outside 1\.\.32"),
    (qcore.GpxqOptions(accumulator_bits=16, input_bits=33), r"input_bits = 33 is outside 1\.\.32"),
    (qcore.GpxqOptions(accumulator_bits=16, tile_size=-4), r"argument 'opts': tile_size = -4 must be >= 0"),
    (qcore.GpxqOptions(accumulator_bits=16, tile_size=65),
     r"argument 'opts': tile_size = 65 is outside 0\.\.64 \(0 for K; K = 64 inputs per row\)"),
])
@pytest.mark.parametrize("algorithm", ["rtn", "optq", "gpfq"])
def test_bad_axe_options(rng, opts, pattern, algorithm):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    h = np.eye(64)
    with pytest.raises(qcore.InvalidArgumentError, match=pattern):
        run(algorithm, w, h, W4, opts)


def run(algorithm, w, h, grid, opts):
    if algorithm == "rtn":
        return qcore.rtn(w, grid, opts)
    if algorithm == "optq":
        return qcore.optq(w, h, grid, opts)
    return qcore.gpfq(w, h, h, grid, opts)


@pytest.mark.parametrize("tile", [0, 24, 7])
def test_tiles_must_not_span_weight_groups(rng, tile):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    grid = qcore.QuantOptions(bits=4, granularity="group", axis=1, group_size=16)
    with pytest.raises(qcore.InvalidArgumentError,
                       match=r"tile_size = %d does not divide the group size 16: a tile would add levels of two groups"
                       % (tile or 64)):
        qcore.rtn(w, grid, qcore.GpxqOptions(accumulator_bits=16, tile_size=tile))
    qcore.rtn(w, grid, qcore.GpxqOptions(accumulator_bits=16, tile_size=8))  # divides: fine


@pytest.mark.parametrize("algorithm", ["rtn", "optq", "gpfq"])
def test_nan_weights_with_axe(rng, algorithm):
    w = rng.standard_normal((8, 64)).astype(np.float32)
    w[3, 9] = np.nan
    with pytest.raises(qcore.NumericError, match=r"argument 'w': element \[3, 9\] is nan"):
        run(algorithm, w, np.eye(64), W4, qcore.GpxqOptions(accumulator_bits=16))
