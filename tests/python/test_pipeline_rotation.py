"""Rotations in the recipe (qcore.Recipe(rotation=...), qc_recipe.rotation): norms folded and every
MatMul/Gemm layer's input rotated before calibration. Oracles: the model's own float function (the rotated
float model, got by keeping every layer in float, must give the unrotated outputs within 1e-4 in qcore's
executor and in onnxruntime on the saved file), numpy for the fused weights of a hand-built model
(LayerNormalization -> MatMul -> MatMul: the norm folded, the first rotation online, the second folded into
the first layer), and the quantization error a rotation must lower on inputs with outlier channels."""
import os

import numpy as np
import pytest

import qcore
from gpxq_layers import images

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

MLP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "models", "fashion_mlp.onnx")


def relative_error(have, want):
    return float(np.max(np.abs(have - want)) / max(np.max(np.abs(want)), 1e-12))


def ort_run(path, feed):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, feed)[0]


def float_rotated(p, kind, seed=0):
    """The rotated float model: every layer kept in float, so the result is the rotated copy itself."""
    keep = tuple(l["weight"] for l in p.layers)
    return p.run(qcore.Recipe(rotation=kind, rotation_seed=seed, keep_float=keep))


@pytest.fixture(scope="module")
def mlp():
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:256])})
    return p


@pytest.mark.parametrize("kind", ["haar", "hadamard"])
def test_rotated_float_model_computes_the_same_function(mlp, kind, tmp_path):
    model, report = float_rotated(mlp, kind)
    assert [(r.rotated, r.rotation_online) for r in report] == [(True, True)] * 3  # ReLUs between the layers
    x = {"input": np.ascontiguousarray(images()[256:320])}
    base = qcore.Session(qcore.Model(MLP)).run(x)
    got = qcore.Session(model).run(x)
    for name in base:
        assert relative_error(got[name], base[name]) < 1e-4
    path = str(tmp_path / "rotated.onnx")
    model.save(path)
    assert relative_error(ort_run(path, x), ort_run(MLP, x)) < 1e-4
    assert sum(n.op_type == "MatMul" for n in model.nodes) == 3  # one online rotation per layer input


def test_the_seed_picks_the_rotation_and_the_same_seed_repeats_it(mlp):
    def rotation_of(seed):
        model, _ = float_rotated(mlp, "haar", seed)
        node = next(n for n in model.nodes if n.op_type == "MatMul")
        return model.initializer(node.inputs[1])[2]
    a, b, c = rotation_of(1), rotation_of(2), rotation_of(1)
    np.testing.assert_array_equal(a, c)
    assert np.abs(a - b).max() > 0.01
    np.testing.assert_allclose(a.T @ a, np.eye(len(a)), atol=1e-5)


