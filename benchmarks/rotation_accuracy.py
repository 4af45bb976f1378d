"""Evidence: what rotations do for a quantized transformer (issue 5). all-MiniLM-L6-v2 with no rotation,
Haar-random, randomized Hadamard (two sign conventions, below) and Cayley-learned rotations fused online
at every linear layer's input
(qcore.Model.rotate_input; the inserted rotation MatMuls stay in float) and per-head rotations of V and O
(qcore.Model.rotate_heads, Haar or Hadamard as the kind; learned runs use Hadamard heads), then
quantized by qcore's pipeline at W8A8, W4A8 and W4A4 (per-channel symmetric weights, per-tensor
activations at every layer input) with RTN and with OPTQ weights (statistics from one pass over 64
calibration sentences); quality is the mean cosine between the quantized and the float model's sentence
embeddings over 128 held-out sentences. Activation scales (qcore.Recipe.activation_scale): min-max at
every format, and each further scale of --act-scales (default: MSE-optimal clipping) at W4A8 and W4A4;
keys "W4A4/optq" (min-max) and "W4A4/optq/mse".

Randomized Hadamard kinds: "hadamard" is R = H diag(d) / sqrt(n) (qcore.random_hadamard_matrix), so x R
= (x H) diag(d) / sqrt(n): H's all-ones column sums x, and a non-zero mean of x (the 1536-wide GELU
outputs) lands in one coordinate, an outlier that the signs do not remove. "hadamard_ds" is its
transpose diag(d) H^T / sqrt(n): the signs come first, the mean becomes a random-sign vector that H
spreads; it is as exact a rotation and as fast (signs, then the FWHT). Learned rotations: Cayley SGD
(qcore.cayley_run) on the built-in objective (qcore.LinearRotationLoss: the output error of the layers
reading the input under the W4A4 grids the pipeline uses), started at the seed's hadamard_ds matrix, on
the input's calibration rows. "learned_a4": from the same start, Cayley SGD with the adaptive step on
rotation_act_loss's W16A4 objective (the pipeline's MSE-clipped per-tensor activation quantizer, weights
in float since OPTQ quantizes them), 384-wide inputs only. --seeds seeds (the seed picks the rotations); mean and std.

Partial quantization (seed 0 of each kind): the same models at W4A4 with OPTQ and the last of
--act-scales, keeping the k most sensitive layers in float (sensitivity: each layer's output error in
the all-quantized model's report), bytes against cosine.

Writes benchmarks/results/rotation_accuracy.json and rotation_accuracy.png.
Usage: python benchmarks/rotation_accuracy.py [--seeds 5] [--steps 20] [--act-scales minmax,mse] [--no-partial]
       python benchmarks/rotation_accuracy.py --plot-only   (table and PNG from the JSON)
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import qcore

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
RESULTS = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
import minilm_tokenizer  # noqa: E402
from rotation_outliers import MINILM, activations, layer_inputs, texts  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rotation_act_loss import ActivationRotationLoss  # noqa: E402

KINDS = ("none", "haar", "hadamard", "hadamard_ds", "learned", "learned_a4")
FORMATS = (("W8A8", 8, 8), ("W4A8", 4, 8), ("W4A4", 4, 4))
CLIPPED_FORMATS = FORMATS[1:]  # where a scale other than min-max is also measured
HEADS, HEAD_DIM = 12, 32
A4_STEPS, A4_ROWS, A4_EVERY = 50, 1024, 10  # learned_a4: Cayley steps, calibration rows, steps per clip search
KEEP_COUNTS = (0, 1, 2, 4, 8, 12, 18, 24)


def grid(bits):
    return qcore.QuantOptions(bits=bits, granularity="channel", axis=0)


def learned(x, weights, start, steps, ctx):
    """Cayley SGD on the W4A4 output error (per-tensor signed activations, as the pipeline quantizes them)."""
    act = qcore.QuantOptions(bits=4, granularity="tensor")
    objective = qcore.LinearRotationLoss(x, np.ascontiguousarray(np.concatenate(weights)), act, grid(4))
    r, _, _ = qcore.cayley_run(start, objective, steps, qcore.CayleyOptions(lr=0.01, momentum=0.0), ctx=ctx)
    return r.astype(np.float32)


def learned_a4(x, weights, start, ctx, rng):
    """Cayley SGD with the adaptive step (lr 1, so alpha = 1 / ||W||_1) on the W16A4 objective of
    rotation_act_loss (the pipeline's MSE-clipped per-tensor activation quantizer, weights in float as OPTQ
    leaves little weight error), on A4_ROWS of the input's calibration rows drawn by `rng`; the R of least
    loss seen (the adaptive step overshoots on some inputs)."""
    if x.shape[0] > A4_ROWS:
        x = x[np.sort(rng.choice(x.shape[0], A4_ROWS, replace=False))]
    objective = ActivationRotationLoss(x, np.concatenate(weights), bits=4, every=A4_EVERY)
    qcore.cayley_run(start, objective, A4_STEPS, qcore.CayleyOptions(lr=1.0, momentum=0.0), ctx=ctx)
    r = objective.best.astype(np.float32)
    if np.abs(r.T.astype(np.float64) @ r - np.eye(len(r))).max() > 1e-4:  # the adaptive steps can drift off O(n)
        u, _, vt = np.linalg.svd(objective.best)  # (1.75e-4 on seed 3) beyond what rotate_input accepts:
        r = (u @ vt).astype(np.float32)           # then the nearest orthogonal matrix, U V^T
    return r


def rotations(kind, seed, inputs, calibration, steps, ctx):
    """{input value: R} for the kind and seed (learned_a4 learns the 384-wide inputs' rotations only: the
    1536-wide FFN input keeps its Hadamard, whose Cayley steps cost 64 times as much)."""
    out = {}
    rng = np.random.default_rng(0)
    for name, (width, weights) in inputs.items():
        if kind == "haar":
            out[name] = qcore.random_orthogonal(width, stream=1000 + seed, ctx=ctx)
        else:
            h = qcore.random_hadamard_matrix(width, stream=2000 + seed, ctx=ctx)
            h = h if kind == "hadamard" else np.ascontiguousarray(h.T)  # hadamard_ds, and learned's start
            n = steps if width <= 512 else max(1, steps // 4)
            if kind == "learned_a4" and width <= 512:
                h = learned_a4(calibration[name], weights, h.astype(np.float64), ctx, rng)
            out[name] = learned(calibration[name][:512], weights, h.astype(np.float64), n, ctx) if kind == "learned" else h
    return out


def rotated_model(kind, seed, inputs, calibration, steps, ctx):
    """MiniLM with the kind's rotations fused, and the weights of the online rotation MatMuls."""
    model = qcore.Model(MINILM)
    before = set(model.initializer_names())
    if kind != "none":
        rs = rotations(kind, seed, inputs, calibration, steps, ctx)
        nodes = {n.name: n for n in model.nodes}
        for layer in model.linear_layers():
            if layer.endswith("attention/output/dense/MatMul"):
                head = (qcore.random_orthogonal(HEAD_DIM, stream=3000 + seed, ctx=ctx) if kind == "haar" else
                        qcore.random_hadamard_matrix(HEAD_DIM, stream=3000 + seed, ctx=ctx))
                head = head if kind in ("haar", "hadamard") else np.ascontiguousarray(head.T)
                model.rotate_heads(layer, head)
        for layer in model.linear_layers():
            name = nodes[layer].inputs[0] if layer in nodes else None
            if name in rs:
                model.rotate_input(layer, rs[name])
    online = [n for n in model.initializer_names() if n not in before]
    return model, online


