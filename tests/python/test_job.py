"""qcore.quantize(model, calibration, recipe, **fields), the one-call main job, and qcore.plots. Oracles:
the explicit Pipeline route on the same batches and recipe (identical saved bytes and reports), the array
form of qcore.quantize against numpy's rounding, and the PNG format itself (signature, IHDR size, drawn
pixels)."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import qcore
from gpxq_layers import images

MLP = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "models", "fashion_mlp.onnx")


def saved(model, path):
    model.save(str(path))
    return path.read_bytes()


def explicit(batches, recipe):
    pipeline = qcore.Pipeline(qcore.Model(MLP))
    for batch in batches:
        pipeline.add_batch(batch)
    return pipeline.run(recipe)


@pytest.fixture(scope="module")
def calib():
    return np.ascontiguousarray(images()[:200])


def test_one_call_equals_the_pipeline_route(calib, tmp_path):
    recipe = qcore.Recipe(method="gpfq", weights=qcore.QuantOptions(bits=4, granularity="channel", axis=0),
                          activation_bits=8, gpxq=qcore.GpxqOptions(accumulator_bits=18, tile_size=64))
    want, want_reports = explicit([{"input": calib[k:k + 64]} for k in range(0, 200, 64)], recipe)
    got, reports = qcore.quantize(MLP, {"input": calib}, method="gpfq", weight_bits=4, accumulator_bits=18,
                                  tile_size=64)
    assert saved(got, tmp_path / "a.onnx") == saved(want, tmp_path / "b.onnx")
    assert reports == want_reports and [r.weight for r in reports] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert all(r.quantized and r.weight_bits == 4 and r.accumulator_bits <= 18 for r in reports)
    # the same through a Recipe object, a qcore.Model, an array for the one input, and batches given as a list
    got, reports = qcore.quantize(qcore.Model(MLP), calib, recipe, batch_size=64)
    assert saved(got, tmp_path / "c.onnx") == saved(want, tmp_path / "b.onnx") and reports == want_reports
    batches = [{"input": calib[:100]}, {"input": calib[100:]}]
    want, want_reports = explicit(batches, recipe)
    got, reports = qcore.quantize(MLP, iter(batches), recipe)
    assert saved(got, tmp_path / "d.onnx") == saved(want, tmp_path / "e.onnx") and reports == want_reports


def test_fields_override_the_recipe(calib, tmp_path):
    base = qcore.Recipe(method="optq", activation_bits=4)
    got, reports = qcore.quantize(MLP, {"input": calib}, base, method="rtn", weight_granularity="group",
                                  weight_group_size=32, keep_float=("fc3.weight",))
    recipe = qcore.Recipe(method="rtn", activation_bits=4, keep_float=("fc3.weight",),
                          weights=qcore.QuantOptions(bits=8, granularity="group", axis=1, group_size=32))
    want, want_reports = explicit([{"input": calib[k:k + 64]} for k in range(0, 200, 64)], recipe)
    assert saved(got, tmp_path / "a.onnx") == saved(want, tmp_path / "b.onnx") and reports == want_reports
    assert [r.quantized for r in reports] == [True, True, False] and reports[0].input_bits == 4


def test_array_form_still_quantizes_arrays():
    x = np.array([[0.5, -1.26, 2.0]], np.float32)
    opts = qcore.QuantOptions(bits=8)
    q = qcore.quantize(x, np.array(0.01, np.float32), None, opts)
    np.testing.assert_array_equal(q, np.clip(np.rint(x / np.float32(0.01)), -128, 127).astype(np.int8))


@pytest.mark.parametrize("call, error, message", [
    (lambda c: qcore.quantize(MLP, c, weight_bitz=4), TypeError, "weight_bitz"),
    (lambda c: qcore.quantize(MLP, {"input": c, "other": c[:5]}), ValueError, "different numbers of samples"),
    (lambda c: qcore.quantize("missing.onnx", c), qcore.FileError, "missing.onnx"),
    (lambda c: qcore.quantize(MLP, c[:, :100]), qcore.QcoreError, "784"),
    (lambda c: qcore.quantize(MLP, c, method="adaround"), ValueError, "adaround"),
])
def test_bad_input_is_named(calib, call, error, message):
    with pytest.raises(error, match=message):
        call(calib)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("draw, points", [
    ("accuracy_vs_bytes", [("OPTQ", 538152, 0.893), ("OPTQ", 270000, 0.887), ("OPTQ", 136000, 0.80),
                           ("RTN", 270000, 0.85), ("RTN", 538152, 0.889)]),
    ("accuracy_vs_accumulator_bits", [("OPTQ+AXE", 14, 0.70), ("OPTQ+AXE", 16, 0.885), ("OPTQ+AXE", 20, 0.889),
                                      ("RTN+AXE", 16, 0.80)]),
])
def test_plots_write_a_png_of_the_asked_size(tmp_path, draw, points):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    path = tmp_path / "plot.png"
    assert getattr(qcore.plots, draw)(points, str(path), title="W4A8", reference=0.894, size=(5, 3), dpi=80) == str(path)
    assert png_size(path) == (400, 240)
    pixels = matplotlib_image.imread(str(path))[:, :, :3]
    drawn = np.any(pixels < 0.9, axis=2).mean()
    assert 0.02 < drawn < 0.5  # axes, lines and text on a white page
    colored = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max(axis=2) > 0.2
    assert colored.sum() > 100  # the series are drawn in colour; the axes and text are grey
    assert not list(tmp_path.glob("*.tmp"))


def test_search_fronts_draws_each_front_and_checks_its_lengths(tmp_path):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    evaluated = ([270632, 538152, 2140160], [0.8924, 0.8937, 0.8940])
    predicted = type("Front", (), {"cost": np.array([203752, 270632, 538152]), "metric": np.array([0.887, 0.892, 0.894])})
    path = tmp_path / "front.png"
    assert qcore.plots.search_fronts({"evaluated": evaluated, "predicted": predicted}, str(path), reference=0.894,
                                     size=(5, 3), dpi=80) == str(path)
    assert png_size(path) == (400, 240)
    pixels = matplotlib_image.imread(str(path))[:, :, :3]
    colored = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).max(axis=2) > 0.2
    assert colored.sum() > 100
    with pytest.raises(ValueError, match="front 'x' has 2 costs and 1 metrics"):
        qcore.plots.search_fronts({"x": ([1, 2], [0.5])}, str(tmp_path / "bad.png"))
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("points, message", [
    ([], "no points"),
    ([("a", 0, 0.5)], "finite positive"),
    ([("a", 10, float("nan"))], "accuracy nan"),
    ([("a", 10)], "expected \\(label, x, accuracy\\)"),
])
def test_plots_refuse_bad_points_and_write_nothing(tmp_path, points, message):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=message):
        qcore.plots.accuracy_vs_bytes(points, str(tmp_path / "plot.png"))
    assert not list(tmp_path.iterdir())


def test_import_qcore_does_not_load_matplotlib():
    code = "import sys, qcore; assert 'matplotlib' not in sys.modules; qcore.plots; assert 'matplotlib' not in sys.modules"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert run.returncode == 0, run.stderr
