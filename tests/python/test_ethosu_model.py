"""The whole-model Ethos-U packer (qc_model_pack_ethosu) on a QDQ model built here with onnx.helper: a
3x3 convolution with per-channel int8 weights and an int32 bias through DequantizeLinear, a depthwise
convolution with dilation 2, a Gemm with uint8 weights and a zero point of 128 (transB), and a MatMul with
int8 weights ([in, out]). Each packed layer must equal Vela's assembly (tests/python/ethosu_oracle.py) of
the weights numpy extracts from the same initializers (zero point subtracted, OHWI), with Vela's own
quantise_scale of x_scale * w_scale / y_scale in double (Vela's int8 rule) and Vela's traversal rule.
Float layers (not quantized) are not packed."""
import math
import os

import numpy as np
import pytest

import qcore

onnx = pytest.importorskip("onnx")
pytest.importorskip("ethosu.vela.weight_compressor")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from ethosu.vela.scaling import quantise_scale  # noqa: E402
from ethosu_oracle import vela_layer  # noqa: E402

X_SCALE, Y_SCALE = 0.05, 0.1


def qdq_model(rng):
    inits, nodes = [], []

    def init(name, array):
        inits.append(numpy_helper.from_array(array, name))
        return name

    def quant_act(value, scale, out):
        init(out + "_s", np.array(scale, np.float32))
        init(out + "_z", np.array(0, np.int8))
        nodes.append(helper.make_node("QuantizeLinear", [value, out + "_s", out + "_z"], [out + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [out + "_q", out + "_s", out + "_z"], [out]))
        return out

    def dq_weight(name, q, scale, zero, axis):
        ins = [init(name + "_q", q), init(name + "_s", scale)]
        if zero is not None:
            ins.append(init(name + "_z", zero))
        nodes.append(helper.make_node("DequantizeLinear", ins, [name], axis=axis))
        return name

    x = quant_act("x", X_SCALE, "x_dq")
    w1 = rng.integers(-127, 128, (16, 8, 3, 3), dtype=np.int8)
    s1 = rng.uniform(0.001, 0.02, 16).astype(np.float32)
    dq_weight("w1", w1, s1, np.zeros(16, np.int8), 0)
    b1 = rng.integers(-5000, 5000, 16, dtype=np.int32)
    init("b1_q", b1)
    init("b1_s", (X_SCALE * s1).astype(np.float32))
    nodes.append(helper.make_node("DequantizeLinear", ["b1_q", "b1_s"], ["b1"], axis=0))
    nodes.append(helper.make_node("Conv", [x, "w1", "b1"], ["y1"], name="conv1", pads=[1, 1, 1, 1]))
    y1 = quant_act("y1", Y_SCALE, "y1_dq")
    w2 = rng.integers(-127, 128, (16, 1, 3, 3), dtype=np.int8)
    s2 = rng.uniform(0.001, 0.02, 16).astype(np.float32)
    dq_weight("w2", w2, s2, None, 0)
    nodes.append(helper.make_node("Conv", [y1, "w2"], ["y2"], name="dw", group=16, dilations=[2, 2],
                                  pads=[2, 2, 2, 2]))
    y2 = quant_act("y2", Y_SCALE, "y2_dq")
    nodes.append(helper.make_node("Flatten", [y2], ["f"]))
    w3 = rng.integers(0, 256, (10, 1600), dtype=np.uint8)
    dq_weight("w3", w3, np.array(0.01, np.float32), np.array(128, np.uint8), 1)
    nodes.append(helper.make_node("Gemm", ["f", "w3"], ["g"], name="fc", transB=1))
    w4 = rng.integers(-127, 128, (10, 6), dtype=np.int8)
    dq_weight("w4", w4, np.array(0.02, np.float32), None, 1)
    nodes.append(helper.make_node("MatMul", ["g", "w4"], ["m"], name="head"))
    init("w5", rng.standard_normal((6, 4)).astype(np.float32))  # a float layer: not packed
    nodes.append(helper.make_node("MatMul", ["m", "w5"], ["out"], name="float_head"))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    expected = {
        "conv1": (np.transpose(w1.astype(np.int16), (0, 2, 3, 1)), b1, [X_SCALE * s for s in s1], False, (1, 1)),
        "dw": (np.transpose(w2.astype(np.int16), (0, 2, 3, 1)), np.zeros(16), [Y_SCALE * s / Y_SCALE for s in s2],
               True, (2, 2)),
        "fc": ((w3.astype(np.int16) - 128)[:, None, None, :], np.zeros(10), [Y_SCALE * 0.01 / 1] * 10, False, (1, 1)),
        "head": (w4.astype(np.int16).T[:, None, None, :].copy(), np.zeros(6), [0.02] * 6, False, (1, 1)),
    }
    return model, expected, {"conv1": (X_SCALE, Y_SCALE, s1), "dw": (Y_SCALE, Y_SCALE, s2)}


def vela_scale(x, w, y):
    """Vela's int8 scale rule, in double."""
    return quantise_scale((np.double(x) * np.double(w)) / np.double(y))


def vela_part_kernel(ohwi, ifm_bits=8):
    c, k = ohwi.shape[3], ohwi.shape[1] * ohwi.shape[2]
    depth = c / (math.ceil(c / 32) * 32)
    part = (c / (math.ceil(c / 8) * 8)) * (k / (math.ceil(k / 4) * 4))
    return part >= depth or c <= 8


@pytest.mark.parametrize("config", ["ethos-u55-128", "ethos-u65-512", "ethos-u55-32"])
def test_qdq_model_layers_match_vela(config):
    model, expected, conv_scales = qdq_model(np.random.default_rng(12))
    layers = qcore.ethosu_pack_model(qcore.Model.from_bytes(model.SerializeToString()), config=config)
    assert [layer.node for layer in layers] == ["conv1", "dw", "fc", "head"]
    for layer in layers:
        ohwi, bias, _, depthwise, dilation = expected[layer.node]
        if layer.node in conv_scales:
            x, y, ws = conv_scales[layer.node]
            scales = [vela_scale(x, w, y) for w in ws]
        elif layer.node == "fc":   # input not quantized by a DequantizeLinear of its own, output not quantized
            scales = [quantise_scale(float(np.float32(0.01)))] * 10
        else:
            scales = [quantise_scale(float(np.float32(0.02)))] * 6
        stream, ranges = vela_layer(ohwi, bias, scales, config, 16, depthwise,
                                    layer.op_type == "Conv" and not depthwise and vela_part_kernel(ohwi), 8,
                                    dilation, 0)
        assert layer.layer.stream == stream, layer.node
        assert layer.shape == ohwi.shape and layer.depthwise == depthwise
        assert layer.weights == ohwi.size
        assert layer.weight_bytes == sum(r[5] for r in ranges)
        assert layer.scale_bytes == 10 * ohwi.shape[0]
        assert layer.stream_bytes == len(stream)


def one_conv(scale, group=1, axis=0, dilations=(1, 1)):
    w = numpy_helper.from_array(np.random.default_rng(1).integers(-5, 5, (8, 2, 3, 3), dtype=np.int8), "w_q")
    s = numpy_helper.from_array(np.asarray(scale, np.float32), "w_s")
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_s"], ["w"], axis=axis),
             helper.make_node("Conv", ["x", "w"], ["y"], name="c", group=group, dilations=list(dilations))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, s])
    return qcore.Model.from_bytes(helper.make_model(graph).SerializeToString())


