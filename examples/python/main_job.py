"""The main job on the bundled default: the project's Fashion-MNIST MLP and CNN (tests/data/models, data
from Debian's dataset-fashion-mnist) quantized by the `qcore` command-line tool under several recipes,
each written as a QDQ ONNX model, scored by `qcore eval` (qcore's executor) and confirmed by onnxruntime
on the 10,000 test images. Prints the table: recipe, weight bytes, accuracy (qcore, onnxruntime),
batch-1 latency of the QDQ model in qcore's executor, and the time `qcore quantize` took.

Usage: python examples/python/main_job.py --tool build/tools/qcore/qcore [--out DIR] [--models mlp,cnn]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
DATA = "/usr/share/datasets/fashion-mnist/"
TRAIN, TEST, LABELS = (DATA + "train-images-idx3-ubyte.gz", DATA + "t10k-images-idx3-ubyte.gz",
                       DATA + "t10k-labels-idx1-ubyte.gz")
PIXEL = str(1 / 255)
RECIPES = [
    ("W8A8 RTN", ["--method", "rtn", "--weight-bits", "8", "--act-bits", "8"]),
    ("W8A8 OPTQ", ["--method", "optq", "--weight-bits", "8", "--act-bits", "8"]),
    ("W4A8 OPTQ", ["--method", "optq", "--weight-bits", "4", "--act-bits", "8"]),
    ("W4A8 OPTQ+AXE, 16-bit accumulator, tiles of 64", ["--weight-bits", "4", "--act-bits", "8",
                                                       "--accumulator-bits", "16", "--tile", "64"]),
    ("W4A4 GPFQ", ["--method", "gpfq", "--weight-bits", "4", "--act-bits", "4"]),
    ("W3A8 OPTQ", ["--method", "optq", "--weight-bits", "3", "--act-bits", "8"]),
]


def tool(path, *args):
    run = subprocess.run([path, *args], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit("qcore %s failed (exit %d): %s" % (args[0], run.returncode, run.stderr.strip()))
    return run.stdout


def evaluate(path, model):
    return json.loads(tool(path, "eval", model, "--data", "input=" + TEST, "--input-scale", PIXEL, "--labels", LABELS,
                           "--latency", "200"))


def onnxruntime_accuracy(model, shape):
    import onnxruntime as ort
    import qcore
    x = (qcore.load_array(TEST).astype(np.float32) / 255).reshape((-1,) + shape)
    labels = qcore.load_array(LABELS).astype(np.int64)
    # onnxruntime's extended optimizations move QuantizeLinear/DequantizeLinear pairs across MaxPool and
    # then reject the 4-bit MaxPool they build (uint4 is not among its types): basic level only.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    logits = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return float(np.mean(logits.argmax(1) == labels))


def float_weight_bytes(model):
    import qcore
    return sum(4 * l["in_features"] * l["out_features"] for l in qcore.Pipeline(qcore.Model(model)).layers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default=os.path.join(ROOT, "build", "tools", "qcore", "qcore"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "main_job"))
    ap.add_argument("--models", default="mlp,cnn")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        source = os.path.join(ROOT, "tests", "data", "models", "fashion_%s.onnx" % name)
        shape = (784,) if name == "mlp" else (1, 28, 28)
        base = evaluate(args.tool, source)
        rows.append((name, "fp32", float_weight_bytes(source), base["accuracy"], onnxruntime_accuracy(source, shape),
                     base["batch1_latency_ms"], 0.0))
        for k, (label, flags) in enumerate(RECIPES):
            out = os.path.join(args.out, "fashion_%s_%d.onnx" % (name, k))
            report = out.replace(".onnx", ".json")
            start = time.time()
            tool(args.tool, "quantize", source, "-o", out, "--data", "input=" + TRAIN, "--input-scale", PIXEL,
                 "--samples", "1024", "--report", report, "--quiet", *flags)
            seconds = time.time() - start
            with open(report) as f:
                weight_bytes = sum(layer["bytes"] for layer in json.load(f)["layers"])
            result = evaluate(args.tool, out)
            rows.append((name, label, weight_bytes, result["accuracy"], onnxruntime_accuracy(out, shape),
                         result["batch1_latency_ms"], seconds))
            print("%s %s done" % (name, label), file=sys.stderr)
    print("\n%-5s %-48s %12s %9s %9s %10s %10s" % ("model", "recipe", "bytes", "qcore", "onnxrt", "lat. ms", "quant. s"))
    for name, label, nbytes, acc, ort_acc, ms, seconds in rows:
        print("%-5s %-48s %12d %9.4f %9.4f %10.3f %10.1f" % (name, label, nbytes, acc, ort_acc, ms, seconds))
    print("\nbytes: the linear layers' weights (float32, or integers with their scales); accuracy on the "
          "10,000 Fashion-MNIST test images;\nlatency: batch 1 in qcore's executor (QDQ models run dequantized in "
          "float); models and reports in %s" % args.out)


if __name__ == "__main__":
    main()
