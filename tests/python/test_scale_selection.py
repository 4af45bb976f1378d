"""qcore.choose_params against a numpy implementation of the scale rules documented at the top of
include/qcore/qc_quant.h:

* the range [lo, hi] of a parameter group is widened to include 0;
* symmetric signed: scale = max(|lo|, |hi|) / qmax, zero point 0; symmetric unsigned: z = (qmin+qmax+1)/2,
  scale = max(|lo|, |hi|) / (qmax - z); asymmetric: scale = (hi - lo) / (qmax - qmin),
  z = clamp(round_half_even(qmin - lo / scale)) (with the stored float32 scale);
* a range of width 0 (or a scale float32 cannot hold) gives scale 1; scales are computed in double and
  stored as float32;
* minmax: [min, max] (symmetric: [-absmax, absmax]); percentile: numpy.percentile(method='linear') of |x|
  (symmetric) or of x at (100-p, p); MSE: alpha = r + (1-r) i / (steps-1), i = 0..steps-1, applied to the
  min-max range, fake quantization in float32 as ONNX, squared error summed in float64 in element order,
  the least error wins and ties go to the larger alpha.
"""
import numpy as np
import pytest

import qcore

# -------------------------------------------------------------------------------------------------
# The oracle


def grid_range(bits, signed, narrow):
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return int(narrow), 2 ** bits - 1


def params_from_range(lo, hi, opts):
    """Vectorized over arrays lo, hi (float64): (scale float32, zero point int64)."""
    qmin, qmax = grid_range(opts.bits, opts.signed, opts.narrow_range)
    lo = np.minimum(np.asarray(lo, np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, np.float64), 0.0)
    if opts.symmetric:
        z = 0 if opts.signed else (qmin + qmax + 1) // 2
        scale64 = np.maximum(-lo, hi) / float(qmax - z)
    else:
        scale64 = (hi - lo) / float(qmax - qmin)
    with np.errstate(over="ignore"):
        scale = scale64.astype(np.float32)
    scale = np.where((scale > 0) & np.isfinite(scale), scale, np.float32(1.0)).astype(np.float32)
    if opts.symmetric:
        zero_point = np.full(scale.shape, z, np.int64)
    else:
        zero_point = np.clip(np.rint(qmin - lo / scale.astype(np.float64)), qmin, qmax).astype(np.int64)
    return scale, zero_point


def fake_quantize_f32(values, scale, zero_point, qmin, qmax):
    """ONNX QuantizeLinear then DequantizeLinear in float32; broadcasting over leading axes."""
    s = np.asarray(scale, np.float32)
    z = np.asarray(zero_point).astype(np.float32)
    with np.errstate(over="ignore"):
        q = np.rint(values / s) + z
    q = np.clip(q, np.float32(qmin), np.float32(qmax))
    return (q - z) * s


def sequential_sum_of_squares(values, approx):
    """sum (v - a)^2 in float64 in element order along the last axis (as the C loop adds them)."""
    d = values.astype(np.float64) - approx.astype(np.float64)
    return np.cumsum(d * d, axis=-1)[..., -1]


def parameter_groups(x, opts):
    """[(parameter indices (flat), values [G, n] float32)] with each group's values in C order: the
    parameters of qcore.choose_params for x under opts, grouped by group length."""
    pshape = opts.param_shape(x.shape)
    if opts.granularity == "tensor":
        return [(np.array([0]), x.reshape(1, -1))]
    axis = opts.axis % x.ndim
    if opts.granularity == "channel":
        rows = np.stack([np.take(x, p, axis=axis).reshape(-1) for p in range(x.shape[axis])])
        return [(np.arange(x.shape[axis]), rows)]
    # groups: blocks of group_size along axis, per index of every other axis
    gs = opts.group_size
    xm = np.moveaxis(x, axis, -1)                         # [..., D]
    flat_index = np.moveaxis(np.arange(int(np.prod(pshape))).reshape(pshape), axis, -1)  # [..., G]
    out = []
    for g in range(flat_index.shape[-1]):
        block = xm[..., g * gs:(g + 1) * gs]
        out.append((flat_index[..., g].reshape(-1), block.reshape(-1, block.shape[-1])))
    return out


def oracle_minmax(values, opts):
    lo = np.minimum(values.min(axis=1), 0).astype(np.float64)
    hi = np.maximum(values.max(axis=1), 0).astype(np.float64)
    return params_from_range(lo, hi, opts)