def pipeline(model, batches):
    p = qcore.Pipeline(model)
    for b in batches:
        p.add_batch(b)
    return p


def cosine(model, feeds, reference):
    session = qcore.Session(model)
    e = np.concatenate([session.run(f)["sentence_embedding"] for f in feeds])
    return float(np.mean(np.sum(e * reference, 1) / np.linalg.norm(e, axis=1) / np.linalg.norm(reference, axis=1)))


def score_key(label, method, scale):
    return "%s/%s" % (label, method) + ("" if scale == "minmax" else "/" + scale)


def evaluate(model, online, batches, feeds, reference, partial, scales):
    """{format/method[/scale]: cosine} and, when `partial`, the W4A4 OPTQ partial-quantization curve."""
    p = pipeline(model, batches)
    online = tuple(w for w in online if any(l["weight"] == w for l in p.layers))
    out = {}
    for scale in scales:
        for label, wbits, abits in FORMATS if scale == "minmax" else CLIPPED_FORMATS:
            for method in ("optq", "rtn"):
                recipe = qcore.Recipe(method=method, weights=grid(wbits), activation_bits=abits, sequential=False,
                                      keep_float=online, report_rows=64, activation_scale=scale)
                quantized, _ = p.run(recipe)
                out[score_key(label, method, scale)] = cosine(quantized, feeds, reference)
    curve = []
    if not partial:
        return out, curve
    w4a4 = dict(method="optq", weights=grid(4), activation_bits=4, sequential=False, report_rows=64,
                activation_scale=scales[-1])
    _, report = p.run(qcore.Recipe(keep_float=online, **w4a4))
    order = [r.weight for r in sorted((r for r in report if r.quantized), key=lambda r: -r.output_error)]
    for k in KEEP_COUNTS:
        quantized, rep = p.run(qcore.Recipe(keep_float=online + tuple(order[:k]), **w4a4))
        nbytes = sum(r.weight_bytes for r in rep if r.weight not in online)
        curve.append({"kept_in_float": k, "bytes": nbytes, "cosine": cosine(quantized, feeds, reference)})
    return out, curve


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--act-scales", default="minmax,mse", help="activation scales, comma-separated, minmax first")
    ap.add_argument("--no-partial", action="store_true", help="skip the partial-quantization curves")
    ap.add_argument("--kinds", default=",".join(KINDS), help="rotation kinds, comma-separated")
    ap.add_argument("--out", default="rotation_accuracy.json", help="the JSON's name in benchmarks/results")
    ap.add_argument("--plot-only", action="store_true", help="table and PNG from the saved JSON")
    ap.add_argument("--merge", nargs="*", default=[], help="with --plot-only: JSONs of other kinds' runs to add")
    args = ap.parse_args()
    if args.plot_only:
        plot_saved(args)
        return
    args.act_scales = args.act_scales.split(",")
    ctx = qcore.default_context()
    base = qcore.Model(MINILM)
    inputs = layer_inputs(base)
    cal_text, held_text = texts("calibration.txt", 64), texts("heldout.txt", 128)
    calibration = activations(base, inputs, cal_text, minilm_tokenizer, ctx)
    batches = [minilm_tokenizer.encode(cal_text[k:k + 16]) for k in range(0, 64, 16)]
    feeds = [minilm_tokenizer.encode(held_text[k:k + 32]) for k in range(0, len(held_text), 32)]
    reference = np.concatenate([qcore.Session(base).run(f)["sentence_embedding"] for f in feeds])
    runs = []
    start = time.time()
    for kind in args.kinds.split(","):
        for seed in range(1 if kind == "none" else args.seeds):
            t = time.time()
            model, online = rotated_model(kind, seed, inputs, calibration, args.steps, ctx)
            float_cos = cosine(model, feeds, reference)
            scores, curve = evaluate(model, online, batches, feeds, reference, seed == 0 and not args.no_partial,
                                     args.act_scales)
            runs.append({"kind": kind, "seed": seed, "float_cosine": float_cos, "scores": scores, "partial": curve,
                         "seconds": round(time.time() - t, 1)})
            print(kind, seed, "float %.6f" % float_cos, " ".join("%s %.4f" % kv for kv in scores.items()), flush=True)
            save(summarize(runs, args, time.time() - start), args.out)
    result = summarize(runs, args, time.time() - start)
    save(result, args.out)
    plot(result)
    table(result)


