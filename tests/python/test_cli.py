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


@pytest.mark.parametrize("args, code, message", [
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
    for command in ("quantize", "eval", "inspect", "pack-ethosu"):
        run = qcore_tool(command, "--help")
        assert run.returncode == 0 and "usage: qcore " + command in run.stdout
    run = qcore_tool("inspect", MLP)
    assert run.returncode == 0 and "fc2.weight" in run.stdout and "Gemm 3" in run.stdout


def vela_streams(path, config):
    """Vela's layer streams for every Gemm of a `qcore quantize` W8A8 model, from the integers numpy reads:
    weights minus zero points in OHWI, bias 0 (the float bias is not an int32 initializer) and Vela's
    quantise_scale of the weight scale (the Gemm's output is not read by a QuantizeLinear)."""
    from ethosu.vela.scaling import quantise_scale
    from ethosu_oracle import vela_layer
    proto = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    dq = {n.output[0]: n.input for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init}
    streams = []
    for node in (n for n in proto.graph.node if n.op_type == "Gemm"):
        q, s, z = (init[name] for name in dq[node.input[1]])
        ohwi = (q.astype(np.int16) - z.astype(np.int16)[:, None])[:, None, None, :]
        scales = [quantise_scale(float(v)) for v in s]
        stream, ranges = vela_layer(ohwi, np.zeros(len(s)), scales, config, 16, False, False, 8, (1, 1), 0)
        streams.append((node.name, ohwi.size, sum(r[5] for r in ranges), 10 * len(s), stream))
    return streams


@pytest.fixture(scope="module")
def w8a8(data, tmp_path_factory):
    d, _ = data
    out = tmp_path_factory.mktemp("w8a8") / "mlp_w8a8.onnx"
    run = qcore_tool("quantize", MLP, "-o", out, "--data", "input=%s" % (d / "calib.npy"), "--input-scale", 1 / 255,
                     "--samples", 128, "--method", "rtn", "--weight-bits", 8, "--act-bits", 8, "-q")
    assert run.returncode == 0, run.stderr
    return out


@pytest.mark.parametrize("config", ["ethos-u55-128", "ethos-u65-512"])
def test_pack_ethosu_streams_and_totals_equal_vela(w8a8, tmp_path, config):
    pytest.importorskip("ethosu.vela.weight_compressor")
    bin_, report = tmp_path / "streams.bin", tmp_path / "pack.json"
    run = qcore_tool("pack-ethosu", w8a8, "--config", config, "-o", bin_, "--json", report)
    assert run.returncode == 0, run.stderr
    vela = vela_streams(w8a8, config)
    assert bin_.read_bytes() == b"".join(v[4] for v in vela)
    written = json.loads(report.read_text())
    assert [(l["node"], l["original_bytes"], l["weight_bytes"], l["scale_bytes"], l["stream_bytes"])
            for l in written["layers"]] == [v[:4] + (len(v[4]),) for v in vela]
    assert [l["offset"] for l in written["layers"]] == list(np.cumsum([0] + [len(v[4]) for v in vela[:-1]]))
    total = written["total"]
    assert (total["original_bytes"], total["weight_bytes"], total["scale_bytes"]) == tuple(
        sum(v[k] for v in vela) for k in (1, 2, 3))
    python = qcore.ethosu_pack_model(qcore.Model(str(w8a8)), config=config)
    assert total["stream_bytes"] == sum(l.stream_bytes for l in python) == bin_.stat().st_size
    last = [line.split() for line in run.stdout.splitlines() if line.startswith("total")][0]
    assert [int(v) for v in last[1:]] == [total["original_bytes"], total["weight_bytes"], total["scale_bytes"]]


@pytest.mark.parametrize("args, code, message", [
    (["pack-ethosu", "missing.onnx", "-o", "{out}", "--json", "{json}"], 3, "missing.onnx"),
    (["pack-ethosu", MLP, "-o", "{out}", "--json", "{json}"], 1, "no quantized layers"),
    (["pack-ethosu", "{model}", "--config", "ethos-u99-1", "-o", "{out}", "--json", "{json}"], 2, "ethos-u99-1"),
    (["pack-ethosu", "{model}", "--ifm-bits", "12", "-o", "{out}", "--json", "{json}"], 2, "--ifm-bits"),
    (["pack-ethosu", "{model}", "-o", "/nonexistent/dir/s.bin", "--json", "{json}"], 1, "/nonexistent/dir"),
    (["pack-ethosu", "{model}", "-o", "{out}", "--json", "/nonexistent/dir/r.json"], 1, "/nonexistent/dir"),
])
def test_pack_ethosu_bad_input_leaves_no_output(w8a8, tmp_path, args, code, message):
    out, report = tmp_path / "s.bin", tmp_path / "r.json"
    run = qcore_tool(*[a.format(out=out, json=report, model=w8a8) for a in args])
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert not out.exists() and not report.exists() and not list(tmp_path.glob("*.tmp*"))
