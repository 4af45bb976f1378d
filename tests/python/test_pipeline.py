"""The whole-model pipeline (qc_pipeline_*): oracles are numpy re-computations of what each step must
give (activation grids, the statistics and qcore.optq/rtn on them), onnxruntime running the exported QDQ
model, and the accumulator calculus on the exported integers."""
import numpy as np
import pytest

import qcore
from gpxq_layers import images, mlp_weights, relu_layer

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

MLP = __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "data", "models", "fashion_mlp.onnx")
W4 = qcore.QuantOptions(bits=4, granularity="channel", axis=0)


@pytest.fixture(scope="module")
def batches():
    x = images()[:512]
    return [np.ascontiguousarray(x[k:k + 128]) for k in range(0, 512, 128)]


def pipeline(path, batches, name="input"):
    p = qcore.Pipeline(qcore.Model(path))
    for b in batches:
        p.add_batch({name: b})
    return p


def fake_quant_unsigned(x, bits):
    scale = np.float32(x.max() / (2**bits - 1))
    return (np.clip(np.rint(x / scale), 0, 2**bits - 1) * scale).astype(np.float32), scale


def exported_levels(model, weight):
    """The integers and scale the exported model stores for `weight` (via its DequantizeLinear node)."""
    proto = onnx.load_from_string(model_bytes(model))
    node = next(n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == weight)
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return init[node.input[0]].astype(np.int64), init[node.input[1]], init[node.input[2]].astype(np.int64)


def model_bytes(model, tmp=[]):
    import tempfile, os
    d = tempfile.mkdtemp()
    path = os.path.join(d, "m.onnx")
    model.save(path)
    return open(path, "rb").read()


def ort_run(model, x):
    """onnxruntime on the QDQ graph as written (its optimizations would fuse QDQ pairs into integer kernels
    with their own rounding)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model_bytes(model), options, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def test_finds_the_linear_layers_in_graph_order():
    p = qcore.Pipeline(qcore.Model(MLP))
    assert [(l["weight"], l["op_type"], l["in_features"], l["out_features"]) for l in p.layers] == [
        ("fc1.weight", "Gemm", 784, 512), ("fc2.weight", "Gemm", 512, 256), ("fc3.weight", "Gemm", 256, 10)]


def streamed_hessian(parts):
    """H as the pipeline accumulates it, a batch at a time: float32 batches are multiplied in float32 (in
    chunks of 256 rows) and summed in double, qc_gpxq.h's rule, whose oracle is in test_gpxq_optq.py."""
    stats = qcore.GpxqStats("optq", parts[0].shape[1])
    for part in parts:
        stats.add(np.ascontiguousarray(part, dtype=np.float32))
    return stats.hessian()


def test_optq_layers_equal_optq_on_numpy_statistics(batches):
    """Non-sequential OPTQ: each layer's H comes from the model with float weights and every layer input
    quantized to 8 bits, so numpy can recompute every input, H (by the statistics' rule, batch by batch)
    and (with qcore.optq, whose own oracle is in test_gpxq_optq.py) the integers the exported model must
    store."""
    p = pipeline(MLP, batches)
    q, report = p.run(qcore.Recipe(method="optq", weights=W4, activation_bits=8, sequential=False))
    w = mlp_weights()
    x = np.concatenate(batches)
    inputs = [x, relu_layer(x, w["fc1.weight"], w["fc1.bias"])]
    inputs.append(relu_layer(fake_quant_unsigned(inputs[1], 8)[0], w["fc2.weight"], w["fc2.bias"]))
    # the grids come from the float model's ranges
    float_max = [inputs[0].max(), inputs[1].max(), relu_layer(inputs[1], w["fc2.weight"], w["fc2.bias"]).max()]
    for k, name in enumerate(["fc1", "fc2", "fc3"]):
        scale = np.float32(float_max[k] / 255)
        xq = (np.clip(np.rint(inputs[k] / scale), 0, 255) * scale).astype(np.float32)
        h = streamed_hessian(np.split(xq, np.cumsum([len(b) for b in batches])[:-1]))
        expected = qcore.optq(w[name + ".weight"], h, W4)
        levels, stored_scale, zero_point = exported_levels(q, name + ".weight")
        np.testing.assert_array_equal(levels - zero_point[:, None], expected.q)
        np.testing.assert_array_equal(stored_scale, expected.scale)
        assert report[k].input_scale == pytest.approx(float(scale), rel=1e-6)
        assert report[k].input_signed is False and report[k].input_bits == 8