def summarize(runs, args, seconds):
    table_ = {}
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        keys = mine[0]["scores"].keys()
        table_[kind] = {k: {"mean": float(np.mean([r["scores"][k] for r in mine])),
                            "std": float(np.std([r["scores"][k] for r in mine]))} for k in keys}
        table_[kind]["partial_w4a4_optq_seed0"] = mine[0]["partial"]
    return {"model": "all-MiniLM-L6-v2", "seeds": args.seeds, "cayley_steps": args.steps,
            "activation_scales": args.act_scales, "partial_scale": args.act_scales[-1], "seconds": round(seconds),
            "load_average": os.getloadavg(), "summary": table_, "runs": runs}


def plot_saved(args):
    """Table and PNG from --out's JSON, with the runs of the --merge JSONs added (runs split over processes)."""
    with open(os.path.join(RESULTS, args.out)) as f:
        result = json.load(f)
    for name in args.merge:
        with open(os.path.join(RESULTS, name)) as f:
            other = json.load(f)
        result["runs"] += other["runs"]
        result["seconds"] += other["seconds"]
    if args.merge:
        args.seeds, args.steps = result["seeds"], result["cayley_steps"]
        args.act_scales = result["activation_scales"]
        result = summarize(result["runs"], args, result["seconds"])
        save(result, args.out)
    plot(result)
    table(result)


