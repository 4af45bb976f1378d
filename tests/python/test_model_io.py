"""ONNX model I/O through qcore.Model (libqcore-onnx, include/qcore/qc_model.h), with the `onnx` Python
package as the independent oracle: what qcore reports about a model (header, opsets, metadata, inputs,
outputs, nodes, initializer bytes) must be what onnx.load shows, and what qcore saves must load in onnx
as the same ModelProto.

1. Every model.onnx of Debian's libonnx-testdata (node, pytorch-converted, pytorch-operator, simple).
2. External data, written by qcore (4096-aligned pieces in one file) and by onnx.save_model.
3. Fields unknown to the schema qcore was built from (Debian's onnx.proto, IR 8) survive a save.
4. Model.from_bytes agrees with Model(path); initializer views keep their model alive.
"""
import gc
import glob
import os
import weakref

import numpy as np
import pytest

import qcore

onnx = pytest.importorskip("onnx")
ml_dtypes = pytest.importorskip("ml_dtypes")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TESTDATA = "/usr/share/libonnx-testdata/data"
TESTDATA_FOLDERS = ("node", "pytorch-converted", "pytorch-operator", "simple")
QC_MAX_DIMS = 8
EXTERNAL_ALIGNMENT = 4096

# The ONNX element types qcore knows (qc_model.h: 0 .. 26); qcore calls the others "UNKNOWN".
QC_LAST_TYPE = 26
# ONNX element types qcore hands out as typed numpy views (the others come as raw uint8 bytes).
NUMPY_DTYPES = {
    TensorProto.FLOAT: np.float32, TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8,
    TensorProto.UINT16: np.uint16, TensorProto.INT16: np.int16, TensorProto.INT32: np.int32,
    TensorProto.INT64: np.int64, TensorProto.BOOL: np.bool_, TensorProto.FLOAT16: np.float16,
    TensorProto.DOUBLE: np.float64, TensorProto.UINT32: np.uint32, TensorProto.UINT64: np.uint64,
    TensorProto.COMPLEX64: np.complex64, TensorProto.COMPLEX128: np.complex128,
}


# ---------------------------------------------------------------------------------------------------
# Oracle helpers (onnx only)

def type_name(data_type):
    """The name qcore should give an ONNX element type: onnx's own name, 'UNKNOWN' beyond qcore's list."""
    if 0 <= data_type <= QC_LAST_TYPE:
        return TensorProto.DataType.Name(data_type)
    return "UNKNOWN"


def expected_value_info(v):
    """(name, element type name, shape) as qcore.ValueInfo shows a graph input or output."""
    if v.type.WhichOneof("value") != "tensor_type":
        return (v.name, "UNDEFINED", None)
    tt = v.type.tensor_type
    if not tt.HasField("shape"):
        return (v.name, type_name(tt.elem_type), None)
    shape = []
    for d in tt.shape.dim:
        kind = d.WhichOneof("value")
        if kind == "dim_value" and d.dim_value >= 0:
            shape.append(d.dim_value)
        elif kind == "dim_param":
            shape.append(d.dim_param)
        else:
            shape.append(None)
    return (v.name, type_name(tt.elem_type), tuple(shape))


def value_rank(v):
    if v.type.WhichOneof("value") != "tensor_type" or not v.type.tensor_type.HasField("shape"):
        return -1
    return len(v.type.tensor_type.shape.dim)


def expected_node(n):
    domain = "" if n.domain in ("", "ai.onnx") else n.domain
    return (n.name, n.op_type, domain, list(n.input), list(n.output))


def expected_inputs(graph):
    names = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in names]


