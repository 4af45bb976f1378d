"""Evidence: partial quantization on the project's MNIST and Fashion-MNIST MLPs and CNNs (issue 5). Every linear layer
is quantized at W3A4 (3-bit per-channel weights, 4-bit per-tensor activations, OPTQ from 1,024 training
images, layers in sequence) except the k most sensitive ones, kept in float; sensitivity is each layer's
accuracy loss when it alone is quantized. With and without a Haar-random rotation fused online at
the input of every fully-connected layer (qcore.Model.rotate_input; convolutions are not rotated, and the
rotation MatMuls stay in float). Accuracy on the 10,000 test images against the bytes of the linear
layers' weights (quantized: integers and scales; kept: float32). (Haar rather than Hadamard: 784 and 1568,
the widths of these inputs, are not K * 2^k for a Hadamard order K qcore builds.)

Writes benchmarks/results/partial_quantization.json and partial_quantization.png.
Usage: python benchmarks/partial_quantization.py [--datasets mnist,fashion]
"""
import argparse
import os
import sys

import numpy as np

import qcore

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
from axe_accuracy import digits  # noqa: E402
NETS = (("mlp", (784,)), ("cnn", (1, 28, 28)))
TITLES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}

WEIGHTS = qcore.QuantOptions(bits=3, granularity="channel", axis=0)
ACT_BITS = 4


def rotated(path, seed):
    """The model with a Haar-random rotation online at every Gemm/MatMul input (seed None: none),
    and the rotations' weight names (kept in float)."""
    model = qcore.Model(path)
    before = set(model.initializer_names())
    if seed is not None:
        widths = {l["node"]: l["in_features"] for l in qcore.Pipeline(model).layers if l["op_type"] != "Conv"}
        for layer, width in widths.items():
            model.rotate_input(layer, qcore.random_orthogonal(width, stream=seed))
    return model, tuple(n for n in model.initializer_names() if n not in before)


def curve(model, online, batches, evaluate):
    p = qcore.Pipeline(model)
    for b in batches:
        p.add_batch(b)
    layers = [l["weight"] for l in p.layers if l["weight"] not in online]
    loss = {}
    full = evaluate(model)
    for w in layers:  # sensitivity: quantize this layer alone
        q, _ = p.run(qcore.Recipe(weights=WEIGHTS, activation_bits=ACT_BITS,
                                  keep_float=online + tuple(x for x in layers if x != w)))
        loss[w] = full - evaluate(q)
    order = sorted(layers, key=lambda w: -loss[w])
    points = []
    for k in range(len(layers) + 1):
        q, rep = p.run(qcore.Recipe(weights=WEIGHTS, activation_bits=ACT_BITS, keep_float=online + tuple(order[:k])))
        points.append({"kept_in_float": order[:k], "bytes": sum(r.weight_bytes for r in rep if r.weight not in online),
                       "accuracy": evaluate(q)})
        print("  k=%d bytes=%d accuracy=%.4f" % (k, points[-1]["bytes"], points[-1]["accuracy"]), flush=True)
    return {"float_accuracy": full, "sensitivity": loss, "points": points}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="mnist,fashion")
    datasets = parser.parse_args().datasets.split(",")
    result = {"format": "W3A4 OPTQ (per-channel weights, per-tensor activations)", "machine": report.machine(qcore),
              "datasets": datasets}
    for dataset in datasets:
        for name, shape in NETS:
            batches, evaluate = digits(dataset, shape)
            path = os.path.join(ROOT, "tests", "data", "models", "%s_%s.onnx" % (dataset, name))
            for label, seed in (("none", None), ("haar", 7)):
                print(dataset, name, label, flush=True)
                model, online = rotated(path, seed)
                result["%s/%s/%s" % (dataset, name, label)] = curve(model, online, batches, evaluate)
    report.write_json("partial_quantization.json", result)
    plot(result)


def plot(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = result["datasets"]
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 4 * len(datasets)), squeeze=False)
    for row, dataset in zip(axes, datasets):
        for ax, (name, _) in zip(row, NETS):
            key = "%s/%s/" % (dataset, name)
            for label, style in (("none", "C0-o"), ("haar", "C1-s")):
                c = result[key + label]
                ax.plot([p["bytes"] / 1e3 for p in c["points"]], [p["accuracy"] for p in c["points"]], style,
                        label=label)
            ax.axhline(result[key + "none"]["float_accuracy"], color="grey", lw=0.8, label="float")
            ax.set_title("%s %s, W3A4 OPTQ, most sensitive layers kept in float" % (TITLES[dataset], name.upper()),
                         fontsize=9)
            ax.set_xlabel("linear-layer weight bytes (kB)")
            ax.set_ylabel("test accuracy")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(report.RESULTS, "partial_quantization.png"), dpi=110)


if __name__ == "__main__":
    main()
