"""LQ on the project's MNIST or Fashion-MNIST CNN (tests/data/models/{mnist,fashion}_cnn.onnx: Conv 1->16 3x3, BN, ReLU,
MaxPool 2, Conv 16->32 3x3, BN, ReLU, MaxPool 2, Gemm 1568->10), through im2col: each convolution is the
weight [out, in*3*3] (BatchNormalization folded in) against rows of 3x3 patches, run on qcore's bit-serial
kernels exactly as the MLP example's fully-connected layers (bases per output channel for weights, one per
layer with {0,1} codes for the non-negative inputs, fitted on the quantized model's own inputs for
--calibration training images, then refitted to the outputs with qcore.lq_refit_output and --code-rounds
times given output-aware codes, qcore.lq_assign_codes, and refitted again). Reports accuracy
on the 10000 t10k images and model bytes for fp32 and each format; the float path is checked against
onnxruntime on the first images before anything is quantized. JSON to
benchmarks/results/lq_{dataset}_cnn.json. Speed is not measured here (the MLP example does that).

Run from the repository root:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python examples/python/lq_cnn.py --dataset mnist
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir, os.pardir)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, HERE)
from bench_onnx import use_build_tree  # noqa: E402
from lq_mlp import FORMATS, TITLES, add_dataset_argument, load_data, model_path, output_aware  # noqa: E402
import report  # noqa: E402

BATCH = 500


def folded_layers(dataset):
    """[(W [out, in*9], b), (W, b), (W_fc [10, 1568], b_fc)] with each BatchNormalization folded in."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(model_path(dataset, "cnn"))
    t = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    eps = [n for n in model.graph.node if n.op_type == "BatchNormalization"][0].attribute[0].f
    layers = []
    for k in (1, 2):
        w, b = t["conv%d.weight" % k], t["conv%d.bias" % k]
        g = t["bn%d.weight" % k] / np.sqrt(t["bn%d.running_var" % k] + eps)
        layers.append(((w * g[:, None, None, None]).reshape(w.shape[0], -1).astype(np.float32),
                       ((b - t["bn%d.running_mean" % k]) * g + t["bn%d.bias" % k]).astype(np.float32)))
    layers.append((t["fc.weight"].astype(np.float32), t["fc.bias"].astype(np.float32)))
    return layers


def im2col(x):
    """x [B, C, H, W] -> rows [B*H*W, C*9] of 3x3 patches (padding 1), in the weight's (C, kh, kw) order."""
    b, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # [B, C, H, W, 3, 3]
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5).reshape(b * h * w, c * 9))


def to_maps(rows, b, h, w):
    return rows.reshape(b, h, w, -1).transpose(0, 3, 1, 2)


def pool(x):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def forward(layer_fns, images):
    """layer_fns[k](rows) -> outputs of layer k for its input rows; images float32 [B, 784]."""
    b = images.shape[0]
    x = images.reshape(b, 1, 28, 28)
    for k, size in ((0, 28), (1, 14)):
        y = to_maps(layer_fns[k](im2col(x)), b, size, size)
        x = pool(np.maximum(y, 0))
    return layer_fns[2](np.ascontiguousarray(x.reshape(b, -1)))


def layer_inputs(layer_fns, images, k):
    """The rows layer k sees for these images when layers < k run through layer_fns."""
    b = images.shape[0]
    x = images.reshape(b, 1, 28, 28)
    for j, size in ((0, 28), (1, 14)):
        rows = im2col(x)
        if j == k:
            return rows
        x = pool(np.maximum(to_maps(layer_fns[j](rows), b, size, size), 0))
    return np.ascontiguousarray(x.reshape(b, -1))