def expected_initializer(t, base_dir=None):
    """(type name, shape, expected data): a numpy array of the dtype qcore uses for numpy-representable
    types, bytes (ONNX layout, 4-bit and 2-bit types packed) for the others, None for STRING."""
    shape = tuple(t.dims)
    if t.data_type == TensorProto.STRING:
        return "STRING", shape, None
    if t.HasField("raw_data") and t.data_location != TensorProto.EXTERNAL and t.data_type not in NUMPY_DTYPES:
        return type_name(t.data_type), shape, bytes(t.raw_data)
    array = numpy_helper.to_array(t, base_dir or "")
    if t.data_type in NUMPY_DTYPES:
        dtype = np.dtype(NUMPY_DTYPES[t.data_type])
        assert array.dtype == dtype, (t.name, array.dtype, dtype)
        return type_name(t.data_type), shape, np.array(array, order="C")  # (ascontiguousarray makes 0-d 1-d)
    # from_array packs 4-bit and 2-bit types two (four) per byte, low bits first, as ONNX stores them
    return type_name(t.data_type), shape, numpy_helper.from_array(array).raw_data


def assert_initializer_matches(model, t, base_dir=None):
    name, shape, want = expected_initializer(t, base_dir)
    got_name, got_shape, data = model.initializer(t.name)
    assert (got_name, got_shape) == (name, shape), t.name
    assert not data.flags.writeable
    if want is None:
        assert data.size == 0, t.name
    elif isinstance(want, np.ndarray):
        assert data.dtype == want.dtype, (t.name, data.dtype, want.dtype)
        assert data.shape == want.shape, (t.name, data.shape, want.shape)
        assert data.tobytes() == want.tobytes(), t.name  # bit-exact, NaN payloads and -0.0 included
    else:
        assert data.dtype == np.uint8 and data.ndim == 1, (t.name, data.dtype, data.shape)
        assert data.tobytes() == want, t.name


def assert_model_matches(model, proto, base_dir=None):
    """Everything qcore.Model reports equals what the onnx ModelProto `proto` holds."""
    g = proto.graph
    assert model.ir_version == proto.ir_version
    assert model.producer == (proto.producer_name, proto.producer_version)
    assert model.opsets == {o.domain: o.version for o in proto.opset_import}
    assert model.metadata == {p.key: p.value for p in proto.metadata_props}
    inputs = expected_inputs(g)
    if any(value_rank(v) > QC_MAX_DIMS for v in inputs):
        with pytest.raises(qcore.UnsupportedError, match="qc_model_input"):
            model.inputs
    else:
        assert [tuple(v) for v in model.inputs] == [expected_value_info(v) for v in inputs]
    if any(value_rank(v) > QC_MAX_DIMS for v in g.output):
        with pytest.raises(qcore.UnsupportedError, match="qc_model_output"):
            model.outputs
    else:
        assert [tuple(v) for v in model.outputs] == [expected_value_info(v) for v in g.output]
    assert [tuple(n) for n in model.nodes] == [expected_node(n) for n in g.node]
    if any(len(t.dims) > QC_MAX_DIMS for t in g.initializer):
        with pytest.raises(qcore.UnsupportedError, match="qc_model_initializer"):
            model.initializer_names()
        return
    assert model.initializer_names() == [t.name for t in g.initializer]
    for t in g.initializer:
        assert_initializer_matches(model, t, base_dir)


def initializer_bytes(model):
    """{name: (type name, shape, bytes)} of every initializer."""
    out = {}
    for name in model.initializer_names():
        type_, shape, data = model.initializer(name)
        out[name] = (type_, shape, data.dtype, data.tobytes())
    return out


def summary(model):
    return (model.ir_version, model.producer, model.opsets, model.metadata, model.inputs, model.outputs,
            model.nodes, initializer_bytes(model))


def without_default_location(proto):
    """onnx.load, reading external data into raw_data, sets data_location = DEFAULT explicitly: drop that
    field so that the ModelProto compares equal to one that never had external data."""
    for t in proto.graph.initializer:
        if t.HasField("data_location") and t.data_location == TensorProto.DEFAULT:
            t.ClearField("data_location")
    return proto


def temp_leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# ---------------------------------------------------------------------------------------------------
# 1. Every model of libonnx-testdata

def _testdata_models():
    found = []
    for folder in TESTDATA_FOLDERS:
        found += sorted(glob.glob(os.path.join(TESTDATA, folder, "*", "model.onnx")))
    return [os.path.relpath(p, TESTDATA) for p in found]


