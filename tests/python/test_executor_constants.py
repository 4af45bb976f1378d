"""Constant nodes are evaluated once when a session is created (their outputs then behave as constants):
results stay those of onnxruntime over repeated runs, bad Constant nodes fail at creation, and a
Constant's output is not an initializer one may replace."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcore


def constant_chain_model():
    """y = relu(x * c1 + c2) @ c3, every operand a Constant node, with enough intermediates that the
    storage pool hands buffers around between the runs."""
    rng = np.random.default_rng(11)
    c1, c2 = rng.standard_normal((1, 16)).astype(np.float32), rng.standard_normal((1, 16)).astype(np.float32)
    c3 = rng.standard_normal((16, 8)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_t"))
             for name, value in (("c1", c1), ("c2", c2), ("c3", c3))]
    nodes += [helper.make_node("Mul", ["x", "c1"], ["a"]), helper.make_node("Add", ["a", "c2"], ["b"]),
              helper.make_node("Relu", ["b"], ["r"]), helper.make_node("MatMul", ["r", "c3"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_constants_survive_repeated_runs():
    proto = constant_chain_model()
    session = qcore.Session(qcore.Model.from_bytes(proto.SerializeToString()))
    reference = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for batch in (4, 64, 1, 64):  # growing and shrinking batches move pooled storage around
        x = rng.standard_normal((batch, 16)).astype(np.float32)
        np.testing.assert_allclose(session.run({"x": x})["y"], reference.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_a_constants_output_is_not_an_initializer():
    session = qcore.Session(qcore.Model.from_bytes(constant_chain_model().SerializeToString()))
    with pytest.raises(qcore.InvalidArgumentError, match="'c1' is not an initializer"):
        session.set_initializer("c1", np.zeros((1, 16), np.float32))


def test_unsupported_constant_fails_at_creation():
    sparse = helper.make_sparse_tensor(helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
                                       helper.make_tensor("i", TensorProto.INT64, [1], [0]), [3])
    graph = helper.make_graph([helper.make_node("Constant", [], ["c"], sparse_value=sparse)], "g", [],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [3])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(qcore.UnsupportedError, match=r"^qc_session_create: Constant node '': only value"):
        qcore.Session(qcore.Model.from_bytes(proto.SerializeToString()))
