"""The founding LQ table (seeds.md section 3) on the project's MNIST or Fashion-MNIST MLP (784-512-256-10,
ReLU, tests/data/models/{mnist,fashion}_mlp.onnx): every fully-connected layer replaced by a learned non-uniform (QEM)
layer run on qcore's bit-serial kernels, post-training, against the float32 model on OpenBLAS.

Recipe, for each format WkwAka (all three layers alike):
- weights: one basis of kw entries per output channel (qcore.lq_fit on W [out, in], signed codes), encoded
  and packed into bit-planes;
- inputs: one basis of ka entries per layer with {0,1} codes (every layer's input is non-negative: pixels
  in [0, 1], then ReLU outputs), fitted on the layer's inputs as the already-quantized earlier layers
  produce them, for --calibration training images of --dataset;
- then (the "accuracy" column; "plain QEM" is without it) the weight bases are refitted to the layer's
  outputs with the codes kept (qcore.lq_refit_output: least squares of the float model's outputs on the
  quantized inputs' levels, statistics from qcore.GpxqStats("gpfq")), which also absorbs the errors of
  the earlier quantized layers; and --code-rounds times (default as `qcore lq`: 2 at 1-2 weight bits,
  else 0) the codes are re-chosen for the output error (qcore.lq_assign_codes: OPTQ's rounding on the LQ
  levels) and the bases refitted again;
- each layer: y = qcore.bitserial_gemm(x, input basis, "unsigned", planes, weight bases, "signed", bias),
  ReLU between layers in numpy (float).
Reported per row: accuracy on the 10000 t10k images, model bytes (bit-planes stored densely, ceil(in/8)
bytes per plane row, plus float32 bases and biases), batch-1 latency (one image through the three layers,
best of --repeats over --latency-images images) and batch-64 throughput, each on 1 thread for both
engines (qcore Context(threads=1); numpy's OpenBLAS limited by threadpoolctl). Both engines are called
from Python over buffers allocated once (Pipeline): qcore through cffi views made once, float32 as numpy
matmul (its own OpenBLAS) into its buffers. JSON to benchmarks/results/lq_{dataset}_mlp.json.

Run from the repository root:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python examples/python/lq_mlp.py --dataset mnist
"""
import argparse
import gzip
import os
import platform
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from bench_onnx import use_build_tree  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
from digit_data import TITLES  # noqa: E402
import digit_data  # noqa: E402
FORMATS = [(3, 3), (2, 2), (1, 1), (1, 2), (2, 4)]  # (weight bits, input bits)
SEED_TABLE = {"fp32": (97.19, 2.1e6, 584.8), "W3A3": (95.59, 218.3e3, 152.7), "W2A2": (88.86, 147.2e3, 84.8),
              "W1A1": (75.11, 76.2e3, 44.8)}  # MNIST, the seed's own (accuracy %, bytes, us)


def model_path(dataset, kind):
    return os.path.join(ROOT, "tests", "data", "models", "%s_%s.onnx" % (dataset, kind))


def read_idx(dataset, name):
    with gzip.open(digit_data.path(dataset, name)) as f:
        raw = f.read()
    offset = 16 if "images" in name else 8
    data = np.frombuffer(raw, np.uint8, offset=offset)
    return data.reshape(-1, 784) if "images" in name else data


def load_data(dataset, calibration):
    """(the first `calibration` training images, the 10000 t10k images, their labels); pixels / 255."""
    train = read_idx(dataset, "train-images-idx3-ubyte.gz")[:calibration].astype(np.float32) / 255
    test = read_idx(dataset, "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    return train, test, read_idx(dataset, "t10k-labels-idx1-ubyte.gz")


def add_dataset_argument(parser):
    parser.add_argument("--dataset", choices=sorted(digit_data.DIRS), default="mnist")


def float_layers(dataset):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(model_path(dataset, "mlp"))
    t = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in model.graph.initializer}
    return [(t["fc%d.weight" % k], t["fc%d.bias" % k]) for k in (1, 2, 3)]


def output_aware(qcore, w, codes, basis, stats, rounds, ctx):
    """Weight bases refitted to the layer's outputs, then `rounds` times (None: qcore lq's default, 2 at
    1-2 weight bits, else 0) the codes re-chosen for the output error and the bases refitted again (qcore
    lq's step 3); `stats` are GPFQ statistics."""
    if rounds is None:
        rounds = 2 if basis.shape[1] <= 2 else 0
    h, g = stats.hessian(), stats.cross()
    basis = qcore.lq_refit_output(codes, basis, w, h, g, "signed", ctx=ctx)
    for _ in range(rounds):
        codes = qcore.lq_assign_codes(w, basis, h, g, "signed", ctx=ctx)[0]
        basis = qcore.lq_refit_output(codes, basis, w, h, g, "signed", ctx=ctx)
    return codes, basis


