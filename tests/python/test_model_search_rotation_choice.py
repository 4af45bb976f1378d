"""Rotation per layer in a model search (qcore.ModelSearch(rotation_choice=True), qc_model_search_options
version 3): each layer the recipe's rotation rotates online gets unrotated twins of its integer widths.
Oracles: a search over the recipe with every layer in `unrotated` (its candidates are what the twins must
be); qcore's executor and onnxruntime on the model Pipeline.run makes from a configuration's recipe (the
metric the search reports); the recipe's byte count."""
import os
from dataclasses import replace

import numpy as np
import pytest

import qcore
from gpxq_layers import images

ort = pytest.importorskip("onnxruntime")

MLP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "models", "fashion_mlp.onnx")
WEIGHTS = ("fc1.weight", "fc2.weight", "fc3.weight")
WIDTHS = (0, 4, 2)
BASE = qcore.Recipe(method="rtn", activation_bits=0, rotation="hadamard", rotation_seed=1)


@pytest.fixture(scope="module")
def mlp():
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:256])})
    return p


@pytest.fixture(scope="module")
def x():
    return np.ascontiguousarray(images()[256:512])


def search(mlp, x, recipe=BASE, proxy="layer"):
    s = qcore.ModelSearch(mlp, recipe, widths=WIDTHS, proxy=proxy, rotation_choice=True)
    s.add_batch({"input": x})
    return s


def test_each_online_rotated_layer_gets_unrotated_twins_of_its_integer_widths(mlp, x):
    s = search(mlp, x)
    plain = qcore.ModelSearch(mlp, replace(BASE, unrotated=WEIGHTS), widths=WIDTHS, proxy="layer")
    rotated = qcore.ModelSearch(mlp, BASE, widths=WIDTHS, proxy="layer")
    for row, plain_row, rotated_row in zip(s.candidates, plain.candidates, rotated.candidates):
        assert [(c.bits, c.rotated) for c in row] == [(0, True), (4, True), (2, True), (4, False), (2, False)]
        assert row[:3] == rotated_row
        assert [(c.bits, c.bytes, c.output_error) for c in row[3:]] == [(c.bits, c.bytes, c.output_error) for c in plain_row[1:]]
        assert [c.proxy for c in row] == [c.output_error ** 2 for c in row]
    space = s.space()
    assert space.num_candidates == [5, 5, 5]
    assert space.evaluate([3, 4, 0])[0] == s.cost([3, 4, 0])


