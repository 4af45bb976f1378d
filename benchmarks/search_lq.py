"""LQ candidates in the mixed-precision search: one search's front with and without `lq_bits` at an equal
budget of full evaluations, on the project's Fashion-MNIST MLP and CNN.

Both searches share the pipeline, recipe (one-pass OPTQ, per-channel symmetric weights, 8-bit activations),
calibration (512 training images) and evaluation data (top-1 accuracy on 2000 test images, 4 batches), widths
float/8/6/4/3/2 and the scaled model proxy; the second adds one LQ candidate per K in --lq-bits (weight-only
learned K-bit levels per output channel, QEM; qc_model.h "LQ weights in a recipe"). Reference point: the
all-8-bit bytes and the float model's accuracy minus 0.05. Reported per model and seed: the hypervolume of
each evaluated front (the peer: the same search without LQ candidates), the front points, and how many front
points hold an LQ layer.

Writes benchmarks/results/search_lq.json (or --out).
Usage: python benchmarks/search_lq.py [--models mlp,cnn] [--lq-bits 1,2,3] [--budget 32] [--seeds 3] [--out NAME]
"""
import argparse
import os
import time

import numpy as np

import qcore
from report import machine, write_json

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
FASHION = "/usr/share/datasets/fashion-mnist/"
WIDTHS = (0, 8, 6, 4, 3, 2)
MODELS = {"mlp": ("fashion_mlp.onnx", (-1, 784)), "cnn": ("fashion_cnn.onnx", (-1, 1, 28, 28))}


def images(name, count, shape):
    x = qcore.load_array(os.path.join(FASHION, name))[:count]
    return np.ascontiguousarray((x.astype(np.float32) / 255).reshape(shape))


def make_search(model, shape, lq_bits):
    pipe = qcore.Pipeline(qcore.Model(os.path.join(ROOT, "tests", "data", "models", model)))
    calib = images("train-images-idx3-ubyte.gz", 512, shape)
    for k in range(0, 512, 128):
        pipe.add_batch({"input": calib[k:k + 128]})
    started = time.perf_counter()
    search = qcore.ModelSearch(pipe, qcore.Recipe(method="optq"), widths=WIDTHS, lq_bits=lq_bits)
    created = time.perf_counter() - started
    x = images("t10k-images-idx3-ubyte.gz", 2000, shape)
    y = qcore.load_array(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))[:2000].astype(np.int64)
    for k in range(0, 2000, 500):
        search.add_batch({"input": x[k:k + 500]}, labels=y[k:k + 500])
    return search, created


def label(search, t, c):
    cand = search.candidates[t][c]
    return "lq%d" % cand.lq_bits if cand.lq_bits else ("f" if cand.bits == 0 else str(cand.bits))


def run_model(name, lq_bits, budget, seeds):
    model, shape = MODELS[name]
    out = {}
    for variant, bits in (("widths", ()), ("widths+lq", lq_bits)):
        search, created = make_search(model, shape, bits)
        layers = len(search.candidates)
        ref_cost = search.cost([1] * layers)  # all 8-bit
        ref_metric = search.evaluate([0] * layers) - 0.05
        runs = []
        for seed in range(seeds):
            started = time.perf_counter()
            front = search.run(max_evaluations=budget, seed=seed, reference_cost=ref_cost,
                               reference_metric=ref_metric).front()
            points = [{"bytes": int(c), "accuracy": float(m), "layers": [label(search, t, k) for t, k in enumerate(ch)]}
                      for ch, c, m in zip(front.choices, front.cost, front.metric)]
            runs.append({"seed": seed, "hypervolume": front.hypervolume(ref_cost, ref_metric), "front": points,
                         "lq_points": sum(any(s.startswith("lq") for s in p["layers"]) for p in points),
                         "search_s": time.perf_counter() - started})
        out[variant] = {"lq_bits": list(bits), "candidates_s": created, "reference": [ref_cost, ref_metric], "runs": runs}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--lq-bits", default="1,2,3")
    ap.add_argument("--budget", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="search_lq.json", help="JSON file name in benchmarks/results/")
    args = ap.parse_args()
    lq_bits = tuple(int(b) for b in args.lq_bits.split(","))
    results = {"machine": machine(qcore), "budget": args.budget, "widths": list(WIDTHS), "models": {}}
    print("%-4s %-10s %5s %14s %10s %s" % ("model", "candidates", "seed", "hypervolume", "LQ points", "front (bytes: accuracy layers)"))
    for name in args.models.split(","):
        r = run_model(name, lq_bits, args.budget, args.seeds)
        results["models"][name] = r
        for variant, v in r.items():
            for run in v["runs"]:
                front = ", ".join("%d: %.4f %s" % (p["bytes"], p["accuracy"], "/".join(p["layers"])) for p in run["front"][:4])
                print("%-4s %-10s %5d %14.2f %10d %s ..." % (name, variant, run["seed"], run["hypervolume"], run["lq_points"], front))
        base = np.mean([run["hypervolume"] for run in r["widths"]["runs"]])
        lq = np.mean([run["hypervolume"] for run in r["widths+lq"]["runs"]])
        print("%s: mean hypervolume with LQ / without = %.2f / %.2f = %.3f" % (name, lq, base, lq / base if base else float("nan")))
    write_json(args.out, results)


if __name__ == "__main__":
    main()