def test_exported_model_runs_the_same_in_onnxruntime_and_qcore(batches):
    p = pipeline(MLP, batches)
    q, _ = p.run(qcore.Recipe(method="gpfq", weights=W4, activation_bits=8))
    x = images()[1024:1280]
    ours = qcore.Session(q).run({"input": x})["logits"]
    np.testing.assert_allclose(ours, ort_run(q, x), rtol=1e-4, atol=1e-4)


def test_sequential_statistics_see_the_quantized_earlier_layers(batches):
    """Sequentially, fc2's H comes from fc1 as quantized: recompute it from the exported fc1."""
    p = pipeline(MLP, batches)
    q, report = p.run(qcore.Recipe(method="optq", weights=W4, activation_bits=8))
    w = mlp_weights()
    x = np.concatenate(batches)
    xq, _ = fake_quant_unsigned(x, 8)
    levels, scale, zp = exported_levels(q, "fc1.weight")
    w1 = ((levels - zp[:, None]) * scale[:, None]).astype(np.float32)
    # the activation grid comes from the float model's range; the values from the quantized fc1
    _, s2 = fake_quant_unsigned(relu_layer(x, w["fc1.weight"], w["fc1.bias"]), 8)
    a2 = relu_layer(xq, w1, w["fc1.bias"])
    a2q = (np.clip(np.rint(a2 / s2), 0, 255) * s2).astype(np.float32)
    h = 2.0 / len(a2q) * a2q.astype(np.float64).T @ a2q.astype(np.float64)
    expected = qcore.optq(w["fc2.weight"], h, W4)
    levels2, _, zp2 = exported_levels(q, "fc2.weight")
    # numpy and the executor sum fc1's products in different orders: an activation within an ulp of a
    # half level can round the other way, and OPTQ's error feedback spreads each such change along a row
    mismatch = np.mean(levels2 - zp2[:, None] != expected.q)
    assert mismatch < 1e-2
    # ... while H from the float fc1 (what a non-sequential run uses) gives clearly different integers
    a2_float = relu_layer(xq, w["fc1.weight"], w["fc1.bias"])
    a2f = (np.clip(np.rint(a2_float / s2), 0, 255) * s2).astype(np.float64)
    from_float = qcore.optq(w["fc2.weight"], 2.0 / len(a2f) * a2f.T @ a2f, W4)
    assert np.mean(levels2 - zp2[:, None] != from_float.q) > 5 * mismatch


@pytest.mark.parametrize("method", ["rtn", "optq", "gpfq"])
def test_axe_results_never_overflow_and_plain_ones_do(batches, method):
    p = pipeline(MLP, batches)
    axe = qcore.GpxqOptions(accumulator_bits=16, tile_size=0)
    _, guarded = p.run(qcore.Recipe(method=method, weights=W4, activation_bits=8, gpxq=axe))
    _, plain = p.run(qcore.Recipe(method=method, weights=W4, activation_bits=8, report_bits=16))
    for g, layer in zip(guarded, p.layers):
        assert g.accumulator_bits <= 16 and g.overflow_events == 0 and g.report_bits == 16 and g.dot_products > 0
        assert g.axe.bits_needed == g.accumulator_bits and g.axe.slots == layer["out_features"]  # one slot a row
    assert sum(r.overflow_events for r in plain) > 0
    assert max(r.accumulator_bits for r in plain) > 16