TESTDATA_MODELS = _testdata_models()
TESTDATA_PARAMS = TESTDATA_MODELS or [
    pytest.param(None, marks=pytest.mark.skip(reason="Debian's libonnx-testdata is not installed (%s)" % TESTDATA))]


def test_testdata_is_complete():
    """The corpus the parametrized test walks: all four folders, about 1070 models."""
    if not TESTDATA_MODELS:
        pytest.skip("Debian's libonnx-testdata is not installed (%s)" % TESTDATA)
    folders = {p.split(os.sep)[0] for p in TESTDATA_MODELS}
    assert folders == set(TESTDATA_FOLDERS)
    assert len(TESTDATA_MODELS) > 1000


@pytest.mark.parametrize("relpath", TESTDATA_PARAMS)
def test_testdata_model(relpath, tmp_path):
    path = os.path.join(TESTDATA, relpath)
    try:
        proto = onnx.load(path)
    except Exception as e:  # noqa: BLE001 - onnx itself is the judge of what is a model
        pytest.skip("onnx.load cannot read it either: %r" % e)
    model = qcore.Model(path)
    assert_model_matches(model, proto, os.path.dirname(path))

    # the same bytes through qc_model_load_memory
    with open(path, "rb") as f:
        data = f.read()
    assert summary(qcore.Model.from_bytes(data, external_dir=os.path.dirname(path))) == summary(model)

    # save: onnx reads the same ModelProto, qcore the same bytes
    saved = tmp_path / "model.onnx"
    model.save(saved)
    assert onnx.load(str(saved)) == proto
    again = qcore.Model(saved)
    assert initializer_bytes(again) == initializer_bytes(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


# ---------------------------------------------------------------------------------------------------
# 2. External data

def int4_values(n, rng):
    return rng.integers(-8, 8, n).astype(ml_dtypes.int4)


def rich_initializers(rng):
    """Initializers of many types, sizes and storages (raw_data and the typed repeated fields)."""
    inits = [
        numpy_helper.from_array(rng.standard_normal((64, 80)).astype(np.float32), "w_f32"),       # 20480 B raw
        numpy_helper.from_array(int4_values(33 * 7, rng).reshape(33, 7), "w_int4"),               # 116 B raw
        numpy_helper.from_array(int4_values(4001, rng), "w_int4_big"),                            # 2001 B raw
        numpy_helper.from_array(rng.standard_normal(300).astype(np.float16), "w_f16"),            # 600 B raw
        numpy_helper.from_array(np.array([1.5, -0.0, np.nan], np.float32), "small"),              # 12 B raw
        numpy_helper.from_array(np.zeros((0, 5), np.float32), "empty"),                           # 0 B
        numpy_helper.from_array(rng.integers(-2**62, 2**62, 700).astype(np.int64), "i64_raw"),    # 5600 B raw
        helper.make_tensor("i64_typed", TensorProto.INT64, [50, 20], rng.integers(-2**40, 2**40, 1000)),
        helper.make_tensor("f32_typed", TensorProto.FLOAT, [3000], rng.standard_normal(3000).astype(np.float32)),
        helper.make_tensor("bool_typed", TensorProto.BOOL, [4097], rng.integers(0, 2, 4097).astype(bool)),
        helper.make_tensor("i8_typed", TensorProto.INT8, [10, 100], rng.integers(-128, 128, 1000)),
        helper.make_tensor("u16_typed", TensorProto.UINT16, [900], rng.integers(0, 65536, 900)),
        helper.make_tensor("f16_typed", TensorProto.FLOAT16, [2, 500], rng.standard_normal(1000).astype(np.float16)),
        helper.make_tensor("bf16_typed", TensorProto.BFLOAT16, [700], rng.standard_normal(700).astype(np.float32)),
        helper.make_tensor("int4_typed", TensorProto.INT4, [2001], rng.integers(-8, 8, 2001)),
        helper.make_tensor("u32_typed", TensorProto.UINT32, [700], rng.integers(0, 2**32, 700)),
        helper.make_tensor("u64_typed", TensorProto.UINT64, [600], rng.integers(0, 2**63, 600).astype(np.uint64)),
        helper.make_tensor("f64_typed", TensorProto.DOUBLE, [600], rng.standard_normal(600)),
        helper.make_tensor("fp8_typed", TensorProto.FLOAT8E4M3FN, [900], rng.standard_normal(900).astype(np.float32)),
        helper.make_tensor("names", TensorProto.STRING, [2], [b"alpha", b"beta"]),
    ]
    # the storage each one is meant to exercise
    storage = {t.name: [f.name for f, _ in t.ListFields() if f.name.endswith("_data")] for t in inits}
    assert storage["w_int4"] == ["raw_data"] and storage["int4_typed"] == ["int32_data"]
    assert storage["f32_typed"] == ["float_data"] and storage["i64_typed"] == ["int64_data"]
    assert storage["bool_typed"] == ["int32_data"] and storage["u32_typed"] == ["uint64_data"]
    return inits


def build_model(initializers, ir_version=10, opset=21, extra_outputs=()):
    """A small valid graph: y = Identity(x), with the initializers alongside (and optionally returned)."""
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="copy")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])]
    for name in extra_outputs:
        nodes.append(helper.make_node("Identity", [name], [name + "_out"], name="out_" + name))
        outputs.append(helper.make_tensor_value_info(name + "_out", TensorProto.UNDEFINED, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="qcore-tests",
                              producer_version="0.1")
    model.ir_version = ir_version
    helper.set_model_props(model, {"purpose": "external data", "author": "tests"})
    return model


@pytest.fixture
def rich_model(rng):
    return build_model(rich_initializers(rng))


def write_model(proto, path):
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path


def external_entries(t):
    return {e.key: e.value for e in t.external_data}


def nbytes_of(t):
    if t.data_type == TensorProto.STRING:
        return None
    _, _, want = expected_initializer(t)
    return want.nbytes if isinstance(want, np.ndarray) else len(want)


def assert_same_arrays(a, b, what):
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    if a.dtype == object:
        assert a.tolist() == b.tolist(), what
    else:
        assert a.tobytes() == b.tobytes(), what


def test_rich_model_loads(rich_model, tmp_path):
    """Every storage of the rich model, inline, through both entry points."""
    path = write_model(rich_model, tmp_path / "rich.onnx")
    assert_model_matches(qcore.Model(path), rich_model)
    assert_model_matches(qcore.Model.from_bytes(rich_model.SerializeToString()), rich_model)


@pytest.mark.parametrize("data_type, values", [
    (TensorProto.COMPLEX64, [1 + 2j, -3.5 - 0.25j, 0j]),
    (TensorProto.COMPLEX128, [1 + 2j, -3.5 - 0.25j, 1e300j]),
], ids=["complex64-float_data", "complex128-double_data"])
def test_complex_typed_fields(data_type, values, tmp_path):
    t = helper.make_tensor("c", data_type, [3], values)
    assert t.float_data or t.double_data
    proto = build_model([t])
    assert_model_matches(qcore.Model(write_model(proto, tmp_path / "c.onnx")), proto)


def test_save_external_threshold(rich_model, tmp_path):
    """Initializers of at least `threshold` bytes go to '<model>.data', 4096-aligned; onnx reads them back."""
    threshold = 600
    src = qcore.Model.from_bytes(rich_model.SerializeToString())
    out = tmp_path / "out.onnx"
    src.save(out, external_threshold=threshold)
    data_file = tmp_path / "out.onnx.data"
    assert data_file.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx", "out.onnx.data"]

    stored = onnx.load(str(out), load_external_data=False)
    original = {t.name: t for t in rich_model.graph.initializer}
    pieces = []
    for t in stored.graph.initializer:
        size = nbytes_of(original[t.name])
        if size is not None and size >= threshold:
            assert t.data_location == TensorProto.EXTERNAL, t.name
            e = external_entries(t)
            assert e["location"] == "out.onnx.data", t.name
            offset, length = int(e["offset"]), int(e["length"])
            assert offset % EXTERNAL_ALIGNMENT == 0, (t.name, offset)
            assert length == size, (t.name, length, size)
            assert not t.HasField("raw_data"), t.name
            for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                assert len(getattr(t, field)) == 0, (t.name, field)
            pieces.append((offset, length, t.name))
        else:
            assert t.data_location != TensorProto.EXTERNAL and not t.external_data, t.name
            assert t == original[t.name], t.name  # small ones are left exactly as they were
    assert len(pieces) >= 10, pieces
    pieces.sort()
    for (o1, l1, n1), (o2, _, n2) in zip(pieces, pieces[1:]):
        assert o1 + l1 <= o2, ("overlap", n1, n2)
    assert data_file.stat().st_size == pieces[-1][0] + pieces[-1][1]
    raw = data_file.read_bytes()
    for offset, length, name in pieces:  # the bytes in the file are the ONNX bytes of the tensor
        _, _, want = expected_initializer(original[name])
        want = want.tobytes() if isinstance(want, np.ndarray) else want
        assert raw[offset:offset + length] == want, name

    # onnx with load_external_data reads the same arrays
    loaded = onnx.load(str(out))
    assert [t.name for t in loaded.graph.initializer] == [t.name for t in rich_model.graph.initializer]
    for t in loaded.graph.initializer:
        assert_same_arrays(numpy_helper.to_array(t), numpy_helper.to_array(original[t.name]), t.name)
    # everything but the initializers is untouched
    rest_saved, rest_original = onnx.ModelProto(), onnx.ModelProto()
    rest_saved.CopyFrom(loaded)
    rest_original.CopyFrom(rich_model)
    del rest_saved.graph.initializer[:], rest_original.graph.initializer[:]
    assert rest_saved == rest_original

    # qcore reads back identical bytes, from the file and from bytes with external_dir
    again = qcore.Model(out)
    assert initializer_bytes(again) == initializer_bytes(src)
    assert_model_matches(again, rich_model)
    again_mem = qcore.Model.from_bytes(out.read_bytes(), external_dir=str(tmp_path))
    assert initializer_bytes(again_mem) == initializer_bytes(src)
    assert temp_leftovers(tmp_path) == []


def test_save_external_threshold_one_moves_every_byte_tensor(rich_model, tmp_path):
    out = tmp_path / "all.onnx"
    qcore.Model.from_bytes(rich_model.SerializeToString()).save(out, external_threshold=1)
    stored = onnx.load(str(out), load_external_data=False)
    for t in stored.graph.initializer:
        if t.name in ("names", "empty"):  # strings have no bytes; 0 bytes are below any threshold
            assert t.data_location != TensorProto.EXTERNAL, t.name
        else:
            assert t.data_location == TensorProto.EXTERNAL, t.name
            assert int(external_entries(t)["offset"]) % EXTERNAL_ALIGNMENT == 0
    assert_model_matches(qcore.Model(out), rich_model)


def test_save_custom_external_file(rich_model, tmp_path):
    out = tmp_path / "custom.onnx"
    qcore.Model.from_bytes(rich_model.SerializeToString()).save(out, external_threshold=1000,
                                                                 external_file="weights.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.onnx", "weights.bin"]
    stored = onnx.load(str(out), load_external_data=False)
    locations = {external_entries(t)["location"] for t in stored.graph.initializer
                 if t.data_location == TensorProto.EXTERNAL}
    assert locations == {"weights.bin"}
    assert_model_matches(qcore.Model(out), rich_model)
    loaded = onnx.load(str(out))
    original = {t.name: t for t in rich_model.graph.initializer}
    for t in loaded.graph.initializer:
        assert_same_arrays(numpy_helper.to_array(t), numpy_helper.to_array(original[t.name]), t.name)


def test_save_testdata_model_external(tmp_path):
    """A real model, every initializer external: onnx reads back the original ModelProto (raw_data)."""
    path = os.path.join(TESTDATA, "pytorch-converted", "test_Conv2d", "model.onnx")
    if not os.path.exists(path):
        pytest.skip("libonnx-testdata is not installed")
    proto = onnx.load(path)
    out = tmp_path / "conv.onnx"
    qcore.Model(path).save(out, external_threshold=1)
    stored = onnx.load(str(out), load_external_data=False)
    assert all(t.data_location == TensorProto.EXTERNAL for t in stored.graph.initializer)
    assert without_default_location(onnx.load(str(out))) == proto  # onnx turns it back into raw_data
    assert_model_matches(qcore.Model(out), proto)


@pytest.mark.parametrize("one_file", [True, False], ids=["one-file", "file-per-tensor"])
def test_read_onnx_external_data(rich_model, tmp_path, one_file):
    """A model saved by onnx with save_as_external_data is read correctly by qcore."""
    proto = onnx.ModelProto()
    proto.CopyFrom(rich_model)
    path = tmp_path / "by_onnx.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=one_file,
                    location="by_onnx.weights" if one_file else None, size_threshold=0)
    stored = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in stored.graph.initializer if t.data_location == TensorProto.EXTERNAL]
    assert len(external) >= 5, external  # onnx moves the raw_data ones
    if one_file:
        assert (tmp_path / "by_onnx.weights").is_file()
    else:
        assert all((tmp_path / external_entries(t)["location"]).is_file()
                   for t in stored.graph.initializer if t.name in external)
    model = qcore.Model(path)
    assert_model_matches(model, rich_model)
    assert_model_matches(qcore.Model.from_bytes(path.read_bytes(), external_dir=str(tmp_path)), rich_model)
    # and the onnx view of the files agrees
    assert_model_matches(model, onnx.load(str(path)))