def percentile_range(values, opts):
    v = values.astype(np.float64)
    if opts.symmetric:
        hi = np.percentile(np.abs(v), opts.percentile, axis=1, method="linear")
        return -hi, hi
    return (np.percentile(v, 100.0 - opts.percentile, axis=1, method="linear"),
            np.percentile(v, opts.percentile, axis=1, method="linear"))


def oracle_percentile(values, opts):
    return params_from_range(*percentile_range(values, opts), opts)


def mse_alphas(opts):
    r, steps = opts.mse_min_ratio, opts.mse_steps
    return [r + (1.0 - r) * i / (steps - 1) for i in range(steps)]  # the documented expression, in double


def oracle_mse(values, opts):
    """(scale, zero point, errors [steps, G]) of the MSE search."""
    qmin, qmax = grid_range(opts.bits, opts.signed, opts.narrow_range)
    lo = np.minimum(values.min(axis=1), 0).astype(np.float64)
    hi = np.maximum(values.max(axis=1), 0).astype(np.float64)
    alphas = mse_alphas(opts)
    scales, zeros = zip(*[params_from_range(a * lo, a * hi, opts) for a in alphas])
    scales, zeros = np.stack(scales), np.stack(zeros)                            # [steps, G]
    approx = fake_quantize_f32(values[None], scales[..., None], zeros[..., None], qmin, qmax)
    errors = sequential_sum_of_squares(values[None], approx)                     # [steps, G]
    least = errors.min(axis=0)
    # ties go to the larger alpha: the last index reaching the least error
    best = len(alphas) - 1 - np.argmax((errors == least)[::-1], axis=0)
    cols = np.arange(values.shape[0])
    return scales[best, cols], zeros[best, cols], errors


def choose_params_oracle(x, opts):
    """The documented parameters for x under opts, as (scale, zero_point) of qcore's shapes."""
    pshape = opts.param_shape(x.shape)
    scale = np.empty(int(np.prod(pshape)), np.float32)
    zero_point = np.empty(int(np.prod(pshape)), np.int64)
    method = {"minmax": oracle_minmax, "percentile": oracle_percentile,
              "mse": lambda v, o: oracle_mse(v, o)[:2]}[opts.scale_method]
    for index, values in parameter_groups(x, opts):
        scale[index], zero_point[index] = method(values, opts)
    return scale.reshape(pshape), zero_point.reshape(pshape)


# -------------------------------------------------------------------------------------------------
# Comparison


def assert_matches_oracle(x, opts, ctx=None):
    scale, zero_point = qcore.choose_params(x, opts, ctx=ctx)
    want_scale, want_zero = choose_params_oracle(x, opts)
    assert scale.shape == want_scale.shape == zero_point.shape
    assert np.all(scale > 0) and np.all(np.isfinite(scale))
    qmin, qmax = grid_range(opts.bits, opts.signed, opts.narrow_range)
    assert np.all((qmin <= zero_point) & (zero_point <= qmax))
    what = "%s" % (opts,)
    if opts.scale_method == "percentile":
        np.testing.assert_allclose(scale, want_scale, rtol=1e-6, atol=0, err_msg=what)
        exact = scale == want_scale
        np.testing.assert_array_equal(zero_point[exact], want_zero[exact], err_msg=what)
        if not np.all(exact) and not opts.symmetric:
            # a zero point consistent with qcore's own scale and the oracle's lo (within its tolerance)
            groups = {}
            for index, values in parameter_groups(x, opts):
                lo, _ = percentile_range(values, opts)
                for i, l in zip(index, lo):
                    groups[i] = l
            for i in np.flatnonzero(~exact.ravel()):
                lo = min(groups[i], 0.0)
                candidates = {int(np.clip(np.rint(qmin - l / float(scale.ravel()[i])), qmin, qmax))
                              for l in (lo * (1 - 2e-6), lo, lo * (1 + 2e-6))}
                assert zero_point.ravel()[i] in candidates, (what, i, zero_point.ravel()[i], candidates)
        elif not np.all(exact):
            np.testing.assert_array_equal(zero_point, want_zero, err_msg=what)
        return scale, zero_point
    if opts.scale_method == "mse":
        differ = np.flatnonzero(scale.ravel() != want_scale.ravel())
        if differ.size:  # only a near-tie may pick another candidate: its error must be as small
            for index, values in parameter_groups(x, opts):
                for row, i in enumerate(index):
                    if i not in differ:
                        continue
                    v = values[row]
                    got = sequential_sum_of_squares(v, fake_quantize_f32(v, scale.ravel()[i], zero_point.ravel()[i],
                                                                         qmin, qmax))
                    want = sequential_sum_of_squares(v, fake_quantize_f32(v, want_scale.ravel()[i],
                                                                          want_zero.ravel()[i], qmin, qmax))
                    assert abs(got - want) <= 1e-9 * max(abs(want), 1e-300), (what, i, got, want)
            same = scale == want_scale
            np.testing.assert_array_equal(zero_point[same], want_zero[same], err_msg=what)
            return scale, zero_point
    np.testing.assert_array_equal(scale, want_scale, err_msg=what)
    np.testing.assert_array_equal(zero_point, want_zero, err_msg=what)
    return scale, zero_point


