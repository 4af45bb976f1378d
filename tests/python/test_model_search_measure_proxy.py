"""The model proxy measured on a search's evaluation batches (ModelSearch.measure_proxy,
qc_model_search_measure_proxy). Oracles: onnxruntime running the model the pipeline exports with one weight
quantized, on the evaluation data, scored by the proxy's formula in numpy; a fresh search's measurement
(bit for bit) for what earlier evaluations must not change; the layer errors for the layer proxy."""
import os

import numpy as np
import pytest

import qcore
from gpxq_layers import images
from test_model_search import MLP, ort_outputs, scaled_output_error

ort = pytest.importorskip("onnxruntime")

WIDTHS = (0, 8, 4, 2)
RTN = qcore.Recipe(method="rtn", activation_bits=0)
ROTATED = qcore.Recipe(method="rtn", activation_bits=0, rotation="hadamard", rotation_seed=1)


@pytest.fixture(scope="module")
def data():
    """Calibration images and two evaluation batches of other images."""
    x = np.ascontiguousarray(images()[:512])
    return x[:256], (x[256:384], x[384:512])


def searched(data, recipe=RTN, proxy="layer", **options):
    calibration, evaluation = data
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": calibration})
    s = qcore.ModelSearch(p, recipe, widths=WIDTHS, proxy=proxy, **options)
    for x in evaluation:
        s.add_batch({"input": x})
    return s


def proxies(s):
    return [[c.proxy for c in row] for row in s.candidates]


@pytest.mark.parametrize("batches", [1, 0])
def test_the_proxy_is_measured_on_the_evaluation_batches(data, batches, tmp_path):
    """Each candidate's proxy is the squared relative error, on the first `batches` evaluation batches (0:
    both), of the model with that weight alone quantized (onnxruntime on the pipeline's export) against the
    float model; the scaled proxy is that at 2 bits and the layer's squared error ratio elsewhere. The
    calibration images differ from the evaluation ones, so a measurement on them fails this."""
    s, scaled = searched(data), searched(data)
    s.measure_proxy("model", batches)
    scaled.measure_proxy("model_scaled", batches)
    x = np.concatenate(data[1][:batches or 2])
    reference = ort.InferenceSession(MLP).run(None, {"input": x})[0].astype(np.float64)
    names = [row[0].weight for row in s.candidates]
    for t, row in enumerate(s.candidates):
        assert row[0].proxy == 0
        for c, bits in enumerate(WIDTHS[1:], start=1):
            model, _ = s.pipeline.run(qcore.Recipe(method="rtn", activation_bits=0, sequential=False,
                                                   layer_bits={n: (bits if n == names[t] else 0) for n in names}))
            want = scaled_output_error(ort_outputs(model, x, tmp_path), reference)
            assert row[c].proxy == pytest.approx(want, rel=2e-3), (t, bits)
            assert scaled.candidates[t][c].proxy == pytest.approx(
                want if bits == 2 else row[3].proxy * (row[c].output_error / row[3].output_error) ** 2, rel=2e-3)


def test_earlier_evaluations_leave_no_trace(data):
    """The session holds the last evaluated configuration (with rotation_choice, twins on their unrotated
    paths): measure_proxy sets every weight back to float first, so it gives a fresh search's proxies bit for
    bit; and evaluations after it equal those before."""
    for recipe, options, choices in ((RTN, {}, [(3, 2, 1), (1, 3, 2)]),
                                     (ROTATED, {"rotation_choice": True}, [(4, 5, 6), (6, 2, 5)])):
        fresh, used = searched(data, recipe, **options), searched(data, recipe, **options)
        before = [used.evaluate(c) for c in choices]
        fresh.measure_proxy("model_scaled", 1)
        used.measure_proxy("model_scaled", 1)
        assert proxies(used) == proxies(fresh)
        assert [used.evaluate(c) for c in choices] == before


@pytest.mark.parametrize("recipe, options", [
    (qcore.Recipe(method="optq", activation_bits=8), {"lq_bits": (2,)}),
    (qcore.Recipe(method="rtn", activation_bits=8, rotation="hadamard", rotation_seed=1),
     {"lq_bits": (2,), "rotation_choice": True})], ids=["optq-a8-lq", "rotated-a8-lq-twins"])
def test_on_the_calibration_batch_it_is_the_proxy_made_at_create(data, recipe, options):
    """Evaluation batches equal to the calibration batch give the proxies measured at create bit for bit, for
    every candidate (LQ, and twins scaled from their rotated siblings), after an evaluation that chose twins."""
    calibration, _ = data
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": calibration})
    for proxy in ("model", "model_scaled"):
        at_create = qcore.ModelSearch(p, recipe, widths=WIDTHS, proxy=proxy, **options)
        s = qcore.ModelSearch(p, recipe, widths=WIDTHS, proxy="layer", **options)
        s.add_batch({"input": calibration})
        s.evaluate([len(row) - 1 for row in s.candidates])
        s.measure_proxy(proxy, 0)
        assert proxies(s) == proxies(at_create)


def test_the_proxy_it_replaces_and_the_layer_proxy(data):
    """A measurement replaces the proxy made at create (calibration data, other values); "layer" drops a model
    proxy: each candidate's proxy is then its squared layer error, as a search created with it has."""
    s = searched(data, proxy="model_scaled")
    at_create = proxies(s)
    s.measure_proxy("model_scaled", 0)
    assert proxies(s) != at_create and all(row[0] == 0 for row in proxies(s))
    s.measure_proxy("layer", 0)
    assert s.proxy == "layer"
    assert proxies(s) == [[c.output_error ** 2 for c in row] for row in s.candidates]


def test_bad_arguments_and_a_cancel_keep_the_proxy(data):
    s = searched(data)
    s.measure_proxy("model_scaled", 1)
    kept = proxies(s)
    with pytest.raises(qcore.InvalidArgumentError, match="'batches': 3 is more than the search's 2 evaluation batches"):
        s.measure_proxy("model", 3)
    with pytest.raises(qcore.InvalidArgumentError, match="'batches': 1 is for a model proxy"):
        s.measure_proxy("layer", 1)
    with pytest.raises(ValueError, match="proxy must be one of layer, model, model_scaled, got 'hessian'"):
        s.measure_proxy("hessian")
    with pytest.raises(ValueError, match="batches must be"):
        s.measure_proxy("model", -1)
    from qcore._ffi import onnx_lib
    assert onnx_lib.qc_model_search_measure_proxy(s._s, 3, 0) == onnx_lib.QC_ERR_INVALID_ARG
    steps = []
    s.pipeline.ctx.progress = lambda stage, done, total: steps.append(stage) or done == 2  # cancel at step 2
    try:
        with pytest.raises(qcore.CancelledError):
            s.measure_proxy("model", 0)
    finally:
        s.pipeline.ctx.progress = None
    assert steps == ["model-level proxies"] * 2
    assert proxies(s) == kept and s.proxy == "model_scaled"
    assert s.evaluate((3, 2, 1)) == searched(data).evaluate((3, 2, 1))  # the session is whole again
    calibration, _ = data
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": calibration})
    empty = qcore.ModelSearch(p, RTN, widths=WIDTHS, proxy="layer")
    with pytest.raises(qcore.InvalidArgumentError, match="no evaluation batch was added"):
        empty.measure_proxy("model_scaled", 0)