def test_resave_external_inline(rich_model, tmp_path):
    """Re-saving an externally stored model with threshold 0 brings the data inside: onnx then needs
    no data file (it is deleted before onnx.load)."""
    ext_dir, inline_dir = tmp_path / "ext", tmp_path / "inline"
    ext_dir.mkdir(), inline_dir.mkdir()
    first = ext_dir / "m.onnx"
    qcore.Model.from_bytes(rich_model.SerializeToString()).save(first, external_threshold=500)
    model = qcore.Model(first)
    second = ext_dir / "inline.onnx"
    model.save(second)  # threshold 0: everything inside
    model.save(inline_dir / "inline.onnx")
    del model
    gc.collect()
    (ext_dir / "m.onnx.data").unlink()
    for out in (second, inline_dir / "inline.onnx"):
        loaded = onnx.load(str(out))  # would raise if some tensor still pointed to m.onnx.data
        assert all(t.data_location != TensorProto.EXTERNAL and not t.external_data for t in loaded.graph.initializer)
        original = {t.name: t for t in rich_model.graph.initializer}
        for t in loaded.graph.initializer:
            assert_same_arrays(numpy_helper.to_array(t), numpy_helper.to_array(original[t.name]), t.name)
        assert_model_matches(qcore.Model(out), rich_model)
    assert sorted(p.name for p in inline_dir.iterdir()) == ["inline.onnx"]


