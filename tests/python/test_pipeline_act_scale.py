"""The pipeline's activation scales (qc_recipe.activation_scale): oracles are numpy's own histogram of the
same activations with the criterion evaluated independently (the squared error by dense sampling inside
each bin, the percentile by the histogram's mass), the exact activations (numpy.percentile, the squared
error of fake quantization on the values themselves), and a fresh pipeline for the statistics cache."""
import numpy as np
import pytest

import qcore

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

BINS = qcore._ffi.onnx_lib.QC_PIPELINE_HISTOGRAM_BINS


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """y = relu(x W1) W2 + x W3: x (heavy-tailed, signed) is read by two layers, relu(x W1) is unsigned."""
    rng = np.random.default_rng(11)
    w = {"w1": rng.standard_normal((16, 32)).astype(np.float32) / 4,
         "w2": rng.standard_normal((32, 8)).astype(np.float32) / 4,
         "w3": rng.standard_normal((16, 8)).astype(np.float32) / 4}
    nodes = [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["a"]), helper.make_node("MatMul", ["input", "w3"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
                              [numpy_helper.from_array(v, k) for k, v in w.items()])
    path = str(tmp_path_factory.mktemp("act") / "m.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path, w


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(12)
    return [rng.standard_t(3, (1000, 16)).astype(np.float32) for _ in range(3)]


def pipeline(path, batches):
    p = qcore.Pipeline(qcore.Model(path))
    for b in batches:
        p.add_batch({"input": b})
    return p


def layer_inputs(w, batches):
    """Each layer's input values over all batches, in the pipeline's layer order (w1, w2, w3)."""
    x = np.concatenate(batches)
    r = np.maximum(x @ w["w1"], 0)
    return {"w1": x, "w2": r, "w3": x}


def histogram(v):
    lo, hi = float(v.min()), float(v.max())
    counts, edges = np.histogram(v.astype(np.float64), bins=BINS, range=(lo, hi))
    return counts.astype(np.float64), edges


def levels(bits, is_signed):
    return (-2.0**(bits - 1), 2.0**(bits - 1) - 1) if is_signed else (0.0, 2.0**bits - 1)


def fake_quant(x, scale, qmin, qmax):
    return np.clip(np.rint(x / scale), qmin, qmax) * scale


def sampled_error(counts, edges, scale, qmin, qmax, per_bin=64):
    """Each bin's count spread uniformly: the mean squared error over per_bin midpoints of the bin."""
    used = counts > 0
    a, width = edges[:-1][used], np.diff(edges)[used]
    points = a[:, None] + width[:, None] * (np.arange(per_bin) + 0.5) / per_bin
    e = (points - fake_quant(points, scale, qmin, qmax)) ** 2
    return float(np.sum(counts[used] * e.mean(1)))


def candidates(amax, steps, m):
    return (m + (1 - m) * np.arange(steps) / (steps - 1)) * amax


@pytest.mark.parametrize("bits", [4, 8])
def test_mse_scale_is_the_least_error_clip_of_the_histogram(model, batches, bits):
    path, w = model
    steps, m = 60, 0.02
    _, report = pipeline(path, batches).run(qcore.Recipe(method="rtn", activation_bits=bits, activation_scale="mse",
                                                         activation_mse_steps=steps, activation_mse_min_ratio=m))
    inputs = layer_inputs(w, batches)
    for rep, name in zip(report, ("w1", "w2", "w3")):
        v = inputs[name]
        is_signed = bool(v.min() < 0)
        qmin, qmax = levels(bits, is_signed)
        assert rep.input_signed == is_signed and rep.input_bits == bits
        counts, edges = histogram(v)
        clips = candidates(np.abs(v).max(), steps, m)
        errors = np.array([sampled_error(counts, edges, t / qmax, qmin, qmax) for t in clips])
        chosen = rep.input_scale * qmax
        k = int(np.argmin(np.abs(clips - chosen)))
        assert clips[k] == pytest.approx(chosen, rel=1e-5)  # one of the candidates
        assert errors[k] <= errors.min() * (1 + 1e-3)
        # on the exact values too, it is close to the best candidate and far better than min-max at 4 bits
        exact = np.array([np.sum((v - fake_quant(v, np.float32(t / qmax), qmin, qmax)) ** 2) for t in clips])
        assert exact[k] <= exact.min() * 1.02
        if bits == 4:
            assert exact[k] < 0.7 * exact[-1]
    assert report[0].input_scale == report[2].input_scale  # one quantizer for the input both layers read


def test_percentile_scale_holds_that_share_of_the_histogram(model, batches):
    path, w = model
    pct = 99.0
    _, report = pipeline(path, batches).run(qcore.Recipe(method="rtn", activation_bits=8, activation_scale="percentile",
                                                         activation_percentile=pct))
    inputs = layer_inputs(w, batches)
    for rep, name in zip(report, ("w1", "w2")):
        v = inputs[name]
        qmax = 127 if v.min() < 0 else 255
        t = rep.input_scale * qmax
        counts, edges = histogram(v)
        inside = np.clip(np.minimum(edges[1:], t) - np.maximum(edges[:-1], -t), 0, None) / np.diff(edges)
        assert np.sum(counts * inside) == pytest.approx(pct / 100 * v.size, rel=1e-5)
        width = edges[1] - edges[0]
        assert abs(t - np.percentile(np.abs(v), pct)) <= 2 * width


def test_minmax_stays_the_default_and_the_sweep_cache_follows_the_scales(model, batches):
    path, w = model
    inputs = layer_inputs(w, batches)
    p = pipeline(path, batches)
    _, report = p.run(qcore.Recipe(method="optq", activation_bits=4, sequential=False))
    assert report[0].input_scale == pytest.approx(float(np.abs(inputs["w1"]).max()) / 7, rel=1e-6)
    assert report[1].input_scale == pytest.approx(float(inputs["w2"].max()) / 15, rel=1e-5)
    mse = qcore.Recipe(method="optq", activation_bits=4, sequential=False, activation_scale="mse")
    swept, _ = p.run(mse)  # after a min-max run: the kept statistics must not be reused
    fresh, _ = pipeline(path, batches).run(mse)
    x = batches[0][:50]
    np.testing.assert_array_equal(qcore.Session(swept).run({"input": x})["y"], qcore.Session(fresh).run({"input": x})["y"])


@pytest.mark.parametrize("field, value, match", [
    ("activation_scale", "kl", "activation_scale"),
    ("activation_percentile", 40.0, "'activation_percentile': 40"),
    ("activation_mse_steps", 1, "'activation_mse_steps': 1 "),
    ("activation_mse_min_ratio", 0.0, "'activation_mse_min_ratio': 0 "),
])
def test_bad_activation_scale_fields_are_named(model, batches, field, value, match):
    fields = {"activation_scale": "percentile" if field == "activation_percentile" else "mse", field: value}
    recipe = qcore.Recipe(method="rtn", **fields)
    with pytest.raises((qcore.InvalidArgumentError, ValueError), match=match):
        pipeline(model[0], batches).run(recipe)
