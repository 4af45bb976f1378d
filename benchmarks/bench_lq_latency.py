"""Benchmark: the Fashion-MNIST MLP's batch-1 latency and batch-64 throughput in C, one thread, against the
seed's peer -- the float32 model as a chain of OpenBLAS sgemv/sgemm + bias + ReLU calls on the same weights.

This script makes the LQ models (W3A3, W2A2, W1A1, W1A2, W2A4: qcore.lq_replace fitted on the first
--calibration training images, as bench_lq_model.py does) and runs build/benchmarks/lq_latency, which
times, in one process and one run, (a) the OpenBLAS chain, (b) qcore's executor on the float32 ONNX
model and (c) qcore's executor on every LQ model through the public C API (qc_session_set_input,
qc_session_run, qc_session_value). onnxruntime's float32 model is timed here from Python for reference
(so it carries Python's per-call cost, which the C rows do not). Every engine runs on the calling thread
alone, so latency_us / throughput_per_s are process CPU time (steady while other work shares the cores);
wall_* are the wall-clock figures of the same runs. Ratios are (a)'s CPU time / the row's.
Writes benchmarks/results/lq_latency.json with the OpenBLAS kernel family lq_latency reports and the load
average before and after.

Run from the repository root (the OpenBLAS kernel override in this command alone):
    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Cooperlake .venv/bin/python benchmarks/bench_lq_latency.py
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lq_model import DATA, FORMATS, MODEL, read_idx  # noqa: E402
from bench_onnx import BUILD, use_build_tree  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402


def ort_fp32(ort, test, repeats, images):
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    s = ort.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])
    run = lambda x: s.run(None, {"input": x})[0]  # noqa: E731
    singles = [np.ascontiguousarray(test[i:i + 1]) for i in range(images)]
    block = np.ascontiguousarray(test[:64])
    row = {"engine": "onnxruntime fp32 (Python call)", "model": MODEL}
    for prefix, clock in (("", time.process_time), ("wall_", time.perf_counter)):
        latency = timing.best_time(lambda: [run(x) for x in singles], repeats, clock) / len(singles)
        row[prefix + "latency_us"] = latency * 1e6
        row[prefix + "throughput_per_s"] = len(block) / timing.best_time(lambda: run(block), repeats * 8, clock)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibration", type=int, default=4096)
    parser.add_argument("--images", type=int, default=500, help="single images per batch-1 pass")
    parser.add_argument("--repeats", type=int, default=20, help="passes per figure (the best counts)")
    parser.add_argument("--installed", action="store_true")
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    import onnxruntime as ort
    import qcore

    probe = os.path.join(BUILD, "benchmarks", "lq_latency")
    calib = read_idx("train-images-idx3-ubyte.gz", args.calibration)
    test = read_idx("t10k-images-idx3-ubyte.gz")
    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        models = ["fp32 (qcore executor)=" + MODEL]
        for kw, ka in FORMATS:
            pipeline = qcore.Pipeline(qcore.Model(MODEL), qcore.Context(threads=1))
            for s in range(0, len(calib), 512):
                pipeline.add_batch({"input": np.ascontiguousarray(calib[s:s + 512])})
            lq, _, _ = qcore.lq_replace(pipeline, weight_bits=kw, input_bits=ka)
            path = os.path.join(tmp, "w%da%d.onnx" % (kw, ka))
            lq.save(path)
            models.append("W%dA%d (qcore executor)=%s" % (kw, ka, path))
        out = subprocess.run([probe, MODEL, os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), str(args.images),
                              str(args.repeats)] + models, check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    rows = result.pop("rows")
    rows.append(ort_fp32(ort, test, args.repeats, min(args.images, 100)))
    base = rows[0]
    print("Fashion-MNIST MLP, 1 thread, C calls (OpenBLAS %s); ratios vs the OpenBLAS fp32 chain" % result["openblas_core"])
    print("%-34s %11s %8s %12s %8s %9s" % ("engine", "batch-1 us", "speedup", "b-64 img/s", "speedup", "wall us"))
    for r in rows:
        r["latency_speedup"] = base["latency_us"] / r["latency_us"]
        r["throughput_speedup"] = r["throughput_per_s"] / base["throughput_per_s"]
        r["model"] = os.path.basename(r["model"])
        print("%-34s %11.2f %7.2fx %12.0f %7.2fx %9.2f" % (r["engine"], r["latency_us"], r["latency_speedup"],
                                                           r["throughput_per_s"], r["throughput_speedup"],
                                                           r["wall_latency_us"]))
    report.write_json("lq_latency.json", {
        "benchmark": "Fashion MLP batch-1 latency / batch-64 throughput in C vs the OpenBLAS fp32 chain",
        "qcore_source": source, "onnxruntime": ort.__version__, "calibration_images": args.calibration,
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        **result, **report.machine(qcore), "load_average_before": load_before, "rows": rows,
        "seed_goal_speedups": {"W3A3": 3.8, "W1A1": 13.0}})


if __name__ == "__main__":
    main()