# -------------------------------------------------------------------------------------------------
# Cases

GRIDS = {
    "s8-sym": dict(bits=8, signed=True, symmetric=True),
    "s8-asym": dict(bits=8, signed=True, symmetric=False),
    "u8-sym": dict(bits=8, signed=False, symmetric=True),
    "u8-asym": dict(bits=8, signed=False, symmetric=False),
    "s4-sym-narrow": dict(bits=4, signed=True, symmetric=True, narrow_range=True),
    "u4-asym": dict(bits=4, signed=False, symmetric=False),
    "s2-asym": dict(bits=2, signed=True, symmetric=False),
    "u3-sym-narrow": dict(bits=3, signed=False, symmetric=True, narrow_range=True),
    "s16-sym": dict(bits=16, signed=True, symmetric=True),
    "u16-asym-narrow": dict(bits=16, signed=False, symmetric=False, narrow_range=True),
}

METHODS = {
    "minmax": dict(scale_method="minmax"),
    "pct99.9": dict(scale_method="percentile", percentile=99.9),
    "pct100": dict(scale_method="percentile", percentile=100.0),
    "pct90": dict(scale_method="percentile", percentile=90.0),
    "pct50.5": dict(scale_method="percentile", percentile=50.5),
    "mse": dict(scale_method="mse"),
    "mse-2steps": dict(scale_method="mse", mse_steps=2, mse_min_ratio=0.5),
    "mse-37steps": dict(scale_method="mse", mse_steps=37, mse_min_ratio=0.05),
}

# (name, shape, granularity, axis, group_size)
LAYOUTS = {
    "tensor": ((24, 48), "tensor", 0, None),
    "tensor-4d": ((3, 5, 8, 6), "tensor", 0, None),
    "channel-axis0": ((24, 48), "channel", 0, None),
    "channel-last": ((24, 48), "channel", -1, None),
    "channel-4d-axis1": ((3, 5, 8, 6), "channel", 1, None),
    "group-axis1-g16": ((24, 48), "group", 1, 16),
    "group-axis1-g48": ((24, 48), "group", 1, 48),
    "group-axis1-g100": ((24, 48), "group", 1, 100),   # one block longer than the axis
    "group-axis0-g8": ((24, 48), "group", 0, 8),
    "group-4d-axis2-g4": ((3, 5, 8, 6), "group", 2, 4),
    "group-4d-last-g3": ((3, 5, 8, 6), "group", -1, 3),
    "group-axis1-g7-partial": ((24, 48), "group", 1, 7),    # 48 = 6 * 7 + 6
    "group-axis0-g5-partial": ((24, 48), "group", 0, 5),    # 24 = 4 * 5 + 4, gathered
}


