"""The main job on the two sequence models: all-MiniLM-L6-v2 (build/models/minilm.onnx, exported by
scripts/setup) and Silero VAD (silero_vad_16k_sequence.onnx from the silero-vad wheel), quantized by the
`qcore` command-line tool under several recipes. Data from scripts/models/make_cli_data.py: MiniLM is
calibrated on 64 sentences of tests/data/text/calibration.txt in one pass (--sequential minilm for layer by
layer) and scored on heldout.txt (mean cosine of the sentence
embeddings to the float model's); Silero on the speech clip's frames (agreement of the speech decisions at
0.5 with the float model's, batches of 64 frames). The fidelity `qcore quantize` reports is confirmed by
numpy on onnxruntime's outputs (no graph optimizations: the models' ONNX semantics).
Prints: recipe, weight bytes, fidelity (qcore, onnxruntime), the time `qcore quantize` took (calibration,
quantization, held-out scoring and writing), and the batch-1 latency of qcore's executor on the result
(`qcore eval --latency`, one thread; the float model's on the first row); writes them to --json.

Usage: python examples/python/main_job_minilm_silero.py [--tool build/tools/qcore/qcore] [--out DIR]
       [--models minilm,silero] [--sentences 128] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
MINILM = os.path.join(ROOT, "build", "models", "minilm.onnx")
MINILM_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
RECIPES = [
    ("W8A8 RTN", ["--method", "rtn", "--weight-bits", "8", "--act-bits", "8"]),
    ("W8A8 OPTQ", ["--method", "optq", "--weight-bits", "8", "--act-bits", "8"]),
    ("W4A8 OPTQ", ["--method", "optq", "--weight-bits", "4", "--act-bits", "8"]),
    ("W4A8 GPFQ", ["--method", "gpfq", "--weight-bits", "4", "--act-bits", "8"]),
    ("W4A8 OPTQ+AXE P=20 T=64", ["--method", "optq", "--weight-bits", "4", "--act-bits", "8",
                                 "--accumulator-bits", "20", "--tile", "64"]),
    ("W4A8 OPTQ Hadamard", ["--method", "optq", "--weight-bits", "4", "--act-bits", "8", "--rotation", "hadamard"]),
    ("W4A4 OPTQ Hadamard", ["--method", "optq", "--weight-bits", "4", "--act-bits", "4", "--rotation", "hadamard"]),
]
LATENCY_RUNS = 30
# Silero's linear layers are Convs and an LSTM, which the pipeline does not rotate (the tool refuses a
# rotation that would change nothing): the rotated recipes run on MiniLM only.
ROTATED_ONLY = {"minilm"}


def tool(path, *args):
    run = subprocess.run([path, *map(str, args)], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit("qcore %s failed (exit %d): %s" % (args[0], run.returncode, run.stderr.strip()))
    return run.stdout


def latency_ms(path, eval_flags):
    """qcore's executor, one thread: the median of LATENCY_RUNS batch-1 runs (`qcore eval --latency`)."""
    out = tool(TOOL[0], "eval", path, *eval_flags, "--reference", path, "--samples", "1", "--threads", "1",
               "--latency", LATENCY_RUNS)
    return json.loads(out)["batch1_latency_ms"]


def data_flags(flags):
    """The held-out --eval-data of a quantize command line as qcore eval's --data."""
    return [x for k, f in enumerate(flags[:-1]) if f == "--eval-data" for x in ("--data", flags[k + 1])]


TOOL = [None]


def onnxruntime(path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def minilm(data, sequential):
    feeds = {n: np.load(os.path.join(data, "minilm_heldout_%s.npy" % n)) for n in MINILM_INPUTS}

    def fidelity(quantized):
        a, b = (onnxruntime(p).run(["sentence_embedding"], feeds)[0] for p in (quantized, MINILM))
        return float(np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))

    flags = []
    for name in MINILM_INPUTS:
        flags += ["--data", "%s=%s" % (name, os.path.join(data, "minilm_calib_%s.npy" % name)),
                  "--eval-data", "%s=%s" % (name, os.path.join(data, "minilm_heldout_%s.npy" % name))]
    # One pass unless asked: the sequential pipeline re-runs the encoder for each of its 36 layers (W4A8 OPTQ
    # on 64 sentences took 7 minutes on the 2-core development VM).
    flags += [] if sequential else ["--one-pass"]
    return MINILM, flags + ["--eval-output", "sentence_embedding", "--metric", "cosine", "--samples", "64"], fidelity


