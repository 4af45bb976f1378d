"""How rotations spread the outliers of a real transformer's activations: all-MiniLM-L6-v2, run by qcore's
executor on held-out English text, with every linear layer's input x measured as it is (none) and as
x R for R a Haar-random orthogonal matrix, a randomized Hadamard matrix, and a rotation learned by Cayley
SGD (qcore.cayley_run on the built-in W4A4 objective of the layers reading x, from calibration text,
started at the randomized Hadamard). R is what qcore.Model.rotate_input fuses online into the model, so
x R is exactly what the rotated model's layers then read.

Per layer input and rotation kind: Pearson kurtosis (3 for a Gaussian), max|x| / RMS, and the SQNR of
4-bit per-token asymmetric quantization, over the non-padding tokens, as mean +- std over five seeds
(the seed picks R; "none" has no seed). Writes benchmarks/results/rotation_metrics.json and
benchmarks/results/rotation_metrics.png, and prints a table.

Usage: python examples/python/rotation_outliers.py [--seeds 5] [--steps 20] [--threads N]
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

import qcore

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
MINILM = os.path.join(ROOT, "build", "models", "minilm.onnx")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
ACT = qcore.QuantOptions(bits=4, signed=False, symmetric=False, granularity="channel", axis=0)
WEIGHT = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
KINDS = ("none", "haar", "hadamard", "learned")


def texts(name, count):
    with open(os.path.join(ROOT, "tests", "data", "text", name), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()][:count]


def layer_inputs(model):
    """{input value: (width, [weights [out, in] of the linear layers reading it])}, in graph order."""
    nodes = {n.name: n for n in model.nodes}
    inputs = {}
    for layer in model.linear_layers():
        node = nodes[layer]
        w = np.ascontiguousarray(np.asarray(model.initializer(node.inputs[1])[2]).T)
        inputs.setdefault(node.inputs[0], (w.shape[1], []))[1].append(w)
    return inputs


def activations(model, names, sentences, tokenizer, ctx):
    """Each value's rows at the non-padding tokens, float32 [tokens, width]."""
    feed = tokenizer.encode(sentences)
    session = qcore.Session(model, ctx)
    for name in names:
        session.capture(name)
    values = session.run(feed)
    keep = feed["attention_mask"].reshape(-1).astype(bool)
    return {name: np.ascontiguousarray(values[name].reshape(keep.size, -1)[keep]) for name in names}


def learned(x, weights, start, steps, ctx):
    """Cayley SGD on the W4A4 output error of the layers reading x (their weights stacked)."""
    objective = qcore.LinearRotationLoss(x, np.ascontiguousarray(np.concatenate(weights)), ACT, WEIGHT)
    r, losses, _ = qcore.cayley_run(start, objective, steps, qcore.CayleyOptions(lr=0.01, momentum=0.0), ctx=ctx)
    return r.astype(np.float32), losses[0], losses[-1]


def metrics(x, ctx):
    m = qcore.outlier_metrics(x, ACT, ctx=ctx)
    return m.kurtosis, m.max_over_rms, m.sqnr_db


