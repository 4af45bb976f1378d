"""Integer execution of uniform (QDQ) quantized MatMul/Gemm layers (qc_session_set_integer_kernels).
Oracles: numpy's exact integer sums sum_k (q - zq)(w - zw) scaled in float32 (q from numpy's round half to
even); MatMulInteger on the same integers for the simulated accumulators (results and statistics); the
float path of a copy of the graph that cannot be fused (bit for bit, for the switch off); onnxruntime on
pipeline-written MNIST models."""
import os

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcore

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "models")
ULP = np.float32(2.0 ** -23)
GRIDS = {"uint8": (TensorProto.UINT8, 0, 255), "int8": (TensorProto.INT8, -128, 127),
         "uint4": (TensorProto.UINT4, 0, 15), "int4": (TensorProto.INT4, -8, 7)}


def initializer(name, array, kind=None):
    """array as an initializer; kind (a GRIDS key) for 4-bit element types, which onnx packs itself."""
    array = np.asarray(array)
    if kind in ("uint4", "int4"):
        return helper.make_tensor(name, GRIDS[kind][0], array.shape, array.ravel().tolist())
    if kind is not None:
        array = array.astype(kind)
    return numpy_helper.from_array(array, name)


def qdq_linear_model(x_shape, w, w_kind, w_scale, w_zero, act, act_scale, act_zero, op="MatMul", gemm=None,
                     bias=None, float_scale_input=False):
    """x -> QuantizeLinear -> DequantizeLinear -> op(., DequantizeLinear(w)) -> y. float_scale_input makes
    the weight's scale a graph input, which no integer path takes (the fusion needs constants)."""
    gemm = gemm or {}
    trans_b = gemm.get("transB", 0)
    outputs = w.shape[0] if trans_b else w.shape[1]
    axis = 0 if trans_b else 1
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=axis)]
    inputs = ["xd", "wd"] + (["c"] if bias is not None else [])
    nodes.append(helper.make_node(op, inputs, ["y"], **gemm))
    inits = [initializer("xs", np.float32(act_scale)), initializer("xz", act_zero, act),
             initializer("w", w, w_kind), initializer("wz", w_zero, w_kind)]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    if float_scale_input:
        graph_inputs.append(helper.make_tensor_value_info("ws", TensorProto.FLOAT, list(np.shape(w_scale))))
    else:
        inits.append(initializer("ws", np.asarray(w_scale, np.float32)))
    if bias is not None:
        inits.append(initializer("c", bias.astype(np.float32)))
    y_shape = list(x_shape[:-1]) + [outputs]
    graph = helper.make_graph(nodes, "g", graph_inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return qcore.Model.from_bytes(model.SerializeToString())


def quantize_oracle(x, scale, zero, kind):
    _, lo, hi = GRIDS[kind]
    return np.clip(np.rint(x / np.float32(scale)) + zero, lo, hi).astype(np.int64)


def layer_oracle(x, w, w_scale, w_zero, act, act_scale, act_zero, trans_b=False, alpha=1.0, beta=1.0, bias=None):
    """Exact integer sums, then the float32 scaling the fused layer documents."""
    q = quantize_oracle(x, act_scale, act_zero, act)
    wt = w.T if trans_b else w                                   # [K, O]
    zw = np.broadcast_to(np.asarray(w_zero, np.int64).ravel(), (wt.shape[1],))
    sums = (q - act_zero).reshape(-1, x.shape[-1]) @ (wt.astype(np.int64) - zw)
    assert np.abs(sums).max() < 2 ** 31
    sw = np.broadcast_to(np.asarray(w_scale, np.float32).ravel(), (wt.shape[1],))
    y = sums.astype(np.float32) * (np.float32(act_scale) * sw)
    if trans_b or alpha != 1.0 or bias is not None:
        y = np.float32(alpha) * y
        if bias is not None:
            y = y + np.float32(beta) * np.broadcast_to(bias, y.shape)
    return y.reshape(x.shape[:-1] + (wt.shape[1],)).astype(np.float32), sums


def random_weights(rng, kind, shape):
    _, lo, hi = GRIDS[kind]
    return rng.integers(lo, hi + 1, shape)


def assert_close_to_oracle(got, want, scale):
    """A few float32 ulps of the value, and of the output scale for values near 0."""
    tolerance = 4 * ULP * (np.abs(want) + np.float32(scale))
    assert got.shape == want.shape
    bad = np.abs(got - want) > tolerance
    assert not bad.any(), (np.flatnonzero(bad)[:5], got.ravel()[bad.ravel()][:5], want.ravel()[bad.ravel()][:5])


@pytest.mark.parametrize("m", [1, 3, 70])
@pytest.mark.parametrize("n", [5, 100, 200])
@pytest.mark.parametrize("act,w_kind", [("uint8", "int8"), ("int8", "int8"), ("uint8", "uint8"), ("int4", "int4"),
                                        ("uint4", "uint4"), ("uint8", "int4")])
@pytest.mark.parametrize("per_channel", [False, True])
def test_matmul_equals_the_integer_formula(m, n, act, w_kind, per_channel):
    rng = np.random.default_rng(m * 1000 + n)
    outputs = 37
    w = random_weights(rng, w_kind, (n, outputs))
    _, lo, hi = GRIDS[w_kind]
    w_zero = rng.integers(lo, hi + 1, outputs if per_channel else ()).astype(np.int64)  # nonzero zero points
    w_scale = rng.uniform(0.001, 0.02, outputs if per_channel else ()).astype(np.float32)
    _, alo, ahi = GRIDS[act]
    act_zero = int(rng.integers(alo, ahi + 1))
    act_scale = np.float32(0.05)
    x = rng.normal(0, 2.0, (m, n)).astype(np.float32)
    model = qdq_linear_model(x.shape, w, w_kind, w_scale, w_zero, act, act_scale, act_zero)
    got = qcore.Session(model).run({"x": x})["y"]
    want, _ = layer_oracle(x, w, w_scale, w_zero, act, act_scale, act_zero)
    assert_close_to_oracle(got, want, act_scale * np.max(w_scale))


@pytest.mark.parametrize("m", [1, 3, 70])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("bias_shape", [None, "row", "full"])
def test_gemm_alpha_beta_trans_b_and_bias(m, trans_b, bias_shape):
    rng = np.random.default_rng(7 + m)
    n, outputs = 130, 20
    w = random_weights(rng, "int8", (outputs, n) if trans_b else (n, outputs))
    w_zero, w_scale = np.arange(outputs) % 5 - 2, rng.uniform(0.001, 0.01, outputs).astype(np.float32)
    bias = None if bias_shape is None else rng.normal(0, 1, (outputs,) if bias_shape == "row" else (m, outputs)).astype(np.float32)
    gemm = {"transB": trans_b, "alpha": 0.5, "beta": 2.0}
    x = rng.normal(0, 1.0, (m, n)).astype(np.float32)
    model = qdq_linear_model(x.shape, w, "int8", w_scale, w_zero, "int8", 0.02, 3, "Gemm", gemm, bias)
    got = qcore.Session(model).run({"x": x})["y"]
    want, _ = layer_oracle(x, w, w_scale, w_zero, "int8", 0.02, 3, bool(trans_b), 0.5, 2.0, bias)
    assert_close_to_oracle(got, want, 0.02 * w_scale.max() + (0 if bias is None else 2 * np.abs(bias).max()))


def test_batched_activation_rows():
    rng = np.random.default_rng(3)
    w = random_weights(rng, "int8", (70, 9))
    x = rng.normal(0, 1, (2, 5, 70)).astype(np.float32)
    model = qdq_linear_model(x.shape, w, "int8", 0.01, 0, "uint8", 0.03, 128)
    got = qcore.Session(model).run({"x": x})["y"]
    want, _ = layer_oracle(x, w, 0.01, 0, "uint8", 0.03, 128)
    assert_close_to_oracle(got, want, 0.03 * 0.01)


def test_switch_off_gives_the_float_path_bits():
    """The float path of the same graph with the weight scale fed as an input (no integer path can take
    it): bit for bit what integer_kernels=False gives; the integer path differs by float rounding only."""
    rng = np.random.default_rng(11)
    w = random_weights(rng, "int8", (200, 33))
    w_scale = rng.uniform(0.001, 0.01, 33).astype(np.float32)
    x = rng.normal(0, 1, (4, 200)).astype(np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w, "int8", w_scale, np.ones(33), "uint8", 0.02, 120))
    reference = qcore.Session(qdq_linear_model(x.shape, w, "int8", w_scale, np.ones(33), "uint8", 0.02, 120,
                                               float_scale_input=True))
    want = reference.run({"x": x, "ws": w_scale})["y"]
    fused = session.run({"x": x})["y"]
    session.set_integer_kernels(False)
    off = session.run({"x": x})["y"]
    assert off.tobytes() == want.tobytes()
    assert not np.array_equal(fused, off)  # really another path
    np.testing.assert_allclose(fused, off, rtol=1e-5, atol=1e-5 * np.abs(off).max())
    session.set_integer_kernels(True)
    assert session.run({"x": x})["y"].tobytes() == fused.tobytes()