def fit_lq(qcore, layers, kw, ka, calib, ctx, code_rounds):
    float_fns = [lambda r, w=w, b=b: r @ w.T + b for w, b in layers]
    fitted = []
    for k, (w, b) in enumerate(layers):
        x_quant = layer_inputs(fitted + float_fns[k:], calib, k)
        x_float = layer_inputs(float_fns, calib, k)
        x_basis = qcore.lq_fit(np.ascontiguousarray(x_quant.reshape(1, -1)), ka, "unsigned", ctx=ctx).basis[0]
        w_basis = qcore.lq_fit(w, kw, "signed", ctx=ctx).basis
        codes = qcore.lq_encode(w, w_basis, "signed", ctx=ctx)
        stats = qcore.GpxqStats("gpfq", w.shape[1])
        for s in range(0, len(x_quant), 65536):
            levels = qcore.lq_decode(qcore.lq_encode(x_quant[s:s + 65536], x_basis[None], "unsigned", ctx=ctx),
                                     x_basis[None], "unsigned", ctx=ctx)
            stats.add(np.ascontiguousarray(x_float[s:s + 65536]), levels, ctx=ctx)
        codes, w_basis = output_aware(qcore, w, codes, w_basis, stats, code_rounds, ctx)
        planes = qcore.lq_pack(codes, kw, ctx=ctx)
        nbytes = w.shape[0] * kw * -(-w.shape[1] // 8) + 4 * (w.shape[0] * kw + ka + w.shape[0])
        fn = (lambda r, xb=x_basis, p=planes, wb=w_basis, bb=b:
              qcore.bitserial_gemm(np.ascontiguousarray(r, np.float32), xb, "unsigned", p, wb, "signed", bb, ctx=ctx))
        fn.nbytes = nbytes
        fitted.append(fn)
    return fitted


def accuracy(layer_fns, images, labels):
    correct = 0
    for s in range(0, len(images), BATCH):
        correct += int((forward(layer_fns, images[s:s + BATCH]).argmax(1) == labels[s:s + BATCH]).sum())
    return correct / len(images)


def check_float_path(dataset, layers, images):
    """The folded float path against onnxruntime on the original graph (BN unfolded)."""
    import onnxruntime
    session = onnxruntime.InferenceSession(model_path(dataset, "cnn"), providers=["CPUExecutionProvider"])
    want = session.run(None, {"input": images.reshape(-1, 1, 28, 28)})[0]
    got = forward([lambda r, w=w, b=b: r @ w.T + b for w, b in layers], images)
    return float(np.abs(got - want).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration", type=int, default=1024)
    parser.add_argument("--installed", action="store_true")
    parser.add_argument("--code-rounds", type=int, default=None, help="default: 2 at 1-2 weight bits, else 0")
    add_dataset_argument(parser)
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    import qcore

    train, test, labels = load_data(args.dataset, args.calibration)
    layers = folded_layers(args.dataset)
    max_diff = check_float_path(args.dataset, layers, test[:64])
    print("float path vs onnxruntime on 64 images: max |diff| = %.2e" % max_diff)
    ctx = qcore.Context()
    rows = [{"format": "fp32", "accuracy": accuracy([lambda r, w=w, b=b: r @ w.T + b for w, b in layers], test, labels),
             "bytes": sum(w.nbytes + b.nbytes for w, b in layers)}]
    for kw, ka in FORMATS:
        fitted = fit_lq(qcore, layers, kw, ka, train, ctx, args.code_rounds)
        rows.append({"format": "W%dA%d" % (kw, ka), "accuracy": accuracy(fitted, test, labels),
                     "bytes": sum(f.nbytes for f in fitted)})
    print(TITLES[args.dataset] + " CNN (im2col), post-training LQ (QEM + output refit) on bit-serial kernels")
    print("%-6s %9s %9s" % ("format", "accuracy", "bytes"))
    for r in rows:
        print("%-6s %8.2f%% %9d" % (r["format"], 100 * r["accuracy"], r["bytes"]))
    result = {"example": "LQ table on the %s CNN through im2col" % TITLES[args.dataset], "qcore_source": source,
              "calibration_images": args.calibration, "code_rounds": args.code_rounds, "test_images": len(test),
              "float_path_max_abs_diff_vs_onnxruntime": max_diff, "rows": rows}
    report.write_json("lq_%s_cnn.json" % args.dataset, result)


if __name__ == "__main__":
    main()
