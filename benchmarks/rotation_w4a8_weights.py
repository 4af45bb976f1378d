"""Evidence: what limits W4A8 on rotated all-MiniLM-L6-v2 (issue 5's goal: within 0.01 cosine of fp32).
The seed-0 signs-first randomized Hadamard model of rotation_accuracy.py (kind hadamard_ds), quantized by
qcore's pipeline with OPTQ from one pass over the 64 calibration sentences, scored by the mean cosine to
the float model's embeddings over the 128 held-out sentences, for: every weight float with 8-bit inputs
(the activation quantizer's own cost), then 4-bit weights per output channel with min-max scales, with
MSE-clipped scales and act-order, and per group of 64 and 32 inputs (MSE scales, act-order), the last
also with MSE-clipped activation scales.

Writes benchmarks/results/rotation_w4a8_weights.json and prints a table.
Usage: python benchmarks/rotation_w4a8_weights.py
"""
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


def main():
    ctx = qcore.default_context()
    base = qcore.Model(ra.MINILM)
    cal_text, held_text = ra.texts("calibration.txt", 64), ra.texts("heldout.txt", 128)
    batches = [minilm_tokenizer.encode(cal_text[k:k + 16]) for k in range(0, 64, 16)]
    feeds = [minilm_tokenizer.encode(held_text[k:k + 32]) for k in range(0, len(held_text), 32)]
    reference = np.concatenate([qcore.Session(base).run(f)["sentence_embedding"] for f in feeds])
    model, online = ra.rotated_model(KIND, 0, ra.layer_inputs(base), None, 0, ctx)
    p = ra.pipeline(model, batches)
    online = tuple(w for w in online if any(l["weight"] == w for l in p.layers))
    layers = [l["weight"] for l in p.layers if l["weight"] not in online]
    rows = []
    for label, fields in variants(layers):
        t = time.time()
        recipe = dict(method="optq", weights=ra.grid(4), activation_bits=8, sequential=False, keep_float=online,
                      report_rows=64)
        recipe.update(fields)
        quantized, _ = p.run(qcore.Recipe(**recipe))
        rows.append({"variant": label, "cosine": ra.cosine(quantized, feeds, reference), "seconds": round(time.time() - t, 1)})
        print("%-66s %.4f" % (label, rows[-1]["cosine"]), flush=True)
    result = {"model": "all-MiniLM-L6-v2", "rotation": KIND, "seed": 0, "method": "optq (one pass)", "rows": rows,
              "load_average": os.getloadavg()}
    ra.save(result, "rotation_w4a8_weights.json")


if __name__ == "__main__":
    main()
