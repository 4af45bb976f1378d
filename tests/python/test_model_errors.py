"""Malformed models, missing files and bad save options through qcore.Model (libqcore-onnx): the
documented exception class, and a message naming the C function (qc_model_load, qc_model_load_memory,
qc_model_save, or the inspection function) and the offending item. qc_model.h: QC_ERR_FORMAT
(FormatError) for malformed models, QC_ERR_IO (FileError) for files that cannot be read or written;
saving is atomic and leaves nothing behind on failure."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import qcore

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TESTDATA = "/usr/share/libonnx-testdata/data"
SMALL_REAL_MODEL = os.path.join(TESTDATA, "pytorch-converted", "test_Conv2d", "model.onnx")
FAST = 2.0  # seconds: "instantly" for checks that must not touch the declared size


# ---------------------------------------------------------------------------------------------------
# helpers

def make_proto(initializers=(), nodes=None, inputs=None, outputs=None, ir_version=10):
    """A ModelProto around `initializers` (TensorProtos, used as they are, however malformed)."""
    if nodes is None:
        nodes = [helper.make_node("Identity", ["x"], ["y"], name="copy")]
    if inputs is None:
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])]
    if outputs is None:
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    graph.initializer.extend(initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = ir_version
    return model


def raw_tensor(name, data_type, dims, raw):
    t = TensorProto(name=name, data_type=data_type)
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def external_tensor(name, dims, entries, data_type=TensorProto.FLOAT):
    t = TensorProto(name=name, data_type=data_type)
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for key, value in entries.items():
        t.external_data.add(key=key, value=value)
    return t


def load_both(proto_or_bytes, tmp_path, name="bad.onnx"):
    """Yields (api name, callable loading the model) for the file and the memory entry points."""
    data = proto_or_bytes if isinstance(proto_or_bytes, bytes) else proto_or_bytes.SerializeToString()
    path = tmp_path / name
    path.write_bytes(data)
    return [("qc_model_load", lambda: qcore.Model(path)),
            ("qc_model_load_memory", lambda: qcore.Model.from_bytes(data, external_dir=str(tmp_path)))]


def assert_raises_in_both(proto, tmp_path, exc, *fragments):
    """Both load paths raise `exc` with a message naming their function and every fragment."""
    for function, load in load_both(proto, tmp_path):
        start = time.perf_counter()
        with pytest.raises(exc) as info:
            load()
        assert time.perf_counter() - start < FAST, function
        message = str(info.value)
        assert message.startswith(function + ": "), message
        for fragment in fragments:
            assert fragment in message, (fragment, message)


def temp_leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def valid_proto():
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    b = numpy_helper.from_array(np.arange(4, dtype=np.int64), "b")
    return make_proto([w, b])


# ---------------------------------------------------------------------------------------------------
# files that are no models

def test_missing_file(tmp_path):
    path = tmp_path / "missing.onnx"
    with pytest.raises(qcore.FileError) as info:
        qcore.Model(path)
    message = str(info.value)
    assert message.startswith("qc_model_load: ") and str(path) in message and "No such file" in message


def test_directory_instead_of_file(tmp_path):
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    with pytest.raises(qcore.FileError) as info:
        qcore.Model(folder)
    message = str(info.value)
    assert message.startswith("qc_model_load: ") and str(folder) in message and "not a regular file" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(qcore.FormatError, match=r"^qc_model_load: .*empty \(0 bytes\)"):
        qcore.Model(path)
    with pytest.raises(qcore.FormatError, match=r"^qc_model_load_memory: .*empty \(0 bytes\)"):
        qcore.Model.from_bytes(b"")


def test_random_bytes(tmp_path):
    data = np.random.default_rng(20240611).bytes(1000)
    for function, load in load_both(data, tmp_path, "random.onnx"):
        with pytest.raises(qcore.FormatError) as info:
            load()
        message = str(info.value)
        assert message.startswith(function + ": ") and "ModelProto" in message and "1000 bytes" in message, message


@pytest.mark.parametrize("content", [b"", b"\xff" * 64], ids=["empty", "garbage"])
def test_format_errors_name_the_file(tmp_path, content):
    path = tmp_path / "named.onnx"
    path.write_bytes(content)
    with pytest.raises(qcore.FormatError) as info:
        qcore.Model(path)
    assert "named.onnx" in str(info.value), str(info.value)


def test_garbage_appended(tmp_path):
    if not os.path.exists(SMALL_REAL_MODEL):
        pytest.skip("libonnx-testdata is not installed")
    with open(SMALL_REAL_MODEL, "rb") as f:
        data = f.read()
    qcore.Model.from_bytes(data)  # the model itself is fine
    for tail in (b"\xff" * 16,           # an over-long varint tag
                 b"\x07",                # wire type 7 does not exist
                 b"\x3a\x7f\x00"):       # graph (field 7) claiming 127 bytes but giving 1
        for function, load in load_both(data + tail, tmp_path):
            with pytest.raises(qcore.FormatError, match="^%s: .*ModelProto" % function):
                load()


TRUNCATION_SCRIPT = r"""
import json, sys
import numpy as np
import qcore
data = open(sys.argv[1], "rb").read()
lengths = sorted(set(int(n) for n in np.linspace(0, len(data) - 1, 50)))
results = []
for n in lengths:
    for api in ("memory", "file"):
        try:
            if api == "memory":
                model = qcore.Model.from_bytes(data[:n])
            else:
                path = sys.argv[2]
                with open(path, "wb") as f:
                    f.write(data[:n])
                model = qcore.Model(path)
            # a model that loads must be fully inspectable
            model.inputs, model.outputs, model.nodes, model.opsets, model.metadata
            [model.initializer(name) for name in model.initializer_names()]
            results.append([n, api, "ok", ""])
        except qcore.QcoreError as e:
            results.append([n, api, type(e).__name__, str(e)])
