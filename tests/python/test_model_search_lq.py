"""LQ candidates in a model search (ModelSearch(lq_bits=...), qc_model_search_options version 3). Oracles:
the pipeline run of the recipe a configuration gives (its LQ weights checked against a per-channel
qcore.lq_fit + numpy oracle in test_pipeline_lq.py), run by qcore's executor and onnxruntime with the metric
recomputed by numpy; the byte and bit-operation formulas; the other candidates' proxies."""
import json
import os

import numpy as np
import pytest

import qcore
from gpxq_layers import images
from test_model_search import ort_outputs, scaled_output_error
from test_pipeline_lq import decoded_weight, lq_levels_oracle

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

MLP = os.path.join(os.path.dirname(__file__), "..", "data", "models", "fashion_mlp.onnx")
WIDTHS, LQ = (0, 8, 4), (2, 3)
SHAPES = [(512, 784), (256, 512), (10, 256)]  # [out, in]


@pytest.fixture(scope="module")
def pipe():
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(images()[:256])})
    return p


@pytest.fixture(scope="module")
def search(pipe):
    s = qcore.ModelSearch(pipe, qcore.Recipe(method="optq"), widths=WIDTHS, lq_bits=LQ, proxy="model")
    s.add_batch({"input": np.ascontiguousarray(images()[256:512])})  # no labels: the cosine to the float model
    return s


def test_lq_candidates_follow_the_widths_with_their_bytes_and_costs(search, pipe):
    lq_run, reports = pipe.run(qcore.Recipe(method="optq", sequential=False, lq_layers={"fc1.weight": 2,
                                                                                        "fc2.weight": 2, "fc3.weight": 2}))
    for t, ((out, n), row) in enumerate(zip(SHAPES, search.candidates)):
        assert [c.lq_bits for c in row] == [0, 0, 0, 2, 3] and [c.bits for c in row] == [0, 8, 4, 2, 3]
        for c, k in ((3, 2), (4, 3)):
            assert row[c].bytes == out * (k * -(-n // 8) + 4 * k)
            assert row[c].ethosu_bytes == 0
            assert row[c].bit_operations == out * n * k * 8  # MACs x K x input bits
        assert row[3].output_error == reports[t].output_error and reports[t].lq
        assert row[4].output_error < row[3].output_error  # more bits, smaller error


def test_space_labels_and_costs(search, tmp_path):
    space = search.space()
    assert space.num_candidates == [5] * 3
    total, proxy = space.evaluate((3, 4, 1))
    assert total == sum(search.candidates[t][c].bytes for t, c in enumerate((3, 4, 1)))
    s = qcore.Search(space, max_evaluations=1)
    s.run(lambda choice, i, f: 0.0)
    path = str(tmp_path / "s.json")
    s.to_json(path)
    text = open(path).read()
    assert "fc1.weight:lq2" in text and "fc2.weight:lq3" in text and "fc3.weight:w8" in text


def cosine(y, ref):
    y, ref = y.astype(np.float64), ref.astype(np.float64)
    return np.mean(np.sum(y * ref, 1) / np.linalg.norm(y, axis=1) / np.linalg.norm(ref, axis=1))


@pytest.mark.parametrize("choice", [(3, 3, 3), (4, 3, 4), (3, 1, 2), (0, 4, 1)])
def test_evaluation_equals_the_pipeline_run_of_its_recipe(search, pipe, choice, tmp_path):
    """The recipe of a configuration (one pass) gives the evaluated weights bit for bit: with every layer LQ
    both models run the same float products in qcore's executor, so the metric is the same to the last
    rounding of the mean; onnxruntime agrees within float tolerance."""
    recipe = search.recipe(choice)
    assert recipe.lq_layers == {search.candidates[t][c].weight: LQ[c - 3] for t, c in enumerate(choice) if c >= 3}
    assert recipe.layer_bits == {search.candidates[t][c].weight: WIDTHS[c] for t, c in enumerate(choice) if c < 3}
    model, reports = pipe.run(qcore.Recipe(**{**recipe.__dict__, "sequential": False}))
    assert sum(r.weight_bytes for r in reports) == search.cost(choice)
    x = np.ascontiguousarray(images()[256:512])
    reference = next(iter(qcore.Session(qcore.Model(MLP)).run({"input": x}).values()))
    y_qcore = next(iter(qcore.Session(model).run({"input": x}).values()))
    path = str(tmp_path / "q.onnx")
    model.save(path)
    options = ort.SessionOptions()  # the graph's own semantics: onnxruntime's fused integer QDQ kernels
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # round otherwise (1e-4 on AVX2)
    y_ort = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    metric = search.evaluate(choice)
    if all(c >= 3 for c in choice):
        assert metric == pytest.approx(cosine(y_qcore, reference), rel=1e-12, abs=1e-12)
        proto = onnx.load(path)
        w = {t.name: numpy_helper.to_array(t) for t in onnx.load(MLP).graph.initializer}
        for t, c in enumerate(choice):
            name = search.candidates[t][c].weight
            np.testing.assert_array_equal(decoded_weight(proto, name)[0], lq_levels_oracle(w[name], LQ[c - 3]))
    assert metric == pytest.approx(cosine(y_qcore, reference), abs=2e-5)
    assert metric == pytest.approx(cosine(y_ort, reference), abs=2e-5)


def test_model_proxies_measure_lq_candidates(pipe, search, tmp_path):
    """MODEL and MODEL_SCALED alike: each LQ candidate alone in the model (the pipeline run of a recipe with
    only that weight LQ, the others float, run by onnxruntime), its output's squared relative error to the
    nearest non-negative multiple of the reference (numpy); MODEL_SCALED scales only the uniform widths,
    from the lowest one (4 bits), by the layer's own squared error ratio."""
    x = np.ascontiguousarray(images()[:256])
    reference, _ = pipe.run(qcore.Recipe(method="optq", sequential=False, layer_bits={n: 0 for n in names(search)}))
    ref = ort_outputs(reference, x, tmp_path)
    scaled = qcore.ModelSearch(pipe, qcore.Recipe(method="optq"), widths=WIDTHS, lq_bits=LQ)
    for t, name in enumerate(names(search)):
        bits = {n: 0 for n in names(search) if n != name}
        for c, k in ((3, 2), (4, 3)):
            alone, _ = pipe.run(qcore.Recipe(method="optq", sequential=False, layer_bits=bits, lq_layers={name: k}))
            y = ort_outputs(alone, x, tmp_path)
            want = scaled_output_error(y, ref)
            assert search.candidates[t][c].proxy == pytest.approx(want, rel=1e-3), (t, k)
            assert scaled.candidates[t][c].proxy == search.candidates[t][c].proxy  # the same measurement
    for row in scaled.candidates:
        low = row[2]  # 4 bits, the lowest uniform width
        assert row[1].proxy == pytest.approx(low.proxy * (row[1].output_error / low.output_error) ** 2, rel=1e-12)


def names(search):
    return [row[0].weight for row in search.candidates]


def test_without_uniform_widths_every_lq_candidate_is_measured(pipe):
    s, model = (qcore.ModelSearch(pipe, qcore.Recipe(method="rtn"), widths=(0,), lq_bits=(3, 1), proxy=proxy)
                for proxy in ("model_scaled", "model"))
    for row, measured in zip(s.candidates, model.candidates):
        assert row[0].proxy == 0 and [c.proxy for c in row] == [c.proxy for c in measured]
        assert 0 < row[1].proxy < row[2].proxy  # 3 bits, a smaller error than 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(lq_bits=(5,)), "option 'lq_bits': entry 0 is 5, not in 1..4"),
    (dict(lq_bits=(0,)), "entry 0 is 0, not in 1..4"),
    (dict(lq_bits=(2, 2)), "option 'lq_bits': 2 is given twice"),
    (dict(lq_bits=(2,), recipe=qcore.Recipe(gpxq=qcore.GpxqOptions(accumulator_bits=16))), "AXE"),
])
def test_bad_lq_bits_are_named(pipe, kwargs, message):
    with pytest.raises(qcore.InvalidArgumentError, match=__import__("re").escape(message)):
        qcore.ModelSearch(pipe, **{"widths": (8,), **kwargs})