def test_keep_float_leaves_a_layer_and_its_input_alone(batches):
    p = pipeline(MLP, batches)
    q, report = p.run(qcore.Recipe(weights=W4, keep_float=("fc2.weight",)))
    proto = onnx.load_from_string(model_bytes(q))
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(init["fc2.weight"], mlp_weights()["fc2.weight"])
    fc2 = next(n for n in proto.graph.node if n.op_type == "Gemm" and n.input[1] == "fc2.weight")
    assert fc2.input[0] == "/act/Relu_output_0"  # not a DequantizeLinear output
    assert [r.quantized for r in report] == [True, False, True]
    assert report[1].weight_bytes == 512 * 256 * 4 and report[0].weight_bytes == 512 * 784 // 2 + 512 * 4


def numpy_rtn_channel(w, bits):
    """Symmetric per-output-channel min-max round to nearest: the integers and scales."""
    top = 2 ** (bits - 1) - 1
    scale = (np.abs(w).max(axis=1) / top).astype(np.float32)
    return np.clip(np.rint(w / scale[:, None]), -top - 1, top).astype(np.int64), scale


def test_layer_formats_give_each_weight_its_own_width(batches):
    """A mixed-precision recipe: fc1 at 3 bits, fc2's weight float (its input still quantized), fc3 at 6
    bits; the exported integers equal numpy's round to nearest at each layer's width."""
    p = pipeline(MLP, batches)
    grid = qcore.QuantOptions(bits=8, granularity="channel", axis=0)
    q, report = p.run(qcore.Recipe(method="rtn", weights=grid, layer_bits={"fc1.weight": 3, "fc2.weight": 0,
                                                                          "fc3.weight": 6}))
    w = mlp_weights()
    for name, bits in (("fc1.weight", 3), ("fc3.weight", 6)):
        levels, scale, zp = exported_levels(q, name)
        want, want_scale = numpy_rtn_channel(w[name], bits)
        np.testing.assert_array_equal(levels - zp[:, None], want)
        np.testing.assert_allclose(scale, want_scale, rtol=1e-6)
    proto = onnx.load_from_string(model_bytes(q))
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    np.testing.assert_array_equal(init["fc2.weight"], w["fc2.weight"])
    fc2 = next(n for n in proto.graph.node if n.op_type == "Gemm" and n.input[1] == "fc2.weight")
    assert next(n for n in proto.graph.node if fc2.input[0] in n.output).op_type == "DequantizeLinear"
    assert [(r.quantized, r.weight_bits, r.input_bits) for r in report] == [(True, 3, 8), (False, 0, 8), (True, 6, 8)]
    assert report[1].weight_bytes == 512 * 256 * 4 and report[2].weight_bytes == (256 * 10 * 6 + 7) // 8 + 10 * 4


def test_bad_layer_formats_are_named(batches):
    p = pipeline(MLP, batches[:1])
    for layer_bits, keep, match in (({"nope": 4}, (), "'layer_formats'.*'nope'"),
                                    ({"fc1.weight": 1}, (), r"'fc1.weight'\) has weight_bits 1,"),
                                    ({"fc1.weight": 17}, (), "weight_bits 17"),
                                    ({"fc2.weight": 4}, ("fc2.weight",), "both in keep_float and in layer_formats")):
        with pytest.raises(qcore.InvalidArgumentError, match=match):
            p.run(qcore.Recipe(method="rtn", layer_bits=layer_bits, keep_float=keep))


