"""Evidence: accuracy against accumulator width, whole models, real data (issue 4).

For each model and format (W4A8, W4A4: 4-bit signed symmetric per-output-channel weights, per-tensor
activations at every linear layer's input, unsigned where the input is never negative) and each target
accumulator width P and tile size T (T = 0 is the whole row, K), qcore's pipeline (qc_pipeline_run)
quantizes every linear layer (MatMul, Gemm, Conv) from calibration data, and the quantized QDQ model is
evaluated by qcore's executor on held-out data:

- naive: the data-type bound picks the bit widths. The widest weight bits M <= 4 and input bits N <= A
  (most bits in total, then the most input bits) whose bound (qc_accum_bits_datatype over T inputs, or K)
  fits P for every layer; OPTQ at those widths. Guaranteed not to overflow, at the price of bits.
- rtn+axe, optq+axe, gpfq+axe: the target format with AXE's constraints for P and T (guaranteed).
- rtn, optq, gpfq (plain, no AXE): their integer dot products on real calibration inputs are simulated in
  a P-bit register with tiles of T (qc_accum_simulate through the pipeline's report); the overflows are
  counted. Their accuracy is that of exact arithmetic, the same for every P (a P-bit accelerator would
  wrap around instead).

Models: the project's MNIST and Fashion-MNIST MLPs and CNNs (mnist_mlp, mnist_cnn, mlp and cnn: accuracy on
the 10,000 test images, calibration on 1,024 training images, layers quantized in sequence), and all-MiniLM-L6-v2 (mean cosine between the quantized
and the float model's sentence embeddings over 256 held-out sentences of tests/data/text/heldout.txt,
calibration on 64 sentences of calibration.txt, statistics from one pass, which the pipeline keeps
across the sweep). Writes benchmarks/results/axe_accuracy.json (after every point, so a partial run
keeps what it did) and axe_accuracy.png.

Usage: python benchmarks/axe_accuracy.py [--models mnist_mlp,mnist_cnn,mlp,cnn,minilm] [--quick]
                                        [--tiles 32,64,0] [--extend]
OpenBLAS 0.3.21 does not recognise this machine's CPU and falls back to its Prescott kernels; set
OPENBLAS_CORETYPE to the CPU's family (e.g. Cooperlake) when running this script.
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
import digit_data  # noqa: E402
WEIGHT_BITS = 4


def digits(dataset, shape):
    """(calibration batches, evaluate(model) -> accuracy) for an MNIST or Fashion-MNIST model taking `shape`
    images."""
    def images(name, count=None):
        x = qcore.load_array(digit_data.path(dataset, name)).astype(np.float32) / 255
        return np.ascontiguousarray(x[:count].reshape((-1,) + shape))

    train, test = images("train-images-idx3-ubyte.gz", 1024), images("t10k-images-idx3-ubyte.gz")
    labels = qcore.load_array(digit_data.path(dataset, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    batches = [{"input": train[k:k + 256]} for k in range(0, len(train), 256)]

    def evaluate(model):
        logits = qcore.Session(model).run({"input": test})["logits"]
        return float(np.mean(logits.argmax(1) == labels))

    return batches, evaluate


def minilm():
    """(calibration batches, evaluate(model) -> mean cosine to the float model's embeddings)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    from minilm_tokenizer import encode

    def lines(name, count):
        with open(os.path.join(ROOT, "tests", "data", "text", name), encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()][:count]

    calibration, heldout = lines("calibration.txt", 64), lines("heldout.txt", 256)
    batches = [encode(calibration[k:k + 16]) for k in range(0, len(calibration), 16)]
    feeds = [encode(heldout[k:k + 32]) for k in range(0, len(heldout), 32)]

    def embed(model):
        session = qcore.Session(model)
        return np.concatenate([session.run(f)["sentence_embedding"] for f in feeds])

    reference = embed(qcore.Model(os.path.join(ROOT, "build", "models", "minilm.onnx")))

    def evaluate(model):
        e = embed(model)
        cos = np.sum(e * reference, 1) / np.linalg.norm(e, axis=1) / np.linalg.norm(reference, axis=1)
        return float(np.mean(cos))

    return batches, evaluate


MODELS = {
    "mnist_mlp": ("tests/data/models/mnist_mlp.onnx", lambda: digits("mnist", (784,)), True, "accuracy"),
    "mnist_cnn": ("tests/data/models/mnist_cnn.onnx", lambda: digits("mnist", (1, 28, 28)), True, "accuracy"),
    "mlp": ("tests/data/models/fashion_mlp.onnx", lambda: digits("fashion", (784,)), True, "accuracy"),
    "cnn": ("tests/data/models/fashion_cnn.onnx", lambda: digits("fashion", (1, 28, 28)), True, "accuracy"),
    "minilm": ("build/models/minilm.onnx", minilm, False, "cosine to fp32"),
}


def grid(bits):
    return qcore.QuantOptions(bits=bits, granularity="channel", axis=0)


def naive_widths(layers, p, tile, act_bits, signed_inputs):
    """The data-type bound's choice: (M, N) or None when no widths >= 2 fit."""
    best = None
    for m in range(WEIGHT_BITS, 1, -1):
        for n in range(act_bits, 1, -1):
            fits = all(qcore.accumulator_bits_datatype(min(tile or l["in_features"], l["in_features"]), m, n,
                                                       signed_inputs[l["weight"]]) <= p for l in layers)
            if fits and (best is None or (m + n, n) > (sum(best), best[1])):
                best = (m, n)
    return best


def run_point(pipe, evaluate, sequential, method, weight_bits, act_bits, p, tile, axe):
    recipe = qcore.Recipe(method=method, weights=grid(weight_bits), activation_bits=act_bits, sequential=sequential,
                          report_bits=min(p, 32), report_rows=256,
                          gpxq=qcore.GpxqOptions(accumulator_bits=p if axe else 0, tile_size=tile))
    start = time.time()
    model, report = pipe.run(recipe)
    seconds = time.time() - start
    quality = evaluate(model) if evaluate else None
    return {"method": method + ("+axe" if axe else ""), "weight_bits": weight_bits, "act_bits": act_bits, "P": p,
            "T": tile, "quality": quality, "quantize_seconds": round(seconds, 2),
            "overflow_events": sum(r.overflow_events for r in report),
            "overflowing_products": sum(r.overflowing_products for r in report),
            "dot_products": sum(r.dot_products for r in report),
            "needed_bits": max(r.accumulator_bits for r in report),
            "max_abs_partial_sum": max(r.max_abs_partial_sum for r in report)}


def sweep(name, widths, tiles, out, plain=True):
    path, data, sequential, metric = MODELS[name]
    batches, evaluate = data()
    model = qcore.Model(os.path.join(ROOT, path))
    pipe = qcore.Pipeline(model)
    for b in batches:
        pipe.add_batch(b)
    entry = out.setdefault(name, {"metric": metric, "points": []})
    entry["float"] = evaluate(model)
    layers = pipe.layers
    for act_bits in (8, 4):
        _, report = pipe.run(qcore.Recipe(method="rtn", weights=grid(WEIGHT_BITS), activation_bits=act_bits))
        signed = {r.weight: r.input_signed for r in report}
        for method in ("rtn", "optq", "gpfq") if plain else ():  # plain: exact-arithmetic quality, once
            point = run_point(pipe, evaluate, sequential, method, WEIGHT_BITS, act_bits, 32, 0, False)
            entry["points"].append(dict(point, P=None, T=None))
            print(name, "A%d" % act_bits, method, "plain", point["quality"], flush=True)
        for tile in tiles:
            for p in widths:
                points_here = []
                widths_mn = naive_widths(layers, p, tile, act_bits, signed)
                if widths_mn:
                    point = run_point(pipe, evaluate, sequential, "optq", widths_mn[0], widths_mn[1], p, tile, False)
                    points_here.append(dict(point, method="naive"))
                for method in ("rtn", "optq", "gpfq"):
                    points_here.append(run_point(pipe, evaluate, sequential, method, WEIGHT_BITS, act_bits, p, tile, True))
                    points_here.append(run_point(pipe, None, sequential, method, WEIGHT_BITS, act_bits, p, tile, False))
                for point in points_here:
                    point["target_act_bits"] = act_bits
                    entry["points"].append(point)
                print(name, "A%d T%d P%d" % (act_bits, tile, p),
                      " ".join("%s=%s/%d" % (q["method"], "%.4f" % q["quality"] if q["quality"] is not None else "-",
                                              q["overflow_events"]) for q in points_here), flush=True)
                save(out)


def save(out):
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "axe_accuracy.json.tmp"), "w") as f:
        json.dump(out, f, indent=1)
    os.replace(os.path.join(RESULTS, "axe_accuracy.json.tmp"), os.path.join(RESULTS, "axe_accuracy.json"))