def test_resave_onnx_external_inline(rich_model, tmp_path):
    """The same for data onnx put outside: the saved model equals the original ModelProto."""
    proto = onnx.ModelProto()
    proto.CopyFrom(rich_model)
    onnx.save_model(proto, str(tmp_path / "a.onnx"), save_as_external_data=True, location="a.bin", size_threshold=0)
    out = tmp_path / "b.onnx"
    qcore.Model(tmp_path / "a.onnx").save(out)
    (tmp_path / "a.bin").unlink()
    assert without_default_location(onnx.load(str(out))) == rich_model


def test_resave_over_own_data_file(rich_model, tmp_path):
    """Saving an external-data model onto its own path rewrites the data file it is mapped from."""
    path = tmp_path / "self.onnx"
    original = qcore.Model.from_bytes(rich_model.SerializeToString())
    expected = initializer_bytes(original)
    original.save(path, external_threshold=500)
    model = qcore.Model(path)
    assert initializer_bytes(model) == expected
    model.save(path, external_threshold=2000)  # a different layout over the file being read
    assert initializer_bytes(model) == expected  # the old mapping stays valid
    assert initializer_bytes(qcore.Model(path)) == expected
    model.save(path)  # inline again, over itself
    assert initializer_bytes(qcore.Model(path)) == expected
    assert temp_leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# 3. Fields the schema does not know

