"""Ethos-U figures in the pipeline's report (recipe field ethosu, qc_recipe.ethosu_config). Oracles: Vela's
own weight and scale encoder (tests/python/ethosu_oracle.py) on the integers onnx and numpy read from the
saved quantized model, and the whole-model packer (qcore.ethosu_pack_model, as `qcore pack-ethosu`) on the
same model. Layers the NPU cannot take (kept in float, a float weight, 4-bit weights stored as INT4, 12-bit
weights stored as INT16, a convolution the packer refuses) get a reason each, and the other layers are
still packed."""
import os

import numpy as np
import pytest

import qcore
from gpxq_layers import images

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

MLP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "models", "fashion_mlp.onnx")
W8 = qcore.QuantOptions(bits=8, granularity="channel", axis=0)


@pytest.fixture(scope="module")
def mlp():
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:256])})
    return p


def saved(model, tmp_path, name="q.onnx"):
    path = str(tmp_path / name)
    model.save(path)
    return path


def vela_gemm(path, weight, config):
    """(weight bytes, scale bytes, stream bytes) of Vela's encoding of `weight`'s Gemm in the saved model: its
    integers minus zero points as OHWI, bias 0 (the float bias is no int32 initializer) and Vela's
    quantise_scale of each weight scale (the Gemm's output is not read by a QuantizeLinear)."""
    from ethosu.vela.scaling import quantise_scale
    from ethosu_oracle import vela_layer
    proto = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    dq = next(n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == weight)
    q, s = init[dq.input[0]], init[dq.input[1]]
    z = init[dq.input[2]] if len(dq.input) > 2 else np.zeros_like(s, np.int64)
    ohwi = (q.astype(np.int16) - z.astype(np.int16)[:, None])[:, None, None, :]
    scales = [quantise_scale(float(v)) for v in s]
    stream, ranges = vela_layer(ohwi, np.zeros(len(scales)), scales, config, 16, False, False, 8, (1, 1), 0)
    return sum(r[5] for r in ranges), sum(r[3] for r in ranges), len(stream)


@pytest.mark.parametrize("config", ["ethos-u55-128", "ethos-u65-512"])
def test_report_equals_vela_and_the_model_packer(mlp, tmp_path, config):
    pytest.importorskip("ethosu.vela.weight_compressor")
    quantized, report = mlp.run(qcore.Recipe(method="rtn", weights=W8, ethosu=config))
    path = saved(quantized, tmp_path)
    packed = qcore.ethosu_pack_model(qcore.Model(path), config=config)
    assert [l.weight for l in packed] == [r.weight + "_quantized" for r in report]  # the integers' initializers
    for r, layer in zip(report, packed):
        assert r.ethosu_packed and r.ethosu_reason is None
        got = (r.ethosu_weight_bytes, r.ethosu_scale_bytes, r.ethosu_stream_bytes)
        assert got == (layer.weight_bytes, layer.scale_bytes, layer.stream_bytes), r.weight
        assert got == vela_gemm(path, r.weight, config), r.weight
    assert report[0].ethosu_weight_bytes < report[0].weight_bytes  # the codec compresses 8-bit weights


def test_layers_the_npu_cannot_take_say_why_and_the_others_are_packed(mlp, tmp_path):
    pytest.importorskip("ethosu.vela.weight_compressor")
    recipe = qcore.Recipe(method="rtn", weights=W8, ethosu="ethos-u55-128", keep_float=("fc1.weight",),
                          layer_bits={"fc2.weight": 4, "fc3.weight": 6})
    quantized, report = mlp.run(recipe)
    fc1, fc2, fc3 = report
    assert not fc1.ethosu_packed and "kept in float" in fc1.ethosu_reason
    assert not fc2.ethosu_packed and "4-bit weights are stored as INT4" in fc2.ethosu_reason
    assert fc3.ethosu_packed and fc3.ethosu_reason is None
    path = saved(quantized, tmp_path)
    assert (fc3.ethosu_weight_bytes, fc3.ethosu_scale_bytes, fc3.ethosu_stream_bytes) == vela_gemm(
        path, "fc3.weight", "ethos-u55-128")
    _, report = mlp.run(qcore.Recipe(method="rtn", weights=W8, ethosu="ethos-u55-128",
                                     layer_bits={"fc1.weight": 12, "fc2.weight": 0}))
    assert "12-bit weights are stored as INT16" in report[0].ethosu_reason
    assert "weight stays float" in report[1].ethosu_reason
    assert report[2].ethosu_packed
    _, report = mlp.run(qcore.Recipe(method="rtn", weights=W8))  # not asked: nothing reported
    assert all(not r.ethosu_packed and r.ethosu_reason is None and r.ethosu_stream_bytes == 0 for r in report)


