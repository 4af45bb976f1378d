"""Loading leaves initializers' raw_data in the memory-mapped file (no copy), and everything that reads
typed elements from those views copes with the arbitrary alignment a file gives them.

Oracles: the process's own memory map (/proc/self/maps names the file behind an address), onnx's view of
the same bytes, and numpy for the executor's results."""
import os

import numpy as np
import pytest

import qcore

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "models")


def mapped_file_at(address):
    """The file mapped at `address` in this process (None for anonymous memory)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return os.path.realpath(fields[5].strip()) if len(fields) == 6 else None
    return None


def address_of(array):
    return array.__array_interface__["data"][0]


def matmul_model(weight_name, rows=24, cols=40, seed=5):
    """y = sum over rows of (x @ W + W), W stored as raw_data (read by BLAS in MatMul, by the executor's own loop in
    Add); the initializer's name length shifts where its bytes land."""
    w = np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", weight_name], ["xw"]),
         helper.make_node("Add", ["xw", weight_name], ["y_all"]),
         helper.make_node("ReduceSum", ["y_all", "zero_axes"], ["y"], keepdims=0)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [cols])],
        [numpy_helper.from_array(w, weight_name), numpy_helper.from_array(np.array([0], np.int64), "zero_axes")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), w


def test_file_initializers_are_views_into_the_mapped_file():
    path = os.path.realpath(os.path.join(DATA, "fashion_mlp.onnx"))
    model = qcore.Model(path)
    reference = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    large = [n for n in model.initializer_names() if reference[n].nbytes >= 1024]
    assert large, "the MLP has weight matrices"
    for name in large:
        data = model.initializer(name)[2]
        assert mapped_file_at(address_of(data)) == path, name
        np.testing.assert_array_equal(data, reference[name])


def test_memory_loaded_initializers_live_in_the_models_own_copy():
    path = os.path.join(DATA, "fashion_mlp.onnx")
    with open(path, "rb") as f:
        buffer = bytearray(f.read())
    model = qcore.Model.from_bytes(buffer)
    name = max(model.initializer_names(), key=lambda n: model.initializer(n)[2].nbytes)
    before = np.array(model.initializer(name)[2])
    buffer[:] = b"\0" * len(buffer)          # the caller's bytes may go away after loading
    np.testing.assert_array_equal(model.initializer(name)[2], before)


@pytest.mark.parametrize("name_length", range(1, 9))
def test_executor_reads_misaligned_raw_data(tmp_path, name_length):
    proto, w = matmul_model("w" * name_length)
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    model = qcore.Model(str(path))
    x = np.random.default_rng(name_length).standard_normal((w.shape[0], w.shape[0])).astype(np.float32)
    y = qcore.Session(model).run({"x": x})["y"]
    np.testing.assert_allclose(y, (x.astype(np.float64) @ w + w).sum(axis=0), rtol=1e-5, atol=1e-4)


def test_some_name_length_misaligns_the_weight(tmp_path):
    """Guards the test above: at least one of its models really has a misaligned float view."""
    seen = set()
    for name_length in range(1, 9):
        proto, _ = matmul_model("w" * name_length)
        path = tmp_path / ("m%d.onnx" % name_length)
        onnx.save(proto, str(path))
        seen.add(address_of(qcore.Model(str(path)).initializer("w" * name_length)[2]) % 4)
    assert seen - {0}


def test_edits_replace_and_drop_borrowed_initializers(tmp_path):
    proto, w = matmul_model("weight")
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    model = qcore.Model(str(path))
    model.set_initializer("weight", 2 * w)
    np.testing.assert_array_equal(model.initializer("weight")[2], 2 * w)
    model.add_initializer("unused", w)
    model.remove_dead()
    assert sorted(model.initializer_names()) == ["weight", "zero_axes"]
    out = tmp_path / "edited.onnx"
    model.save(str(out))
    saved = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    np.testing.assert_array_equal(saved["weight"], 2 * w)


def test_quantizing_a_misaligned_initializer_matches_an_aligned_copy(tmp_path):
    """insert_qdq reads float weights from the view: its integers must be qcore.quantize's on an aligned
    copy of the same weights, wherever the file put them."""
    opts = qcore.QuantOptions(bits=8, granularity="channel", axis=1)
    for name_length in range(1, 5):
        name = "w" * name_length
        proto, w = matmul_model(name)
        path = tmp_path / ("m%d.onnx" % name_length)
        onnx.save(proto, str(path))
        model = qcore.Model(str(path))
        scale, _ = qcore.choose_params(w, opts)
        expected = qcore.quantize(w.copy(), scale, None, opts)
        model.insert_qdq(name, scale, None, opts)
        stored = model.initializer(name + "_quantized")[2]
        np.testing.assert_array_equal(stored.astype(np.int64), np.asarray(expected, np.int64))


# ---- layouts the skeleton leaves to protobuf-c: results must equal protobuf's own merge rules -----------

def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def qcore_initializers(data):
    model = qcore.Model.from_bytes(data)
    return {n: np.array(model.initializer(n)[2]) for n in model.initializer_names()}


def onnx_initializers(data):
    return {t.name: numpy_helper.to_array(t) for t in onnx.ModelProto.FromString(data).graph.initializer}