def unknown_fields(message):
    from google.protobuf import unknown_fields as uf
    return [(f.field_number, f.wire_type, f.data if not isinstance(f.data, uf.UnknownFieldSet) else None)
            for f in uf.UnknownFieldSet(message)]


EXTRA_MODEL_FIELDS = (
    b"\xf0\x01\x2a"                              # field 30, varint 42
    + b"\xfa\x01\x05hello"                       # field 31, length-delimited "hello"
    + b"\xed\x01\x01\x02\x03\x04"                # field 29, fixed32
    + b"\xe1\x01" + bytes(range(8))              # field 28, fixed64
    + b"\x88\x07\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # field 113, varint 2**64-1
)


def test_unknown_model_fields_survive_save(tmp_path):
    proto = build_model([numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")],
                        extra_outputs=["w"])
    base = proto.SerializeToString()
    data = base + EXTRA_MODEL_FIELDS
    parsed = onnx.ModelProto.FromString(data)
    assert len(unknown_fields(parsed)) == 5  # unknown to onnx 1.23 as well: kept as unknown fields

    out = tmp_path / "unknown.onnx"
    qcore.Model.from_bytes(data).save(out)
    saved = out.read_bytes()
    assert saved.endswith(EXTRA_MODEL_FIELDS)  # protobuf-c writes unknown fields after the known ones
    reparsed = onnx.ModelProto.FromString(saved)
    assert unknown_fields(reparsed) == unknown_fields(parsed)
    reparsed.DiscardUnknownFields()
    assert reparsed == proto

    # also through a file load and an external-data save (the initializer copies carry the model's fields)
    src = tmp_path / "src.onnx"
    src.write_bytes(data)
    out2 = tmp_path / "unknown_ext.onnx"
    qcore.Model(src).save(out2, external_threshold=1)
    assert unknown_fields(onnx.load(str(out2), load_external_data=False)) == unknown_fields(parsed)


def newer_schema_model():
    """A model using fields onnx 1.23 knows and Debian's onnx.proto (IR 8) does not."""
    t_int4 = numpy_helper.from_array(np.array([-8, 7, 0, 3, -1], ml_dtypes.int4), "q4")  # data_type 22, raw_data
    t_u4 = numpy_helper.from_array(np.array([15, 0, 9], ml_dtypes.uint4), "u4")
    t_fp8 = numpy_helper.from_array(np.array([1.0, -2.0, 448.0], ml_dtypes.float8_e4m3fn), "fp8")
    t_meta = numpy_helper.from_array(np.arange(4, dtype=np.float32), "with_meta")
    t_meta.metadata_props.add(key="tensor-note", value="TensorProto.metadata_props = 16")
    proto = build_model([t_int4, t_u4, t_fp8, t_meta], ir_version=11, opset=23)
    g = proto.graph
    g.metadata_props.add(key="graph-note", value="GraphProto.metadata_props = 16")
    node = g.node[0]
    node.metadata_props.add(key="node-note", value="NodeProto.metadata_props = 9")
    node.overload = "ov"  # NodeProto.overload = 8
    g.input[0].metadata_props.add(key="vi-note", value="ValueInfoProto.metadata_props")
    fn = helper.make_function("custom.fn", "MyIdentity", ["a"], ["b"],
                              [helper.make_node("Identity", ["a"], ["b"])], [helper.make_opsetid("", 23)])
    proto.functions.append(fn)  # ModelProto.functions = 25 (known to both)
    proto.opset_import.append(helper.make_opsetid("custom.fn", 1))
    g.node.append(helper.make_node("MyIdentity", ["y"], ["z"], domain="custom.fn", name="call"))
    g.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3]))
    cfg = proto.configuration.add()  # ModelProto.configuration = 26
    cfg.name = "two-devices"
    cfg.num_devices = 2
    return proto