def norm_chain(rng, width=16):
    """x -> LayerNormalization(gamma, beta) -> MatMul W1 + b1 -> MatMul W2 + b2 -> y."""
    w = {"gamma": rng.uniform(0.5, 2, width), "beta": rng.standard_normal(width) * 0.1,
         "w1": rng.standard_normal((width, width)) * 0.3, "b1": rng.standard_normal(width) * 0.1,
         "w2": rng.standard_normal((width, 8)) * 0.3, "b2": rng.standard_normal(8) * 0.1}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["n"], name="ln", axis=-1),
             helper.make_node("MatMul", ["n", "w1"], ["h0"], name="l1"), helper.make_node("Add", ["h0", "b1"], ["h"]),
             helper.make_node("MatMul", ["h", "w2"], ["y0"], name="l2"), helper.make_node("Add", ["y0", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in w.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), w


def test_norm_folded_online_and_folded_rotations_on_a_hand_built_model(tmp_path):
    rng = np.random.default_rng(3)
    proto, w = norm_chain(rng)
    path = str(tmp_path / "chain.onnx")
    onnx.save(proto, path)
    p = qcore.Pipeline(qcore.Model(path))
    x = rng.standard_normal((32, 16)).astype(np.float32) * 3
    p.add_batch({"x": x})
    model, report = float_rotated(p, "haar")
    l1, l2 = report
    assert (l1.norm_folded, l1.rotated, l1.rotation_online) == (True, True, True)
    assert (l2.norm_folded, l2.rotated, l2.rotation_online) == (False, True, False)
    r = next(model.initializer(n.inputs[1])[2] for n in model.nodes if n.op_type == "MatMul" and n.inputs[1] not in w)
    # numpy: W1' = R1^T diag(gamma) W1 R2, b1' = (b1 + beta W1) R2, W2' = R2^T W2, gamma = 1, beta = 0, with
    # R1 the online rotation's matrix and R2 recovered from W1' (it must be orthogonal)
    w1 = model.initializer("w1")[2].astype(np.float64)
    w2 = model.initializer("w2")[2].astype(np.float64)
    fused1 = r.T.astype(np.float64) @ np.diag(w["gamma"]) @ w["w1"].astype(np.float64)
    r2 = np.linalg.solve(fused1, w1)
    np.testing.assert_allclose(r2.T @ r2, np.eye(16), atol=1e-4)
    np.testing.assert_allclose(w2, r2.T @ w["w2"], atol=1e-5)
    np.testing.assert_allclose(model.initializer("b1")[2], (w["b1"] + w["beta"] @ w["w1"]) @ r2, atol=1e-5)
    np.testing.assert_array_equal(model.initializer("gamma")[2], np.ones(16, np.float32))
    np.testing.assert_array_equal(model.initializer("beta")[2], np.zeros(16, np.float32))
    saved = str(tmp_path / "rotated.onnx")
    model.save(saved)
    assert relative_error(ort_run(saved, {"x": x}), ort_run(path, {"x": x})) < 1e-4
    assert relative_error(qcore.Session(model).run({"x": x})["y"], ort_run(path, {"x": x})) < 1e-4


def outlier_model(rng, width=64):
    """Two MatMul layers with a GELU-free tanh between them, read by inputs with a few outlier channels."""
    w1 = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
    w2 = (rng.standard_normal((width, 16)) / np.sqrt(width)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="l1"), helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("MatMul", ["t", "w2"], ["y"], name="l2")]
    graph = helper.make_graph(nodes, "outliers", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def outliers(rng, n, width=64):
    x = rng.standard_normal((n, width)).astype(np.float32)
    x[:, [3, 17, 40, 51]] *= 8  # a few channels well above the rest, as transformers' activations have
    return x


@pytest.mark.parametrize("kind", ["haar", "hadamard"])
def test_rotation_lowers_the_w4a4_error_on_outlier_inputs(kind, tmp_path):
    rng = np.random.default_rng(11)
    path = str(tmp_path / "outliers.onnx")
    onnx.save(outlier_model(rng), path)
    p = qcore.Pipeline(qcore.Model(path))
    for _ in range(4):
        p.add_batch({"x": outliers(rng, 128)})
    held = {"x": outliers(rng, 256)}
    want = ort_run(path, held)

    def error(rotation):
        recipe = qcore.Recipe(method="optq", weights=qcore.QuantOptions(bits=4, granularity="channel", axis=0),
                              activation_bits=4, rotation=rotation)
        quantized, report = p.run(recipe)
        saved = str(tmp_path / ("q_%s.onnx" % rotation))
        quantized.save(saved)
        return np.linalg.norm(ort_run(saved, held) - want) / np.linalg.norm(want), report

    plain, _ = error("none")
    rotated, report = error(kind)
    assert all(r.rotated and r.quantized for r in report)
    assert rotated < 0.65 * plain, (plain, rotated)  # measured: 0.61 plain, 0.35 haar, 0.31 hadamard


def conv_only_model(tmp_path):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32), "cw")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "cw"], ["y"], name="conv")], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    path = str(tmp_path / "conv.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    return path


def test_a_model_without_a_rotatable_layer_is_refused(tmp_path):
    p = qcore.Pipeline(qcore.Model(conv_only_model(tmp_path)))
    p.add_batch({"x": np.ones((2, 2, 8, 8), np.float32)})
    with pytest.raises(qcore.UnsupportedError, match="'rotation': no layer of the model can be rotated"):
        p.run(qcore.Recipe(rotation="haar"))
    p.run(qcore.Recipe(rotation="none"))  # the pipeline is still usable
    with pytest.raises(ValueError, match="rotation must be one of"):
        p.run(qcore.Recipe(rotation="givens"))
