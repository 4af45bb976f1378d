"""qcore.quantize / dequantize / fake_quantize against ONNX QuantizeLinear / DequantizeLinear, bit for bit.

The oracle is ONNX (onnx.reference.ReferenceEvaluator and onnxruntime, see conftest.OnnxQDQ). Grids that
ONNX has no type for (narrow range, 2..15 bits) are checked as ONNX's result on the enclosing ONNX type,
clipped to [qmin, qmax]: clamp(clamp(v, a, b), c, d) == clamp(v, c, d) whenever [c, d] lies in [a, b].
"""
import dataclasses

import numpy as np
import pytest

import qcore
from conftest import (STORAGE, assert_same_floats, assert_same_ints, bits_of, broadcast_params,
                      onnx_storage_for)

# name -> (QuantOptions fields, dtype argument of qcore.quantize, ONNX storage)
GRIDS = {
    "int8": (dict(bits=8, signed=True), None, "int8"),
    "uint8": (dict(bits=8, signed=False), None, "uint8"),
    "int4": (dict(bits=4, signed=True), "int4", "int4"),
    "uint4": (dict(bits=4, signed=False), "uint4", "uint4"),
    "int16": (dict(bits=16, signed=True), None, "int16"),
    "uint16": (dict(bits=16, signed=False), None, "uint16"),
}

# (granularity, shape, axis, group_size)
LAYOUTS = [
    ("tensor", (37,), 0, None),
    ("tensor", (8, 33), 0, None),
    ("tensor", (2, 3, 5, 7), 0, None),
    ("channel", (8, 33), 0, None),
    ("channel", (8, 33), 1, None),
    ("channel", (8, 33), -1, None),
    ("channel", (2, 3, 5, 7), 0, None),
    ("channel", (2, 3, 5, 7), 1, None),
    ("channel", (2, 3, 5, 7), 2, None),
    ("channel", (2, 3, 5, 7), -1, None),
    ("group", (8, 33), 1, 11),   # divides the axis
    ("group", (8, 33), 1, 8),    # does not: the last block has 1 element
    ("group", (8, 33), 1, 5),    # does not: the last block has 3 elements
    ("group", (8, 33), 1, 1),
    ("group", (8, 33), 1, 33),
    ("group", (8, 33), 1, 50),   # one block, larger than the axis
    ("group", (6, 40), 0, 4),    # blocks along axis 0
    ("group", (2, 3, 5, 7), 1, 2),
    ("group", (2, 3, 5, 7), 2, 2),
    ("group", (2, 3, 5, 7), -1, 3),
]


def layout_id(layout):
    granularity, shape, axis, group_size = layout
    text = "%s-%s" % (granularity, "x".join(map(str, shape)))
    if granularity != "tensor":
        text += "-axis%d" % axis
    if group_size is not None:
        text += "-g%d" % group_size
    return text


def make_opts(grid_fields, layout, **extra):
    granularity, _, axis, group_size = layout
    fields = dict(grid_fields, granularity=granularity, axis=axis)
    if group_size is not None:
        fields["group_size"] = group_size
    fields.update(extra)
    return qcore.QuantOptions(**fields)


def onnx_layout(layout):
    """(axis, block_size) of the ONNX node: axis normalized, None for per-tensor."""
    granularity, shape, axis, group_size = layout
    if granularity == "tensor":
        return None, None
    return axis % len(shape), group_size


def quantized_values(q, shape):
    """qcore.quantize's result as an int64 array of `shape` (PackedInt4 unpacked)."""
    if isinstance(q, qcore.PackedInt4):
        return q.unpack().astype(np.int64)
    assert q.shape == tuple(shape)
    return q.astype(np.int64)


