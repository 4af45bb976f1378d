"""Layers a recipe's rotation leaves unrotated (qcore.Recipe(unrotated=...), qc_recipe.unrotated, version 5).
Oracles: the same library's runs without rotation and with every layer rotated (an unrotated layer's
quantized weight must equal the unrotated recipe's, a rotated one's the all-rotated recipe's: the same R
whatever is left out); the model's own float function (within 1e-4 in onnxruntime); onnxruntime on the
model a search configuration's recipe makes."""
import os
from dataclasses import replace

import numpy as np
import pytest

import qcore
from gpxq_layers import images

ort = pytest.importorskip("onnxruntime")

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "models")
MLP = os.path.join(DATA, "fashion_mlp.onnx")
WEIGHTS = ("fc1.weight", "fc2.weight", "fc3.weight")


@pytest.fixture(scope="module")
def mlp():
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:256])})
    return p


def quantized(model, weight):
    """The int8 codes and scales the QDQ model stores for `weight`."""
    return model.initializer(weight + "_quantized")[2].copy(), model.initializer(weight + "_scale")[2].copy()


def ort_run(model, x, tmp_path):
    """onnxruntime on the saved model, its graph as written: with its optimizations on, onnxruntime fuses
    QDQ around an unsigned (post-ReLU) input into integer kernels that round differently (logits 0.05-0.1
    apart on this model even without rotation)."""
    path = str(tmp_path / "m.onnx")
    model.save(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@pytest.mark.parametrize("left", [("fc2.weight",), ("fc1.weight", "fc3.weight")])
def test_left_layers_keep_their_weights_and_the_others_their_rotation(mlp, left):
    base = qcore.Recipe(method="rtn", activation_bits=0, rotation="haar", rotation_seed=3)
    plain, _ = mlp.run(replace(base, rotation="none"))
    every, _ = mlp.run(base)
    model, report = mlp.run(replace(base, unrotated=left))
    assert [(r.rotated, r.rotation_online) for r in report] == [(w not in left,) * 2 for w in WEIGHTS]
    for w in WEIGHTS:
        want = quantized(plain if w in left else every, w)
        for have, expected in zip(quantized(model, w), want):
            np.testing.assert_array_equal(have, expected)
    rotations = [n for n in model.nodes if n.op_type == "MatMul"]
    assert len(rotations) == 3 - len(left)


def test_the_float_function_is_unchanged(mlp, tmp_path):
    recipe = qcore.Recipe(rotation="hadamard", keep_float=WEIGHTS, unrotated=("fc2.weight",))
    model, report = mlp.run(recipe)
    assert [r.rotated for r in report] == [True, False, True]
    x = np.ascontiguousarray(images()[256:320])
    want = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    have = ort_run(model, x, tmp_path)
    assert np.max(np.abs(have - want)) < 1e-4 * np.max(np.abs(want))


def test_every_layer_left_unrotated_is_the_unrotated_model(mlp):
    base = qcore.Recipe(method="rtn", activation_bits=8)
    plain, _ = mlp.run(base)
    model, report = mlp.run(replace(base, rotation="haar", unrotated=WEIGHTS))
    assert not any(r.rotated for r in report)
    assert not any(n.op_type == "MatMul" for n in model.nodes)
    for w in WEIGHTS:
        for have, want in zip(quantized(model, w), quantized(plain, w)):
            np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize("fields, message", [
    (dict(unrotated=("fc2.weight",)), "rotation is none"),
    (dict(rotation="haar", unrotated=("fc2.weight", "nothing")), "entry 1 ('nothing') is no layer's weight"),
    (dict(rotation="haar", unrotated=("fc2.weight", "fc2.weight")), "'fc2.weight' is named twice"),
])
def test_bad_lists_are_refused_naming_the_field(mlp, fields, message):
    with pytest.raises(qcore.InvalidArgumentError, match="recipe field 'unrotated'.*" + message.replace("(", r"\(").replace(")", r"\)")):
        mlp.run(qcore.Recipe(**fields))


def test_a_search_keeps_the_unrotated_layers_and_its_recipe_reproduces_the_point(mlp, tmp_path):
    """A search over Recipe(rotation=..., unrotated=...) evaluates the model its configurations' recipes
    make (one pass), as onnxruntime runs it (cosine to the float model's outputs)."""
    x = np.ascontiguousarray(images()[256:512])
    base = qcore.Recipe(method="optq", activation_bits=8, rotation="hadamard", rotation_seed=2, unrotated=("fc2.weight",))
    s = qcore.ModelSearch(mlp, base, widths=(8, 4, 2))
    s.add_batch({"input": x})
    reference = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    for choice in [(0, 1, 2), (2, 2, 1)]:
        recipe = s.recipe(choice)
        assert recipe.unrotated == ("fc2.weight",)
        model, report = mlp.run(replace(recipe, sequential=False))
        assert [r.rotated for r in report] == [True, False, True]
        out = ort_run(model, x, tmp_path)
        cos = np.sum(out * reference, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(reference, axis=1)
        assert s.evaluate(choice) == pytest.approx(cos.mean(), abs=1e-5)