def save(result, name):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)


def score_keys(result):
    """The summary's score keys: format, method, then each activation scale (min-max first)."""
    scales = result.get("activation_scales", ["minmax"])
    keys = [score_key(f[0], m, sc) for sc in scales for f in (FORMATS if sc == "minmax" else CLIPPED_FORMATS)
            for m in ("rtn", "optq")]
    first = next(iter(result["summary"].values()))
    return [k for k in keys if k in first]


def table(result):
    kinds = list(result["summary"])
    print("%-16s" % "format" + "".join("%20s" % k for k in kinds))
    for key in score_keys(result):
        print("%-16s" % key + "".join("%12.4f ± %.4f" % (result["summary"][k][key]["mean"], result["summary"][k][key]["std"])
                                      for k in kinds))


def plot(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5))
    keys = score_keys(result)
    x = np.arange(len(keys))
    kinds = list(result["summary"])
    for i, kind in enumerate(kinds):
        s = result["summary"][kind]
        left.errorbar(x + (i - (len(kinds) - 1) / 2) * 0.14, [s[k]["mean"] for k in keys],
                      yerr=[s[k]["std"] for k in keys], fmt="o", ms=4, capsize=2, label=kind)
        curve = s["partial_w4a4_optq_seed0"]
        if curve:
            right.plot([c["bytes"] / 1e6 for c in curve], [c["cosine"] for c in curve], "-o", ms=3, label=kind)
    left.set_xticks(x)
    left.set_xticklabels(keys, rotation=30, fontsize=8)
    left.set_ylabel("cosine to fp32 (held-out sentences)")
    left.legend(fontsize=8)
    right.set_xlabel("linear-layer weight bytes (MB), most sensitive layers kept in float")
    right.set_ylabel("cosine to fp32, W4A4 OPTQ, %s scales (seed 0)" % result.get("partial_scale", "minmax"))
    right.legend(fontsize=8)
    fig.suptitle("all-MiniLM-L6-v2: rotations and partial quantization (mean ± std over %d seeds)" % result["seeds"])
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "rotation_accuracy.png"), dpi=110)


if __name__ == "__main__":
    main()
