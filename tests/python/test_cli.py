"""The qcore command-line tool (tools/qcore). Oracles: the Python pipeline on the same data and recipe (the
same integers), onnxruntime running what the tool wrote (accuracy recomputed with numpy), and the
contract for bad input: a message, the documented exit code, and no output file left behind."""
import json
import os
import subprocess

import numpy as np
import pytest

import qcore
from gpxq_layers import images

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

TOOL = os.environ.get("QCORE_TOOL")
pytestmark = pytest.mark.skipif(not TOOL, reason="QCORE_TOOL (the built tool) is set by meson test only")
MLP = os.path.join(os.path.dirname(__file__), "..", "data", "models", "fashion_mlp.onnx")
LABELS = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"


def qcore_tool(*args):
    return subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    x = images()[:512]
    np.save(d / "calib.npy", (x * 255).round().astype(np.uint8).reshape(-1, 28, 28))  # raw pixels, as IDX ships
    return d, x


def integers(path):
    proto = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return {n.output[0]: init[n.input[0]] for n in proto.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in init and n.output[0].endswith(".weight")}


def test_quantize_writes_what_the_python_pipeline_gives(data, tmp_path):
    d, x = data
    out, report = tmp_path / "q.onnx", tmp_path / "q.json"
    run = qcore_tool("quantize", MLP, "-o", out, "--data", "input=%s" % (d / "calib.npy"), "--input-scale",
                     1 / 255, "--samples", 384, "--batch", 128, "--weight-bits", 4, "--act-bits", 8,
                     "--accumulator-bits", 18, "--tile", 64, "--report", report, "--quiet")
    assert run.returncode == 0, run.stderr
    p = qcore.Pipeline(qcore.Model(MLP))
    for k in range(0, 384, 128):
        p.add_batch({"input": np.ascontiguousarray(x[k:k + 128])})
    expected, layers = p.run(qcore.Recipe(weights=qcore.QuantOptions(bits=4, granularity="channel", axis=0),
                                          activation_bits=8, gpxq=qcore.GpxqOptions(accumulator_bits=18, tile_size=64)))
    tmp = tmp_path / "expected.onnx"
    expected.save(str(tmp))
    have, want = integers(out), integers(tmp)
    assert sorted(have) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    for name in want:
        np.testing.assert_array_equal(have[name], want[name])
    written = json.loads(report.read_text())
    assert [l["overflow_events"] for l in written["layers"]] == [0, 0, 0]
    assert [l["accumulator_bits_needed"] for l in written["layers"]] == [l.accumulator_bits for l in layers]
    assert "fc1.weight" in run.stdout and "smaller" in run.stdout