@pytest.mark.parametrize("kwargs,message", [
    (dict(scale=0.1, group=2), "grouped"),
    (dict(scale=0.1, dilations=(3, 1)), "dilations of 1 or 2"),
    (dict(scale=[0.1, 0.2], axis=1), "neither per tensor nor per output channel"),
])
def test_unpackable_nodes_are_named(kwargs, message):
    with pytest.raises(qcore.UnsupportedError, match="node 'c' \\(Conv\\): .*%s" % message):
        qcore.ethosu_pack_model(one_conv(**kwargs))


def test_float_model_has_no_layers():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "models", "fashion_mlp.onnx")
    assert qcore.ethosu_pack_model(qcore.Model(path)) == []


@pytest.mark.parametrize("config", ["ethos-u85-256", "ethos-u85-512"])
@pytest.mark.parametrize("weight_format", ["default", "smaller"])
def test_qdq_model_layers_u85(config, weight_format):
    """U85: each layer's stream is [U85 entries of Vela's scales, zero entries to 16][weights]; every weight
    range decodes (mlw or FWD) to qcore.ethosu85_reorder of the numpy weights with Regor's rules (checked
    against Regor itself in test_ethosu_u85.py)."""
    model, expected, conv_scales = qdq_model(np.random.default_rng(12))
    layers = qcore.ethosu_pack_model(qcore.Model.from_bytes(model.SerializeToString()), config=config,
                                     weight_format=weight_format)
    assert [layer.node for layer in layers] == ["conv1", "dw", "fc", "head"]
    info = qcore.ethosu_config(config)
    for layer in layers:
        ohwi, bias, _, depthwise, dilation = expected[layer.node]
        ohwi = np.ascontiguousarray(ohwi)
        if layer.node in conv_scales:
            x, y, ws = conv_scales[layer.node]
            scales = [vela_scale(x, w, y) for w in ws]
        else:
            scales = [quantise_scale(float(np.float32(0.01 if layer.node == "fc" else 0.02)))] * ohwi.shape[0]
        entries = b"".join(qcore.ethosu85_pack_bias(int(b), s, sh) for b, (s, sh) in zip(bias, scales))
        entries += bytes(-len(entries) % 160)
        stream = layer.layer.stream
        assert stream[:len(entries)] == entries and layer.layer.ranges[0].scale_bytes == len(entries)
        pk = layer.op_type == "Conv" and not depthwise and qcore.ethosu85_part_kernel_first(*ohwi.shape[3:0:-1])
        traversal = "depthwise" if depthwise else "part_kernel" if pk else "depth_first"
        ublock = 16 if depthwise else info.ofm_ublock_depth
        params = dict(macs=info.macs_per_cycle, cores=info.cores, traversal=traversal, ofm_ublock_depth=ublock,
                      ofm_block_depth=16, ifm_block_depth=16 if pk else 64, dilation=dilation)
        ranges = layer.layer.ranges
        for r in ranges:
            data = stream[r.offset + r.weight_offset:r.offset + r.weight_offset + r.weight_bytes]
            if len(ranges) == info.cores:   # one mlw stream per core
                want = qcore.ethosu85_reorder(ohwi, core=r.core, **params)
                assert (qcore.ethosu_decode(data) == want).all(), layer.node
            else:                           # one FWD stream
                want = qcore.ethosu85_reorder(ohwi, core=qcore.ethosu.ALL_CORES, **params)
                assert (qcore.ethosu85_fwd_decode(data, want.size) == want).all(), layer.node
        assert layer.weight_bytes == sum(r.weight_bytes for r in ranges)