def test_captured_qdq_values_are_still_produced():
    rng = np.random.default_rng(5)
    w = random_weights(rng, "int8", (64, 8))
    x = rng.normal(0, 1, (2, 64)).astype(np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w, "int8", 0.01, 0, "int8", 0.05, -3))
    session.capture("xd")
    out = session.run({"x": x})
    q = quantize_oracle(x, 0.05, -3, "int8")
    np.testing.assert_array_equal(out["xd"], ((q + 3) * np.float32(0.05)).astype(np.float32))


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize("bits", [12, 16])
def test_simulated_accumulator_equals_matmul_integer(mode, bits):
    rng = np.random.default_rng(bits)
    n, outputs, act_zero = 150, 24, 7
    w = random_weights(rng, "int8", (n, outputs))
    w_zero = rng.integers(-5, 6, outputs)
    x = rng.normal(0, 3, (5, n)).astype(np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w, "int8", np.full(outputs, 0.01), w_zero, "uint8", 0.05, act_zero))
    session.set_accumulator(bits, mode)
    got = session.run({"x": x})["y"]
    got_stats = session.accumulator_stats()
    # MatMulInteger on the same integers, the same session settings
    q = quantize_oracle(x, 0.05, act_zero, "uint8").astype(np.uint8)
    node = helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["c"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, list(q.shape))],
                              [helper.make_tensor_value_info("c", TensorProto.INT32, [5, outputs])],
                              [initializer("b", w, "int8"), initializer("za", np.uint8(act_zero)),
                               initializer("zb", w_zero, "int8")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    integer = qcore.Session(qcore.Model.from_bytes(model.SerializeToString()))
    integer.set_accumulator(bits, mode)
    c = integer.run({"a": q})["c"]
    assert got_stats == integer.accumulator_stats() and got_stats["overflow_events"] > 0
    np.testing.assert_array_equal(got, c.astype(np.float32) * (np.float32(0.05) * np.float32(0.01)))


def test_exact_mode_refuses_sums_beyond_int32():
    n = 65472  # the longest row the int8 kernel takes once padded; 255 * 127 * n > 2^31
    w = np.full((n, 1), -128)
    x = np.full((1, n), 1e6, np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w, "int8", 1.0, 127, "uint8", 1.0, 0))
    with pytest.raises(qcore.QcoreError, match="does not fit the int32 accumulator"):
        session.run({"x": x})


