"""qcore's executor (qcore.Session) against independent oracles: the stored outputs of Debian's
libonnx-testdata, onnxruntime on the project's real models, and numpy for the hooks."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcore

import conformance

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
MODELS = os.path.join(ROOT, "tests", "data", "models")
MINILM = os.path.join(ROOT, "build", "models", "minilm.onnx")


def relative_error(have, want):
    return float(np.max(np.abs(have - want)) / max(np.max(np.abs(want)), 1e-12))


def test_conformance_on_libonnx_testdata():
    """At least 95% of the test models whose ops the executor covers match their stored outputs."""
    results = conformance.run_all()
    covered = {k: v for k, v in results.items() if v[0] != "not covered"}
    failures = sorted("%s: %s" % (k, v[1]) for k, v in covered.items() if v[0] == "fail")
    passed = len(covered) - len(failures)
    print("\nconformance: %d models, %d covered, %d passed" % (len(results), len(covered), passed))
    for f in failures:
        print("  FAIL", f)
    assert len(covered) >= 500, "only %d models covered" % len(covered)
    assert passed >= 0.95 * len(covered), "\n".join(failures)


@pytest.fixture(scope="module")
def fashion():
    return np.load(os.path.join(MODELS, "fashion_sample.npz"))


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
@pytest.mark.parametrize("name, shape", [("mlp", (-1, 784)), ("cnn", (-1, 1, 28, 28))])
@pytest.mark.parametrize("threads", [1, 2])
def test_digit_models_match_onnxruntime(dataset, name, shape, threads):
    sample = np.load(os.path.join(MODELS, "%s_sample.npz" % dataset))
    path = os.path.join(MODELS, "%s_%s.onnx" % (dataset, name))
    x = (sample["images"].astype(np.float32) / 255).reshape(shape)
    session = qcore.Session(qcore.Model(path), qcore.Context(threads=threads))
    logits = session.run({"input": x})["logits"]
    live = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert relative_error(logits, live) < 1e-4
    assert relative_error(logits, sample["logits_" + name]) < 1e-4
    assert np.mean(logits.argmax(1) == sample["labels"]) > 0.85  # the stored labels belong to these images
    for batch in (1, 7):  # buffers reused across runs of other batch sizes
        part = session.run({"input": x[:batch]})["logits"]
        assert relative_error(part, live[:batch]) < 1e-4


def test_minilm_matches_onnxruntime():
    """all-MiniLM-L6-v2 (exported by scripts/models/export_minilm.py during set-up) on real text."""
    assert os.path.exists(MINILM), "run scripts/setup: it exports %s" % MINILM
    import sys
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    import minilm_tokenizer
    with open(os.path.join(ROOT, "tests", "data", "text", "heldout.txt"), encoding="utf-8") as f:
        texts = [line.strip() for line in f][:16]
    feed = minilm_tokenizer.encode(texts)
    session = qcore.Session(qcore.Model(MINILM))
    got = session.run(feed)
    reference = ort.InferenceSession(MINILM, providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in reference.get_outputs()], reference.run(None, feed)))
    for name in want:
        assert relative_error(got[name], want[name]) < 1e-4, name


def mlp_initializers(model):
    return {n: model.initializer(n)[2] for n in model.initializer_names()}


def test_capture_and_replace_initializer(fashion):
    path = os.path.join(MODELS, "fashion_mlp.onnx")
    model = qcore.Model(path)
    first = next(n for n in model.nodes if n.op_type == "Gemm")
    last = [n for n in model.nodes if n.op_type == "Gemm"][-1]
    weights = mlp_initializers(model)
    session = qcore.Session(model)
    session.capture(first.outputs[0])
    x = fashion["images"][:8].astype(np.float32).reshape(8, 784) / 255
    out = session.run({"input": x})
    # numpy oracle of the first layer: x W^T + b (the export uses transB = 1)
    w, b = weights[first.inputs[1]], weights[first.inputs[2]]
    assert relative_error(out[first.outputs[0]], x @ w.T + b) < 1e-5
    # weights swapped in place: a zero last layer leaves only its bias
    w_last = weights[last.inputs[1]]
    session.set_initializer(last.inputs[1], np.zeros_like(w_last))
    zeroed = session.run({"input": x})["logits"]
    assert np.array_equal(zeroed, np.broadcast_to(weights[last.inputs[2]], zeroed.shape))
    session.set_initializer(last.inputs[1], np.ascontiguousarray(w_last))
    assert relative_error(session.run({"input": x})["logits"], out["logits"]) == 0


def make_model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return qcore.Model.from_bytes(model.SerializeToString()), model


def tensor(name, elem=TensorProto.FLOAT, shape=(2, 3)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def test_qdq_model_matches_onnxruntime():
    """Static QDQ around a MatMul, int8 per-channel weights and an int4 blocked weight (opset 21)."""
    rng = np.random.default_rng(0)
    w8 = rng.integers(-127, 128, (16, 8)).astype(np.int8)
    w4 = rng.integers(-8, 8, (8, 4)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "xs"), numpy_helper.from_array(np.int8(3), "xz"),
        numpy_helper.from_array(w8, "w8"), numpy_helper.from_array(rng.uniform(0.001, 0.01, 8).astype(np.float32), "w8s"),
        helper.make_tensor("w4", TensorProto.INT4, [8, 4], w4.flatten().tolist()),
        numpy_helper.from_array(rng.uniform(0.01, 0.1, (2, 4)).astype(np.float32), "w4s"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w8", "w8s"], ["w8d"], axis=1),
        helper.make_node("MatMul", ["xd", "w8d"], ["h"]),
        helper.make_node("DequantizeLinear", ["w4", "w4s"], ["w4d"], axis=0, block_size=4),
        helper.make_node("MatMul", ["h", "w4d"], ["y"]),
    ]
    model, proto = make_model(nodes, [tensor("x", shape=(5, 16))], [tensor("y", shape=(5, 4))], inits, opset=21)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    got = qcore.Session(model).run({"x": x})["y"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert relative_error(got, want) < 1e-5


def test_unsupported_op_names_op_and_node():
    model, _ = make_model([helper.make_node("Hardmax", ["x"], ["y"], name="the_node")], [tensor("x")], [tensor("y")])
    with pytest.raises(qcore.UnsupportedError, match="'Hardmax'.*'the_node'"):
        qcore.Session(model)


def test_missing_value_and_cycle_are_format_errors():
    model, _ = make_model([helper.make_node("Relu", ["ghost"], ["y"], name="n")], [tensor("x")], [tensor("y")])
    with pytest.raises(qcore.FormatError, match="'n' reads 'ghost'"):
        qcore.Session(model)
    cycle = [helper.make_node("Add", ["x", "b"], ["a"], name="first"), helper.make_node("Relu", ["a"], ["b"], name="second")]
    model, _ = make_model(cycle, [tensor("x")], [tensor("b")])
    with pytest.raises(qcore.FormatError, match="cycle"):
        qcore.Session(model)


def test_bad_inputs():
    model, _ = make_model([helper.make_node("Relu", ["x"], ["y"])], [tensor("x")], [tensor("y")])
    session = qcore.Session(model)
    with pytest.raises(qcore.DTypeError, match="'x' takes FLOAT"):
        session.run({"x": np.zeros((2, 3), np.int32)})
    with pytest.raises(qcore.ShapeError, match=r"dims\[1\] = 3"):
        session.run({"x": np.zeros((2, 4), np.float32)})
    with pytest.raises(qcore.InvalidArgumentError, match="not a graph input"):
        session.run({"y": np.zeros((2, 3), np.float32)})
    with pytest.raises(qcore.InvalidArgumentError, match="'x'.*is not set"):
        session.run({})
    assert np.array_equal(session.run({"x": np.array([[-1, 2, -3], [4, -5, 6]], np.float32)})["y"],
                          [[0, 2, 0], [4, 0, 6]])


def test_int32_dequantize_matches_onnxruntime():
    """Bias-style int32 levels, beyond any 16-bit grid, per tensor and per axis."""
    rng = np.random.default_rng(3)
    x = rng.integers(-(2 ** 31), 2 ** 31 - 1, (4, 5), dtype=np.int64).astype(np.int32)
    for scale, axis in ((np.float32(1e-6), None), (rng.uniform(1e-7, 1e-5, 5).astype(np.float32), 1)):
        zero = np.zeros(np.shape(scale), np.int32) + 1000
        attrs = {} if axis is None else {"axis": axis}
        inits = [numpy_helper.from_array(np.asarray(scale), "s"), numpy_helper.from_array(np.asarray(zero), "z")]
        nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], **attrs)]
        model, proto = make_model(nodes, [tensor("x", TensorProto.INT32, (4, 5))], [tensor("y", shape=(4, 5))], inits, 13)
        got = qcore.Session(model).run({"x": x})["y"]
        want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert np.array_equal(got, want)


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("m, n", [(5, 203), (5, 1024), (300, 203)])
def test_products_in_blocks_match_onnxruntime_with_the_same_bits_for_any_thread_count(trans_b, threads, m, n):
    """Products are computed in fixed blocks of C (ops/blas.c): of columns with few rows, of rows otherwise;
    blocks of uneven size, with and without a transposed B, against onnxruntime, and bit for bit the
    single-threaded result."""
    rng = np.random.default_rng(n + threads + m)
    k = 1200
    w = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=trans_b)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = rng.standard_normal((m, k)).astype(np.float32)
    model = qcore.Model.from_bytes(proto.SerializeToString())
    got = qcore.Session(model, qcore.Context(threads=threads)).run({"x": x})["y"]
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert relative_error(got, want) < 1e-5
    assert np.array_equal(got, qcore.Session(model, qcore.Context(threads=1)).run({"x": x})["y"])


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("shape, kernel, pads, strides", [
    ((2, 3, 9, 7), [3, 2], [1, 0, 1, 1], [2, 2]),
    ((1, 2, 5, 6, 4), [2, 3, 2], [0, 1, 0, 1, 1, 1], [1, 2, 2]),
])
def test_max_pool_indices_match_onnxruntime(storage_order, shape, kernel, pads, strides):
    rng = np.random.default_rng(len(shape) + storage_order)
    x = rng.standard_normal(shape).astype(np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=kernel, pads=pads, strides=strides,
                            storage_order=storage_order)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("i", TensorProto.INT64, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=8)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    have = qcore.Session(qcore.Model.from_bytes(proto.SerializeToString())).run({"x": x})
    np.testing.assert_array_equal(have["y"], want[0])
    np.testing.assert_array_equal(have["i"], want[1])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_integer_max_pool_matches_numpy(dtype):
    x = np.random.default_rng(7).integers(np.iinfo(dtype).min, np.iinfo(dtype).max, (2, 3, 6, 8)).astype(dtype)
    elem = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, list(x.shape))],
                              [helper.make_tensor_value_info("y", elem, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], ir_version=8)
    have = qcore.Session(qcore.Model.from_bytes(proto.SerializeToString())).run({"x": x})["y"]
    want = x.reshape(2, 3, 3, 2, 4, 2).max(axis=(3, 5))
    assert have.dtype == dtype
    np.testing.assert_array_equal(have, want)