def check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, axis, block_size, what=""):
    """quantize, dequantize and fake_quantize of qcore against ONNX; returns qcore's integer values."""
    qmin, qmax = opts.qrange()
    scale = np.asarray(scale, np.float32)  # qcore takes numpy arrays (0-d for per-tensor), not scalars
    zero_point = None if zero_point is None else np.asarray(zero_point, np.int32)
    q = qcore.quantize(x, scale, zero_point, opts, dtype=dtype)
    values = quantized_values(q, x.shape)
    zp_onnx = zero_point if zero_point is not None else np.full(np.shape(scale), fixed_zero_point(opts), np.int32)

    expected = onnx_qdq.quantize(x, scale, zp_onnx, storage, axis, block_size)
    if not expected:  # no ONNX backend is an oracle for these quotients: the numpy formula instead
        s, z = broadcast_params(x.shape, scale, zp_onnx, axis, block_size)
        expected = {"numpy": numpy_quantize(x, s, z, *STORAGE[storage][2])}
    for backend, ref in expected.items():
        assert_same_ints(values, np.clip(ref, qmin, qmax), "%s quantize vs %s" % (what, backend))

    if isinstance(q, qcore.PackedInt4):
        assert q.shape == x.shape and q.signed == (dtype == "int4")
        assert q.data.dtype == np.uint8 and q.data.size == (x.size + 1) // 2
        # the bytes ONNX stores for its own result (numpy_helper packs INT4/UINT4 as the format does)
        onnx_values = np.clip(next(iter(expected.values())), qmin, qmax)
        np.testing.assert_array_equal(q.data, onnx_qdq.packed_bytes(onnx_values.ravel(), storage),
                                      err_msg="%s: packed bytes differ from ONNX's" % what)

    y = qcore.dequantize(q, scale, zero_point, opts)
    assert y.dtype == np.float32 and y.shape == x.shape
    for backend, ref in onnx_qdq.dequantize(values, scale, zp_onnx, storage, axis, block_size).items():
        assert_same_floats(y, ref, "%s dequantize vs %s" % (what, backend))

    assert_same_floats(qcore.fake_quantize(x, scale, zero_point, opts), y, "%s fake_quantize" % what)
    return values


def fixed_zero_point(opts):
    qmin, qmax = opts.qrange()
    return 0 if opts.signed else (qmin + qmax + 1) // 2


def test_grid_ranges():
    """The documented (qmin, qmax) of every grid, against the formulas of qc_quant.h."""
    for bits in range(2, 17):
        for narrow in (False, True):
            assert qcore.QuantOptions(bits=bits, signed=True, narrow_range=narrow).qrange() == \
                (-(2 ** (bits - 1)) + narrow, 2 ** (bits - 1) - 1)
            assert qcore.QuantOptions(bits=bits, signed=False, narrow_range=narrow).qrange() == \
                (int(narrow), 2 ** bits - 1)