def test_blocked_weights_keep_the_float_path():
    rng = np.random.default_rng(2)
    w = random_weights(rng, "int8", (64, 4))
    x = rng.normal(0, 1, (2, 64)).astype(np.float32)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"], axis=0, block_size=32),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                              [initializer("xs", np.float32(0.02)), initializer("xz", np.uint8(128)),
                               initializer("w", w, "int8"), initializer("ws", np.full((2, 4), 0.01, np.float32))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    session = qcore.Session(qcore.Model.from_bytes(model.SerializeToString()))
    on = session.run({"x": x})["y"]
    session.set_integer_kernels(False)
    assert session.run({"x": x})["y"].tobytes() == on.tobytes()


def test_bad_switch_value():
    from qcore._ffi import ffi, lib, onnx_lib
    session = qcore.Session(qdq_linear_model((1, 64), np.ones((64, 2)), "int8", 1.0, 0, "uint8", 1.0, 0))
    assert onnx_lib.qc_session_set_integer_kernels(session._s, 4) == lib.QC_ERR_INVALID_ARG
    assert "argument 'kernels': 4 is not a qc_integer_kernels" in ffi.string(lib.qc_last_error()).decode()
    with pytest.raises(ValueError, match="kernels must be one of"):
        session.set_integer_kernels("vnni")


