"""Benchmark: the Fashion-MNIST MLP (784-512-256-10) with every fully-connected layer replaced by qcore's LQ
layer (qcore.lq_replace, the `qcore lq` tool's C function), run as a model by qcore's executor
(ai.qcore.LQGemm on the bit-serial kernels), against the float32 model in onnxruntime and in qcore's
executor (OpenBLAS), in the same run. Prints a table and writes JSON to benchmarks/results/lq_model.json.

Per format (W3A3, W2A2, W1A1, W1A2, W2A4; fitted on the first --calibration training images, weight bases
refitted to the outputs): accuracy on the 10000 t10k images, the onnxruntime export's accuracy and its
largest difference from qcore's outputs (the cross-check), the replaced layers' bytes, batch-1 latency (mean
per image over --latency-images images, best of --repeats passes) and batch-64 throughput; every engine on
one thread (qcore Context(threads=1), onnxruntime intra_op_num_threads 1), timed as the Python call
(feeds in, numpy outputs out). Ratios are against onnxruntime's float32 model.

Run from the repository root (OpenBLAS's kernel family named for this command alone: Debian's 0.3.21
misdetects this CPU):
    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Cooperlake .venv/bin/python benchmarks/bench_lq_model.py
bench_lq_latency.py times the same models from C against an OpenBLAS sgemv/sgemm chain, without Python.
"""
import argparse
import gzip
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_onnx import use_build_tree  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
MODEL = os.path.join(ROOT, "tests", "data", "models", "fashion_mlp.onnx")
DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
FORMATS = [(3, 3), (2, 2), (1, 1), (1, 2), (2, 4)]


def read_idx(name, count=None):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16 if "images" in name else 8)
    return (raw.reshape(-1, 784)[:count].astype(np.float32) / 255) if "images" in name else raw[:count]


class Engine:
    """One model in one engine: run(x) -> logits, over one thread."""

    def __init__(self, kind, path, qcore, ort):
        if kind == "ort":
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
            self._s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            self.run = lambda x: self._s.run(None, {"input": x})[0]
        else:
            self._model = qcore.Model(path)
            self._s = qcore.Session(self._model, qcore.Context(threads=1))
            self.run = lambda x: self._s.run({"input": x})["logits"]


def measure(engine, test, labels, repeats, latency_images):
    logits = np.concatenate([engine.run(test[s:s + 1000]) for s in range(0, len(test), 1000)])
    singles = [np.ascontiguousarray(test[i:i + 1]) for i in range(latency_images)]
    latency, throughput = timing.latency_and_throughput(engine.run, engine.run, singles,
                                                        np.ascontiguousarray(test[:64]), repeats)
    return logits, {"accuracy": float((logits.argmax(1) == labels).mean()), "latency_us": latency * 1e6,
                    "throughput_per_s": throughput}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration", type=int, default=4096)
    timing.add_speed_arguments(parser)
    parser.add_argument("--installed", action="store_true")
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    import onnxruntime as ort
    import qcore

    calib = read_idx("train-images-idx3-ubyte.gz", args.calibration)
    test, labels = read_idx("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz")
    rows = []
    _, base = measure(Engine("ort", MODEL, qcore, ort), test, labels, args.repeats, args.latency_images)
    float_bytes = os.path.getsize(MODEL)
    rows.append(dict(format="fp32 (onnxruntime)", bytes=float_bytes, **base))
    _, row = measure(Engine("qcore", MODEL, qcore, ort), test, labels, args.repeats, args.latency_images)
    rows.append(dict(format="fp32 (qcore)", bytes=float_bytes, **row))
    with tempfile.TemporaryDirectory() as tmp:
        for kw, ka in FORMATS:
            pipeline = qcore.Pipeline(qcore.Model(MODEL), qcore.Context(threads=1))
            for s in range(0, len(calib), 512):
                pipeline.add_batch({"input": np.ascontiguousarray(calib[s:s + 512])})
            lq, export, result = qcore.lq_replace(pipeline, weight_bits=kw, input_bits=ka)
            paths = [os.path.join(tmp, "w%da%d%s.onnx" % (kw, ka, suffix)) for suffix in ("", "_ort")]
            lq.save(paths[0])
            export.save(paths[1])
            logits, row = measure(Engine("qcore", paths[0], qcore, ort), test, labels, args.repeats, args.latency_images)
            ort_logits = np.concatenate([Engine("ort", paths[1], qcore, ort).run(test[s:s + 1000])
                                         for s in range(0, len(test), 1000)])
            rows.append(dict(format="W%dA%d" % (kw, ka), bytes=result.lq_bytes + (float_bytes - result.float_bytes),
                             layer_bytes=result.lq_bytes, float_layer_bytes=result.float_bytes,
                             ort_export_accuracy=float((ort_logits.argmax(1) == labels).mean()),
                             ort_export_max_abs_diff=float(np.abs(ort_logits - logits).max()),
                             ort_export_argmax_disagreements=int((ort_logits.argmax(1) != logits.argmax(1)).sum()), **row))
    print("Fashion-MNIST MLP, every FC layer replaced by qcore lq, run as a model; 1 thread; ratios vs onnxruntime fp32")
    print("%-20s %9s %9s %10s %7s %10s %8s %12s %8s" % ("format", "accuracy", "ORT exp.", "bytes", "size x", "batch-1 us",
                                                          "speedup", "b-64 img/s", "speedup"))
    report.add_speed_ratios(rows, base, float_bytes)
    for r in rows:
        exported = "%8.2f%%" % (100 * r["ort_export_accuracy"]) if "ort_export_accuracy" in r else "%9s" % "-"
        print("%-20s %8.2f%% %s %10d %6.1fx %10.1f %7.2fx %12.0f %7.2fx" % (
            r["format"], 100 * r["accuracy"], exported, r["bytes"], r["size_ratio"], r["latency_us"],
            r["latency_speedup"], r["throughput_per_s"], r["throughput_speedup"]))
    report.write_json("lq_model.json", {"benchmark": "LQ models (qcore lq) in qcore's executor vs float32",
                                        "qcore_source": source, "onnxruntime": ort.__version__,
                                        "calibration_images": args.calibration, "threads": 1,
                                        "openblas": timing.openblas_kernel(), "qcore_arch": qcore.best_arch(),
                                        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE",
                                                                                        "OPENBLAS_L2_SIZE")},
                                        **report.machine(qcore), "rows": rows})


if __name__ == "__main__":
    main()
