"""Raising a model's opset keeps its meaning (libqcore/model/opset_upgrade.c): a 4-bit QDQ weight needs
opset 21, and the attributes later versions take as inputs (Reduce* axes since 18; ReduceSum, Squeeze,
Unsqueeze axes and Split's split since 13) must move to int64 inputs, else onnxruntime rejects the model
(MiniLM's ReduceL2) and qcore's executor reduces over every axis. Oracle: onnxruntime on the original
model at its own opset, and on the upgraded one."""
import numpy as np
import pytest

import qcore

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OUTPUTS = ["l2", "mean", "sum", "squeezed", "unsqueezed", "split_a", "split_b", "y"]


def model(opset):
    """Every moved attribute in the form `opset` has (the ReduceSum/Squeeze/Unsqueeze/Split ones only
    below 13), on the graph input; and a MatMul whose weight gets quantized."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    inits = [numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32), "w")]

    def moved(op, ins, outs, name, values, **attrs):
        if opset < 13:
            return helper.make_node(op, ins, outs, **{name: values}, **attrs)
        inits.append(numpy_helper.from_array(np.array(values, np.int64), outs[0] + "_" + name))
        return helper.make_node(op, ins + [outs[0] + "_" + name], outs, **attrs)

    nodes = [helper.make_node("ReduceL2", ["x"], ["l2"], keepdims=1, axes=[2]),
             helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=0, axes=[-1, 1]),
             moved("ReduceSum", ["x"], ["sum"], "axes", [0], keepdims=0),
             moved("Unsqueeze", ["x"], ["u"], "axes", [0]),
             moved("Squeeze", ["u"], ["squeezed"], "axes", [0]),
             moved("Unsqueeze", ["x"], ["unsqueezed"], "axes", [1, 4]),
             moved("Split", ["x"], ["split_a", "split_b"], "split", [1, 3], axis=2),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [helper.make_empty_tensor_value_info(n) for n in OUTPUTS], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto


def run_ort(data, feed):
    """Without graph optimizations: its default level fuses the int4 DequantizeLinear + MatMul into a kernel
    of its own precision (0.006 off numpy on this layer)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return dict(zip(OUTPUTS, session.run(OUTPUTS, feed)))


@pytest.mark.parametrize("opset", [11, 17])
def test_int4_qdq_raises_the_opset_and_keeps_the_graph_meaning(opset, tmp_path):
    proto = model(opset)
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    want = run_ort(proto.SerializeToString(), {"x": x})
    m = qcore.Model.from_bytes(proto.SerializeToString())
    opts = qcore.QuantOptions(bits=4, granularity="channel", axis=1)
    w = numpy_helper.to_array([t for t in proto.graph.initializer if t.name == "w"][0])
    scale, _ = qcore.choose_params(np.ascontiguousarray(w), opts)
    m.insert_qdq("w", scale, None, opts)
    path = tmp_path / "q.onnx"
    m.save(str(path))
    saved = onnx.load(str(path))
    assert [o.version for o in saved.opset_import if o.domain in ("", "ai.onnx")] == [21]
    for node in saved.graph.node:
        if node.op_type in ("ReduceL2", "ReduceMean", "ReduceSum", "Squeeze", "Unsqueeze", "Split"):
            assert len(node.input) == 2 and not [a for a in node.attribute if a.name in ("axes", "split")], node.op_type
    got = run_ort(path.read_bytes(), {"x": x})
    ours = qcore.Session(qcore.Model(str(path))).run({"x": x})
    for name in OUTPUTS[:-1]:  # untouched by the quantized weight: exactly as before
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        np.testing.assert_allclose(ours[name], want[name], rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(ours["y"], got["y"], rtol=1e-5, atol=1e-5)
    assert not np.array_equal(got["y"], want["y"])  # the weight is quantized
