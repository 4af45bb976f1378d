"""Evidence: rotations in the recipe (qcore.Recipe(rotation=...), issue 9) on all-MiniLM-L6-v2. The
pipeline folds norms and rotates every MatMul input (online rotations stay float) before calibration; this
compares no rotation, Haar and randomized Hadamard at W8A8, W4A8 and W4A4 (RTN and OPTQ, per-channel
weights, min-max per-tensor activations, statistics from one pass over --calibration sentences). Quality:
mean cosine between the quantized and the float model's sentence embeddings on --heldout sentences; the
float cosine of the rotated model checks that the rotation kept the function. Also the Ethos-U U55-128
stream bytes the report gives for W8A8. The gains there are those of the input rotations alone.

With --heads: randomized Hadamard with and without the recipe's per-head V/O rotations (rotate_heads,
recipe version 4) at W4A8 and W4A4 with OPTQ, for each of --seeds, and the float cosine of the model
rotated with heads; writes benchmarks/results/recipe_rotation_heads.json instead.

Writes benchmarks/results/recipe_rotation.json.
Usage: python benchmarks/recipe_rotation.py [--calibration 32] [--heldout 64] [--seed 0] [--heads --seeds 0,1]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import qcore

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
import minilm_tokenizer  # noqa: E402
from rotation_outliers import MINILM, texts  # noqa: E402

FORMATS = (("W8A8", 8, 8), ("W4A8", 4, 8), ("W4A4", 4, 4))


def cosine(model, feeds, reference):
    session = qcore.Session(model)
    e = np.concatenate([session.run(f)["sentence_embedding"] for f in feeds])
    return float(np.mean(np.sum(e * reference, 1) / np.linalg.norm(e, axis=1) / np.linalg.norm(reference, axis=1)))


def heads(p, feeds, reference, args):
    """Hadamard with and without head rotations, W4A8 and W4A4 OPTQ, per seed; ratios with/without."""
    keep = tuple(l["weight"] for l in p.layers)
    result = {"model": "all-MiniLM-L6-v2", "calibration": args.calibration, "heldout": args.heldout, "seeds": {}}
    start = time.time()
    for seed in [int(v) for v in args.seeds.split(",")]:
        row = {}
        rotated, report = p.run(qcore.Recipe(rotation="hadamard", rotation_seed=seed, rotate_heads=True,
                                             keep_float=keep, sequential=False))
        row["float_cosine_with_heads"] = cosine(rotated, feeds, reference)
        row["head_rotated_layers"] = sum(r.heads_rotated is not None for r in report)
        for label, wbits, abits in FORMATS[1:]:
            for with_heads in (False, True):
                recipe = qcore.Recipe(method="optq", weights=qcore.QuantOptions(bits=wbits, granularity="channel", axis=0),
                                      activation_bits=abits, sequential=False, report_rows=64, rotation="hadamard",
                                      rotation_seed=seed, rotate_heads=with_heads)
                key = "%s/optq/hadamard%s" % (label, "+heads" if with_heads else "")
                row[key] = cosine(p.run(recipe)[0], feeds, reference)
                print(seed, key, "%.4f" % row[key], flush=True)
            row["%s/optq/ratio_with_to_without_heads" % label] = row["%s/optq/hadamard+heads" % label] / row["%s/optq/hadamard" % label]
        result["seeds"][seed] = row
    for key in next(iter(result["seeds"].values())):
        values = [row[key] for row in result["seeds"].values()]
        result.setdefault("mean", {})[key] = float(np.mean(values))
        result.setdefault("std", {})[key] = float(np.std(values))
    result["seconds"] = round(time.time() - start, 1)
    result["load_average"] = os.getloadavg()
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "benchmarks", "results", "recipe_rotation_heads.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({"mean": result["mean"], "std": result["std"]}, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calibration", type=int, default=32)
    ap.add_argument("--heldout", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heads", action="store_true", help="hadamard with and without head rotations instead")
    ap.add_argument("--seeds", default="0", help="--heads: comma-separated rotation seeds")
    args = ap.parse_args()
    base = qcore.Model(MINILM)
    cal = texts("calibration.txt", args.calibration)
    held = texts("heldout.txt", args.heldout)
    feeds = [minilm_tokenizer.encode(held[k:k + 32]) for k in range(0, len(held), 32)]
    reference = np.concatenate([qcore.Session(base).run(f)["sentence_embedding"] for f in feeds])
    p = qcore.Pipeline(base)
    for k in range(0, len(cal), 16):
        p.add_batch(minilm_tokenizer.encode(cal[k:k + 16]))
    if args.heads:
        return heads(p, feeds, reference, args)
    keep = tuple(l["weight"] for l in p.layers)
    result = {"model": "all-MiniLM-L6-v2", "calibration": len(cal), "heldout": len(held), "seed": args.seed,
              "kinds": {}}
    start = time.time()
    for kind in ("none", "haar", "hadamard"):
        t = time.time()
        row = {}
        if kind != "none":
            rotated, report = p.run(qcore.Recipe(rotation=kind, rotation_seed=args.seed, keep_float=keep))
            row["float_cosine"] = cosine(rotated, feeds, reference)
            row["rotated_layers"] = sum(r.rotated for r in report)
        for label, wbits, abits in FORMATS:
            for method in ("rtn", "optq"):
                recipe = qcore.Recipe(method=method, weights=qcore.QuantOptions(bits=wbits, granularity="channel", axis=0),
                                      activation_bits=abits, sequential=False, report_rows=64, rotation=kind,
                                      rotation_seed=args.seed, ethosu="ethos-u55-128" if label == "W8A8" else None)
                quantized, report = p.run(recipe)
                row["%s/%s" % (label, method)] = cosine(quantized, feeds, reference)
                if label == "W8A8":
                    row["W8A8/%s/ethosu_stream_bytes" % method] = sum(r.ethosu_stream_bytes for r in report)
                print(kind, label, method, "%.4f" % row["%s/%s" % (label, method)], flush=True)
        row["seconds"] = round(time.time() - t, 1)
        result["kinds"][kind] = row
    result["seconds"] = round(time.time() - start, 1)
    result["load_average"] = os.getloadavg()
    none = result["kinds"]["none"]
    result["ratios_to_none"] = {k: {f: v[f] / none[f] for f in none if "/" in f and "bytes" not in f}
                                for k, v in result["kinds"].items() if k != "none"}
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "benchmarks", "results", "recipe_rotation.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result["ratios_to_none"], indent=1))


if __name__ == "__main__":
    main()
