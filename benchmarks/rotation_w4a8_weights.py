"""Evidence: what limits W4A8 on rotated all-MiniLM-L6-v2 (issue 5's goal: within 0.01 cosine of fp32).
The seed-0 signs-first randomized Hadamard model of rotation_accuracy.py (kind hadamard_ds), quantized by
qcore's pipeline with OPTQ from one pass over the 64 calibration sentences, scored by the mean cosine to
the float model's embeddings over the 128 held-out sentences, for: every weight float with 8-bit inputs
(the activation quantizer's own cost), then 4-bit weights per output channel with min-max scales, with
MSE-clipped scales and act-order, and per group of 64 and 32 inputs (MSE scales, act-order), the last
also with MSE-clipped activation scales.

--levers measures instead the further levers tried for the 0.99 goal (groups of 32, MSE scales and
act-order unless a label says otherwise): sequential OPTQ (each layer calibrated on the quantized
layers before it), OPTQ damping 0.1 and 0.001, asymmetric weight grids (groups of 32 and 64, per
channel, min-max scales), GPFQ instead of OPTQ; with --calibration sentences (default 64).

Writes benchmarks/results/rotation_w4a8_weights.json (--levers: rotation_w4a8_levers_calN.json) and prints
a table.
Usage: python benchmarks/rotation_w4a8_weights.py [--levers] [--calibration 64] [--only LABEL_PREFIX,...]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import qcore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rotation_accuracy as ra  # noqa: E402
import minilm_tokenizer  # noqa: E402  (rotation_accuracy put scripts/models on the path)

KIND = "hadamard_ds"


def variants(layers):
    mse, order = dict(scale_method="mse"), qcore.GpxqOptions(act_order=True)
    channel = qcore.QuantOptions(bits=4, granularity="channel", axis=0)
    return [
        ("A8, float weights", dict(layer_bits={w: 0 for w in layers})),
        ("W4A8 per channel, min-max", dict(weights=channel)),
        ("W4A8 per channel, MSE scales, act-order", dict(weights=qcore.QuantOptions(bits=4, granularity="channel", axis=0, **mse),
                                                        gpxq=order)),
        ("W4A8 groups of 64, MSE scales, act-order", dict(weights=qcore.QuantOptions(bits=4, granularity="group", axis=1,
                                                                                     group_size=64, **mse), gpxq=order)),
        ("W4A8 groups of 32, MSE scales, act-order", dict(weights=qcore.QuantOptions(bits=4, granularity="group", axis=1,
                                                                                     group_size=32, **mse), gpxq=order)),
        ("W4A8 groups of 32, MSE scales, act-order, MSE activation scales",
         dict(weights=qcore.QuantOptions(bits=4, granularity="group", axis=1, group_size=32, **mse), gpxq=order,
              activation_scale="mse")),
    ]


def group32(symmetric=True, scale_method="mse", group_size=32):
    granularity = dict(granularity="group", axis=1, group_size=group_size) if group_size else \
        dict(granularity="channel", axis=0)
    return qcore.QuantOptions(bits=4, symmetric=symmetric, scale_method=scale_method, **granularity)


def levers():
    order = qcore.GpxqOptions(act_order=True)
    return [
        ("W4A8 g32 symmetric (rotation_w4a8_weights' best)", dict(weights=group32(), gpxq=order)),
        ("W4A8 g32 symmetric, sequential", dict(weights=group32(), gpxq=order, sequential=True)),
        ("W4A8 g32 symmetric, damping 0.1", dict(weights=group32(), gpxq=qcore.GpxqOptions(act_order=True,
                                                                                         damp_ratio=0.1))),
        ("W4A8 g32 asymmetric", dict(weights=group32(False), gpxq=order)),
        ("W4A8 g32 asymmetric, damping 0.001", dict(weights=group32(False), gpxq=qcore.GpxqOptions(
            act_order=True, damp_ratio=0.001))),
        ("W4A8 g32 asymmetric, min-max weight scales", dict(weights=group32(False, "minmax"), gpxq=order)),
        ("W4A8 g64 asymmetric", dict(weights=group32(False, group_size=64), gpxq=order)),
        ("W4A8 per channel asymmetric", dict(weights=group32(False, group_size=0), gpxq=order)),
        ("W4A8 g32 asymmetric, GPFQ", dict(method="gpfq", weights=group32(False), gpxq=order)),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levers", action="store_true", help="the further levers instead of the weight grids")
    ap.add_argument("--calibration", type=int, default=64, help="calibration sentences (16 a batch)")
    ap.add_argument("--only", default="", help="only the variants whose labels start with one of these")
    ap.add_argument("--threads", type=int, default=0, help="qcore threads (0: all cores)")
    args = ap.parse_args()
    ctx = qcore.default_context()
    ctx.threads = args.threads
    base = qcore.Model(ra.MINILM)
    cal_text, held_text = ra.texts("calibration.txt", args.calibration), ra.texts("heldout.txt", 128)
    batches = [minilm_tokenizer.encode(cal_text[k:k + 16]) for k in range(0, len(cal_text), 16)]
    feeds = [minilm_tokenizer.encode(held_text[k:k + 32]) for k in range(0, len(held_text), 32)]
    reference = np.concatenate([qcore.Session(base).run(f)["sentence_embedding"] for f in feeds])
    model, online = ra.rotated_model(KIND, 0, ra.layer_inputs(base), None, 0, ctx)
    p = ra.pipeline(model, batches)
    online = tuple(w for w in online if any(l["weight"] == w for l in p.layers))
    layers = [l["weight"] for l in p.layers if l["weight"] not in online]
    rows = []
    chosen = levers() if args.levers else variants(layers)
    prefixes = [x for x in args.only.split(",") if x]
    for label, fields in chosen:
        if prefixes and not any(label.startswith(x) for x in prefixes):
            continue
        t = time.time()
        recipe = dict(method="optq", weights=ra.grid(4), activation_bits=8, sequential=False, keep_float=online,
                      report_rows=64)
        recipe.update(fields)
        quantized, _ = p.run(qcore.Recipe(**recipe))
        rows.append({"variant": label, "cosine": ra.cosine(quantized, feeds, reference), "seconds": round(time.time() - t, 1)})
        print("%-66s %.4f" % (label, rows[-1]["cosine"]), flush=True)
        result = {"model": "all-MiniLM-L6-v2", "rotation": KIND, "seed": 0, "method": "optq (one pass)",
                  "calibration_sentences": args.calibration, "rows": rows, "load_average": os.getloadavg()}
        ra.save(result, "rotation_w4a8_levers_cal%d.json" % args.calibration if args.levers else
                "rotation_w4a8_weights.json")


if __name__ == "__main__":
    main()