def test_version_2_options_have_no_lq_candidates(pipe):
    from qcore._ffi import ffi, onnx_lib
    opts = ffi.new("qc_model_search_options *")
    assert onnx_lib.qc_model_search_options_init(opts, 2) == 0
    opts.num_lq_bits, opts.lq_bits = 7, ffi.NULL  # past a version-2 struct: never read
    opts.version = 2
    widths = ffi.new("int32_t[]", [8])
    opts.num_widths, opts.widths = 1, widths
    out = ffi.new("qc_model_search **")
    assert onnx_lib.qc_model_search_create(out, pipe._p, opts) == 0
    lq = ffi.new("int32_t *")
    assert onnx_lib.qc_model_search_candidate_lq_bits(out[0], 0, 0, lq) == 0 and lq[0] == 0
    assert onnx_lib.qc_model_search_candidate_lq_bits(out[0], 0, 1, lq) != 0
    onnx_lib.qc_model_search_free(out[0])


def test_a_rotated_search_reproduces_its_lq_configuration(pipe):
    """With a recipe rotation the candidates come from the rotated model; the recipe of an all-LQ choice
    keeps the rotation and gives the same model output in qcore's executor."""
    s = qcore.ModelSearch(pipe, qcore.Recipe(method="rtn", rotation="haar", rotation_seed=3), widths=(0, 4), lq_bits=(2,))
    x = np.ascontiguousarray(images()[256:512])
    s.add_batch({"input": x})
    recipe = s.recipe((2, 2, 2))
    assert recipe.rotation == "haar" and recipe.lq_layers == {n: 2 for n in names(s)}
    model, reports = pipe.run(qcore.Recipe(**{**recipe.__dict__, "sequential": False}))
    assert all(r.lq and r.rotated for r in reports)
    reference = next(iter(qcore.Session(qcore.Model(MLP)).run({"input": x}).values()))
    y = next(iter(qcore.Session(model).run({"input": x}).values()))
    assert s.evaluate((2, 2, 2)) == pytest.approx(cosine(y, reference), rel=1e-12, abs=1e-12)
