"""qcore search --lq-bits and qcore quantize --lq-layer: LQ candidates in the front, the emitted recipe's
lq-layer lines and their round trip through qcore quantize --recipe (bytes and metric of the point,
measured again by qcore eval and onnxruntime + numpy)."""
import json

import numpy as np
import pytest

from test_cli import (LABELS, MLP, TEST_IMAGES, EVAL_SAMPLES, data, ort_logits, pytestmark, qcore_tool,  # noqa: F401
                      search_args, search_data)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

SHAPES = {"fc1.weight": (512, 784), "fc2.weight": (256, 512), "fc3.weight": (10, 256)}


def lq_bytes(weight, k):
    out, n = SHAPES[weight]
    return out * (k * -(-n // 8) + 4 * k)


def test_search_lq_bits_front_and_recipe_round_trip(search_data, tmp_path):
    d, x, y = search_data
    front_file, recipe = tmp_path / "front.json", tmp_path / "r.txt"
    run = qcore_tool(*search_args(d, front_file, "--lq-bits", "2,1", "--emit-recipe", recipe, "--pick", 0))
    assert run.returncode == 0, run.stderr
    result = json.loads(front_file.read_text())
    assert result["lq_bits"] == [2, 1]
    for layer in result["layers"]:
        lq = [c for c in layer["candidates"] if c["lq"]]
        assert [c["bits"] for c in lq] == [2, 1] and len(layer["candidates"]) == 6
        assert [c["bytes"] for c in lq] == [lq_bytes(layer["weight"], 2), lq_bytes(layer["weight"], 1)]
        assert all(c["ethosu_bytes"] == 0 for c in lq)
    point = result["front"][0]
    assert point["lq"], "the cheapest point of this search has LQ layers (1-bit LQ is the smallest candidate)"
    text = recipe.read_text()
    for weight, k in point["lq"].items():
        assert "lq-layer = %s=%d\n" % (weight, k) in text
        assert point["bits"][weight] == k
    model, report = tmp_path / "q.onnx", tmp_path / "q.json"
    q = qcore_tool("quantize", MLP, "--recipe", recipe, "--data", "input=%s" % (d / "calib.npy"), "-o", model,
                   "--report", report)
    assert q.returncode == 0, q.stderr
    layers = json.loads(report.read_text())["layers"]
    assert {l["weight"]: l["weight_bits"] for l in layers if l.get("lq")} == point["lq"]
    assert sum(l["bytes"] for l in layers) == point["bytes"] == point["cost"]
    for weight, k in point["lq"].items():
        assert "lq%d" % k in next(line for line in q.stdout.splitlines() if line.startswith(weight))
    ev = qcore_tool("eval", model, "--data", "input=%s" % TEST_IMAGES, "--samples", EVAL_SAMPLES, "--input-scale",
                    1 / 255, "--labels", LABELS)
    assert ev.returncode == 0, ev.stderr
    assert point["metric"] == pytest.approx(json.loads(ev.stdout)["accuracy"], abs=1e-6)
    assert point["metric"] == pytest.approx(np.mean(ort_logits(model, x).argmax(1) == y), abs=1.5 / EVAL_SAMPLES)


@pytest.mark.parametrize("args, code, message", [
    (["--lq-bits", "5"], 2, "--lq-bits"),
    (["--lq-bits", "0"], 2, "--lq-bits"),
    (["--lq-bits", "2,2"], 2, "option 'lq_bits': 2 is given twice"),
    (["--lq-layer", "fc1.weight=2"], 2, "--lq-layer are quantize's"),
    (["--lq-bits", "2", "--accumulator-bits", "16"], 2, "LQ levels are not integers"),
])
def test_search_bad_lq_bits_leave_no_output(search_data, tmp_path, args, code, message):
    d, _, _ = search_data
    out = tmp_path / "front.json"
    run = qcore_tool(*search_args(d, out, *args))
    assert run.returncode == code, run.stderr
    assert message in run.stderr and not out.exists()


@pytest.mark.parametrize("args, code, message", [
    (["--lq-layer", "fc1.weight=5"], 2, "--lq-layer"),
    (["--lq-layer", "fc1.weight"], 2, "--lq-layer takes WEIGHT=BITS"),
    (["--lq-layer", "nope=2"], 2, "'lq_layers': entry 0 ('nope') is no layer's weight"),
    (["--lq-layer", "fc1.weight=2", "--layer-bits", "fc1.weight=4"], 2, "both in layer_formats and in lq_layers"),
    (["--lq-layer", "fc1.weight=2", "--lq-layer", "fc1.weight=3"], 2, "'fc1.weight' is named twice"),
])
def test_quantize_bad_lq_layers_leave_no_output(data, tmp_path, args, code, message):
    d, _ = data
    out = tmp_path / "out.onnx"
    run = qcore_tool("quantize", MLP, "-o", out, "--data", "input=%s" % (d / "calib.npy"), "--samples", 64, "-q", *args)
    assert run.returncode in (code, 1) and run.returncode != 0, run.stderr
    assert message in run.stderr and not out.exists()
