"""qcore's quantized integer ops (MatMulInteger, QLinearMatMul, DynamicQuantizeLinear and
com.microsoft.MatMulNBits) against onnxruntime (CPU, graph optimizations off) and numpy oracles: integer
outputs bit for bit, float outputs to 1e-5 relative to the size of the terms each output sums.

onnxruntime only covers part of what ONNX allows (MatMulInteger and QLinearMatMul: u8/u8, u8/s8 and
s8/s8 operands, per-tensor A parameters); the other cases are checked against numpy alone. Its u8 x s8
kernels for AVX2 without VNNI add pairs of products in int16 with saturation (pmaddubsw), so u8 x s8
tests keep |b| <= 64, where no pair can saturate, to stay exact on every CPU."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcore

MS = "com.microsoft"


def elem(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def build(node, inputs, initializers, outputs, opset=21):
    """A one-node model: `inputs` and `initializers` map names to arrays, `outputs` to (elem type, shape)."""
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, elem(a.dtype), list(a.shape)) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in outputs.items()],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers.items()])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(MS, 1)] if node.domain == MS else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10 if opset >= 21 else 8
    return model


def run_qcore(model, feeds, threads=1):
    session = qcore.Session(qcore.Model.from_bytes(model.SerializeToString()), qcore.Context(threads=threads))
    return session.run(feeds)


def run_ort(model, feeds):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def levels(rng, dtype, shape, limit=None):
    info = np.iinfo(dtype)
    lo, hi = (info.min, info.max) if limit is None else (max(info.min, -limit), min(info.max, limit))
    return rng.integers(lo, hi + 1, shape).astype(dtype)


def assert_same(have, want):
    assert have.dtype == want.dtype and have.shape == want.shape, (have.dtype, have.shape, want.dtype, want.shape)
    diff = np.flatnonzero(have.ravel() != want.ravel())
    assert diff.size == 0, "%d of %d differ; first at %d: %r vs %r" % (
        diff.size, have.size, diff[0], have.ravel()[diff[0]], want.ravel()[diff[0]])


def centered(x, zp, per_column):
    """x - zp as int64, zp a scalar, a vector over rows (A) or columns (B), or x's shape with K set to 1."""
    x = x.astype(np.int64)
    if zp is None:
        return x
    zp = np.asarray(zp).astype(np.int64)
    return x - (zp[:, None] if zp.ndim == 1 and not per_column else zp)


def column_shape(b):
    """The shape of a per-column parameter of B as onnxruntime takes it: [N] for a matrix, B's shape with K
    set to 1 for a batch."""
    n = b.shape[-1] if b.ndim > 1 else 1
    return (n,) if b.ndim <= 2 else b.shape[:-2] + (1, n)


def int_matmul(a, za, b, zb):
    return np.matmul(centered(a, za, False), centered(b, zb, True))


# ---- MatMulInteger --------------------------------------------------------------------------------------

# (A dtype, B dtype, |B| limit) for the combinations onnxruntime runs
ORT_PAIRS = [(np.uint8, np.uint8, None), (np.uint8, np.int8, 64), (np.int8, np.int8, None)]
SHAPES = [((3, 5), (5, 4)), ((2, 1, 3, 7), (4, 7, 6)), ((5,), (5, 4)), ((2, 3, 5), (5,)), ((1, 0, 5), (5, 3))]


def matmul_integer_model(a, b, za=None, zb=None, initial_b=True):
    names = ["A", "B", "a_zero_point" if za is not None else "", "b_zero_point" if zb is not None else ""]
    inits = {"B": b} if initial_b else {}
    inits.update({n: z for n, z in (("a_zero_point", za), ("b_zero_point", zb)) if z is not None})
    inputs = {"A": a} if initial_b else {"A": a, "B": b}
    node = helper.make_node("MatMulInteger", names, ["Y"], name="mmi")
    return build(node, inputs, inits, {"Y": (TensorProto.INT32, None)}, opset=10)


