"""LQ weights in a pipeline recipe (Recipe.lq_layers, qc_recipe version 5). Oracles: qcore.lq_fit run on
each output channel alone with numpy's nearest-level encoding and levels (lq_oracle.py), the ONNX file's
own bytes unpacked with numpy, onnxruntime running the exported model, and the byte formula."""
import os

import numpy as np
import pytest

import lq_oracle
import qcore
from gpxq_layers import images

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

MODELS = os.path.join(os.path.dirname(__file__), "..", "data", "models")
MLP = os.path.join(MODELS, "fashion_mlp.onnx")
CNN = os.path.join(MODELS, "fashion_cnn.onnx")


def float_weights(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}


def lq_levels_oracle(w, k):
    """W [out, in]: each row's basis fitted alone (qcore.lq_fit on that row), its nearest levels (numpy)."""
    out = np.empty_like(w)
    for o in range(w.shape[0]):
        row = np.ascontiguousarray(w[o:o + 1])
        basis = qcore.lq_fit(row, k).basis
        out[o] = lq_oracle.decode(lq_oracle.encode(row, basis, "signed"), basis, "signed").astype(np.float32)
    return out


def proto_of(model, tmp_path, name="q.onnx"):
    path = str(tmp_path / name)
    model.save(path)
    return onnx.load(path), path


def uint4_values(t):
    """A UINT4 initializer's values from its raw bytes: two per byte, low nibble first."""
    packed = np.frombuffer(t.raw_data, np.uint8)
    values = np.stack([packed & 15, packed >> 4], 1).reshape(-1)[:int(np.prod(t.dims))]
    return values.reshape(tuple(t.dims))


def decoded_weight(proto, weight):
    """The weight the graph computes: GatherElements(table, Cast(codes)) (+ Reshape), evaluated with numpy."""
    init = {t.name: t for t in proto.graph.initializer}
    nodes = {o: n for n in proto.graph.node for o in n.output}
    node = nodes[weight]
    shape = None
    if node.op_type == "Reshape":
        shape = numpy_helper.to_array(init[node.input[1]])
        node = nodes[node.input[0]]
    assert node.op_type == "GatherElements"
    cast = nodes[node.input[1]]
    assert cast.op_type == "Cast" and cast.attribute[0].i == TensorProto.INT64
    codes_t = init[cast.input[0]]
    assert codes_t.data_type == TensorProto.UINT4
    table = numpy_helper.to_array(init[node.input[0]])
    axis = node.attribute[0].i
    w = np.take_along_axis(table, uint4_values(codes_t).astype(np.int64), axis)
    return (w.reshape(shape) if shape is not None else w), uint4_values(codes_t), table


def pipeline(path, xs, name="input"):
    p = qcore.Pipeline(qcore.Model(path))
    for x in xs:
        p.add_batch({name: np.ascontiguousarray(x)})
    return p


def ort_run(path, x, name="input"):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, {name: x})[0]


def qcore_run(model, x, name="input"):
    return next(iter(qcore.Session(model).run({name: x}).values()))


@pytest.fixture(scope="module")
def mlp():
    return pipeline(MLP, [images()[:256]])