def datasets(rng, shape):
    normal = rng.standard_normal(shape)
    heavy = rng.standard_t(2, shape)
    sparse = np.where(rng.random(shape) < 0.9, 0.0, rng.standard_normal(shape))
    levels = rng.integers(-3, 4, shape) * 0.25    # few distinct values: MSE ties between candidates
    return {
        "normal": normal,
        "heavy-tailed": heavy * np.exp(rng.uniform(-3, 3, shape[-1])),
        "positive": np.abs(normal) + 0.5,
        "negative": -np.abs(heavy) - 1e-3,
        "sparse": sparse,
        "few-levels": levels,
        "constant": np.full(shape, -1.25),
        "zeros": np.zeros(shape),
        "tiny": normal * 1e-38,
        "huge": heavy * 1e36,
    }


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_choose_params_matches_documented_rules(rng, layout, method):
    # one thread for these thousands of small calls (results do not depend on threads:
    # test_threads_do_not_change_params); the default context is used by test_default_context_matches
    ctx = qcore.Context(threads=1)
    shape, granularity, axis, group_size = LAYOUTS[layout]
    for data_name, data in datasets(rng, shape).items():
        x = data.astype(np.float32)
        for grid_name, grid in GRIDS.items():
            fields = dict(grid, granularity=granularity, axis=axis, **METHODS[method])
            if group_size is not None:
                fields["group_size"] = group_size
            opts = qcore.QuantOptions(**fields)
            try:
                assert_matches_oracle(x, opts, ctx=ctx)
            except AssertionError as e:
                raise AssertionError("data=%s grid=%s: %s" % (data_name, grid_name, e)) from None


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
def test_default_context_matches(rng, method):
    """The default context (one thread per core) on a few hundred groups against the oracle."""
    x = rng.standard_t(4, (700, 24)).astype(np.float32)
    for grid in ("s8-asym", "u4-asym", "s16-sym"):
        for granularity, axis in (("channel", 0), ("group", 0), ("channel", -1)):
            opts = qcore.QuantOptions(granularity=granularity, axis=axis, group_size=4, scale_method=method,
                                      percentile=99.0, **GRIDS[grid])
            assert_matches_oracle(x, opts)