def dilated_conv_model(tmp_path):
    """A Conv with dilation 3 (which the Ethos-U weight format cannot take) and a Gemm after it."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.standard_normal((6, 4 * 4 * 4)).astype(np.float32), "gw")]
    nodes = [helper.make_node("Conv", ["x", "cw"], ["c"], name="conv", dilations=[3, 3]),
             helper.make_node("Flatten", ["c"], ["f"]),
             helper.make_node("Gemm", ["f", "gw"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = str(tmp_path / "dilated.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_a_node_the_packer_refuses_is_a_reason_not_a_failure(tmp_path):
    p = qcore.Pipeline(qcore.Model(dilated_conv_model(tmp_path)))
    p.add_batch({"x": np.random.default_rng(1).standard_normal((8, 2, 10, 10)).astype(np.float32)})
    quantized, report = p.run(qcore.Recipe(method="rtn", weights=W8, ethosu="ethos-u55-64"))
    conv, fc = report
    assert not conv.ethosu_packed and conv.ethosu_reason.startswith("node 'conv' (Conv): ")
    assert "dilations of 1 or 2" in conv.ethosu_reason
    assert fc.ethosu_packed and fc.ethosu_stream_bytes > 0
    with pytest.raises(qcore.UnsupportedError, match="dilations of 1 or 2"):  # the whole-model packer stops
        qcore.ethosu_pack_model(quantized, config="ethos-u55-64")


def test_unknown_configuration_names_are_refused(mlp):
    with pytest.raises(ValueError, match="ethos-u99-1"):
        mlp.run(qcore.Recipe(ethosu="ethos-u99-1"))


def test_a_version_1_report_is_not_written_past_its_end(mlp):
    """qc_pipeline_report honours out->version: a version-1 caller's struct ends before the new fields."""
    from qcore._ffi import ffi, onnx_lib
    mlp.run(qcore.Recipe(method="rtn", weights=W8, ethosu="ethos-u55-128"))
    size = ffi.sizeof("qc_layer_report")
    end_v1 = ffi.offsetof("qc_layer_report", "norm_folded")
    buf = ffi.new("unsigned char[]", b"\xab" * size)
    report = ffi.cast("qc_layer_report *", buf)
    report.version = 1
    assert onnx_lib.qc_pipeline_report(mlp._p, 0, report) == 0
    assert bytes(buf[end_v1:size]) == b"\xab" * (size - end_v1)
    assert report.quantized == 1 and report.version == 1
    report.version = 2
    assert onnx_lib.qc_pipeline_report(mlp._p, 0, report) == 0
    assert report.ethosu_packed == 1 and report.ethosu_stream_bytes > 0


def test_quantize_in_one_call_and_c_recipe_values_out_of_range(mlp):
    """qcore.quantize(..., ethosu=NAME) reports the same figures as the pipeline; a C recipe whose
    ethosu_config or rotation is no known value is refused, naming the field."""
    from qcore._ffi import ffi, lib, onnx_lib
    _, want = mlp.run(qcore.Recipe(method="rtn", weights=W8, ethosu="ethos-u55-256"))
    _, got = qcore.quantize(MLP, images()[:256], method="rtn", ethosu="ethos-u55-256", batch_size=256)
    assert [r.ethosu_stream_bytes for r in got] == [r.ethosu_stream_bytes for r in want]
    assert all(r.ethosu_stream_bytes > 0 for r in got)
    for field, value in (("ethosu_config", 99), ("rotation", 3)):
        recipe, alive = qcore.Recipe().to_c()
        setattr(recipe, field, value)
        out = ffi.new("qc_model **")
        assert onnx_lib.qc_pipeline_run(mlp._p, recipe, out) == lib.QC_ERR_INVALID_ARG
        assert "recipe field '%s': %d" % (field, value) in ffi.string(lib.qc_last_error()).decode()
        assert out[0] == ffi.NULL