@pytest.mark.parametrize("ta, tb, limit", ORT_PAIRS)
@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("zero_points", ["none", "scalar", "per_column"])
def test_matmul_integer_matches_onnxruntime(ta, tb, limit, shapes, zero_points):
    rng = np.random.default_rng(1)
    a, b = levels(rng, ta, shapes[0]), levels(rng, tb, shapes[1], limit)
    za = zb = None
    if zero_points == "scalar":
        za, zb = levels(rng, ta, ()), levels(rng, tb, (), limit)
    elif zero_points == "per_column":
        za, zb = levels(rng, ta, ()), levels(rng, tb, column_shape(b), limit)
    model = matmul_integer_model(a, b, za, zb)
    want = int_matmul(a, za, b, zb).astype(np.int32)
    have = run_qcore(model, {"A": a})["Y"]
    assert_same(have, want)
    assert_same(have, run_ort(model, {"A": a})["Y"])


@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_integer_per_row_and_per_matrix_zero_points(threads):
    """Layouts ONNX allows and onnxruntime does not run: A's zero point per row ([M] and [..., M, 1]), B's
    per matrix and column ([..., 1, N]), s8 x u8; numpy is the oracle."""
    rng = np.random.default_rng(2)
    a, b = levels(rng, np.int8, (2, 3, 4, 9)), levels(rng, np.uint8, (3, 9, 5))
    cases = [(levels(rng, np.int8, (4,)), levels(rng, np.uint8, (5,))),
             (levels(rng, np.int8, (2, 3, 4, 1)), levels(rng, np.uint8, (3, 1, 5)))]
    for za, zb in cases:
        model = matmul_integer_model(a, b, za, zb, initial_b=False)
        have = run_qcore(model, {"A": a, "B": b}, threads)["Y"]
        assert_same(have, int_matmul(a, za, b, zb).astype(np.int32))


def test_matmul_integer_long_sums_are_exact_or_refused():
    """K past one int32 chunk (32768) stays exact; a sum beyond int32 is an error, not a wrapped value."""
    k_fits = 33025  # 33025 * 255 * 255 < 2^31
    a, b = np.full((2, k_fits), 255, np.uint8), np.full((k_fits, 3), 255, np.uint8)
    b[:, 1] = 0
    a[1, ::2] = 1
    model = matmul_integer_model(a, b)
    assert_same(run_qcore(model, {"A": a})["Y"], int_matmul(a, None, b, None).astype(np.int32))
    a, b = np.full((1, k_fits + 1), 255, np.uint8), np.full((k_fits + 1, 1), 255, np.uint8)
    with pytest.raises(qcore.IntegerOverflowError, match="MatMulInteger node 'mmi'.*int32"):
        run_qcore(matmul_integer_model(a, b), {"A": a})


def test_matmul_integer_errors_name_the_node():
    rng = np.random.default_rng(3)
    a, b = levels(rng, np.uint8, (3, 4)), levels(rng, np.uint8, (4, 2))
    with pytest.raises(qcore.DTypeError, match="MatMulInteger node 'mmi': input 0 \\('A'\\) has dtype i32"):
        run_qcore(matmul_integer_model(a.astype(np.int32), b), {"A": a.astype(np.int32)})
    with pytest.raises(qcore.DTypeError, match="MatMulInteger node 'mmi': input 3 \\('b_zero_point'\\) has dtype i8"):
        run_qcore(matmul_integer_model(a, b, zb=np.int8(1)), {"A": a})
    with pytest.raises(qcore.ShapeError, match="MatMulInteger node 'mmi': input 3 .*one per column of B \\(2\\)"):
        run_qcore(matmul_integer_model(a, b, zb=np.zeros(3, np.uint8)), {"A": a})
    with pytest.raises(qcore.ShapeError, match="MatMulInteger node 'mmi': inner dimensions differ"):
        run_qcore(matmul_integer_model(a, b.T.copy()), {"A": a})


# ---- QLinearMatMul --------------------------------------------------------------------------------------