def matmul_model(w, path):
    """y = x @ w with w an [in, out] MatMul weight, as transformer exports store it."""
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", w.shape[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", w.shape[1]])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_matmul_layout_and_group_grids_export_for_onnxruntime(tmp_path):
    """An [in, out] weight with 3-bit groups of 16 along the inputs and signed inputs: the stored
    blocks (INT4 container, axis 0) dequantize to qcore.rtn's weights, and onnxruntime agrees."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 24)).astype(np.float32)
    matmul_model(w, str(tmp_path / "m.onnx"))
    x = rng.standard_normal((200, 64)).astype(np.float32)
    p = pipeline(str(tmp_path / "m.onnx"), [x])
    grid = qcore.QuantOptions(bits=3, granularity="group", axis=1, group_size=16)
    q, report = p.run(qcore.Recipe(method="rtn", weights=grid, activation_bits=8))
    expected = qcore.rtn(np.ascontiguousarray(w.T), grid)
    levels, scale, zp = exported_levels(q, "w")
    deq = (levels - np.repeat(zp, 16, axis=0)) * np.repeat(scale, 16, axis=0)
    np.testing.assert_allclose(deq, expected.dequantized.T, rtol=1e-6, atol=1e-7)
    assert report[0].input_signed is True
    s = np.float32(np.abs(x).max() / 127)
    xq = np.clip(np.rint(x / s), -128, 127) * s
    np.testing.assert_allclose(ort_run(q, x), xq @ expected.dequantized.T, rtol=1e-4, atol=1e-4)


def test_bad_recipes_and_inputs_are_named(batches, tmp_path):
    p = qcore.Pipeline(qcore.Model(MLP))
    with pytest.raises(qcore.InvalidArgumentError, match="no calibration batch"):
        p.run()
    p.add_batch({"input": batches[0]})
    with pytest.raises(qcore.InvalidArgumentError, match="needs activation_bits"):
        p.run(qcore.Recipe(activation_bits=0, gpxq=qcore.GpxqOptions(accumulator_bits=16)))
    with pytest.raises(qcore.InvalidArgumentError, match="'keep_float'.*'nope'"):
        p.run(qcore.Recipe(keep_float=("nope",)))
    with pytest.raises(qcore.InvalidArgumentError, match="activation_bits"):
        p.run(qcore.Recipe(activation_bits=1))
    with pytest.raises(qcore.InvalidArgumentError, match="report_rows"):
        p.run(qcore.Recipe(report_rows=0))
    bad = qcore.Pipeline(qcore.Model(MLP))
    bad.add_batch({"inputs": batches[0]})
    with pytest.raises(qcore.QcoreError, match="inputs"):
        bad.run()
    nan = batches[0].copy()
    nan[3, 5] = np.nan
    bad = qcore.Pipeline(qcore.Model(MLP))
    bad.add_batch({"input": nan})
    with pytest.raises(qcore.NumericError, match="input"):
        bad.run()
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph), str(tmp_path / "relu.onnx"))
    with pytest.raises(qcore.UnsupportedError, match="no linear layer"):
        qcore.Pipeline(qcore.Model(str(tmp_path / "relu.onnx")))


CNN = MLP.replace("fashion_mlp", "fashion_cnn")


def im2col_rows(x, weight_shape, pads, strides):
    """numpy im2col: one row per output pixel, features in the weight's [channel, ky, kx] order."""
    kh, kw = weight_shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::strides[0], ::strides[1]]
    n, c, oh, ow = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def test_convolution_layers_use_im2col_rows(batches):
    """A Conv's W is its [out, channels * kernel] weight against im2col rows: the first convolution's
    integers equal qcore.optq on H from numpy's im2col of the (exactly representable) 8-bit pixels, batch
    by batch."""
    proto = onnx.load(CNN)
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    attrs = {a.name: list(a.ints) for a in conv.attribute}
    w = numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == conv.input[1]))
    images_ = [b.reshape(-1, 1, 28, 28) for b in batches]
    p = pipeline(CNN, images_)
    assert [l["op_type"] for l in p.layers][:2] == ["Conv", "Conv"]
    q, report = p.run(qcore.Recipe(method="optq", weights=W4, activation_bits=8))
    parts = [im2col_rows(x, w.shape, attrs.get("pads", [0] * 4), attrs.get("strides", [1, 1])) for x in images_]
    rows = np.concatenate(parts)
    h = streamed_hessian(parts)
    expected = qcore.optq(np.ascontiguousarray(w.reshape(w.shape[0], -1)), h, W4)
    levels, _, zp = exported_levels(q, conv.input[1])
    np.testing.assert_array_equal((levels - zp.reshape(-1, 1, 1, 1)).reshape(w.shape[0], -1), expected.q)
    assert report[0].dot_products == min(1024, len(rows)) * w.shape[0]
    # a tile longer than conv1's 9-input rows means the whole row there, and still 32 inputs elsewhere
    _, tiled = p.run(qcore.Recipe(weights=W4, activation_bits=8, gpxq=qcore.GpxqOptions(accumulator_bits=16, tile_size=32)))
    assert all(r.accumulator_bits <= 16 and r.overflow_events == 0 for r in tiled)
    with pytest.raises(qcore.UnsupportedError, match="per-group grids are not defined for convolution"):
        p.run(qcore.Recipe(weights=qcore.QuantOptions(bits=4, granularity="group", axis=1, group_size=16)))