@pytest.mark.parametrize("activation_bits", [8, 0])
def test_lq_weights_are_per_channel_qem_levels_and_onnxruntime_agrees(mlp, activation_bits, tmp_path):
    lq = {"fc1.weight": 2, "fc2.weight": 3, "fc3.weight": 1}
    model, reports = mlp.run(qcore.Recipe(lq_layers=lq, activation_bits=activation_bits))
    proto, path = proto_of(model, tmp_path)
    w = float_weights(MLP)
    for r in reports:
        k = lq[r.weight]
        out, n = w[r.weight].shape  # Gemm transB = 1: stored [out, in]
        decoded, codes, table = decoded_weight(proto, r.weight)
        np.testing.assert_array_equal(decoded, lq_levels_oracle(w[r.weight], k))
        assert codes.max() < 2 ** k and table.shape == (out, 2 ** k)
        assert (r.lq, r.quantized, r.weight_bits) == (True, True, k)
        assert r.weight_bytes == out * (k * -(-n // 8) + 4 * k)
        assert (r.accumulator_bits, r.dot_products) == (0, 0)
        assert r.input_bits == activation_bits
    assert not any(i.name in lq for i in proto.graph.initializer)  # the float weights are gone
    x = np.ascontiguousarray(images()[256:512])
    y_ort, y_qcore = ort_run(path, x), qcore_run(model, x)
    if activation_bits == 0:  # weights only: the float model with the decoded weights, by numpy
        h = np.maximum(x @ decoded_weight(proto, "fc1.weight")[0].T + w["fc1.bias"], 0)
        h = np.maximum(h @ decoded_weight(proto, "fc2.weight")[0].T + w["fc2.bias"], 0)
        np.testing.assert_allclose(y_ort, h @ decoded_weight(proto, "fc3.weight")[0].T + w["fc3.bias"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(y_qcore, y_ort, rtol=1e-5, atol=1e-5)
    else:  # requantized inputs may round a tie differently after float rounding: the classes agree
        assert np.mean(y_qcore.argmax(1) == y_ort.argmax(1)) >= 0.99
        assert np.abs(y_qcore - y_ort).mean() < 1e-3


def test_sequential_and_one_pass_give_the_same_lq_weights(mlp, tmp_path):
    """The levels depend on W alone; in a sequential run later layers see them (their OPTQ differs)."""
    seq, _ = mlp.run(qcore.Recipe(lq_layers={"fc1.weight": 2}))
    one, _ = mlp.run(qcore.Recipe(lq_layers={"fc1.weight": 2}, sequential=False))
    a, b = proto_of(seq, tmp_path, "s.onnx")[0], proto_of(one, tmp_path, "o.onnx")[0]
    np.testing.assert_array_equal(decoded_weight(a, "fc1.weight")[0], decoded_weight(b, "fc1.weight")[0])
    fc2 = [integer_weight(p, "fc2.weight") for p in (a, b)]
    assert fc2[0].shape == (256, 512) and not np.array_equal(*fc2)


def integer_weight(proto, weight):
    """The integers a DequantizeLinear turns into `weight`."""
    init = {t.name: t for t in proto.graph.initializer}
    node = next(n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == weight)
    return numpy_helper.to_array(init[node.input[0]])


def matmul_model(w, path):
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", w.shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_matmul_layout_decodes_along_axis_0(tmp_path):
    """A MatMul weight is stored [in, out]: codes [in, out], table [2^K, out], GatherElements axis 0."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((40, 12)).astype(np.float32)
    matmul_model(w, str(tmp_path / "m.onnx"))
    x = rng.standard_normal((64, 40)).astype(np.float32)
    q, reports = pipeline(str(tmp_path / "m.onnx"), [x]).run(qcore.Recipe(lq_layers={"w": 4}, activation_bits=0))
    proto, path = proto_of(q, tmp_path)
    decoded, codes, table = decoded_weight(proto, "w")
    assert codes.shape == (40, 12) and table.shape == (16, 12)
    np.testing.assert_array_equal(decoded, lq_levels_oracle(np.ascontiguousarray(w.T), 4).T)
    np.testing.assert_allclose(ort_run(path, x), x @ decoded, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(qcore_run(q, x), x @ decoded, rtol=1e-5, atol=1e-5)
    assert reports[0].weight_bytes == 12 * (4 * 5 + 16)


def test_convolution_weights_are_reshaped(tmp_path):
    xs = [np.ascontiguousarray(images()[:64].reshape(-1, 1, 28, 28))]
    q, reports = pipeline(CNN, xs).run(qcore.Recipe(lq_layers={"conv2.weight": 2, "conv1.weight": 3}))
    proto, path = proto_of(q, tmp_path)
    w = float_weights(CNN)
    for name, k in (("conv1.weight", 3), ("conv2.weight", 2)):
        decoded = decoded_weight(proto, name)[0]
        assert decoded.shape == w[name].shape
        rows = w[name].reshape(w[name].shape[0], -1)
        np.testing.assert_array_equal(decoded.reshape(rows.shape), lq_levels_oracle(np.ascontiguousarray(rows), k))
    assert [r.lq for r in reports] == [True, True, False]
    x = np.ascontiguousarray(images()[64:192].reshape(-1, 1, 28, 28))
    y_ort, y_qcore = ort_run(path, x), qcore_run(q, x)
    assert np.mean(y_qcore.argmax(1) == y_ort.argmax(1)) >= 0.99


def test_ethosu_leaves_lq_layers_on_the_cpu(mlp):
    _, reports = mlp.run(qcore.Recipe(lq_layers={"fc1.weight": 2}, ethosu="ethos-u55-128"))
    assert not reports[0].ethosu_packed and "LQ" in reports[0].ethosu_reason
    assert reports[1].ethosu_packed and reports[1].ethosu_reason is None


@pytest.mark.parametrize("recipe, message", [
    (dict(lq_layers={"fc1.weight": 0}), "'lq_layers': entry 0 ('fc1.weight') has weight_bits 0, not in 1..4"),
    (dict(lq_layers={"fc1.weight": 5}), "weight_bits 5, not in 1..4"),
    (dict(lq_layers={"nope": 2}), "'lq_layers': entry 0 ('nope') is no layer's weight"),
    (dict(lq_layers={"fc1.weight": 2}, keep_float=("fc1.weight",)), "'fc1.weight' is both in keep_float and in lq_layers"),
    (dict(lq_layers={"fc2.weight": 2}, layer_bits={"fc2.weight": 4}), "'fc2.weight' is both in layer_formats and in lq_layers"),
    (dict(lq_layers={"fc2.weight": 2}, gpxq=qcore.GpxqOptions(accumulator_bits=16)), "AXE"),
])
def test_bad_lq_layers_are_named(mlp, recipe, message):
    with pytest.raises(qcore.InvalidArgumentError, match=__import__("re").escape(message)):
        mlp.run(qcore.Recipe(**recipe))


def test_a_weight_named_twice_is_refused(mlp):
    r = qcore.Recipe()
    c_recipe, alive = r.to_c()
    from qcore._ffi import ffi, onnx_lib
    names = [ffi.new("char[]", b"fc1.weight") for _ in range(2)]
    formats = ffi.new("qc_layer_format[]", 2)
    for k in range(2):
        formats[k].weight, formats[k].weight_bits = names[k], 2
    c_recipe.num_lq_layers, c_recipe.lq_layers = 2, formats
    out = ffi.new("qc_model **")
    assert onnx_lib.qc_pipeline_run(mlp._p, c_recipe, out) == lib_invalid_arg()
    assert "'fc1.weight' is named twice (entries 0 and 1)" in ffi.string(onnx_lib.qc_last_error()).decode()


def lib_invalid_arg():
    from qcore._ffi import lib
    return lib.QC_ERR_INVALID_ARG
