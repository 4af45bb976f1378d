"""Rotation as a per-layer search dimension (issue 8: candidates "with or without rotation"): the hypervolume
of qcore's (bytes, cosine) front on all-MiniLM-L6-v2 (or (bytes, accuracy) on the Fashion-MNIST MLP, --model
mlp), weight-only (activations float) or with N-bit activations (--act-bits N), over three spaces:
  none      no rotation (widths 0, 8, 6, 4, 3, 2 per layer)
  rotated   the recipe's Hadamard rotation on every layer (the same widths, all rotated)
  choice    the rotated recipe with rotation_choice: each layer rotated online also has unrotated twins
            of its integer widths (11 candidates per layer)
Everything else as benchmarks/search_accuracy.py's MiniLM setup (64 calibration sentences, 32 held-out
sentences in 4 batches, one-pass OPTQ, the model_scaled proxy on the first evaluation batch; --proxy-data
calibration: on every calibration batch, as before libqcore-onnx 1.6) or search_lq.py's MLP setup (512
calibration images, accuracy on 2000 test images); one reference point for all three (the unrotated all-8-bit bytes,
the float metric minus 0.05). qcore's search is deterministic, so one run per budget. Writes
benchmarks/results/search_rotation_choice.json (search_rotation_choice_a8.json for --act-bits 8,
search_rotation_choice_mlp_a8.json for --model mlp --act-bits 8).

Usage: python benchmarks/search_rotation_choice.py [--model minilm|mlp] [--budgets 16,32,64,128] [--seed 0]
       [--act-bits 0] [--proxy-data evaluation|calibration] [--proxy-batches N]
"""
import argparse
import os
import time
from dataclasses import replace

import numpy as np

import qcore
from report import machine, write_json
from search_accuracy import RESULTS, WIDTHS, Evaluator, front_of, hypervolume, minilm, run_library, space_of
from search_lq import FASHION, MODELS, images
from timing import openblas_kernel

SPACES = {"none": dict(rotation="none"), "rotated": dict(rotation="hadamard"),
          "choice": dict(rotation="hadamard", rotation_choice=True)}


def fashion_mlp():
    """search_lq.py's Fashion MLP setup: the pipeline, its recipe, the labelled evaluation batches, the output."""
    model, shape = MODELS["mlp"]
    pipe = qcore.Pipeline(qcore.Model(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "data",
                                                   "models", model)))
    calib = images("train-images-idx3-ubyte.gz", 512, shape)
    for k in range(0, 512, 128):
        pipe.add_batch({"input": calib[k:k + 128]})
    x = images("t10k-images-idx3-ubyte.gz", 2000, shape)
    y = qcore.load_array(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))[:2000].astype(np.int64)
    evaluation = [({"input": x[k:k + 500]}, y[k:k + 500]) for k in range(0, 2000, 500)]
    return pipe, qcore.Recipe(method="optq"), evaluation, None


def make_search(pipe, recipe, output, evaluation, space, args):
    """The space's search with the model_scaled proxy, measured on the first --proxy-batches batches of
    --proxy-data (evaluation: after the batches are added, ModelSearch.measure_proxy)."""
    fields = SPACES[space]
    start = time.perf_counter()
    on_evaluation = args.proxy_data == "evaluation"
    search = qcore.ModelSearch(pipe, replace(recipe, rotation=fields["rotation"]), widths=WIDTHS, output=output,
                               proxy="layer" if on_evaluation else "model_scaled",
                               proxy_batches=0 if on_evaluation else args.proxy_batches,
                               rotation_choice=fields.get("rotation_choice", False))
    for inputs, labels in evaluation:
        search.add_batch(inputs, labels=labels)
    if on_evaluation:
        search.measure_proxy("model_scaled", args.proxy_batches)
    return search, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="16,32,64,128")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--act-bits", type=int, default=0, help="activation bits (0: float activations)")
    ap.add_argument("--model", choices=("minilm", "mlp"), default="minilm")
    ap.add_argument("--proxy-data", choices=("evaluation", "calibration"), default="evaluation",
                    help="the data the model proxy runs on")
    ap.add_argument("--proxy-batches", type=int, help="its batches (default: 1 evaluation batch, or all calibration ones)")
    args = ap.parse_args()
    if args.proxy_batches is None:
        args.proxy_batches = 1 if args.proxy_data == "evaluation" else 0
    budgets = [int(b) for b in args.budgets.split(",")]
    pipe, recipe, evaluation, output = minilm(32)[:4] if args.model == "minilm" else fashion_mlp()
    recipe = replace(recipe, activation_bits=args.act_bits)
    out = {"model": args.model, "widths": WIDTHS, "budgets": budgets, "seed": args.seed, "activation_bits": args.act_bits,
           "proxy_data": args.proxy_data, "proxy_batches": args.proxy_batches, "spaces": {},
           "machine": machine(qcore), "openblas": openblas_kernel()}
    reference = None
    for name in SPACES:
        search, created = make_search(pipe, recipe, output, evaluation, name, args)
        evaluate = Evaluator(search)
        if reference is None:  # from the unrotated space, the first one
            layers = len(search.candidates)
            reference = (float(search.cost([WIDTHS.index(8)] * layers)), evaluate([0] * layers) - 0.05)
            out["reference_point"] = reference
        space = space_of(search, "model")
        rows = {}
        for budget in budgets:
            points, _, own = run_library(space, "qcore", args.seed, budget, evaluate, None, reference, prior_width=0.5)
            front = front_of(points)
            rows[str(budget)] = {"hypervolume": hypervolume(front, reference), "front": front, "search_s": own}
            print("%-8s %4d: %.5g" % (name, budget, rows[str(budget)]["hypervolume"]), flush=True)
        unrotated_layers = sum(1 for row in search.candidates if any(not c.rotated for c in row))
        out["spaces"][name] = {"create_s": created, "candidates_per_layer": [len(row) for row in search.candidates],
                               "layers_with_unrotated_candidates": unrotated_layers, "budgets": rows,
                               "evaluation_s_mean": sum(evaluate.seconds) / max(1, len(evaluate.seconds))}
        del search
    print("hypervolume by budget:", {n: [round(s["budgets"][str(b)]["hypervolume"]) for b in budgets]
                                     for n, s in out["spaces"].items()})
    suffix = ("_mlp" if args.model == "mlp" else "") + ("_a%d" % args.act_bits if args.act_bits else "") + (
        "" if args.proxy_data == "evaluation" else "_calibration_proxy")
    write_json(os.path.join(RESULTS, "search_rotation_choice%s.json" % suffix), out)


if __name__ == "__main__":
    main()