def narrow_codes(rng, kind, bits, shape):
    """Codes of a container type spanning `bits` bits from a random start inside its range."""
    _, lo, hi = GRIDS[kind]
    start = int(rng.integers(lo, hi - (1 << bits) + 2))
    return rng.integers(start, start + (1 << bits), shape)


@pytest.mark.parametrize("m", [1, 5, 70])
@pytest.mark.parametrize("n", [5, 100, 600])
@pytest.mark.parametrize("kw,ka", [(1, 1), (1, 4), (2, 2), (3, 3), (4, 4), (2, 5)])
@pytest.mark.parametrize("act,w_kind", [("uint8", "int8"), ("int4", "int4"), ("uint4", "uint8")])
def test_bitserial_kernels_give_the_int8_sums(m, n, kw, ka, act, w_kind):
    """Weights spanning Kw bits and input codes spanning Ka bits, per-channel zero points: the bit-serial
    product (forced, and where "auto" picks it) gives the exact integer formula's bits, as int8 does; the
    kernel statistics say which ran (inputs spanning more than 4 bits fall back to int8)."""
    if GRIDS[act][2] - GRIDS[act][1] < (1 << ka) - 1:
        pytest.skip("the container is narrower than the span")
    rng = np.random.default_rng(m * 7919 + n * 31 + kw * 5 + ka)
    outputs = 19
    w = narrow_codes(rng, w_kind, kw, (n, outputs))
    w_zero = narrow_codes(rng, w_kind, kw, outputs).astype(np.int64)
    w_scale = rng.uniform(0.001, 0.02, outputs).astype(np.float32)
    act_scale, act_zero = np.float32(0.05), int(narrow_codes(rng, act, ka, ()))
    codes = narrow_codes(rng, act, ka, (m, n))
    x = ((codes - act_zero) * act_scale + rng.uniform(-0.4, 0.4, (m, n)) * act_scale).astype(np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w, w_kind, w_scale, w_zero, act, act_scale, act_zero))
    want, _ = layer_oracle(x, w, w_scale, w_zero, act, act_scale, act_zero)
    assert np.array_equal(quantize_oracle(x, act_scale, act_zero, act), codes)
    runs = {}
    for kernels in ("int8", "bitserial", "auto"):
        session.set_integer_kernels(kernels)
        runs[kernels] = session.run({"x": x})["y"]
        stats = session.integer_kernel_stats()
        bitserial = ka <= 4 and (kernels == "bitserial" or (kernels == "auto" and kw * ka == 1))
        assert stats == {"int8_layers": 0 if bitserial else 1, "bitserial_layers": 1 if bitserial else 0,
                         "simulated_layers": 0}, (kernels, stats)
    assert_close_to_oracle(runs["int8"], want, act_scale * w_scale.max())
    assert runs["bitserial"].tobytes() == runs["int8"].tobytes()
    assert runs["auto"].tobytes() == runs["int8"].tobytes()


@pytest.mark.parametrize("m,kw,ka,bitserial", [(1, 4, 4, True), (1, 4, 5, False), (8, 2, 2, True), (8, 3, 2, False),
                                               (9, 1, 1, True), (9, 2, 1, False)])
