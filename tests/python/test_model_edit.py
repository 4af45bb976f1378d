"""Model editing (qc_model_set_initializer ... qc_model_insert_qdq) against onnx (checker, loader) and
onnxruntime, which must accept and run what qcore writes."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcore

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "models")
MLP = os.path.join(MODELS, "fashion_mlp.onnx")


@pytest.fixture(scope="module")
def images():
    d = np.load(os.path.join(MODELS, "fashion_sample.npz"))
    return (d["images"].astype(np.float32) / 255).reshape(-1, 784), d["labels"]


def ort_run(path, feed):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def weight_names(model):
    return [n for n in model.initializer_names() if len(model.initializer(n)[1]) == 2]


QDQ_RECIPES = {
    "int8-channel": qcore.QuantOptions(bits=8, granularity="channel", axis=0),
    "uint8-tensor-asym": qcore.QuantOptions(bits=8, signed=False, symmetric=False),
    "int4-group32-mse": qcore.QuantOptions(bits=4, granularity="group", axis=1, group_size=32, scale_method="mse"),
    "uint4-group16": qcore.QuantOptions(bits=4, signed=False, symmetric=False, granularity="group", axis=1, group_size=16),
}


@pytest.mark.parametrize("recipe", sorted(QDQ_RECIPES))
def test_insert_qdq_weights_and_input(tmp_path, images, recipe):
    opts = QDQ_RECIPES[recipe]
    x, _ = images
    model = qcore.Model(MLP)
    quantized = {}
    for name in weight_names(model):
        w = np.ascontiguousarray(model.initializer(name)[2])
        scale, zero_point = qcore.choose_params(w, opts)
        quantized[name] = qcore.quantize(w, scale, zero_point, opts)
        model.insert_qdq(name, scale, None if opts.symmetric else zero_point, opts)
    activation = qcore.QuantOptions(bits=8, signed=False, symmetric=False)
    scale, zero_point = qcore.choose_params(x, activation)
    model.insert_qdq("input", scale, zero_point, activation)
    path = tmp_path / "q.onnx"
    model.save(path)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    needs_21 = opts.bits == 4 or opts.granularity == "group"
    assert {o.domain: o.version for o in proto.opset_import}[""] >= (21 if needs_21 else 13)
    if needs_21:
        assert proto.ir_version >= 10
    # the stored integers are exactly qcore.quantize's
    stored = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for name, q in quantized.items():
        have = stored[name + "_quantized"]
        want = q.unpack() if isinstance(q, qcore.PackedInt4) else q
        assert np.array_equal(have.astype(np.int32), want.astype(np.int32)), name
    got = qcore.Session(qcore.Model(path)).run({"input": x})["logits"]
    want = ort_run(str(path), {"input": x})
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


def test_set_and_add_initializers(tmp_path):
    model = qcore.Model(MLP)
    name = weight_names(model)[0]
    new = np.arange(12, dtype=np.int64).reshape(3, 4)
    model.set_initializer(name, new)
    model.add_initializer("extra", np.float32([1.5, -2.0]))
    packed = qcore.PackedInt4(qcore.pack_int4(np.int8([-8, 7, 3])), (3,), True)
    model.add_initializer("four", packed)
    with pytest.raises(qcore.InvalidArgumentError, match="'extra'"):
        model.add_initializer("extra", np.float32([0]))
    with pytest.raises(qcore.ShapeError):
        model._tensor_call(qcore.onnx_lib.qc_model_set_initializer if hasattr(qcore, "onnx_lib") else
                           __import__("qcore")._ffi.onnx_lib.qc_model_set_initializer, name,
                           qcore.PackedInt4(np.zeros(1, np.uint8), (5,), True))
    model.save(tmp_path / "m.onnx")
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(tmp_path / "m.onnx").graph.initializer}
    assert np.array_equal(stored[name], new) and stored[name].dtype == np.int64
    assert np.array_equal(stored["extra"], [1.5, -2.0])
    assert np.array_equal(stored["four"], [-8, 7, 3])


def test_add_node_attributes_sort_and_remove_dead(tmp_path):
    graph = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              [numpy_helper.from_array(np.float32([7]), "unused")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model = qcore.Model.from_bytes(proto.SerializeToString())
    # added out of order: y needs h, h is added last; and a dead branch
    model.add_node("Mul", ["h", "h"], ["y"], name="square")
    model.add_node("Sigmoid", ["x"], ["dead"], name="dead_node")
    model.add_node("LeakyRelu", ["x"], ["h"], name="leaky", alpha=0.25)
    model.sort()
    assert [n.name for n in model.nodes] == ["dead_node", "leaky", "square"]
    assert model.remove_dead() == (1, 1)
    assert [n.name for n in model.nodes] == ["leaky", "square"]
    model.save(tmp_path / "e.onnx")
    saved = onnx.load(tmp_path / "e.onnx")
    onnx.checker.check_model(saved)
    assert helper.get_attribute_value(saved.graph.node[0].attribute[0]) == pytest.approx(0.25)
    x = np.float32([[-4, 0, 2], [1, -1, 8]])
    want = np.where(x > 0, x, 0.25 * x) ** 2
    assert np.allclose(ort_run(str(tmp_path / "e.onnx"), {"x": x}), want)
    assert np.allclose(qcore.Session(model).run({"x": x})["y"], want)


def test_remove_dead_keeps_what_only_if_branches_read(tmp_path):
    """Values and initializers read only inside an If's branches (outer-scope names) are alive."""
    scale = numpy_helper.from_array(np.float32([3.0]), "scale")
    shift = numpy_helper.from_array(np.float32([0.5]), "shift")
    then_branch = helper.make_graph([helper.make_node("Mul", ["h", "scale"], ["out_then"])], "then", [],
                                    [helper.make_tensor_value_info("out_then", TensorProto.FLOAT, [2])])
    else_branch = helper.make_graph([helper.make_node("Add", ["x", "shift"], ["out_else"])], "else", [],
                                    [helper.make_tensor_value_info("out_else", TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Neg", ["x"], ["h"], name="only_the_branch_reads_me"),
             helper.make_node("Sigmoid", ["x"], ["dead"], name="dead_node"),
             helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch, name="choose")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                                           helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [scale, shift, numpy_helper.from_array(np.float32([1.0]), "unused")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model = qcore.Model.from_bytes(proto.SerializeToString())
    assert model.remove_dead() == (1, 1)
    assert sorted(n.name for n in model.nodes) == ["choose", "only_the_branch_reads_me"]
    assert sorted(model.initializer_names()) == ["scale", "shift"]
    path = tmp_path / "if.onnx"
    model.save(path)
    x = np.float32([1.0, -2.0])
    for condition in (True, False):
        feed = {"x": x, "c": np.array(condition)}
        want = -x * 3.0 if condition else x + 0.5
        assert np.allclose(ort_run(str(path), feed), want)
        assert np.allclose(qcore.Session(model).run({"x": x, "c": np.uint8(condition)})["y"], want)


def test_edit_errors():
    model = qcore.Model(MLP)
    with pytest.raises(qcore.InvalidArgumentError, match="no value 'nope'"):
        model.insert_qdq("nope", np.float32(1), None, qcore.QuantOptions())
    name = weight_names(model)[0]
    w = np.ascontiguousarray(model.initializer(name)[2])
    opts = qcore.QuantOptions(bits=3)
    scale, _ = qcore.choose_params(w, opts)
    with pytest.raises(qcore.UnsupportedError, match="3-bit"):
        model.insert_qdq(name, scale, None, opts)
    model.add_node("Relu", ["b"], ["a"], name="first")
    model.add_node("Relu", ["a"], ["b"], name="second")
    with pytest.raises(qcore.FormatError, match="cycle"):
        model.sort()
    with pytest.raises(qcore.InvalidArgumentError, match="existing value"):
        model.add_node("Relu", ["x"], ["a"])