def test_newer_schema_fields_survive_save(tmp_path):
    proto = newer_schema_model()
    data = proto.SerializeToString()
    model = qcore.Model.from_bytes(data)
    assert_model_matches(model, proto)
    for threshold in (0, 1):
        out = tmp_path / ("newer_%d.onnx" % threshold)
        model.save(out, external_threshold=threshold)
        assert without_default_location(onnx.load(str(out))) == proto, threshold
        stored = onnx.load(str(out), load_external_data=False)
        meta = next(t for t in stored.graph.initializer if t.name == "with_meta")
        assert [(p.key, p.value) for p in meta.metadata_props] == [("tensor-note", "TensorProto.metadata_props = 16")]
        assert_model_matches(qcore.Model(out), proto)


# ---------------------------------------------------------------------------------------------------
# 4. from_bytes and Model(path); lifetime of initializer views

def test_from_bytes_equals_model_path(rich_model, tmp_path):
    path = write_model(rich_model, tmp_path / "m.onnx")
    assert summary(qcore.Model.from_bytes(path.read_bytes())) == summary(qcore.Model(path))
    assert summary(qcore.Model.from_bytes(bytearray(path.read_bytes()))) == summary(qcore.Model(str(path)))
    assert summary(qcore.Model.from_bytes(memoryview(path.read_bytes()))) == summary(qcore.Model(path))
    # with external data, found through external_dir
    ext = tmp_path / "ext.onnx"
    qcore.Model(path).save(ext, external_threshold=100)
    assert summary(qcore.Model.from_bytes(ext.read_bytes(), external_dir=str(tmp_path))) == summary(qcore.Model(ext))


