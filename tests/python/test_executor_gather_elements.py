"""GatherElements and casts from 4-bit integers in qcore's executor (what an LQ weight's decoder runs).
Oracles: numpy's take_along_axis and onnxruntime on the same model."""
import numpy as np
import pytest

import qcore

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def both(nodes, inputs, outputs, initializers, feeds, opset=21):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    data = model.SerializeToString()
    ours = qcore.Session(qcore.Model.from_bytes(data)).run(feeds)
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    return ours, dict(zip([o.name for o in outputs], theirs))


def value(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, list(shape))


@pytest.mark.parametrize("shape, index_shape, axis", [
    ((4, 5), (7, 5), 0), ((4, 5), (4, 9), 1), ((4, 5), (3, 2), -1), ((2, 3, 4), (2, 6, 4), 1), ((2, 3, 4), (1, 2, 3), 2),
])
@pytest.mark.parametrize("index_type", [np.int64, np.int32])
def test_gather_elements_matches_numpy_and_onnxruntime(shape, index_shape, axis, index_type):
    rng = np.random.default_rng(len(shape) * 10 + axis)
    x = rng.standard_normal(shape).astype(np.float32)
    extent = shape[axis]
    idx = rng.integers(-extent, extent, index_shape).astype(index_type)
    elem = TensorProto.INT64 if index_type == np.int64 else TensorProto.INT32
    ours, theirs = both([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)],
                        [value("x", TensorProto.FLOAT, shape), value("i", elem, index_shape)],
                        [value("y", TensorProto.FLOAT, index_shape)], [], {"x": x, "i": idx})
    sliced = x[tuple(slice(0, d) if k != (axis % len(shape)) else slice(None) for k, d in enumerate(index_shape))]
    expected = np.take_along_axis(sliced, np.where(idx < 0, idx + extent, idx).astype(np.int64), axis)
    np.testing.assert_array_equal(ours["y"], expected)
    np.testing.assert_array_equal(theirs["y"], expected)


def test_gather_elements_refuses_bad_indices():
    x, idx = np.zeros((2, 3), np.float32), np.array([[0, 2, 3]], np.int64)
    with pytest.raises(qcore.QcoreError, match="index 3 is outside"):
        both([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)],
             [value("x", TensorProto.FLOAT, (2, 3)), value("i", TensorProto.INT64, (1, 3))],
             [value("y", TensorProto.FLOAT, (1, 3))], [], {"x": x, "i": idx})


@pytest.mark.parametrize("elem, values", [(TensorProto.UINT4, np.arange(16) % 16), (TensorProto.INT4, np.arange(-8, 8))])
@pytest.mark.parametrize("to", [TensorProto.INT64, TensorProto.FLOAT])
def test_cast_from_4_bit_initializers(elem, values, to):
    """An odd count (15 values) leaves the last byte's high nibble as padding."""
    v = values[:15].reshape(3, 5)
    t = helper.make_tensor("c", elem, [3, 5], v.reshape(-1).tolist())
    dummy = np.zeros((1,), np.float32)
    ours, theirs = both([helper.make_node("Cast", ["c"], ["y"], to=to), helper.make_node("Identity", ["d"], ["e"])],
                        [value("d", TensorProto.FLOAT, (1,))],
                        [value("y", to, (3, 5)), value("e", TensorProto.FLOAT, (1,))], [t], {"d": dummy})
    np.testing.assert_array_equal(ours["y"], v)
    np.testing.assert_array_equal(theirs["y"], v)


@pytest.mark.parametrize("x, idx, message", [
    (np.zeros((), np.float32), np.zeros((), np.int64), "rank >= 1"),
    (np.zeros((2, 3), np.float32), np.zeros((3,), np.int64), "same rank"),
    (np.zeros((2, 3), np.float32), np.zeros((3, 3), np.int64), "exceeds the data's 2"),
    (np.zeros((2, 3), np.float32), np.full((1, 1), 2 ** 62, np.int64), "outside"),
])
def test_gather_elements_shapes_are_checked(x, idx, message):
    graph = helper.make_graph([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1 if x.ndim > 1 else 0)], "g",
                              [value("x", TensorProto.FLOAT, x.shape), value("i", TensorProto.INT64, idx.shape)],
                              [value("y", TensorProto.FLOAT, idx.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    with pytest.raises(qcore.QcoreError, match=message):
        qcore.Session(qcore.Model.from_bytes(model.SerializeToString())).run({"x": x, "i": idx})