def assert_same_initializers(data):
    ours, theirs = qcore_initializers(data), onnx_initializers(data)
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_repeated_raw_data_keeps_the_last_like_protobuf():
    proto, w = matmul_model("w")
    tensor = proto.graph.initializer.pop(0)
    assert tensor.name == "w"
    replacement = (3 * w).tobytes()
    tensor_bytes = tensor.SerializeToString() + field(9, replacement)
    graph_bytes = proto.graph.SerializeToString() + field(5, tensor_bytes)
    proto.ClearField("graph")
    data = proto.SerializeToString() + field(7, graph_bytes)
    assert_same_initializers(data)
    np.testing.assert_array_equal(qcore_initializers(data)["w"], 3 * w)


def test_small_then_large_raw_data_keeps_the_last_like_protobuf():
    """A small raw_data (kept in the skeleton) followed by a large one (borrowable) in the same tensor:
    protobuf keeps the last; qcore must agree (and not leak the first: ASan's fuzz corpus replay)."""
    proto, w = matmul_model("w")
    tensor = proto.graph.initializer.pop(0)
    tensor.raw_data = b"\0" * 4
    tensor_bytes = tensor.SerializeToString() + field(9, (5 * w).tobytes())
    graph_bytes = proto.graph.SerializeToString() + field(5, tensor_bytes)
    proto.ClearField("graph")
    data = proto.SerializeToString() + field(7, graph_bytes)
    assert_same_initializers(data)
    np.testing.assert_array_equal(qcore_initializers(data)["w"], 5 * w)


def test_repeated_graph_fields_merge_like_protobuf():
    proto, w = matmul_model("w")
    extra = onnx.GraphProto()
    extra.initializer.append(numpy_helper.from_array(-w, "w2"))
    data = proto.SerializeToString() + field(7, extra.SerializeToString())
    assert_same_initializers(data)


def test_small_and_large_payloads_mix():
    """Payloads under the borrowing threshold stay in the parsed message; larger ones are borrowed."""
    tensors = [numpy_helper.from_array(np.arange(n, dtype=np.float32), "t%d" % n) for n in (1, 15, 16, 17, 300)]
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("t1", TensorProto.FLOAT, [1])], tensors)
    data = helper.make_model(graph, ir_version=8).SerializeToString()
    assert_same_initializers(data)


def misaligned_copy(array):
    """The same values in a float32 array that starts one byte past an aligned address."""
    raw = np.zeros(array.nbytes + 1, np.uint8)
    raw[1:] = np.frombuffer(array.tobytes(), np.uint8)
    view = raw[1:].view(array.dtype).reshape(array.shape)
    assert not view.flags.aligned
    return view


def test_misaligned_arrays_are_copied_before_the_library_reads_them():
    """libqcore refuses misaligned data (QC_ERR_LAYOUT); the Python layer hands it an aligned copy, so a
    view of a model file's bytes can be passed straight to any qcore function."""
    w = np.random.default_rng(2).standard_normal((64, 48)).astype(np.float32)
    opts = qcore.QuantOptions(bits=4, granularity="group", axis=1, group_size=16, scale_method="mse")
    scale, zero_point = qcore.choose_params(misaligned_copy(w), opts)
    want_scale, want_zero_point = qcore.choose_params(w, opts)
    np.testing.assert_array_equal(scale, want_scale)
    np.testing.assert_array_equal(qcore.quantize(misaligned_copy(w), scale, zero_point, opts),
                                  qcore.quantize(w, want_scale, want_zero_point, opts))
    proto, weight = matmul_model("w")
    x = np.random.default_rng(4).standard_normal((weight.shape[0], weight.shape[0])).astype(np.float32)
    session = qcore.Session(qcore.Model.from_bytes(proto.SerializeToString()))
    np.testing.assert_array_equal(session.run({"x": misaligned_copy(x)})["y"], session.run({"x": x})["y"])


def test_writing_into_a_misaligned_array_is_refused():
    x = np.random.default_rng(5).standard_normal(32).astype(np.float32)
    out = misaligned_copy(np.zeros(32, np.float32))
    with pytest.raises(qcore.LayoutError, match="not aligned"):
        qcore.fake_quantize(x, np.float32(0.1), np.int32(0), qcore.QuantOptions(), out=out)


def test_external_data_beyond_two_gib_loads_without_reading_it(tmp_path):
    """A model whose external data file is 3 GiB (sparse on disk) with a 2.25 GiB initializer and one
    stored past the 2 GiB mark: it loads, its sizes are checked, and the views are the mapped file."""
    big = 9 * 2**28                      # 2.25 GiB of int8 zeros (a hole in the sparse file)
    far = 5 * 2**29                      # 2.5 GiB: the small tensor's offset
    small = np.arange(16, dtype=np.float32)
    data = tmp_path / "weights.bin"
    with open(data, "wb") as f:
        f.truncate(3 * 2**30)
        f.seek(far)
        f.write(small.tobytes())

    def external(name, elem_type, dims, offset, length):
        t = TensorProto(name=name, data_type=elem_type, dims=dims, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(length))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        return t

    graph = helper.make_graph([helper.make_node("Identity", ["small"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16])],
                              [external("big", TensorProto.INT8, [big], 0, big),
                               external("small", TensorProto.FLOAT, [16], far, small.nbytes)])
    path = tmp_path / "huge.onnx"
    path.write_bytes(helper.make_model(graph, ir_version=8).SerializeToString())
    model = qcore.Model(str(path))
    _, shape, view = model.initializer("big")
    assert shape == (big,) and view.nbytes == big
    assert mapped_file_at(address_of(view)) == os.path.realpath(data)
    np.testing.assert_array_equal(model.initializer("small")[2], small)
    np.testing.assert_array_equal(qcore.Session(model).run({})["y"], small)