print(json.dumps(results))
"""


def test_truncations_never_crash(tmp_path):
    """Every truncation of a small real model at ~50 lengths loads or raises FormatError (run in a child
    process, so that a crash is a test failure, not the end of the session)."""
    if not os.path.exists(SMALL_REAL_MODEL):
        pytest.skip("libonnx-testdata is not installed")
    proc = subprocess.run([sys.executable, "-c", TRUNCATION_SCRIPT, SMALL_REAL_MODEL, str(tmp_path / "cut.onnx")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    results = json.loads(proc.stdout)
    assert len(results) >= 80
    failed = [r for r in results if r[2] != "ok"]
    assert all(r[2] == "FormatError" for r in failed), [r for r in failed if r[2] != "FormatError"]
    for n, api, _, message in failed:
        function = "qc_model_load_memory" if api == "memory" else "qc_model_load"
        assert message.startswith(function + ": "), (n, api, message)
    assert len(failed) >= 20, results  # most cuts are no model
    assert [r[:3] for r in results if r[1] == "file"] == [[r[0], "file", r[2]] for r in results if r[1] == "memory"]


# ---------------------------------------------------------------------------------------------------
# malformed initializers and graphs

@pytest.mark.parametrize("raw_len", [44, 47, 52, 49, 0], ids=["short", "short-1", "long", "long+1", "none"])
def test_raw_data_size_mismatch(tmp_path, raw_len):
    t = raw_tensor("weights", TensorProto.FLOAT, [3, 4], b"\x01" * raw_len)
    assert_raises_in_both(make_proto([t]), tmp_path, qcore.FormatError,
                          "initializer 'weights'", "raw_data has %d bytes" % raw_len, "need 48")


def test_raw_data_int4_size(tmp_path):
    """4-bit data: 5 elements take 3 bytes, not 2 or 5."""
    for raw_len in (2, 5):
        t = raw_tensor("q4", TensorProto.INT4, [5], b"\x11" * raw_len)
        assert_raises_in_both(make_proto([t]), tmp_path, qcore.FormatError, "initializer 'q4'", "need 3")
    qcore.Model.from_bytes(make_proto([raw_tensor("q4", TensorProto.INT4, [5], b"\x11" * 3)]).SerializeToString())


@pytest.mark.parametrize("count", [11, 13, 0], ids=["fewer", "more", "none"])
def test_float_data_count_mismatch(tmp_path, count):
    t = TensorProto(name="fw", data_type=TensorProto.FLOAT, dims=[3, 4], float_data=[0.5] * count)
    fragments = ["initializer 'fw'", "holds %d values" % count, "needs 12"] if count else \
        ["initializer 'fw'", "no data", "48 bytes"]
    assert_raises_in_both(make_proto([t]), tmp_path, qcore.FormatError, *fragments)


@pytest.mark.parametrize("field, data_type, count", [
    ("int32_data", TensorProto.INT8, 5), ("int32_data", TensorProto.FLOAT16, 7),
    ("int64_data", TensorProto.INT64, 5), ("uint64_data", TensorProto.UINT32, 7),
    ("double_data", TensorProto.DOUBLE, 5),
], ids=["int8", "float16", "int64", "uint32", "double"])
def test_typed_field_count_mismatch(tmp_path, field, data_type, count):
    t = TensorProto(name="typed", data_type=data_type, dims=[6])
    getattr(t, field).extend([1] * count)
    assert_raises_in_both(make_proto([t]), tmp_path, qcore.FormatError, "initializer 'typed'", str(count), "6")


@pytest.mark.parametrize("dims", [[-1], [3, -4], [-2**63]], ids=["-1", "3x-4", "int64-min"])
def test_negative_dim(tmp_path, dims):
    t = raw_tensor("neg", TensorProto.FLOAT, dims, b"")
    assert_raises_in_both(make_proto([t]), tmp_path, qcore.FormatError, "initializer 'neg'", "negative",
                          str(min(dims)))


@pytest.mark.parametrize("dims, data_type, storage", [
    ([2**40, 2**40], TensorProto.FLOAT, "raw"),
    ([2**31, 2**31, 2**31], TensorProto.INT8, "raw"),
    ([2**62, 2], TensorProto.BOOL, "int32"),
    ([2**40, 2**40], TensorProto.INT4, "int32"),
    ([2**63 - 1, 2**63 - 1], TensorProto.DOUBLE, "typed"),
    ([2**40, 2**40], TensorProto.FLOAT, "none"),
    ([2**28, 2**28], TensorProto.INT8, "raw"),       # 2**56 bytes: representable, but absent
    ([2**28, 2**28], TensorProto.INT8, "int32"),
    ([2**30, 2**30], TensorProto.FLOAT, "typed"),
    ([2**20, 2**20], TensorProto.UINT32, "none"),
], ids=lambda v: str(v) if not isinstance(v, list) else "x".join(str(d) for d in v))
def test_absurd_dims(tmp_path, dims, data_type, storage):
    """A declared size no memory could hold is a FormatError naming the initializer, found without
    allocating or reading that many bytes."""
    t = TensorProto(name="huge", data_type=data_type, dims=dims)
    if storage == "raw":
        t.raw_data = b"\0" * 8
    elif storage == "int32":
        t.int32_data.extend([1, 0, 1])
    elif storage == "typed":
        (t.double_data if data_type == TensorProto.DOUBLE else t.float_data).extend([1.0, 2.0])
    assert_raises_in_both(make_proto([t]), tmp_path, qcore.FormatError, "initializer 'huge'")


@pytest.mark.parametrize("data_type, shown", [(99, "99"), (0, "UNDEFINED"), (-3, "-3"), (2**31 - 1, "UNKNOWN")],
                         ids=["99", "undefined", "negative", "int32-max"])
def test_unknown_data_type(tmp_path, data_type, shown):
    t = raw_tensor("odd", data_type, [2], b"\0" * 8)
    assert_raises_in_both(make_proto([t]), tmp_path, qcore.FormatError, "initializer 'odd'", "element type", shown)


def test_initializer_without_name(tmp_path):
    named = numpy_helper.from_array(np.zeros(2, np.float32), "fine")
    anonymous = raw_tensor("", TensorProto.FLOAT, [2], b"\0" * 8)
    anonymous.ClearField("name")
    assert_raises_in_both(make_proto([named, anonymous]), tmp_path, qcore.FormatError, "initializer 1", "no name")
    empty = raw_tensor("", TensorProto.FLOAT, [2], b"\0" * 8)  # name present but ""
    assert_raises_in_both(make_proto([empty]), tmp_path, qcore.FormatError, "initializer 0", "no name")


def test_node_without_op_type(tmp_path):
    nodes = [helper.make_node("Identity", ["x"], ["t"], name="first"), onnx.NodeProto(name="second", input=["t"],
                                                                                      output=["y"])]
    assert_raises_in_both(make_proto(nodes=nodes), tmp_path, qcore.FormatError, "node 1", "'second'", "op_type")
    nodes[1].op_type = ""
    assert_raises_in_both(make_proto(nodes=nodes), tmp_path, qcore.FormatError, "node 1", "'second'", "op_type")


def test_model_without_graph(tmp_path):
    proto = onnx.ModelProto(ir_version=8, producer_name="nothing")
    proto.opset_import.add(domain="", version=17)
    assert_raises_in_both(proto, tmp_path, qcore.FormatError, "no graph")


# ---------------------------------------------------------------------------------------------------
# external data

WEIGHTS = np.arange(4, dtype=np.float32)  # 16 bytes


def external_model(tmp_path, entries, dims=(4,), data=WEIGHTS.tobytes(), data_name="w.bin"):
    if data is not None:
        (tmp_path / data_name).write_bytes(data)
    return make_proto([external_tensor("w", list(dims), entries)])


def test_external_valid_baseline(tmp_path):
    """The well-formed variant of the external-data cases below loads, through both entry points."""
    proto = external_model(tmp_path, {"location": "w.bin", "offset": "0", "length": "16"})
    for _, load in load_both(proto, tmp_path, "ok.onnx"):
        assert load().initializer("w")[2].tolist() == WEIGHTS.tolist()


def test_external_missing_data_file(tmp_path):
    proto = external_model(tmp_path, {"location": "missing.bin"}, data=None)
    assert_raises_in_both(proto, tmp_path, qcore.FileError, "missing.bin", "No such file")


def test_external_data_file_is_a_directory(tmp_path):
    (tmp_path / "folder.bin").mkdir()
    proto = external_model(tmp_path, {"location": "folder.bin"}, data=None)
    assert_raises_in_both(proto, tmp_path, qcore.FileError, "folder.bin", "not a regular file")


@pytest.mark.parametrize("location", ["../x", "/etc/passwd", "sub/../../x", "..", "a/.."],
                         ids=["dotdot", "absolute", "nested-dotdot", "bare-dotdot", "trailing-dotdot"])
def test_external_location_leaves_folder(tmp_path, location):
    inner = tmp_path / "inner"
    (inner / "sub").mkdir(parents=True)
    (tmp_path / "x").write_bytes(WEIGHTS.tobytes())  # the target exists: only the location is wrong
    proto = make_proto([external_tensor("w", [4], {"location": location})])
    assert_raises_in_both(proto, inner, qcore.FormatError, "'%s'" % location, "leaves the model's folder")


def test_external_without_location(tmp_path):
    proto = external_model(tmp_path, {"offset": "0", "length": "16"})
    assert_raises_in_both(proto, tmp_path, qcore.FormatError, "initializer 'w'", "without a location")


@pytest.mark.parametrize("offset, length", [
    (1000, 16), (8, 16), (16, None), (2**64 - 1, None), (2**63, 16),
], ids=["offset-past-end", "straddles-end", "offset-at-end", "offset-uint64-max", "offset-2^63"])
def test_external_beyond_end(tmp_path, offset, length):
    entries = {"location": "w.bin", "offset": str(offset)}
    if length is not None:
        entries["length"] = str(length)
    proto = external_model(tmp_path, entries)
    assert_raises_in_both(proto, tmp_path, qcore.FormatError, "initializer 'w'", "beyond the end", "'w.bin'",
                          "16 bytes")


def test_external_shape_larger_than_file(tmp_path):
    proto = external_model(tmp_path, {"location": "w.bin"}, dims=(2**20, 2**20))  # 4 TiB declared
    assert_raises_in_both(proto, tmp_path, qcore.FormatError, "initializer 'w'", "beyond the end")


@pytest.mark.parametrize("key, value", [
    ("offset", "abc"), ("offset", "12abc"), ("offset", "-1"), ("offset", ""), ("offset", "18446744073709551616"),
    ("length", "sixteen"), ("length", "-16"),
], ids=["offset-abc", "offset-12abc", "offset-negative", "offset-empty", "offset-2^64", "length-word",
        "length-negative"])
def test_external_non_numeric(tmp_path, key, value):
    entries = {"location": "w.bin", "offset": "0", "length": "16"}
    entries[key] = value
    proto = external_model(tmp_path, entries)
    assert_raises_in_both(proto, tmp_path, qcore.FormatError, "initializer 'w'", key, "not a number")


@pytest.mark.parametrize("length", [8, 32, 0], ids=["shorter", "longer", "zero"])
def test_external_length_disagrees_with_shape(tmp_path, length):
    proto = external_model(tmp_path, {"location": "w.bin", "offset": "0", "length": str(length)},
                           data=b"\0" * 64)
    assert_raises_in_both(proto, tmp_path, qcore.FormatError, "initializer 'w'", "length %d" % length, "16 bytes")


def test_external_from_bytes_without_folder(tmp_path):
    proto = external_model(tmp_path, {"location": "w.bin", "offset": "0", "length": "16"})
    with pytest.raises(qcore.InvalidArgumentError) as info:
        qcore.Model.from_bytes(proto.SerializeToString())
    message = str(info.value)
    assert message.startswith("qc_model_load_memory: ") and "'w.bin'" in message and "folder" in message, message
    # with the folder it loads
    model = qcore.Model.from_bytes(proto.SerializeToString(), external_dir=str(tmp_path))
    assert model.initializer("w")[2].tolist() == WEIGHTS.tolist()


# ---------------------------------------------------------------------------------------------------
# save

@pytest.fixture
def model():
    return qcore.Model.from_bytes(valid_proto().SerializeToString())


@pytest.mark.parametrize("threshold", [0, 1], ids=["inline", "external"])
def test_save_into_missing_folder(tmp_path, model, threshold):
    target = tmp_path / "no" / "such" / "m.onnx"
    with pytest.raises(qcore.FileError) as info:
        model.save(target, external_threshold=threshold)
    message = str(info.value)
    assert message.startswith("qc_model_save: ") and str(tmp_path / "no" / "such") in message, message
    assert "No such file" in message
    assert list(tmp_path.iterdir()) == []


INVALID_EXTERNAL_FILES = [
    "a/b", "/abs.data", "..", "sub/", "../escape.data",
    "",
    ".",
]


@pytest.mark.parametrize("external_file", INVALID_EXTERNAL_FILES)
@pytest.mark.parametrize("threshold", [0, 1], ids=["inline", "external"])
def test_save_invalid_external_file(tmp_path, model, external_file, threshold):
    """An invalid external_file is refused before anything is written, even when nothing goes outside."""
    target = tmp_path / "m.onnx"
    with pytest.raises(qcore.InvalidArgumentError) as info:
        model.save(target, external_threshold=threshold, external_file=external_file)
    message = str(info.value)
    assert message.startswith("qc_model_save: ") and "external_file" in message, message
    assert "'%s'" % external_file in message, message
    assert list(tmp_path.iterdir()) == []


def test_save_external_file_too_long(tmp_path, model):
    with pytest.raises(qcore.InvalidArgumentError, match="^qc_model_save: .*too long"):
        model.save(tmp_path / "m.onnx", external_threshold=1, external_file="a" * 300)
    assert list(tmp_path.iterdir()) == []


def test_save_external_file_too_long_names_it(tmp_path, model):
    with pytest.raises(qcore.InvalidArgumentError, match="external_file"):
        model.save(tmp_path / "m.onnx", external_threshold=1, external_file="a" * 300)


def test_failed_save_leaves_old_file_intact(tmp_path, model):
    target = tmp_path / "m.onnx"
    other = qcore.Model.from_bytes(make_proto([numpy_helper.from_array(np.ones(3, np.float32), "o")])
                                   .SerializeToString())
    other.save(target, external_threshold=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["m.onnx", "m.onnx.data"]
    for bad in ("a/b", "..", "x" * 300):
        with pytest.raises(qcore.InvalidArgumentError):
            model.save(target, external_threshold=1, external_file=bad)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert qcore.Model(target).initializer("o")[2].tolist() == [1.0, 1.0, 1.0]


def test_failed_save_leaves_no_data_file(tmp_path, model):
    target = tmp_path / "taken.onnx"
    target.mkdir()  # the model cannot be renamed onto it
    (tmp_path / "precious.onnx.data").write_bytes(b"not mine")
    with pytest.raises(qcore.FileError, match="^qc_model_save: .*taken.onnx"):
        model.save(target, external_threshold=1)
    with pytest.raises(qcore.FileError):
        model.save(target, external_threshold=1, external_file="precious.onnx.data")
    assert temp_leftovers(tmp_path) == []
    assert (tmp_path / "precious.onnx.data").read_bytes() == b"not mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.onnx.data", "taken.onnx"]


def test_save_external_file_named_like_the_model(tmp_path):
    proto = make_proto([numpy_helper.from_array(np.arange(16, dtype=np.float32), "w")])
    proto.doc_string = "x" * 1000
    model = qcore.Model.from_bytes(proto.SerializeToString())
    target = tmp_path / "m.onnx"
    try:
        model.save(target, external_threshold=1, external_file="m.onnx")
    except qcore.InvalidArgumentError as e:
        assert str(e).startswith("qc_model_save: ") and "external_file" in str(e)
        assert list(tmp_path.iterdir()) == []
        return
    assert qcore.Model(target).initializer("w")[2].tolist() == list(range(16))


def test_save_success_leaves_no_temporary_files(tmp_path, model):
    for i, threshold in enumerate((0, 1, 16, 0)):
        model.save(tmp_path / "m.onnx", external_threshold=threshold)
        assert temp_leftovers(tmp_path) == [], i
    model.save(tmp_path / "n.onnx", external_threshold=1, external_file="n.weights")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data", "n.onnx", "n.weights"]
    assert oct((tmp_path / "n.onnx").stat().st_mode & 0o777) == oct(0o644)  # not mkstemp's 0600


def test_save_failure_leaves_no_temporary_files(tmp_path, model):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep").write_bytes(b"")  # a non-empty folder where the model should go
    with pytest.raises(qcore.FileError, match="^qc_model_save: .*busy"):
        model.save(target)
    with pytest.raises(qcore.InvalidArgumentError):
        model.save(tmp_path / "m.onnx", external_file="a/b")
    with pytest.raises(qcore.FileError):
        model.save(tmp_path / "nope" / "m.onnx", external_threshold=1)
    assert temp_leftovers(tmp_path) == [] and temp_leftovers(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


# ---------------------------------------------------------------------------------------------------
# ranks above QC_MAX_DIMS (8): the model loads, inspecting the item is UnsupportedError

def test_rank_9_initializer(tmp_path):
    t9 = numpy_helper.from_array(np.arange(2**9, dtype=np.float32).reshape((2,) * 9), "rank9")
    t8 = numpy_helper.from_array(np.arange(2**8, dtype=np.int8).reshape((2,) * 8), "rank8")
    proto = make_proto([t8, t9])
    model = qcore.Model.from_bytes(proto.SerializeToString())
    with pytest.raises(qcore.UnsupportedError) as info:
        model.initializer("rank9")
    message = str(info.value)
    assert message.startswith("qc_model_initializer: ") and "'rank9'" in message and "rank 9" in message, message
    with pytest.raises(qcore.UnsupportedError, match="^qc_model_initializer: .*'rank9'"):
        model.initializer_names()
    _, shape, data = model.initializer("rank8")  # rank 8 is fine
    assert shape == (2,) * 8 and data.tobytes() == np.arange(2**8, dtype=np.int8).tobytes()
    # nothing else is affected, and saving keeps the tensor
    assert [n.op_type for n in model.nodes] == ["Identity"]
    model.save(tmp_path / "r.onnx")
    assert onnx.load(str(tmp_path / "r.onnx")) == proto


@pytest.mark.parametrize("which", ["input", "output"])
def test_rank_9_value(tmp_path, which):
    shape9 = [1, 2, 1, 2, 1, 2, 1, 2, "n"]
    values = {"input": [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape9)],
              "output": [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape9)]}
    proto = make_proto(**{which + "s": values[which]})
    model = qcore.Model.from_bytes(proto.SerializeToString())
    function = "qc_model_" + which
    with pytest.raises(qcore.UnsupportedError) as info:
        model.inputs if which == "input" else model.outputs
    message = str(info.value)
    assert message.startswith(function + ": ") and "rank 9" in message, message
    assert ("'x'" if which == "input" else "'y'") in message, message
    other = model.outputs if which == "input" else model.inputs  # the other side is fine
    assert len(other) == 1
    model.save(tmp_path / "v.onnx")
    assert onnx.load(str(tmp_path / "v.onnx")) == proto


@pytest.mark.parametrize("data_type", [TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.COMPLEX128])
def test_wide_types_in_int32_data_have_no_data(data_type):
    """int32_data holds only types of 16 bits or fewer; a wider type stored there (libFuzzer built a
    COMPLEX128 scalar so, which overran a stack variable) is a tensor without data."""
    t = TensorProto(name="w", data_type=data_type, dims=[], int32_data=[7])
    graph = helper.make_graph([], "g", [], [helper.make_tensor_value_info("w", data_type, [])], [t])
    data = helper.make_model(graph, ir_version=8).SerializeToString()
    with pytest.raises(qcore.FormatError, match="initializer 'w': no data"):
        qcore.Model.from_bytes(data)