def test_width_zero_gives_scale_one(rng):
    """A range of width 0 gives scale 1; the zero point is then the grid's (symmetric) or qmin - 0."""
    for grid in GRIDS.values():
        opts = qcore.QuantOptions(granularity="channel", axis=0, **grid)
        x = np.zeros((4, 10), np.float32)
        scale, zero_point = qcore.choose_params(x, opts)
        assert np.all(scale == 1.0)
        qmin, qmax = grid_range(opts.bits, opts.signed, opts.narrow_range)
        expected = (0 if opts.signed else (qmin + qmax + 1) // 2) if opts.symmetric else qmin
        assert np.all(zero_point == expected)


def test_zero_is_exact(rng):
    """The range includes 0, so 0 quantizes to the zero point and back to 0 exactly."""
    x = np.abs(rng.standard_normal((16, 30))).astype(np.float32) + 2.0   # all positive: 0 is outside the data
    x[1] = -x[1]
    for grid in GRIDS.values():
        for method in ("minmax", "percentile", "mse"):
            opts = qcore.QuantOptions(granularity="channel", axis=0, scale_method=method, percentile=99.0, **grid)
            scale, zero_point = qcore.choose_params(x, opts)
            zeros = np.zeros_like(x)
            assert np.all(qcore.fake_quantize(zeros, scale, zero_point, opts) == 0.0)


def test_percentile_100_is_minmax(rng):
    x = (rng.standard_t(3, (20, 33)) + 0.3).astype(np.float32)
    for grid in GRIDS.values():
        for granularity in ("tensor", "channel"):
            mm = qcore.choose_params(x, qcore.QuantOptions(granularity=granularity, **grid))
            pc = qcore.choose_params(x, qcore.QuantOptions(granularity=granularity, scale_method="percentile",
                                                           percentile=100.0, **grid))
            np.testing.assert_array_equal(mm[0], pc[0])
            np.testing.assert_array_equal(mm[1], pc[1])


def test_mse_never_worse_than_minmax(rng):
    """alpha = 1 is a candidate, so the chosen error is at most min-max's."""
    x = rng.standard_t(2, (24, 40)).astype(np.float32)
    for grid in GRIDS.values():
        opts = qcore.QuantOptions(granularity="channel", axis=0, scale_method="mse", **grid)
        mm = qcore.choose_params(x, qcore.QuantOptions(granularity="channel", axis=0, **grid))
        ms = qcore.choose_params(x, opts)
        e_mm = ((x - qcore.fake_quantize(x, *mm, opts)).astype(np.float64) ** 2).sum(axis=1)
        e_ms = ((x - qcore.fake_quantize(x, *ms, opts)).astype(np.float64) ** 2).sum(axis=1)
        assert np.all(e_ms <= e_mm * (1 + 1e-12))


# (values, grid, mse_steps, mse_min_ratio, the tied candidates i, the expected alpha): exact ties of the
# squared error between two candidates with different scales (found by search with the oracle)
MSE_TIES = [
    ([-1.0, -1.0, 0.0], dict(bits=3, signed=True, symmetric=True), 7, 0.5, (3, 6), 1.0),
    ([-0.25, -0.25], dict(bits=2, signed=False, symmetric=True), 4, 0.25, (1, 3), 1.0),
    ([-2.0, 1.5], dict(bits=3, signed=True, symmetric=True), 10, 0.5, (4, 5), 0.5 + 0.5 * 5 / 9),
    ([2.0, 0.5, -1.25], dict(bits=2, signed=False, symmetric=True), 5, 0.5, (2, 3), 0.5 + 0.5 * 3 / 4),
]


@pytest.mark.parametrize("values,grid,steps,ratio,tied,alpha", MSE_TIES)
def test_mse_ties_go_to_the_larger_alpha(values, grid, steps, ratio, tied, alpha):
    x = np.array([values], np.float32)
    opts = qcore.QuantOptions(scale_method="mse", mse_steps=steps, mse_min_ratio=ratio, granularity="channel",
                              axis=0, **grid)
    _, _, errors = oracle_mse(x, opts)
    # the premise: the two candidates tie exactly, with different scales, and nothing is better
    assert errors[tied[0], 0] == errors[tied[1], 0] == errors[:, 0].min()
    lo, hi = float(min(x.min(), 0)), float(max(x.max(), 0))
    a0, a1 = (ratio + (1.0 - ratio) * i / (steps - 1) for i in tied)
    assert params_from_range(a0 * lo, a0 * hi, opts)[0] != params_from_range(a1 * lo, a1 * hi, opts)[0]
    scale, zero_point = qcore.choose_params(x, opts)
    want_scale, want_zero = params_from_range(alpha * lo, alpha * hi, opts)
    assert scale[0] == want_scale and zero_point[0] == want_zero


def test_threads_do_not_change_params(rng):
    x = rng.standard_t(3, (300, 70)).astype(np.float32)
    for method in ("minmax", "percentile", "mse"):
        opts = qcore.QuantOptions(bits=4, symmetric=False, granularity="group", axis=1, group_size=7,
                                  scale_method=method)
        results = [qcore.choose_params(x, opts, ctx=qcore.Context(threads=t)) for t in (1, 2, 3)]
        for s, z in results[1:]:
            np.testing.assert_array_equal(s, results[0][0])
            np.testing.assert_array_equal(z, results[0][1])


# -------------------------------------------------------------------------------------------------
# Blocks that do not divide their axis: the last block of each row has fewer elements. (Regression: that
# block was once searched over group_size values, reading past it along the last axis - into the next row
# or past the end of x - and stale gather-buffer values otherwise.)


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse"])
@pytest.mark.parametrize("shape,axis,group_size", [((48, 64), 1, 7), ((48, 64), 1, 60), ((3, 5, 8, 7), -1, 4)])
def test_partial_blocks_along_last_axis(rng, shape, axis, group_size, method):
    x = rng.standard_normal(shape).astype(np.float32)
    opts = qcore.QuantOptions(bits=8, symmetric=False, granularity="group", axis=axis, group_size=group_size,
                              scale_method=method)
    assert_matches_oracle(x, opts)


def test_partial_block_reads_nothing_past_the_array():
    """x is a C-contiguous view of the first 45 floats of a larger buffer; the floats after it must not
    change the parameters. x = zeros (5, 9), blocks of 4 along axis 1: the last block is x[4, 8:9] alone."""
    buffer = np.full(64, 1000.0, np.float32)
    buffer[:45] = 0.0
    x = buffer[:45].reshape(5, 9)
    assert x.flags.c_contiguous
    opts = qcore.QuantOptions(symmetric=False, granularity="group", axis=1, group_size=4)
    scale, zero_point = qcore.choose_params(x, opts)
    np.testing.assert_array_equal(scale, np.ones((5, 3), np.float32))   # every block is all zero: width 0


def test_partial_blocks_along_axis_0():
    """Blocks of 4 along axis 0 of a (6, 40) tensor: the second block of each column has rows 4 and 5 only
    (gathered, since the column is strided). Large values in rows 0..3 must not leak into them."""
    x = np.zeros((6, 40), np.float32)
    x[:4] = 100.0
    x[4:] = np.linspace(-1, 1, 80, dtype=np.float32).reshape(2, 40)
    opts = qcore.QuantOptions(symmetric=False, granularity="group", axis=0, group_size=4)
    assert_matches_oracle(x, opts, ctx=qcore.Context(threads=1))


def test_partial_blocks_param_shape():
    opts = qcore.QuantOptions(granularity="group", axis=1, group_size=7)
    assert opts.param_shape((48, 64)) == (48, 10)
    opts = qcore.QuantOptions(granularity="group", axis=0, group_size=4)
    assert opts.param_shape((6, 40)) == (2, 40)