class LqLayer:
    """One fitted layer: bases (weights per output channel, inputs per layer) and weight bit-planes. With
    `refit`, the weight bases are then refitted to the layer's outputs (qcore.lq_refit_output) on the float
    model's inputs x and the quantized model's inputs as the kernel sees them (their levels)."""

    def __init__(self, qcore, w, b, kw, ka, x_float, x_quant, ctx, refit, code_rounds=None):
        self.x_fit = qcore.lq_fit(np.ascontiguousarray(x_quant.reshape(1, -1)), ka, "unsigned", ctx=ctx)
        self.x_basis = np.ascontiguousarray(self.x_fit.basis[0])
        self.w_fit = qcore.lq_fit(w, kw, "signed", ctx=ctx)
        codes = qcore.lq_encode(w, self.w_fit.basis, "signed", ctx=ctx)
        self.w_basis = self.w_fit.basis
        if refit:
            levels = qcore.lq_decode(qcore.lq_encode(x_quant, self.x_basis[None], "unsigned", ctx=ctx),
                                     self.x_basis[None], "unsigned", ctx=ctx)
            stats = qcore.GpxqStats("gpfq", w.shape[1])
            stats.add(x_float, levels, ctx=ctx)
            codes, self.w_basis = output_aware(qcore, w, codes, self.w_basis, stats, code_rounds, ctx)
        self.planes = qcore.lq_pack(codes, kw, ctx=ctx)
        self.bias, self.out, self.n, self.kw, self.ka = b, w.shape[0], w.shape[1], kw, ka

    def nbytes(self):
        """Bit-planes stored densely (ceil(n / 8) bytes per plane row, as qcore lq writes them) plus float32
        bases and bias."""
        return self.out * self.kw * -(-self.n // 8) + 4 * (self.out * self.kw + self.ka + self.out)

    def __call__(self, qcore, x, ctx):
        return qcore.bitserial_gemm(x, self.x_basis, "unsigned", self.planes, self.w_basis, "signed", self.bias,
                                    ctx=ctx)


class Pipeline:
    """A forward pass over buffers allocated once for one input shape, so that a timed call costs the
    products, not Python's allocations: fp32 runs numpy matmul into its buffers, LQ calls the C functions
    directly through cffi views made once (the checked wrapper, qcore.bitserial_gemm, is used for accuracy)."""

    def __init__(self, shape, layers=None, lq=None, ctx=None):
        self.x = np.zeros(shape, np.float32)
        widths = [w.shape[0] for w, _ in layers] if layers else [l.out for l in lq]
        self.outs = [np.zeros(shape[:-1] + (o,), np.float32) for o in widths]
        self.layers, self.calls = layers, []
        if lq:
            from qcore._ffi import lib
            from qcore._tensor import view
            fn = lib.qc_bitserial_gemv if len(shape) == 1 else lib.qc_bitserial_gemm
            ins = [self.x] + self.outs[:-1]
            self._keep = []
            for layer, x, y in zip(lq, ins, self.outs):
                views = [view(a) for a in (y, x, layer.x_basis, layer.w_basis, layer.bias)]
                planes = view(layer.planes, lib.QC_DT_I64)
                self._keep.append((views, planes))
                v = [t for t, _ in views]
                self.calls.append((fn, ctx._ctx, v[0], v[1], v[2], lib.QC_LQ_UNSIGNED, planes[0], v[3],
                                   lib.QC_LQ_SIGNED, v[4]))

    def __call__(self, image):
        np.copyto(self.x, image)
        last = len(self.outs) - 1
        if self.calls:
            for k, (fn, *args) in enumerate(self.calls):
                if fn(*args) != 0:
                    raise RuntimeError("bit-serial call failed")
                if k < last:
                    np.maximum(self.outs[k], 0, out=self.outs[k])
        else:
            x = self.x
            for k, ((w, b), y) in enumerate(zip(self.layers, self.outs)):
                np.matmul(x, w.T, out=y)
                y += b
                if k < last:
                    np.maximum(y, 0, out=y)
                x = y
        return self.outs[-1]


def build_lq(qcore, layers, kw, ka, calib, ctx, refit, code_rounds=None):
    """Fits layer by layer on the inputs the quantized earlier layers produce (and the float ones)."""
    lq, x_float, x_quant = [], calib, calib
    for k, (w, b) in enumerate(layers):
        layer = LqLayer(qcore, w, b, kw, ka, x_float, x_quant, ctx, refit, code_rounds)
        lq.append(layer)
        x_quant = layer(qcore, np.ascontiguousarray(x_quant), ctx)
        x_float = (x_float @ w.T + b).astype(np.float32)
        if k < len(layers) - 1:
            x_quant, x_float = np.maximum(x_quant, 0), np.maximum(x_float, 0)
    return lq


def run_lq(qcore, lq, x, ctx):
    for k, layer in enumerate(lq):
        x = layer(qcore, x, ctx)
        if k < len(lq) - 1:
            x = np.maximum(x, 0)
    return x


def run_fp32(layers, x):
    for k, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if k < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


def accuracy(forward, images, labels, batch=1000):
    correct = 0
    for s in range(0, len(images), batch):
        correct += int((forward(np.ascontiguousarray(images[s:s + batch])).argmax(1) == labels[s:s + batch]).sum())
    return correct / len(images)


def speed(make_pipeline, images, repeats, latency_images):
    """Batch-1 latency (mean over latency_images images of the best pass) and batch-64 images per second."""
    singles = [np.ascontiguousarray(images[i]) for i in range(latency_images)]
    return timing.latency_and_throughput(make_pipeline((784,)), make_pipeline((64, 784)), singles,
                                         np.ascontiguousarray(images[:64]), repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration", type=int, default=4096)
    parser.add_argument("--code-rounds", type=int, default=None, help="default: 2 at 1-2 weight bits, else 0")
    add_dataset_argument(parser)
    timing.add_speed_arguments(parser)
    parser.add_argument("--installed", action="store_true")
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    import qcore
    from threadpoolctl import threadpool_info, threadpool_limits

    train, test, labels = load_data(args.dataset, args.calibration)
    layers = float_layers(args.dataset)
    ctx = qcore.Context(threads=1)
    rows = []
    load_before = list(os.getloadavg())
    with threadpool_limits(limits=1, user_api="blas"):
        fp32_acc = accuracy(lambda x: run_fp32(layers, x), test, labels)
        fp32_bytes = sum(w.nbytes + b.nbytes for w, b in layers)
        lat, thr = speed(lambda shape: Pipeline(shape, layers=layers), test, args.repeats, args.latency_images)
        rows.append({"format": "fp32", "accuracy": fp32_acc, "bytes": fp32_bytes, "latency_us": lat * 1e6,
                     "throughput_per_s": thr})
        for kw, ka in FORMATS:
            plain = build_lq(qcore, layers, kw, ka, train, ctx, refit=False)
            lq = build_lq(qcore, layers, kw, ka, train, ctx, refit=True, code_rounds=args.code_rounds)
            acc_plain = accuracy(lambda x: run_lq(qcore, plain, x, ctx), test, labels)
            acc = accuracy(lambda x: run_lq(qcore, lq, x, ctx), test, labels)
            lat, thr = speed(lambda shape: Pipeline(shape, lq=lq, ctx=ctx), test, args.repeats, args.latency_images)
            rows.append({"format": "W%dA%d" % (kw, ka), "accuracy": acc, "accuracy_plain_qem": acc_plain,
                         "bytes": sum(l.nbytes() for l in lq), "latency_us": lat * 1e6, "throughput_per_s": thr,
                         "weight_fit_steps": [l.w_fit.iterations for l in lq],
                         "input_bases": [l.x_basis.tolist() for l in lq]})
    base = rows[0]
    print(TITLES[args.dataset] + " MLP 784-512-256-10, post-training LQ (QEM) on bit-serial kernels, 1 thread")
    print("%-6s %9s %9s %11s %8s %12s %9s %14s %9s" % ("format", "accuracy", "plain QEM", "bytes", "size x",
                                                        "batch-1 us", "speed-up", "batch-64 img/s", "speed-up"))
    report.add_speed_ratios(rows, base, base["bytes"])
    for r in rows:
        plain = "%8.2f%%" % (100 * r["accuracy_plain_qem"]) if "accuracy_plain_qem" in r else "%9s" % "-"
        print("%-6s %8.2f%% %s %11d %7.1fx %12.1f %8.2fx %14.0f %8.2fx" % (
            r["format"], 100 * r["accuracy"], plain, r["bytes"], r["size_ratio"], r["latency_us"],
            r["latency_speedup"], r["throughput_per_s"], r["throughput_speedup"]))
    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "threading_layer")}
            for i in threadpool_info() if i.get("user_api") == "blas"]
    load_after = list(os.getloadavg())
    print("OpenBLAS:", blas)
    print("load average before %s, after %s (2 cores shared with other agents)" % (load_before, load_after))
    result = {"example": "LQ table on the %s MLP" % TITLES[args.dataset], "qcore_source": source, "machine": platform.node(),
              "cpu_features": sorted(qcore.cpu_features()), "arch": qcore.best_arch(), "threads": 1,
              "calibration_images": args.calibration, "code_rounds": args.code_rounds, "test_images": len(test), "openblas": blas,
              "load_average_before": load_before, "load_average_after": load_after, "rows": rows,
              "seed_table_mnist": SEED_TABLE}
    report.write_json("lq_%s_mlp.json" % args.dataset, result)


if __name__ == "__main__":
    main()