def test_auto_picks_bitserial_for_large_layers_as_documented(m, kw, ka, bitserial):
    """Weights of n O >= 2^20: Kw Ka <= 16 for one row, <= 4 up to 8 rows, 1 beyond (qc_model.h)."""
    rng = np.random.default_rng(m + 10 * kw + 100 * ka)
    n, outputs = 1024, 1024
    w = narrow_codes(rng, "int8", kw, (n, outputs))
    codes = narrow_codes(rng, "uint8", ka, (m, n))
    x = (codes * np.float32(0.1)).astype(np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w, "int8", 0.01, 0, "uint8", 0.1, 0))
    got = session.run({"x": x})["y"]
    assert session.integer_kernel_stats()["bitserial_layers"] == int(bitserial)
    want, _ = layer_oracle(x, w, 0.01, 0, "uint8", 0.1, 0)
    assert_close_to_oracle(got, want, 0.001)


def test_bitserial_weights_follow_a_replaced_initializer():
    """The bit-planes are derived once per session and rebuilt when the weights are replaced."""
    rng = np.random.default_rng(11)
    w1, w2 = narrow_codes(rng, "int8", 2, (96, 8)), narrow_codes(rng, "int8", 2, (96, 8))
    x = (narrow_codes(rng, "uint8", 2, (3, 96)) * np.float32(0.1)).astype(np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w1, "int8", 0.01, 0, "uint8", 0.1, 0))
    session.set_integer_kernels("bitserial")
    session.run({"x": x})
    session.set_initializer("w", w2.astype(np.int8))
    got = session.run({"x": x})["y"]
    assert session.integer_kernel_stats()["bitserial_layers"] == 1
    want, _ = layer_oracle(x, w2, 0.01, 0, "uint8", 0.1, 0)
    assert_close_to_oracle(got, want, 0.001)


def test_simulated_accumulator_is_counted_as_such():
    rng = np.random.default_rng(5)
    w = narrow_codes(rng, "int8", 2, (64, 4))
    x = rng.normal(0, 1, (2, 64)).astype(np.float32)
    session = qcore.Session(qdq_linear_model(x.shape, w, "int8", 0.01, 0, "uint8", 0.05, 128))
    session.set_accumulator(16, "wrap")
    session.run({"x": x})
    assert session.integer_kernel_stats() == {"int8_layers": 0, "bitserial_layers": 0, "simulated_layers": 1}


@pytest.fixture(scope="module")
def mnist():
    data = np.load(os.path.join(MODELS, "mnist_sample.npz"))
    return data["images"].astype(np.float32) / np.float32(255.0), data["labels"]  # the models take pixel/255


@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("weight_bits", [8, 4])
def test_pipeline_models_match_onnxruntime(mnist, tmp_path, net, weight_bits):
    images, labels = mnist
    path = os.path.join(MODELS, "mnist_%s.onnx" % net)
    model = qcore.Model(path)
    shape = [d if isinstance(d, int) and d > 0 else len(images) for d in model.inputs[0].shape]
    x = images.reshape(shape)
    name = model.inputs[0].name
    quantized, _ = qcore.quantize(model, {name: x}, weight_bits=weight_bits, activation_bits=8)
    saved = tmp_path / "q.onnx"
    quantized.save(str(saved))
    session = qcore.Session(qcore.Model(str(saved)))
    out = session.output_names[0]
    got = session.run({name: x})[out]
    session.set_integer_kernels(False)
    float_path = session.run({name: x})[out]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as written
    want = ort.InferenceSession(str(saved), options, providers=["CPUExecutionProvider"]).run(None, {name: x})[0]
    # Each layer's integer sums are exact on every path; the float layers between them (Conv, BatchNorm in
    # float on qcore's float path and in onnxruntime, in another order) round differently, which can move
    # a value across a rounding boundary of the next QuantizeLinear: one code apart, visible in that
    # sample's logits. Every other sample agrees within float rounding.
    tolerance = dict(rtol=1e-4, atol=1e-5 * np.abs(want).max())
    assert np.all(np.isclose(got, want, **tolerance), axis=1).mean() >= 0.98
    assert np.all(np.isclose(got, float_path, **tolerance), axis=1).mean() >= 0.98
    assert abs(int((got.argmax(1) == labels).sum()) - int((want.argmax(1) == labels).sum())) <= 1
    assert not np.array_equal(got, float_path)  # the integer kernels ran