def qlinear_model(a, a_s, a_z, b, b_s, b_z, y_s, y_z, opset=21, initial_b=True):
    params = {"a_scale": a_s, "a_zero_point": a_z, "b_scale": b_s, "b_zero_point": b_z, "y_scale": y_s,
              "y_zero_point": y_z}
    inits = dict(params, b=b) if initial_b else params
    inputs = {"a": a} if initial_b else {"a": a, "b": b}
    names = ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale", "y_zero_point"]
    node = helper.make_node("QLinearMatMul", names, ["y"], name="qlm")
    return build(node, inputs, inits, {"y": (elem(np.asarray(y_z).dtype), None)}, opset=opset)


def qlinear_oracle(a, a_s, a_z, b, b_s, b_z, y_s, y_z):
    """onnxruntime's arithmetic in numpy float32: multiplier a_scale * b_scale / y_scale per column (and
    row), the int32 sum converted to float, scaled, rounded half to even, shifted and saturated."""
    acc = int_matmul(a, a_z, b, b_z).astype(np.int32).astype(np.float32)
    a_s = np.asarray(a_s, np.float32)
    a_s = a_s[:, None] if a_s.ndim == 1 and a_s.size > 1 else a_s
    multiplier = (a_s * np.asarray(b_s, np.float32)) / np.float32(y_s)
    info = np.iinfo(np.asarray(y_z).dtype)
    v = np.rint(acc * multiplier) + np.float32(y_z)
    return np.clip(v, info.min, info.max).astype(np.asarray(y_z).dtype)


def random_qlinear(rng, ta, tb, limit, shapes, per_column):
    a, b = levels(rng, ta, shapes[0]), levels(rng, tb, shapes[1], limit)
    a_s, y_s = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.5, 4))
    b_s = rng.uniform(0.01, 0.1, column_shape(b) if per_column else ()).astype(np.float32)
    b_z = levels(rng, tb, column_shape(b) if per_column else (), limit)
    return a, a_s, levels(rng, ta, ()), b, b_s, b_z, y_s, levels(rng, ta, ())


@pytest.mark.parametrize("ta, tb, limit", ORT_PAIRS)
@pytest.mark.parametrize("shapes", SHAPES[:4])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("opset", [10, 21])
def test_qlinear_matmul_matches_onnxruntime(ta, tb, limit, shapes, per_column, opset):
    args = random_qlinear(np.random.default_rng(4), ta, tb, limit, shapes, per_column)
    model = qlinear_model(*args, opset=opset)
    have = run_qcore(model, {"a": args[0]})["y"]
    assert_same(have, run_ort(model, {"a": args[0]})["y"])
    assert_same(have, qlinear_oracle(*args))
    assert have.size < 8 or len(np.unique(have)) > 4  # not all saturated


@pytest.mark.parametrize("ta, y_z", [(np.uint8, np.uint8(128)), (np.int8, np.int8(0))])
def test_qlinear_matmul_ties_round_to_even_and_saturate(ta, y_z):
    """a_scale * b_scale / y_scale = 0.5 makes every odd sum a tie; some sums reach past the output range."""
    rng = np.random.default_rng(5)
    a, b = levels(rng, ta, (6, 3), 15), levels(rng, ta, (3, 40), 15)
    args = (a, np.float32(0.5), ta(0), b, np.float32(1.0), ta(0), np.float32(1.0), y_z)
    model = qlinear_model(*args)
    have = run_qcore(model, {"a": a})["y"]
    assert_same(have, run_ort(model, {"a": a})["y"])
    assert_same(have, qlinear_oracle(*args))
    acc, info = int_matmul(a, None, b, None), np.iinfo(ta)
    inside = (acc / 2 + int(y_z) > info.min) & (acc / 2 + int(y_z) < info.max)
    ties = inside & (acc % 2 == 1)
    assert ties.sum() > 20 and (~inside).sum() > 20
    assert np.all(have[ties].astype(np.int64) % 2 == (int(y_z) % 2))  # halves went to the even neighbour
    assert np.all(have[~inside] == np.where(acc[~inside] > 0, info.max, info.min))