def plot(out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in MODELS if n in out]
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.2 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        entry = out[name]
        for col, act_bits in enumerate((8, 4)):
            ax = axes[row][col]
            points = [p for p in entry["points"] if p.get("target_act_bits") == act_bits and p["T"] == 0]
            for method, style in (("naive", "k:o"), ("rtn+axe", "C0-s"), ("optq+axe", "C1-^"), ("gpfq+axe", "C2-v")):
                xs = [p["P"] for p in points if p["method"] == method]
                ys = [p["quality"] for p in points if p["method"] == method]
                ax.plot(xs, ys, style, label=method, markersize=4)
            ax.axhline(entry["float"], color="grey", lw=0.8, label="float")
            ax.set_title("%s W4A%d, T = K" % (name, act_bits), fontsize=9)
            ax.set_xlabel("accumulator bits P", fontsize=8)
            ax.set_ylabel(entry["metric"], fontsize=8)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "axe_accuracy.png"), dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mnist_mlp,mnist_cnn,mlp,cnn,minilm")
    ap.add_argument("--quick", action="store_true", help="P in {12, 16, 20, 24, 32}, T in {32, K}")
    ap.add_argument("--tiles", help="comma-separated tile sizes T to run (0 = K), instead of the default set")
    ap.add_argument("--extend", action="store_true",
                    help="add the points to the model's existing ones in the JSON instead of replacing them")
    args = ap.parse_args()
    out = {}
    path = os.path.join(RESULTS, "axe_accuracy.json")
    if os.path.exists(path):
        with open(path) as f:
            out = json.load(f)
    out["machine"] = {"blas": blas(), "cpu": cpu_name(), "cores": os.cpu_count()}
    for name in args.models.split(","):
        if not args.extend:
            out.pop(name, None)
        quick = args.quick or name == "minilm"
        widths = (12, 16, 20, 24, 32) if quick else (12, 14, 16, 18, 20, 22, 24, 28, 32)
        tiles = (32, 0) if quick else (32, 64, 0)
        if args.tiles:
            tiles = tuple(int(t) for t in args.tiles.split(","))
        sweep(name, widths, tiles, out, plain=not args.extend)
        save(out)
        plot(out)


def cpu_name():
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")


def blas():
    try:
        from threadpoolctl import threadpool_info
        return [(i.get("internal_api"), i.get("version"), i.get("architecture")) for i in threadpool_info()]
    except ImportError:
        return "threadpoolctl not installed"


if __name__ == "__main__":
    main()