def metric_of(model, x, reference):
    out = qcore.Session(model).run({"input": x})["logits"]
    return float(np.mean(np.sum(out * reference, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(reference, axis=1)))


@pytest.mark.parametrize("method, activation_bits, tolerance, mixed_tolerance", [
    ("rtn", 0, 1e-6, 1e-6), ("optq", 0, 1e-4, 1e-4), ("rtn", 8, 1e-5, 1e-5), ("rtn", 4, 1e-5, 1e-5),
    ("optq", 8, 1e-4, 2e-3)])
def test_a_configuration_is_the_model_its_recipe_makes(mlp, x, method, activation_bits, tolerance, mixed_tolerance,
                                                       tmp_path):
    """RTN has no statistics: the recipe gives the evaluated weights exactly; OPTQ's statistics come from a
    partly rotated model, equal up to float rounding. With quantized activations an unrotated layer reads
    its own quantizer of the unrotated input, as in the recipe's model; that quantizer's scale comes from
    the ranges of a partly rotated float model, equal up to a few ulps (fc2's: 0.035421725 in the model
    with fc2 alone unrotated, 0.035421714 with none rotated), which moves a code at a rounding boundary.
    OPTQ with quantized activations in a configuration mixing rotated and unrotated layers: a layer's
    statistics then depend on the coordinates its upstream layers' inputs were quantized in (fc1 reads
    the image, which 8 bits hold exactly unrotated but not rotated), which the candidates took from the
    all-rotated or the all-unrotated pass: the recipe's model is close, not equal (6.9e-4 for (1, 3, 2))."""
    s = search(mlp, x, replace(BASE, method=method, activation_bits=activation_bits))
    reference = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    for choice in [(1, 1, 1), (3, 3, 3), (1, 3, 2), (4, 2, 4), (0, 4, 3)]:
        recipe = s.recipe(choice)
        assert recipe.unrotated == tuple(w for w, c in zip(WEIGHTS, choice) if c >= len(WIDTHS))
        model, report = mlp.run(replace(recipe, sequential=False))
        assert [r.rotated for r in report] == [c < len(WIDTHS) for c in choice]
        assert s.cost(choice) == sum(r.weight_bytes for r in report)
        mixed = len({c < len(WIDTHS) for c in choice}) > 1
        assert s.evaluate(choice) == pytest.approx(metric_of(model, x, reference), abs=mixed_tolerance if mixed else tolerance)
        path = str(tmp_path / "m.onnx")
        model.save(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        out = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        cos = np.sum(out * reference, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(reference, axis=1)
        assert s.evaluate(choice) == pytest.approx(cos.mean(), abs=(mixed_tolerance if mixed else tolerance) + 1e-5)


@pytest.mark.parametrize("activation_bits", [0, 8])
def test_a_configuration_without_twins_evaluates_as_the_rotated_search_does(mlp, x, activation_bits):
    """The unrotated paths hold zeros unless chosen, and adding zero changes nothing: bit for bit the
    rotated search's metric."""
    recipe = replace(BASE, activation_bits=activation_bits)
    s, rotated = search(mlp, x, recipe), qcore.ModelSearch(mlp, recipe, widths=WIDTHS, proxy="layer")
    rotated.add_batch({"input": x})
    for choice in [(1, 1, 1), (2, 1, 0), (2, 2, 2)]:
        assert s.evaluate(choice) == rotated.evaluate(choice)
    assert s.evaluate((3, 3, 3)) != s.evaluate((1, 1, 1))


@pytest.mark.parametrize("activation_bits", [0, 8])
def test_a_configuration_of_twins_evaluates_as_the_unrotated_search_does(mlp, x, activation_bits):
    """Every layer's twin chosen: the rotated nodes hold zero weights and biases, and each Gemm's unrotated
    copy takes the bias, as the recipe's Gemm does: bit for bit the metric of a search whose recipe leaves
    every layer unrotated (its candidates are the twins)."""
    recipe = replace(BASE, activation_bits=activation_bits)
    s = search(mlp, x, recipe)
    plain = qcore.ModelSearch(mlp, replace(recipe, unrotated=WEIGHTS), widths=WIDTHS, proxy="layer")
    plain.add_batch({"input": x})
    for twins, same in [((3, 3, 3), (1, 1, 1)), ((4, 3, 4), (2, 1, 2))]:
        assert s.evaluate(twins) == plain.evaluate(same)


def test_the_model_proxy_scales_a_twin_from_its_rotated_sibling(mlp, x):
    s = search(mlp, x, proxy="model")
    for row in s.candidates:
        for twin in row[3:]:
            sibling = next(c for c in row[:3] if c.bits == twin.bits)
            assert twin.proxy == pytest.approx(sibling.proxy * twin.output_error ** 2 / sibling.output_error ** 2, rel=1e-12)


def test_a_search_over_twins_runs_and_never_names_a_rotated_choice_unrotated(mlp, x):
    s = search(mlp, x)
    found = s.run(max_evaluations=12, seed=3)
    assert len(found.evaluations()) == 12
    for choice in found.front().choices:
        assert set(s.recipe(choice).unrotated) == {WEIGHTS[t] for t, c in enumerate(choice) if not s.candidates[t][c].rotated}


@pytest.mark.parametrize("fields, error, message", [
    (dict(rotation="none"), qcore.InvalidArgumentError, "rotation is none"),
    (dict(unrotated=("fc2.weight",)), qcore.InvalidArgumentError, "already names unrotated layers"),
])
def test_recipes_the_choice_cannot_serve_are_refused(mlp, fields, error, message):
    with pytest.raises(error, match="option 'rotation_choice'.*" + message):
        qcore.ModelSearch(mlp, replace(BASE, **fields), widths=WIDTHS, rotation_choice=True)


def test_the_c_counts_and_flags_check_their_indices(mlp, x):
    from qcore._ffi import ffi, onnx_lib
    s = search(mlp, x)
    assert [onnx_lib.qc_model_search_candidate_count(s._s, t) for t in range(4)] == [5, 5, 5, 0]
    assert onnx_lib.qc_model_search_candidate_count(ffi.NULL, 0) == 0
    flag = ffi.new("int32_t *")
    assert onnx_lib.qc_model_search_candidate_rotated(s._s, 0, 5, flag) == onnx_lib.QC_ERR_INVALID_ARG
    assert onnx_lib.qc_model_search_candidate_rotated(s._s, 0, 4, flag) == onnx_lib.QC_OK and flag[0] == 0


def test_lq_candidates_get_twins_and_their_recipe_names_both_lists(mlp, x):
    """LQ levels depend on the coordinates too: each LQ candidate has an unrotated twin, and a configuration
    choosing one puts the layer in both lq_layers and unrotated; its model is the one evaluated."""
    s = qcore.ModelSearch(mlp, BASE, widths=WIDTHS, proxy="layer", lq_bits=(2,), rotation_choice=True)
    s.add_batch({"input": x})
    for row in s.candidates:
        assert [(c.bits, c.lq_bits, c.rotated) for c in row] == [
            (0, 0, True), (4, 0, True), (2, 0, True), (2, 2, True), (4, 0, False), (2, 0, False), (2, 2, False)]
    reference = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    for choice in [(6, 3, 5), (3, 6, 1)]:
        recipe = s.recipe(choice)
        assert recipe.lq_layers == {w: 2 for w, c in zip(WEIGHTS, choice) if c in (3, 6)}
        assert recipe.unrotated == tuple(w for w, c in zip(WEIGHTS, choice) if c >= 4)
        model, _ = mlp.run(replace(recipe, sequential=False))
        assert s.evaluate(choice) == pytest.approx(metric_of(model, x, reference), abs=1e-6)