def test_qlinear_matmul_multiplier_is_float():
    """The multiplier is rounded to float before it scales the sum: for these scales and the sum 15408
    that gives 126 where exact arithmetic gives 125.4999... -> 125 (found by search)."""
    sums = np.array([15408, 15407, 15409, 7, 0])
    a, b = np.array([[255, 1]], np.uint8), np.stack([sums // 255, sums % 255]).astype(np.uint8)
    args = (a, np.float32("0.010219483"), np.uint8(0), b, np.float32("0.48771223"), np.uint8(0),
            np.float32("0.61192065"), np.uint8(0))
    model = qlinear_model(*args)
    have = run_qcore(model, {"a": a})["y"]
    assert have[0, 0] == 126
    assert_same(have, run_ort(model, {"a": a})["y"])
    assert_same(have, qlinear_oracle(*args))


@pytest.mark.parametrize("threads", [1, 2])
def test_qlinear_matmul_long_sums_match_onnxruntime(threads):
    """Sums past 2^24 lose bits when converted to float before scaling, as onnxruntime converts them."""
    rng = np.random.default_rng(12)
    a, b = levels(rng, np.uint8, (4, 2000)), levels(rng, np.uint8, (2000, 9))
    acc = int_matmul(a, None, b, None)
    assert acc.max() > 2**24
    b_s = rng.uniform(0.5, 1.5, 9).astype(np.float32)
    y_s = np.float32(acc.max() / 250.0)
    args = (a, np.float32(1.0), np.uint8(0), b, b_s, np.uint8(0), y_s, np.uint8(3))
    model = qlinear_model(*args)
    have = run_qcore(model, {"a": a}, threads)["y"]
    assert_same(have, run_ort(model, {"a": a})["y"])
    assert_same(have, qlinear_oracle(*args))


@pytest.mark.parametrize("threads", [1, 2])
def test_qlinear_matmul_beyond_onnxruntime(threads):
    """s8 x u8 operands, a per-row a_scale and a per-matrix b_scale: ONNX layouts onnxruntime refuses."""
    rng = np.random.default_rng(6)
    a, b = levels(rng, np.int8, (2, 4, 8)), levels(rng, np.uint8, (2, 8, 5))
    a_s = rng.uniform(0.01, 0.05, 4).astype(np.float32)
    b_s = rng.uniform(0.01, 0.05, (2, 1, 5)).astype(np.float32)
    b_z = levels(rng, np.uint8, (2, 1, 5))
    args = (a, a_s, np.int8(-3), b, b_s, b_z, np.float32(0.05), np.uint8(100))
    have = run_qcore(qlinear_model(*args, initial_b=False), {"a": a, "b": b}, threads)["y"]
    acc = np.matmul(a.astype(np.int64) + 3, b.astype(np.int64) - b_z).astype(np.float32)
    multiplier = (a_s[:, None] * b_s) / np.float32(0.05)
    want = np.clip(np.rint(acc * multiplier) + np.float32(100), 0, 255).astype(np.uint8)
    assert_same(have, want)


def test_qlinear_matmul_errors_name_the_node():
    args = list(random_qlinear(np.random.default_rng(7), np.uint8, np.uint8, None, SHAPES[0], False))
    bad_scale = list(args)
    bad_scale[1] = np.float64(0.1)
    with pytest.raises(qcore.DTypeError, match="QLinearMatMul node 'qlm': input 1 \\('a_scale'\\) has dtype f64"):
        run_qcore(qlinear_model(*bad_scale), {"a": args[0]})
    bad_zero = list(args)
    bad_zero[2] = np.int8(0)
    with pytest.raises(qcore.DTypeError, match="QLinearMatMul node 'qlm': input 2 \\('a_zero_point'\\) has dtype i8"):
        run_qcore(qlinear_model(*bad_zero), {"a": args[0]})
    per_column_y = list(args)
    per_column_y[6] = np.full(4, 0.5, np.float32)
    with pytest.raises(qcore.UnsupportedError, match="QLinearMatMul node 'qlm': y_scale"):
        run_qcore(qlinear_model(*per_column_y), {"a": args[0]})


# ---- DynamicQuantizeLinear ------------------------------------------------------------------------------

def dql_model(shape):
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zero_point"], name="dql")
    outputs = {"y": (TensorProto.UINT8, list(shape)), "y_scale": (TensorProto.FLOAT, []),
               "y_zero_point": (TensorProto.UINT8, [])}
    return build(node, {"x": np.zeros(shape, np.float32)}, {}, outputs, opset=11)


DQL_INPUTS = {
    "mixed": lambda rng: rng.normal(0, 3, (4, 33)).astype(np.float32),
    "positive": lambda rng: rng.uniform(0.5, 7, (5, 7)).astype(np.float32),
    "negative": lambda rng: rng.uniform(-9, -0.1, (2, 3, 4)).astype(np.float32),
    "zeros": lambda rng: np.zeros((3, 3), np.float32),
    "scalar": lambda rng: np.array(-2.5, np.float32),
    "ties": lambda rng: (np.arange(-64, 192, dtype=np.float32) + 0.5) / np.float32(2.0),
    "wide": lambda rng: rng.uniform(-1e30, 3e29, 1000).astype(np.float32),
    "tiny": lambda rng: rng.uniform(-1e-30, 1e-31, 100).astype(np.float32),
}


@pytest.mark.parametrize("case", sorted(DQL_INPUTS))
def test_dynamic_quantize_linear_matches_onnxruntime(case):
    x = DQL_INPUTS[case](np.random.default_rng(8))
    model = dql_model(x.shape)
    have, want = run_qcore(model, {"x": x}), run_ort(model, {"x": x})
    for name in ("y", "y_scale", "y_zero_point"):
        assert_same(have[name], want[name])
    if case != "zeros":  # the spec's formula, where it is defined
        lo, hi = min(np.float32(0), x.min()), max(np.float32(0), x.max())
        assert have["y_scale"] == (hi - lo) / np.float32(255)


def test_dynamic_quantize_linear_refuses_non_finite_values():
    x = np.array([1.0, np.nan, -2.0], np.float32)
    with pytest.raises(qcore.NumericError, match="DynamicQuantizeLinear node 'dql': element 1 is nan"):
        run_qcore(dql_model(x.shape), {"x": x})


# ---- com.microsoft.MatMulNBits --------------------------------------------------------------------------

def pack_fields(q, bits):
    """Packs the last axis of q (values < 2^bits) into bytes, `bits`-bit fields low bits first."""
    per_byte = 8 // bits
    q = q.astype(np.uint8)
    pad = (-q.shape[-1]) % per_byte
    q = np.concatenate([q, np.zeros(q.shape[:-1] + (pad,), np.uint8)], axis=-1)
    q = q.reshape(q.shape[:-1] + (-1, per_byte))
    return np.bitwise_or.reduce(q << (np.arange(per_byte, dtype=np.uint8) * bits), axis=-1).astype(np.uint8)


def nbits_case(rng, k, n, bits, block, zero_points):
    """Random levels, scales and zero points; returns the node's initializers and the float W [K, N]."""
    k_blocks = -(-k // block)
    q = rng.integers(0, 2**bits, (n, k_blocks * block))
    scales = rng.uniform(0.01, 0.1, (n, k_blocks)).astype(np.float32)
    inits = {"B": pack_fields(q, bits).reshape(n, k_blocks, block * bits // 8), "scales": scales}
    if zero_points == "packed":
        z = rng.integers(0, 2**bits, (n, k_blocks))
        inits["zero_points"] = pack_fields(z, bits)
    elif zero_points == "float":
        z = rng.uniform(0, 2**bits - 1, (n, k_blocks)).astype(np.float32)
        inits["zero_points"] = z
    else:
        z = np.full((n, k_blocks), 2 ** (bits - 1))
    w = (q.reshape(n, k_blocks, block).astype(np.float64) - z[:, :, None]) * scales[:, :, None]
    return inits, w.reshape(n, -1)[:, :k].T


def nbits_model(a_shape, inits, k, n, bits, block, **attrs):
    """MatMulNBits(A, B, scales, zero_points, g_idx, bias), the last three when `inits` holds them."""
    names = ["A"] + [name if name in inits else "" for name in ("B", "scales", "zero_points", "g_idx", "bias")]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("MatMulNBits", names, ["Y"], name="mnb", domain=MS, K=k, N=n, bits=bits,
                            block_size=block, **attrs)
    out_shape = list(a_shape[:-1]) + [n]
    return build(node, {"A": np.zeros(a_shape, np.float32)}, inits, {"Y": (TensorProto.FLOAT, out_shape)})


def assert_close(have, want, magnitude, rtol=1e-5):
    """|have - want| <= rtol * magnitude, elementwise, with magnitude = |A| |W| + |bias|: the size of the
    terms each output sums, by which float32 rounding errors scale (where the sum cancels they are large
    relative to the result itself)."""
    assert have.shape == want.shape, (have.shape, want.shape)
    err = np.abs(have.astype(np.float64) - want) / magnitude
    assert err.size == 0 or err.max() <= rtol, err.max()


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("k, block", [(37, 16), (64, 32), (200, 128), (16, 16)])
@pytest.mark.parametrize("zero_points", ["none", "packed", "float"])
@pytest.mark.parametrize("bias", [False, True])
def test_matmul_nbits_matches_onnxruntime(bits, k, block, zero_points, bias):
    rng = np.random.default_rng(9)
    n = 11
    inits, w = nbits_case(rng, k, n, bits, block, zero_points)
    if bias:
        inits["bias"] = rng.normal(0, 1, n).astype(np.float32)
    a = rng.normal(0, 1, (2, 3, k)).astype(np.float32)
    model = nbits_model(a.shape, inits, k, n, bits, block, accuracy_level=0)
    have = run_qcore(model, {"A": a})["Y"]
    b = inits["bias"].astype(np.float64) if bias else 0
    want, magnitude = a.astype(np.float64) @ w + b, np.abs(a) @ np.abs(w) + np.abs(b)
    assert_close(have, want, magnitude)
    if bits != 8 or zero_points != "float":  # onnxruntime 1.31: "Only 2b and 4b ... for unpacked compute"
        assert_close(have, run_ort(model, {"A": a})["Y"], magnitude)


@pytest.mark.parametrize("a_shape", [(5,), (1, 7, 5), (0, 5)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_nbits_shapes_and_one_dimensional_scales(a_shape, threads):
    """A of rank 1, 3 and with no rows; scales given flat [N * k_blocks] as older models have them."""
    rng = np.random.default_rng(10)
    k, n, block = 5, 300, 16
    inits, w = nbits_case(rng, k, n, 4, block, "packed")
    inits["scales"] = inits["scales"].reshape(-1)
    a = rng.normal(0, 1, (a_shape[0], k) if len(a_shape) == 2 else a_shape).astype(np.float32)
    model = nbits_model(a.shape, inits, k, n, 4, block)
    have = run_qcore(model, {"A": a}, threads)["Y"]
    magnitude = np.abs(a) @ np.abs(w)
    assert_close(have, a.astype(np.float64) @ w, magnitude)
    if a.size:
        assert_close(have, run_ort(model, {"A": a})["Y"], magnitude)


def test_matmul_nbits_weights_kept_across_runs_follow_replaced_initializers():
    """The dequantized weight is kept with the node between runs and rebuilt when an input it came from
    is replaced (numpy oracle of each state)."""
    rng = np.random.default_rng(12)
    k, n, block = 64, 24, 32
    inits, w = nbits_case(rng, k, n, 4, block, "packed")
    a = rng.normal(0, 1, (3, k)).astype(np.float32)
    session = qcore.Session(qcore.Model.from_bytes(nbits_model(a.shape, inits, k, n, 4, block).SerializeToString()))
    magnitude = np.abs(a) @ np.abs(w)
    for _ in range(2):
        assert_close(session.run({"A": a})["Y"], a.astype(np.float64) @ w, magnitude)
    session.set_initializer("scales", (2 * inits["scales"]).astype(np.float32))
    assert_close(session.run({"A": a})["Y"], 2 * (a.astype(np.float64) @ w), 2 * magnitude)
    session.set_initializer("scales", inits["scales"])
    assert_close(session.run({"A": a})["Y"], a.astype(np.float64) @ w, magnitude)


def test_gemm_transposed_weight_kept_across_runs_follows_replacements_and_inputs():
    """Gemm keeps a transposed copy of a constant B; a replaced B is re-transposed, and a B fed as a graph
    input (not constant) is used as it comes (numpy oracles)."""
    rng = np.random.default_rng(13)
    x = rng.normal(0, 1, (4, 30)).astype(np.float32)
    w = rng.normal(0, 1, (20, 30)).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    out = {"y": (TensorProto.FLOAT, [4, 20])}
    session = qcore.Session(qcore.Model.from_bytes(build(node, {"x": x}, {"w": w}, out, opset=17).SerializeToString()))
    np.testing.assert_allclose(session.run({"x": x})["y"], x @ w.T, rtol=1e-5, atol=1e-5)
    session.set_initializer("w", -w)
    np.testing.assert_allclose(session.run({"x": x})["y"], -(x @ w.T), rtol=1e-5, atol=1e-5)
    fed = run_qcore(build(node, {"x": x, "w": w}, {}, out, opset=17), {"x": x, "w": w})["y"]
    np.testing.assert_allclose(fed, x @ w.T, rtol=1e-5, atol=1e-5)


def test_matmul_nbits_errors_name_the_node():
    rng = np.random.default_rng(11)
    k, n, block = 32, 4, 16
    inits, _ = nbits_case(rng, k, n, 4, block, "none")
    a = rng.normal(0, 1, (2, k)).astype(np.float32)
    g_idx = dict(inits, g_idx=(np.arange(k) // block).astype(np.int32))
    with pytest.raises(qcore.UnsupportedError, match="MatMulNBits node 'mnb': input 4 \\(g_idx"):
        run_qcore(nbits_model(a.shape, g_idx, k, n, 4, block), {"A": a})
    signed = dict(inits, B=inits["B"].view(np.int8))
    with pytest.raises(qcore.DTypeError, match="MatMulNBits node 'mnb': input 1 \\('B'\\) has dtype i8"):
        run_qcore(nbits_model(a.shape, signed, k, n, 4, block), {"A": a})
    with pytest.raises(qcore.UnsupportedError, match="MatMulNBits node 'mnb': bits = 3"):
        run_qcore(nbits_model(a.shape, inits, k, n, 3, block), {"A": a})
    with pytest.raises(qcore.ShapeError, match="MatMulNBits node 'mnb': B must have shape"):
        run_qcore(nbits_model((2, 48), inits, 48, n, 4, block), {"A": np.zeros((2, 48), np.float32)})
    with pytest.raises(qcore.ShapeError, match="MatMulNBits node 'mnb': the last dimension of A must be K = 32"):
        run_qcore(nbits_model((2, 31), inits, k, n, 4, block), {"A": np.zeros((2, 31), np.float32)})


def test_other_domains_stay_unsupported():
    """Only com.microsoft.MatMulNBits is registered outside the ONNX domain; an ONNX-domain MatMulNBits
    is not an op."""
    node = helper.make_node("MatMulNBits", ["A", "B"], ["Y"], name="n", K=16, N=1, bits=4, block_size=16)
    model = build(node, {"A": np.zeros((1, 16), np.float32), "B": np.zeros((1, 1, 8), np.uint8)}, {},
                  {"Y": (TensorProto.FLOAT, [1, 1])})
    with pytest.raises(qcore.UnsupportedError, match="'MatMulNBits' of node 'n'"):
        qcore.Session(qcore.Model.from_bytes(model.SerializeToString()))
    node = helper.make_node("QLinearMatMul", ["A", "B"], ["Y"], name="m", domain="com.example")
    model = build(node, {"A": np.zeros((1, 16), np.float32), "B": np.zeros((1, 1, 8), np.uint8)}, {},
                  {"Y": (TensorProto.FLOAT, [1, 1])})
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(qcore.UnsupportedError, match="'QLinearMatMul' \\(domain 'com.example'\\)"):
        qcore.Session(qcore.Model.from_bytes(model.SerializeToString()))