def measure(args):
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    import minilm_tokenizer
    ctx = qcore.Context(threads=args.threads)
    model = qcore.Model(MINILM)
    inputs = layer_inputs(model)
    calibration = activations(model, inputs, texts("calibration.txt", 64), minilm_tokenizer, ctx)
    heldout = activations(model, inputs, texts("heldout.txt", 128), minilm_tokenizer, ctx)
    rows = {name: {kind: [] for kind in KINDS} for name in inputs}
    losses = {name: [] for name in inputs}
    for name, x in heldout.items():
        rows[name]["none"].append(metrics(x, ctx))
    for seed in range(args.seeds):
        for name, (width, weights) in inputs.items():
            haar = qcore.random_orthogonal(width, stream=1000 + seed, ctx=ctx)
            hadamard = qcore.random_hadamard_matrix(width, stream=2000 + seed, ctx=ctx)
            steps = args.steps if width <= 512 else max(1, args.steps // 4)
            cal = calibration[name][:args.rows]
            r, first, last = learned(cal, weights, hadamard.astype(np.float64), steps, ctx)
            losses[name].append((first, last, steps))
            x = heldout[name]
            for kind, rotation in (("haar", haar), ("hadamard", hadamard), ("learned", r)):
                rows[name][kind].append(metrics(np.ascontiguousarray(x @ rotation), ctx))
        print("seed %d done" % seed, file=sys.stderr)
    return inputs, rows, losses, {n: x.shape[0] for n, x in heldout.items()}


def summarize(inputs, rows, losses, tokens, args, seconds):
    layers = []
    for name in inputs:
        entry = {"input": name, "width": inputs[name][0], "readers": len(inputs[name][1]), "tokens": tokens[name],
                 "learned_objective_first_last_steps": losses[name]}
        for kind in KINDS:
            values = np.array(rows[name][kind])
            for column, metric in enumerate(("kurtosis", "max_over_rms", "sqnr_a4_db")):
                entry["%s_%s_mean" % (kind, metric)] = float(values[:, column].mean())
                entry["%s_%s_std" % (kind, metric)] = float(values[:, column].std())
        layers.append(entry)
    return {"model": "all-MiniLM-L6-v2", "text": "tests/data/text/heldout.txt (128 lines); learned on "
            "calibration.txt (64 lines, first %d tokens per input)" % args.rows, "seeds": args.seeds,
            "cayley_steps": {"384": args.steps, "1536": max(1, args.steps // 4)},
            "activation_grid": "4-bit per-token asymmetric min-max", "weight_grid": "4-bit per-channel symmetric",
            "machine": platform.node(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
            "threads": args.threads, "seconds": seconds, "layers": layers}


def table(result):
    print("%-58s %5s  %-26s %-26s %-26s %-26s" % ("layer input (metric: kurtosis | max/RMS | SQNR A4 dB)", "width",
                                                  *KINDS))
    for e in result["layers"]:
        cells = []
        for kind in KINDS:
            cells.append("%7.1f|%5.1f|%5.1f" % tuple(e["%s_%s_mean" % (kind, m)]
                                                  for m in ("kurtosis", "max_over_rms", "sqnr_a4_db")))
        print("%-58s %5d  %-26s %-26s %-26s %-26s" % (e["input"][-58:], e["width"], *cells))


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(3, 1, figsize=(12, 10), sharex=True)
    index = np.arange(len(result["layers"]))
    for ax, metric, label in zip(axes, ("kurtosis", "max_over_rms", "sqnr_a4_db"),
                                 ("kurtosis (log)", "max|x| / RMS", "SQNR, A4 per token (dB)")):
        for offset, kind in enumerate(KINDS):
            means = [e["%s_%s_mean" % (kind, metric)] for e in result["layers"]]
            stds = [e["%s_%s_std" % (kind, metric)] for e in result["layers"]]
            ax.errorbar(index + (offset - 1.5) * 0.18, means, yerr=stds, fmt="o", ms=3, capsize=2, label=kind)
        ax.set_ylabel(label)
        if metric == "kurtosis":
            ax.set_yscale("log")
    axes[0].legend(ncol=4)
    axes[-1].set_xticks(index)
    axes[-1].set_xticklabels([e["input"].replace("/bert/encoder/", "").rsplit("/", 1)[0].strip("/")
                              for e in result["layers"]], rotation=90, fontsize=7)
    fig.suptitle("all-MiniLM-L6-v2 linear-layer inputs on held-out text, mean ± std over %d seeds" % result["seeds"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    inputs, rows, losses, tokens = measure(args)
    result = summarize(inputs, rows, losses, tokens, args, time.time() - start)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "rotation_metrics.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot(result, os.path.join(RESULTS, "rotation_metrics.png"))
    table(result)


if __name__ == "__main__":
    main()