def test_one_pass_statistics_are_kept_for_a_sweep_and_renewed_with_new_batches(batches):
    """A second one-pass run reuses the first one's statistics: its model equals a fresh pipeline's for the
    same recipe, across a change of P that keeps the statistics, and after add_batch changes them."""
    def integers(model, names=("fc1.weight", "fc2.weight", "fc3.weight")):
        return [exported_levels(model, n)[0] for n in names]

    sweep = pipeline(MLP, batches[:2])
    recipes = [qcore.Recipe(method=m, weights=W4, sequential=False, gpxq=qcore.GpxqOptions(accumulator_bits=p))
               for m, p in (("optq", 0), ("optq", 18), ("rtn", 18), ("gpfq", 18), ("optq", 20))]
    for recipe in recipes:
        kept, _ = sweep.run(recipe)
        fresh, _ = pipeline(MLP, batches[:2]).run(recipe)
        for a, b in zip(integers(kept), integers(fresh)):
            np.testing.assert_array_equal(a, b)
    sweep.add_batch({"input": batches[2]})
    renewed, _ = sweep.run(recipes[-1])
    fresh, _ = pipeline(MLP, batches[:3]).run(recipes[-1])
    stale, _ = pipeline(MLP, batches[:2]).run(recipes[-1])
    assert any((a != b).any() for a, b in zip(integers(renewed), integers(stale)))
    for a, b in zip(integers(renewed), integers(fresh)):
        np.testing.assert_array_equal(a, b)


def test_activation_quantizers_feed_only_the_layers_and_clip_odd_widths(tmp_path):
    """y = x @ W + x: only the MatMul reads the quantized x (the residual Add keeps the float value), and a
    6-bit grid, stored in INT8, is clipped to [-32, 31] even where held-out inputs exceed the calibration
    range: onnxruntime's output equals numpy's clamp-round-scale followed by the float residual."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["input", "w"], ["z"]), helper.make_node("Add", ["z", "input"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "r.onnx"))
    x = rng.standard_normal((300, 16)).astype(np.float32)
    p = pipeline(str(tmp_path / "r.onnx"), [x])
    q, report = p.run(qcore.Recipe(method="rtn", weights=qcore.QuantOptions(bits=8, granularity="channel", axis=0),
                                   activation_bits=6))
    proto = onnx.load_from_string(model_bytes(q))
    add = next(n for n in proto.graph.node if n.op_type == "Add")
    assert "input" in add.input and any(n.op_type == "Clip" for n in proto.graph.node)
    s = np.float32(np.abs(x).max() / 31)
    assert report[0].input_scale == pytest.approx(float(s), rel=1e-6) and report[0].input_signed
    held_out = 3 * rng.standard_normal((50, 16)).astype(np.float32)
    xq = np.clip(np.rint(np.clip(held_out, -32 * s, 31 * s) / s), -32, 31) * s
    levels, scale, zp = exported_levels(q, "w")
    w_deq = ((levels - zp) * scale).astype(np.float32)
    np.testing.assert_allclose(ort_run(q, held_out), xq @ w_deq + held_out, rtol=1e-4, atol=1e-4)