def test_eval_accuracy_equals_onnxruntime_with_numpy(data, tmp_path):
    d, _ = data
    test = images()[:1000]  # the MLP's pixels/255, saved as float so that no scaling is involved
    np.save(tmp_path / "test.npy", test)
    labels = qcore.load_array(LABELS)[:1000].astype(np.int64)
    np.save(tmp_path / "labels.npy", labels)
    run = qcore_tool("eval", MLP, "--data", "input=%s" % (tmp_path / "test.npy"), "--labels", tmp_path / "labels.npy",
                     "--reference", MLP, "--batch", 300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    logits = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"]).run(None, {"input": test})[0]
    assert result["samples"] == 1000
    assert abs(result["accuracy"] - np.mean(logits.argmax(1) == labels)) <= 0.002  # argmax ties within float noise
    assert result["mean_cosine"] == pytest.approx(1.0, abs=1e-6) and result["max_abs_diff"] == 0


def test_recipe_file_equals_flags_and_flags_override_it(data, tmp_path):
    d, _ = data
    recipe = tmp_path / "r.txt"
    recipe.write_text("# W4A8 OPTQ\nweight-bits = 4\nact-bits = 8\nmethod = rtn\none-pass\n")
    common = ["--data", "input=%s" % (d / "calib.npy"), "--input-scale", 1 / 255, "--samples", 256, "-q"]
    a = qcore_tool("quantize", MLP, "-o", tmp_path / "a.onnx", "--recipe", recipe, "--method", "optq", *common)
    b = qcore_tool("quantize", MLP, "-o", tmp_path / "b.onnx", "--weight-bits", 4, "--act-bits", 8, "--one-pass", *common)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    for name, levels in integers(tmp_path / "a.onnx").items():
        np.testing.assert_array_equal(levels, integers(tmp_path / "b.onnx")[name])


def test_layer_bits_give_the_python_pipeline_mixed_precision(data, tmp_path):
    """--layer-bits (flags and recipe file) against qcore.Recipe(layer_bits=...) on the same batches."""
    d, x = data
    recipe = tmp_path / "mixed.txt"
    recipe.write_text("method = rtn\nlayer-bits = fc1.weight=3\nlayer-bits = fc2.weight=0\n")
    run = qcore_tool("quantize", MLP, "-o", tmp_path / "q.onnx", "--recipe", recipe, "--layer-bits", "fc3.weight=5",
                     "--data", "input=%s" % (d / "calib.npy"), "--input-scale", 1 / 255, "--samples", 128,
                     "--batch", 128, "--report", tmp_path / "q.json", "-q")
    assert run.returncode == 0, run.stderr
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(x[:128])})
    expected, _ = p.run(qcore.Recipe(method="rtn", layer_bits={"fc1.weight": 3, "fc2.weight": 0, "fc3.weight": 5}))
    expected.save(str(tmp_path / "expected.onnx"))
    have, want = integers(tmp_path / "q.onnx"), integers(tmp_path / "expected.onnx")
    assert sorted(have) == ["fc1.weight", "fc3.weight"]
    for name in want:
        np.testing.assert_array_equal(have[name], want[name])
    layers = json.loads((tmp_path / "q.json").read_text())["layers"]
    assert [(l["quantized"], l.get("weight_bits"), l["input_bits"]) for l in layers] == [
        (True, 3, 8), (False, None, 8), (True, 5, 8)]


@pytest.mark.parametrize("args, code, message", [
    (["quantize", MLP, "-o", "{out}", "--data", "input={calib}", "--layer-bits", "fc1.weight"], 2, "WEIGHT=BITS"),
    (["quantize", MLP, "-o", "{out}", "--data", "input={calib}", "--layer-bits", "fc1.weight=1"], 2, "weight_bits 1"),
    (["quantize", "missing.onnx", "-o", "{out}", "--data", "input={calib}"], 3, "missing.onnx"),
    (["quantize", MLP, "-o", "{out}", "--data", "input=/nonexistent.npy"], 3, "nonexistent"),
    (["quantize", MLP, "-o", "{out}", "--data", "pixels={calib}"], 2, "no graph input 'pixels'"),
    (["quantize", MLP, "-o", "{out}", "--data", "input={calib}", "--weight-bits", "40"], 2, "--weight-bits"),
    (["quantize", MLP, "-o", "{out}", "--data", "input={calib}", "--act-bits", "0", "--accumulator-bits", "16"], 2,
     "needs activation_bits"),
    (["quantize", MLP, "-o", "{out}", "--data", "input={calib}", "--keep-float", "fc9.weight"], 2, "fc9.weight"),
    (["quantize", MLP, "-o", "{out}", "--data", "input={bad}"], 3, "qc_array"),
    (["quantize", MLP, "--data", "input={calib}"], 2, "-o"),
    (["frobnicate"], 2, "unknown command"),
])
def test_bad_input_gets_a_message_an_exit_code_and_no_output(data, tmp_path, args, code, message):
    d, _ = data
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    out = tmp_path / "out.onnx"
    fill = dict(out=out, calib=d / "calib.npy", bad=tmp_path / "bad.npy")
    run = qcore_tool(*[a.format(**fill) for a in args])
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_help_and_inspect():
    assert qcore_tool("--help").returncode == 0
    for command in ("quantize", "eval", "inspect"):
        run = qcore_tool(command, "--help")
        assert run.returncode == 0 and "usage: qcore " + command in run.stdout
    run = qcore_tool("inspect", MLP)
    assert run.returncode == 0 and "fc2.weight" in run.stdout and "Gemm 3" in run.stdout