def test_from_bytes_copies_its_input(rich_model):
    """qc_model_load_memory borrows the bytes only for the call: the model outlives a changed buffer."""
    buf = bytearray(rich_model.SerializeToString())
    model = qcore.Model.from_bytes(buf)
    expected = summary(model)
    buf[:] = b"\0" * len(buf)
    del buf
    gc.collect()
    assert summary(model) == expected


@pytest.mark.parametrize("storage", ["raw", "typed", "external"])
def test_view_keeps_model_alive(rng, tmp_path, storage):
    values = rng.standard_normal((40, 30)).astype(np.float32)
    if storage == "typed":
        t = helper.make_tensor("w", TensorProto.FLOAT, values.shape, values.ravel())
        assert t.float_data
    else:
        t = numpy_helper.from_array(values, "w")
    proto = build_model([t, helper.make_tensor("b", TensorProto.INT8, [3], [1, 2, 3])])
    path = write_model(proto, tmp_path / "m.onnx")
    if storage == "external":
        qcore.Model(path).save(tmp_path / "e.onnx", external_threshold=64)
        path = tmp_path / "e.onnx"
    model = qcore.Model(path)
    ref = weakref.ref(model)
    _, _, view = model.initializer("w")
    _, _, small = model.initializer("b")  # converted from int32_data: a buffer the model owns
    part = view[3:7, ::2]
    del model
    gc.collect()
    junk = [np.full(1000, 7.0) for _ in range(1000)]  # reuse freed memory, if any was freed
    assert ref() is not None  # the views keep the Model (and its C handle) alive
    assert view.tobytes() == values.tobytes()
    assert np.array_equal(part, values[3:7, ::2])
    assert small.tolist() == [1, 2, 3]
    del junk, view, part, small
    gc.collect()
    assert ref() is None  # and nothing else does


def test_views_are_read_only(rich_model):
    model = qcore.Model.from_bytes(rich_model.SerializeToString())
    _, _, view = model.initializer("w_f32")
    with pytest.raises(ValueError):
        view[0, 0] = 1.0