def test_param_shapes():
    """qc_quant_param_shape's layouts are ONNX's: [] per tensor, [dims[axis]] per channel, x's shape with
    dims[axis] -> ceil(dims[axis] / group_size) per group."""
    for granularity, shape, axis, group_size in LAYOUTS:
        opts = make_opts({}, (granularity, shape, axis, group_size))
        if granularity == "tensor":
            expected = ()
        elif granularity == "channel":
            expected = (shape[axis],)
        else:
            expected = list(shape)
            expected[axis] = -(-shape[axis] // group_size)
            expected = tuple(expected)
        assert opts.param_shape(shape) == expected


def sample_input(rng, shape):
    """Normal values with a different magnitude per index of every axis, a few outliers, exact zeros."""
    x = rng.standard_normal(shape)
    for axis, n in enumerate(shape):
        dims = [1] * len(shape)
        dims[axis] = n
        x = x * np.exp(rng.uniform(-1.5, 1.5, n)).reshape(dims)
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=max(1, flat.size // 20), replace=False)
    flat[picks[: len(picks) // 2]] *= 25.0
    flat[picks[len(picks) // 2:]] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=layout_id)
@pytest.mark.parametrize("grid", list(GRIDS))
def test_chosen_params_match_onnx(onnx_qdq, rng, grid, layout, symmetric):
    fields, dtype, storage = GRIDS[grid]
    opts = make_opts(fields, layout, symmetric=symmetric)
    x = sample_input(rng, layout[1])
    scale, zero_point = qcore.choose_params(x, opts)
    assert scale.dtype == np.float32 and zero_point.dtype == np.int32
    assert scale.shape == opts.param_shape(x.shape) == zero_point.shape
    axis, block_size = onnx_layout(layout)
    check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, axis, block_size, grid)
    if symmetric:  # the fixed zero point may be left out
        q_none = qcore.quantize(x, scale, None, opts, dtype=dtype)
        q_given = qcore.quantize(x, scale, zero_point, opts, dtype=dtype)
        assert_same_ints(quantized_values(q_none, x.shape), quantized_values(q_given, x.shape), "zero_point None")
        assert_same_floats(qcore.fake_quantize(x, scale, None, opts), qcore.fake_quantize(x, scale, zero_point, opts))


def random_params(rng, opts, shape, scale_lo=1e-3, scale_hi=10.0):
    """Log-uniform scales and zero points anywhere in the grid."""
    qmin, qmax = opts.qrange()
    pshape = opts.param_shape(shape)
    scale = np.exp(rng.uniform(np.log(scale_lo), np.log(scale_hi), pshape)).astype(np.float32)
    zero_point = rng.integers(qmin, qmax, pshape, endpoint=True).astype(np.int32)
    return scale, zero_point


@pytest.mark.parametrize("layout", LAYOUTS, ids=layout_id)
@pytest.mark.parametrize("grid", list(GRIDS))
def test_hand_picked_params_match_onnx(onnx_qdq, rng, grid, layout):
    fields, dtype, storage = GRIDS[grid]
    opts = make_opts(fields, layout, symmetric=False)
    scale, zero_point = random_params(rng, opts, layout[1])
    qmin, qmax = opts.qrange()
    # values spread over the grid and well past both ends
    s, z = broadcast_params(layout[1], scale, zero_point, *onnx_layout(layout))
    levels = rng.uniform(qmin - 0.2 * (qmax - qmin) - 3, qmax + 0.2 * (qmax - qmin) + 3, layout[1])
    x = ((levels - z) * s).astype(np.float32)
    axis, block_size = onnx_layout(layout)
    values = check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, axis, block_size, grid)
    assert values.min() == qmin and values.max() == qmax  # both clip edges were reached


# -------------------------------------------------------------------------------------------------
# Adversarial inputs

TIE_SCALES = [0.125, 2.0 ** -7, 3.0, 0.1, 0.37]


@pytest.mark.parametrize("scale_value", TIE_SCALES)
@pytest.mark.parametrize("grid", list(GRIDS))
def test_exact_ties_round_half_to_even(onnx_qdq, grid, scale_value):
    """x = (k + 0.5) * scale for every k around the grid (a sample of k on 16-bit grids)."""
    fields, dtype, storage = GRIDS[grid]
    opts = qcore.QuantOptions(symmetric=False, **fields)
    qmin, qmax = opts.qrange()
    zero_point = np.int32(fixed_zero_point(opts) + (1 if opts.signed else -3))
    k = np.arange(qmin - int(zero_point) - 4, qmax - int(zero_point) + 4)
    if k.size > 4096:
        k = np.concatenate([k[:1000], k[k.size // 2 - 1000: k.size // 2 + 1000], k[-1000:]])
    scale = np.float32(scale_value)
    x = ((k + 0.5) * np.float64(scale)).astype(np.float32)
    q = check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, None, None, grid)
    if float(scale) == 2.0 ** np.round(np.log2(float(scale))):
        # a power-of-two scale makes every x / scale an exact tie: rounding goes to the even neighbour
        assert np.all(x.astype(np.float64) / float(scale) == k + 0.5)
        even = np.where(k % 2 == 0, k, k + 1)
        np.testing.assert_array_equal(q, np.clip(even + int(zero_point), qmin, qmax))


@pytest.mark.parametrize("grid", list(GRIDS))
def test_ties_per_channel(onnx_qdq, grid):
    """Ties under a different power-of-two scale and zero point per channel (and per block)."""
    fields, dtype, storage = GRIDS[grid]
    qmin, qmax = qcore.QuantOptions(**fields).qrange()
    span = min(qmax - qmin, 300)
    k = np.arange(-span // 2 - 3, span // 2 + 3)
    scales = np.float32([0.5, 0.25, 2.0 ** -10, 4.0])
    x = ((k[None, :] + 0.5) * scales[:, None].astype(np.float64)).astype(np.float32)
    rng = np.random.default_rng(7)
    opts = qcore.QuantOptions(granularity="channel", axis=0, symmetric=False, **fields)
    zero_point = rng.integers(qmin, qmax, 4, endpoint=True).astype(np.int32)
    check_against_onnx(onnx_qdq, x, scales, zero_point, opts, dtype, storage, 0, None, grid + " channel")
    gopts = qcore.QuantOptions(granularity="group", axis=1, group_size=7, symmetric=False, **fields)
    gscale = np.repeat(scales[:, None], -(-x.shape[1] // 7), axis=1)
    gzero = rng.integers(qmin, qmax, gscale.shape, endpoint=True).astype(np.int32)
    check_against_onnx(onnx_qdq, x, gscale, gzero, gopts, dtype, storage, 1, 7, grid + " group")


@pytest.mark.parametrize("grid", list(GRIDS))
def test_clip_edges(onnx_qdq, grid):
    """Values at, just inside, half a step past and far beyond both ends of the grid."""
    fields, dtype, storage = GRIDS[grid]
    opts = qcore.QuantOptions(symmetric=False, **fields)
    qmin, qmax = opts.qrange()
    for scale in (np.float32(0.05), np.float32(1.0), np.float32(3.0517578e-05)):
        for zero_point in {qmin, qmax, fixed_zero_point(opts), (qmin + qmax) // 3}:
            lo, hi = qmin - zero_point, qmax - zero_point  # the representable multiples of scale
            steps = np.array([lo, hi, lo - 0.5, hi + 0.5, lo + 0.5, hi - 0.5, lo - 0.49, hi + 0.51, lo - 1, hi + 1,
                              lo - 1e3, hi + 1e3, -1e8, 1e8, 0.0, -0.5, 0.5, -1.5, 1.5], np.float64)
            x = (steps * float(scale)).astype(np.float32)
            x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))])
            q = check_against_onnx(onnx_qdq, x, np.float32(scale), np.int32(zero_point), opts, dtype, storage,
                                   None, None, "%s s=%g z=%d" % (grid, scale, zero_point))
            assert q.min() == qmin and q.max() == qmax


def numpy_quantize(x, scale, zero_point, qmin, qmax):
    """ONNX QuantizeLinear written out in float32 with saturation before any integer conversion (valid
    for every finite input, unlike onnx.reference's int32 intermediate)."""
    with np.errstate(over="ignore"):
        v = np.rint(np.float32(x) / np.float32(scale)) + np.float32(zero_point)
    return np.clip(v, np.float32(qmin), np.float32(qmax)).astype(np.int64)


@pytest.mark.parametrize("grid", list(GRIDS))
def test_far_beyond_the_grid(onnx_qdq, grid):
    """|x / scale| up to infinity (3e38 / 1e-30 overflows float32): saturation, never wrap-around. The
    reference evaluator's int32 intermediate cannot hold these, so onnxruntime and a numpy formula are
    the oracles here."""
    fields, dtype, storage = GRIDS[grid]
    opts = qcore.QuantOptions(symmetric=False, **fields)
    qmin, qmax = opts.qrange()
    x = np.array([1e30, -1e30, 3.4e38, -3.4e38, 1e-30, -1e-30, 1e-45, -1e-45, 0.0, -0.0, 2.0**31, -(2.0**31),
                  2.0**24 + 2, -(2.0**24) - 2, 7.0, -7.0], np.float32)
    for scale in (np.float32(1e-30), np.float32(1.0), np.float32(1e30), np.float32(1e-45)):
        for zero_point in (qmin, qmax, fixed_zero_point(opts)):
            scale_array, zero_array = np.array(scale, np.float32), np.array(zero_point, np.int32)
            q = quantized_values(qcore.quantize(x, scale_array, zero_array, opts, dtype=dtype), x.shape)
            assert_same_ints(q, numpy_quantize(x, scale, zero_point, qmin, qmax), "%s numpy" % grid)
            for backend, ref in onnx_qdq.quantize(x, scale, np.int32(zero_point), storage).items():
                assert_same_ints(q, ref, "%s s=%g z=%d vs %s" % (grid, scale, zero_point, backend))
            y = qcore.dequantize(q.astype(opts.storage_dtype()), scale_array, zero_array, opts)
            for backend, ref in onnx_qdq.dequantize(q, scale, zero_array, storage).items():
                assert_same_floats(y, ref, "%s dequantize vs %s" % (grid, backend))
            assert_same_floats(qcore.fake_quantize(x, scale_array, zero_array, opts), y, "fake_quantize")


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("grid", list(GRIDS))
def test_huge_and_tiny_mixed(onnx_qdq, rng, grid, symmetric):
    """1e30 next to 1e-30 in one tensor and per channel, with qcore's own parameters."""
    fields, dtype, storage = GRIDS[grid]
    x = (rng.choice([1e30, -1e30, 1e-30, -1e-30, 3e29, 1.0, 0.0], size=(6, 40)) * rng.uniform(0.5, 1.0, (6, 40)))
    x[1] = 1e-30 * rng.standard_normal(40)   # a channel of tiny values only
    x = x.astype(np.float32)
    for layout in [("tensor", x.shape, 0, None), ("channel", x.shape, 0, None), ("group", x.shape, 1, 16)]:
        opts = make_opts(fields, layout, symmetric=symmetric)
        scale, zero_point = qcore.choose_params(x, opts)
        assert np.all(np.isfinite(scale)) and np.all(scale > 0)
        axis, block_size = onnx_layout(layout)
        check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, axis, block_size,
                           "%s %s" % (grid, layout[0]))


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("grid", list(GRIDS))
def test_constant_and_zero_tensors(onnx_qdq, grid, symmetric):
    fields, dtype, storage = GRIDS[grid]
    for value in (0.0, -0.0, 3.75, -2.5e-3, 1e-40):
        x = np.full((5, 9), value, np.float32)
        for layout in [("tensor", x.shape, 0, None), ("channel", x.shape, 1, None), ("group", x.shape, 1, 3),
                       ("group", x.shape, 1, 4), ("group", x.shape, 0, 2)]:
            opts = make_opts(fields, layout, symmetric=symmetric)
            scale, zero_point = qcore.choose_params(x, opts)
            assert np.all(scale > 0) and np.all(np.isfinite(scale))
            axis, block_size = onnx_layout(layout)
            q = check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, axis, block_size,
                                   "%s value=%g %s" % (grid, value, layout[0]))
            if value == 0.0:
                # 0 is always exact: quantized to the zero point, dequantized to 0
                s, z = broadcast_params(x.shape, scale, zero_point, axis, block_size)
                np.testing.assert_array_equal(q, z)
                assert np.all(qcore.fake_quantize(x, scale, zero_point, opts) == 0.0)
                if not symmetric:
                    assert np.all(scale == 1.0)  # a range of width 0 gives scale 1


# bits, signed, narrow_range: grids ONNX has no type for, checked on the enclosing ONNX type then clipped
ODD_GRIDS = [(bits, signed, narrow) for bits in (2, 3, 4, 5, 6, 7, 8, 12, 15, 16) for signed in (True, False)
             for narrow in (False, True) if narrow or bits not in (4, 8, 16)]


@pytest.mark.parametrize("bits,signed,narrow", ODD_GRIDS,
                         ids=["%s%d%s" % ("s" if s else "u", b, "n" if n else "") for b, s, n in ODD_GRIDS])
def test_other_widths_and_narrow_range(onnx_qdq, rng, bits, signed, narrow):
    for symmetric in (True, False):
        for layout in [("tensor", (7, 19), 0, None), ("channel", (7, 19), 1, None), ("group", (7, 19), 1, 6)]:
            opts = make_opts(dict(bits=bits, signed=signed, narrow_range=narrow), layout, symmetric=symmetric)
            qmin, qmax = opts.qrange()
            x = sample_input(rng, layout[1])
            scale, zero_point = qcore.choose_params(x, opts)
            assert np.all((qmin <= zero_point) & (zero_point <= qmax))
            # push a few values past both ends of the grid
            x.reshape(-1)[:4] = [1e4, -1e4, 1e6, -1e6]
            storage = onnx_storage_for(opts)
            axis, block_size = onnx_layout(layout)
            q = check_against_onnx(onnx_qdq, x, scale, zero_point, opts, None, storage, axis, block_size,
                                   "bits=%d signed=%s narrow=%s" % (bits, signed, narrow))
            assert q.min() == qmin and q.max() == qmax
            if bits <= 4:
                packed = qcore.quantize(x, scale, zero_point, opts, dtype="int4" if signed else "uint4")
                assert_same_ints(quantized_values(packed, x.shape), q, "packed 4-bit storage")
                assert_same_floats(qcore.dequantize(packed, scale, zero_point, opts),
                                   qcore.dequantize(q.astype(opts.storage_dtype()), scale, zero_point, opts))


@pytest.mark.parametrize("grid", ["int8", "uint8", "int4", "uint4"])
@pytest.mark.parametrize("storage_dtype", [np.int16, np.int32])
def test_wider_integer_storage(onnx_qdq, rng, grid, storage_dtype):
    """The same levels whatever integer dtype holds them."""
    fields, _, storage = GRIDS[grid]
    opts = qcore.QuantOptions(symmetric=False, granularity="channel", axis=1, **fields)
    x = sample_input(rng, (9, 13))
    scale, zero_point = qcore.choose_params(x, opts)
    narrow_q = quantized_values(qcore.quantize(x, scale, zero_point, opts), x.shape)
    wide = qcore.quantize(x, scale, zero_point, opts, dtype=storage_dtype)
    assert wide.dtype == storage_dtype
    assert_same_ints(wide, narrow_q, "wide storage")
    for backend, ref in onnx_qdq.quantize(x, scale, zero_point, storage, 1).items():
        assert_same_ints(wide, ref, backend)
    y = qcore.dequantize(wide, scale, zero_point, opts)
    for backend, ref in onnx_qdq.dequantize(narrow_q, scale, zero_point, storage, 1).items():
        assert_same_floats(y, ref, backend)


@pytest.mark.parametrize("grid", list(GRIDS))
def test_dequantize_every_level(onnx_qdq, rng, grid):
    """Every level of the grid (all 65536 for 16 bits), per channel with random scales and zero points."""
    fields, _, storage = GRIDS[grid]
    opts = qcore.QuantOptions(symmetric=False, granularity="channel", axis=0, **fields)
    qmin, qmax = opts.qrange()
    levels = np.arange(qmin, qmax + 1)
    q = np.stack([levels, levels[::-1], rng.permutation(levels)])
    scale, zero_point = random_params(rng, opts, q.shape, 1e-6, 1e6)
    scale[0] = 1.0
    storage_dtype = opts.storage_dtype()
    y = qcore.dequantize(q.astype(storage_dtype), scale, zero_point, opts)
    for backend, ref in onnx_qdq.dequantize(q, scale, zero_point, storage, 0).items():
        assert_same_floats(y, ref, backend)
    # an independent formula as well: (q - zero_point) * scale in float32
    assert_same_floats(y, (q - zero_point[:, None]).astype(np.float32) * scale[:, None], "formula")
    if grid in ("int4", "uint4"):
        signed = grid == "int4"
        packed = qcore.PackedInt4(qcore.pack_int4(q.ravel().astype(np.int8), signed), q.shape, signed)
        np.testing.assert_array_equal(packed.data, onnx_qdq.packed_bytes(q.ravel(), storage))
        assert_same_floats(qcore.dequantize(packed, scale, zero_point, opts), y, "packed dequantize")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 15, 16, 17])
@pytest.mark.parametrize("signed", [True, False])
def test_pack_unpack_int4_match_onnx(onnx_qdq, rng, n, signed):
    lo, hi = (-8, 7) if signed else (0, 15)
    values = rng.integers(lo, hi, n, endpoint=True)
    packed = qcore.pack_int4(values.astype(np.int8), signed)
    assert packed.dtype == np.uint8 and packed.size == (n + 1) // 2
    if n:
        np.testing.assert_array_equal(packed, onnx_qdq.packed_bytes(values, "int4" if signed else "uint4"))
        # low nibble first; an odd count leaves the last high nibble 0
        np.testing.assert_array_equal(packed[: n // 2] & 0x0F, values[0:n - n % 2:2] & 0x0F)
        if n % 2:
            assert packed[-1] >> 4 == 0
    unpacked = qcore.unpack_int4(packed, n, signed)
    assert unpacked.dtype == (np.int8 if signed else np.uint8)
    np.testing.assert_array_equal(unpacked.astype(np.int64), values)


def test_fake_quantize_in_place(rng):
    x = sample_input(rng, (16, 70))
    opts = qcore.QuantOptions(bits=5, symmetric=False, granularity="group", axis=1, group_size=9)
    scale, zero_point = qcore.choose_params(x, opts)
    expected = qcore.dequantize(qcore.quantize(x, scale, zero_point, opts), scale, zero_point, opts)
    out = qcore.fake_quantize(x, scale, zero_point, opts, out=x)
    assert out is x
    assert_same_floats(x, expected, "in place")


@pytest.mark.parametrize("group_size", [1000, 16384, 16385, 20000, 32768, 40000])
def test_long_groups_match_onnx(onnx_qdq, rng, group_size):
    """Blocks longer than the library's work pieces (16384 elements): each element must still use the
    parameters of its own block (a piece once straddled two blocks when group_size > 16384 was not a
    multiple of 16384)."""
    x = rng.standard_normal((2, 50000)).astype(np.float32)
    opts = qcore.QuantOptions(symmetric=False, granularity="group", axis=1, group_size=group_size)
    pshape = opts.param_shape(x.shape)
    scale = np.float32(0.01) * np.arange(1, np.prod(pshape) + 1, dtype=np.float32).reshape(pshape)
    zero_point = (np.arange(np.prod(pshape), dtype=np.int32).reshape(pshape) * 17 % 200 - 100).astype(np.int32)
    check_against_onnx(onnx_qdq, x, scale, zero_point, opts, None, "int8", 1, group_size, "g=%d" % group_size)


@pytest.mark.parametrize("granularity,axis", [("tensor", 0), ("channel", 0), ("channel", 1)])
def test_large_tensor_matches_onnx(onnx_qdq, rng, granularity, axis):
    """More elements than one work piece, so that the work is split over threads."""
    x = (rng.standard_normal((3, 70001)) * 4).astype(np.float32)
    opts = qcore.QuantOptions(symmetric=False, granularity=granularity, axis=axis)
    scale, zero_point = qcore.choose_params(x, opts)
    check_against_onnx(onnx_qdq, x, scale, zero_point, opts, None, "int8",
                       None if granularity == "tensor" else axis, None, granularity)


def test_fake_quantize_is_dequantize_of_quantize_bitwise(rng):
    """fake_quantize == dequantize(quantize(x)) bit for bit (signs of zeros included) on many grids."""
    x = sample_input(rng, (12, 50))
    x[0, :8] = [-0.0, 0.0, -1e-30, 1e-30, -1e30, 1e30, -3e-3, 3e-3]
    for bits in (2, 4, 8, 11, 16):
        for signed in (True, False):
            for symmetric in (True, False):
                opts = qcore.QuantOptions(bits=bits, signed=signed, symmetric=symmetric, granularity="channel",
                                          axis=0)
                scale, zero_point = qcore.choose_params(x, opts)
                y = qcore.dequantize(qcore.quantize(x, scale, zero_point, opts), scale, zero_point, opts)
                assert_same_floats(qcore.fake_quantize(x, scale, zero_point, opts), y,
                                   "bits=%d signed=%s symmetric=%s" % (bits, signed, symmetric))
                # dequantized zeros are +0.0 (ONNX: (q - z) * s with q == z)
                assert not np.any(bits_of(y) == 0x80000000)


EMPTY_LAYOUTS = [
    ("tensor", (0,), 0, None),
    ("tensor", (3, 0), 0, None),
    ("channel", (3, 0), 0, None),
    ("channel", (0, 4), 1, None),
    ("channel", (2, 0, 5), 0, None),
    ("channel", (2, 0, 5), 2, None),
    ("channel", (2, 0, 5), 1, None),
    ("group", (4, 0), 1, 2),
    ("group", (2, 0, 5), 2, 2),
    ("group", (0, 6), 1, 4),
]


@pytest.mark.parametrize("layout", EMPTY_LAYOUTS, ids=layout_id)
@pytest.mark.parametrize("grid", ["int8", "uint4", "uint16"])
def test_empty_tensors(onnx_qdq, grid, layout):
    """Tensors with no element: parameters of the documented shape (a group with no value has the range
    [0, 0], so scale 1) and empty results."""
    fields, dtype, storage = GRIDS[grid]
    opts = make_opts(fields, layout, symmetric=False)
    x = np.zeros(layout[1], np.float32)
    for method in ("minmax", "percentile", "mse"):
        scale, zero_point = qcore.choose_params(x, dataclasses.replace(opts, scale_method=method))
        assert scale.shape == opts.param_shape(x.shape)
        assert np.all(scale == 1.0) and np.all(zero_point == opts.qrange()[0])
    axis, block_size = onnx_layout(layout)
    values = check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, axis, block_size, grid)
    assert values.shape == x.shape


@pytest.mark.parametrize("grid", list(GRIDS))
def test_scalar_input(onnx_qdq, grid):
    """A 0-d x, per tensor."""
    fields, dtype, storage = GRIDS[grid]
    opts = qcore.QuantOptions(symmetric=False, **fields)
    for value in (-3.25, 0.0, 7.5, 1e20):
        x = np.array(value, np.float32)
        scale, zero_point = np.array(0.5, np.float32), np.array(opts.qrange()[0] + 1, np.int32)
        check_against_onnx(onnx_qdq, x, scale, zero_point, opts, dtype, storage, None, None, "%s %g" % (grid, value))


@pytest.mark.parametrize("pshape", [(1,), (1, 1), (1, 1, 1)])
def test_per_tensor_parameters_of_any_one_element_shape(onnx_qdq, rng, pshape):
    """qc_quant.h: per tensor, any one-element parameter shape is accepted (ONNX allows [] and [1])."""
    x = sample_input(rng, (6, 10))
    opts = qcore.QuantOptions(symmetric=False)
    scale0, zero0 = qcore.choose_params(x, opts)
    scale, zero_point = scale0.reshape(pshape), zero0.reshape(pshape)
    q = qcore.quantize(x, scale, zero_point, opts)
    assert_same_ints(q, qcore.quantize(x, scale0, zero0, opts), "quantize")
    assert_same_floats(qcore.dequantize(q, scale, zero_point, opts), qcore.dequantize(q, scale0, zero0, opts))
    assert_same_floats(qcore.fake_quantize(x, scale, zero_point, opts), qcore.fake_quantize(x, scale0, zero0, opts))
    if len(pshape) == 1:   # ONNX's own 1-element 1-D form
        for backend, ref in onnx_qdq.quantize(x, scale0, zero0, "int8").items():
            assert_same_ints(q, ref, backend)