def silero(data, sequential):
    import silero_vad
    model = os.path.join(os.path.dirname(silero_vad.__file__), "data", "silero_vad_16k_sequence.onnx")
    frames, state = np.load(os.path.join(data, "silero_frames.npy")), np.zeros((1, 1, 128), np.float32)

    def fidelity(quantized):
        a, b = ([s.run(["speech_probs"], {"input": frames[k:k + 64], "h": state, "c": state})[0]
                 for k in range(0, len(frames), 64)] for s in (onnxruntime(quantized), onnxruntime(model)))
        return float(np.mean((np.concatenate(a) > 0.5) == (np.concatenate(b) > 0.5)))

    flags = []
    for spec in ("input=silero_frames", "h=silero_h", "c=silero_c"):
        name, file = spec.split("=")
        flags += ["--data", "%s=%s.npy" % (name, os.path.join(data, file)),
                  "--eval-data", "%s=%s.npy" % (name, os.path.join(data, file))]
    return model, flags + ["--metric", "agreement", "--batch", "64"] + ([] if sequential else ["--one-pass"]), fidelity


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default=os.path.join(ROOT, "build", "tools", "qcore", "qcore"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "main_job_minilm_silero"))
    ap.add_argument("--models", default="minilm,silero")
    ap.add_argument("--sentences", type=int, default=128, help="MiniLM sentences per split (64 calibrate)")
    ap.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "main_job_minilm_silero.json"))
    ap.add_argument("--sequential", default="silero", help="models quantized layer by layer in sequence (the "
                    "others in one pass)")
    args = ap.parse_args()
    data = os.path.join(args.out, "data")
    os.makedirs(data, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "models", "make_cli_data.py"), data, "--sentences",
                    str(args.sentences)], check=True, capture_output=True)
    TOOL[0] = args.tool
    rows, started = [], time.time()
    for name in args.models.split(","):
        source, flags, fidelity = {"minilm": minilm, "silero": silero}[name](data, name in args.sequential.split(","))
        eval_flags = data_flags(flags)
        rows.append((name, "fp32", 0, "-", 1.0, 1.0, 0.0, latency_ms(source, eval_flags)))
        for k, (label, recipe) in enumerate(RECIPES):
            if "--rotation" in recipe and name not in ROTATED_ONLY:
                continue
            out = os.path.join(args.out, "%s_%d.onnx" % (name, k))
            report = out.replace(".onnx", ".json")
            start = time.time()
            tool(args.tool, "quantize", source, "-o", out, "--report", report, "--quiet", *flags, *recipe)
            seconds = time.time() - start
            with open(report) as f:
                written = json.load(f)
            weight_bytes = sum(layer["bytes"] for layer in written["layers"])
            heldout = written["heldout"]
            rows.append((name, label, weight_bytes, heldout["metric"], heldout["fidelity"], fidelity(out), seconds,
                         latency_ms(out, eval_flags)))
            print("%s %s done in %.1f s" % (name, label, seconds), file=sys.stderr)
    print("\n%-7s %-26s %12s %-10s %9s %9s %10s %10s" % ("model", "recipe", "bytes", "metric", "qcore", "onnxrt",
                                                        "quant. s", "b1 ms"))
    for row in rows:
        print("%-7s %-26s %12d %-10s %9.4f %9.4f %10.1f %10.3f" % row)
    whole = time.time() - started
    print("\nbytes: the linear layers' weights with their scales; MiniLM: %d held-out sentences; Silero: the clip's "
          "frames; b1 ms: batch-1 latency in qcore's executor, one thread; whole run %.0f s; models and reports in %s"
          % (args.sentences, whole, args.out))
    keys = ("model", "recipe", "bytes", "metric", "fidelity_qcore", "fidelity_onnxruntime", "quantize_seconds",
            "batch1_latency_ms")
    with open(args.json + ".tmp", "w") as f:
        json.dump({"example": "main_job_minilm_silero", "sentences": args.sentences, "whole_run_seconds": whole,
                   "load_average_after": list(os.getloadavg()), "rows": [dict(zip(keys, r)) for r in rows]}, f, indent=1)
    os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
