"""Benchmark: qcore's executor on QDQ models written by qcore.quantize, with integer kernels
(qc_session_set_integer_kernels on: quantized MatMul/Gemm layers on qc_int8_gemm) and without (the
dequantized float reference), against onnxruntime on the same QDQ model and on the fp32 model, in one run.
Writes JSON to benchmarks/results/qdq_exec.json.

- Models: tests/data/models/mnist_mlp.onnx and mnist_cnn.onnx, quantized W8A8 and W4A8 (OPTQ per channel,
  calibrated on the 128 images of mnist_sample.npz, pixel/255); batch 1 and 64; 1 thread in both engines
  (qcore Context(threads=1); onnxruntime intra_op 1, inter_op 1, sequential, default graph optimizations).
- Each cell: the median wall time of runs after a warm-up, the runs filling about --seconds. The integer
  kernels' output must lie within 1e-3 of the logits' range of qcore's float reference (else the run
  stops); onnxruntime's QDQ difference from it is recorded. Ratios: float reference / integer kernels
  (the change's speed-up), integer kernels / onnxruntime QDQ, integer kernels / onnxruntime fp32.
- Issue 6's W2A2 bit-serial against int8 VNNI at the same shape: qc_bitserial_gemm (Kw = Ka = 2, from float
  inputs, as bench_bitserial.py's peer rows) against qc_int8_gemm (uint8 x int8, integers only), n = O = 4096,
  M = 64 and 1, 1 and 2 threads, best of --repeats; ratio = int8 time / bit-serial time.
- The kernel choice for uniform low-bit layers (qc_integer_kernels): the MNIST MLP quantized W2A2, W3A3 and
  W4A4 (uniform, OPTQ), batch 1, 8 and 64, each layer forced onto int8 and onto the bit-serial kernels, and
  "auto" with the kernels it picked (from the session's kernel statistics); outputs asserted identical.
  And single QDQ layers (n x O = 784 x 512, 1536 x 1536, 4096 x 4096; codes spanning 1..4 bits; 1, 8, 64
  rows) on int8 and bit-serial: the measurements behind "auto"'s rule (libqcore/model/ops/qdq_bitserial.c).
Other agents share this machine's 2 cores; the load average is recorded before and after.

Run from the repository root (OpenBLAS overrides unset for this command alone):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_qdq_exec.py
qcore is taken from the build tree unless QCORE_LIBRARY is set or --installed is given (bench_onnx's rule).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_bitserial import N, O, int8_times, layer  # noqa: E402
from bench_onnx import MODELS_DIR, use_build_tree  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402

BATCHES = (1, 64)
FORMATS = {"W8A8": 8, "W4A8": 4}
TOLERANCE = 1e-3  # of the logits' range: QDQ engines differ by float rounding (and rare one-code flips)


def median_time(fn, seconds):
    """Median wall time of fn() over runs filling about `seconds`, after a warm-up; (seconds, runs)."""
    for _ in range(3):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < seconds and len(times) < 20000):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


def ort_session(ort, path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feeds_of(net, images, batch):
    x = images[:batch]
    return {"input": x.reshape(batch, -1) if net == "mlp" else x.reshape(batch, 1, 28, 28)}


def measure_model(qcore, ort, net, fmt, images, folder, seconds):
    fp32 = os.path.join(MODELS_DIR, "mnist_%s.onnx" % net)
    quantized, _ = qcore.quantize(fp32, feeds_of(net, images, len(images)), weight_bits=FORMATS[fmt], activation_bits=8)
    path = os.path.join(folder, "%s_%s.onnx" % (net, fmt))
    quantized.save(path)
    session = qcore.Session(qcore.Model(path), qcore.Context(threads=1))
    peer_qdq, peer_fp32 = ort_session(ort, path), ort_session(ort, fp32)
    output = session.output_names[0]
    rows = []
    for batch in BATCHES:
        feeds = feeds_of(net, images, batch)
        session.set_integer_kernels(False)
        reference = session.run(feeds)[output]
        session.set_integer_kernels("int8")
        ours = session.run(feeds)[output]
        theirs = peer_qdq.run(None, feeds)[0]
        span = float(np.ptp(reference))
        diff = {"integer": float(np.abs(ours - reference).max()), "ort_qdq": float(np.abs(theirs - reference).max())}
        if diff["integer"] > TOLERANCE * span:
            raise SystemExit("%s %s batch %d: the integer kernels disagree with the float reference (%s)" % (net, fmt, batch, diff))
        times = {}
        times["qcore_int_ms"], _ = median_time(lambda: session.run(feeds), seconds)
        session.set_integer_kernels(False)
        times["qcore_float_ms"], _ = median_time(lambda: session.run(feeds), seconds)
        session.set_integer_kernels("int8")
        times["ort_qdq_ms"], _ = median_time(lambda: peer_qdq.run(None, feeds), seconds)
        times["ort_fp32_ms"], _ = median_time(lambda: peer_fp32.run(None, feeds), seconds)
        row = {"model": net, "format": fmt, "batch": batch, "threads": 1}
        row.update({k: v * 1e3 for k, v in times.items()})
        row.update({"float_over_int": row["qcore_float_ms"] / row["qcore_int_ms"],
                    "int_over_ort_qdq": row["qcore_int_ms"] / row["ort_qdq_ms"],
                    "int_over_ort_fp32": row["qcore_int_ms"] / row["ort_fp32_ms"],
                    "max_abs_diff_vs_float_reference": diff, "logit_range": span})
        rows.append(row)
        print("  %-3s %s batch %2d: int %8.3f ms  float %8.3f ms  ort qdq %8.3f ms  ort fp32 %8.3f ms" %
              (net, fmt, batch, row["qcore_int_ms"], row["qcore_float_ms"], row["ort_qdq_ms"], row["ort_fp32_ms"]),
              file=sys.stderr)
    return rows


LOW_BITS = (2, 3, 4)
CHOICE_BATCHES = (1, 8, 64)


def kernel_choice(qcore, images, folder, seconds):
    """Uniform WkAk MLPs on int8, bit-serial and auto: median ms per batch, and what auto ran."""
    fp32 = os.path.join(MODELS_DIR, "mnist_mlp.onnx")
    rows = []
    for bits in LOW_BITS:
        quantized, _ = qcore.quantize(fp32, feeds_of("mlp", images, len(images)), weight_bits=bits, activation_bits=bits)
        path = os.path.join(folder, "mlp_w%da%d.onnx" % (bits, bits))
        quantized.save(path)
        session = qcore.Session(qcore.Model(path), qcore.Context(threads=1))
        output = session.output_names[0]
        for batch in CHOICE_BATCHES:
            feeds = feeds_of("mlp", images, batch)
            row = {"model": "mlp", "format": "W%dA%d" % (bits, bits), "batch": batch, "threads": 1}
            outputs = {}
            for kernels in ("int8", "bitserial", "auto"):
                session.set_integer_kernels(kernels)
                outputs[kernels] = session.run(feeds)[output]
                row[kernels + "_kernels"] = session.integer_kernel_stats()
                row[kernels + "_ms"] = median_time(lambda: session.run(feeds), seconds)[0] * 1e3
            if not (outputs["int8"].tobytes() == outputs["bitserial"].tobytes() == outputs["auto"].tobytes()):
                raise SystemExit("W%dA%d batch %d: the integer kernels' outputs differ" % (bits, bits, batch))
            row["int8_over_bitserial"] = row["int8_ms"] / row["bitserial_ms"]
            row["best_over_auto"] = min(row["int8_ms"], row["bitserial_ms"]) / row["auto_ms"]
            rows.append(row)
            print("  mlp W%dA%d batch %2d: int8 %8.3f ms  bit-serial %8.3f ms  auto %8.3f ms (%s)" %
                  (bits, bits, batch, row["int8_ms"], row["bitserial_ms"], row["auto_ms"], row["auto_kernels"]),
                  file=sys.stderr)
    return rows


LAYER_SHAPES = ((784, 512), (1536, 1536), (4096, 4096))


def single_layer_model(qcore, rng, n, outputs, kw):
    """x [rows, n] -> Q -> DQ -> MatMul(., DQ(w)) with int4 weights spanning kw bits (uint4 codes)."""
    from onnx import TensorProto, helper, numpy_helper
    w = rng.integers(-8, -8 + (1 << kw), (n, outputs))
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"]), helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    inits = [numpy_helper.from_array(np.float32(0.1), "xs"), helper.make_tensor("xz", TensorProto.UINT4, [], [0]),
             helper.make_tensor("w", TensorProto.INT4, w.shape, w.ravel().tolist()),
             numpy_helper.from_array(np.float32(0.01), "ws")]
    graph = helper.make_graph(nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", outputs])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return qcore.Model.from_bytes(model.SerializeToString())


def layer_shapes(qcore, seconds):
    """int8 against bit-serial on single layers: median ms and their ratio, with what auto picked."""
    rng = np.random.default_rng(0)
    rows_out = []
    for n, outputs in LAYER_SHAPES:
        for bits in (1, 2, 3, 4):
            session = qcore.Session(single_layer_model(qcore, rng, n, outputs, bits), qcore.Context(threads=1))
            for rows in CHOICE_BATCHES:
                x = (rng.integers(0, 1 << bits, (rows, n)) * 0.1).astype(np.float32)
                row = {"n": n, "O": outputs, "format": "W%dA%d" % (bits, bits), "rows": rows}
                for kernels in ("int8", "bitserial", "auto"):
                    session.set_integer_kernels(kernels)
                    session.run({"x": x})
                    row[kernels + "_ms"] = median_time(lambda: session.run({"x": x}), seconds / 4)[0] * 1e3
                row["auto_ran"] = "bitserial" if session.integer_kernel_stats()["bitserial_layers"] else "int8"
                row["int8_over_bitserial"] = row["int8_ms"] / row["bitserial_ms"]
                rows_out.append(row)
                print("  layer %4dx%-4d W%dA%d rows %2d: int8 %8.3f ms  bit-serial %8.3f ms  %5.2fx  auto: %s" %
                      (n, outputs, bits, bits, rows, row["int8_ms"], row["bitserial_ms"], row["int8_over_bitserial"],
                       row["auto_ran"]), file=sys.stderr)
    return rows_out


def bitserial_vs_int8(qcore, repeats):
    """W2A2 qc_bitserial_gemm against qc_int8_gemm at n = O = 4096 (bench_bitserial's shapes and data)."""
    rng = np.random.default_rng(6)
    int8 = int8_times(qcore, rng, repeats)
    rows = []
    for m in (64, 1):
        _, planes, w_basis, x, x_basis = layer(rng, qcore, m, 2, 2, "unsigned")
        xv = x[0] if m == 1 else x
        for threads in (1, 2):
            ctx = qcore.Context(threads=threads)
            t = timing.best_time(lambda: qcore.bitserial_gemm(xv, x_basis, "unsigned", planes, w_basis, "signed", ctx=ctx),
                                 repeats)
            rows.append({"format": "W2A2", "M": m, "n": N, "O": O, "threads": threads, "arch": ctx.arch,
                         "bitserial_ms": t * 1e3, "int8_gemm_ms": int8[(m, threads)] * 1e3,
                         "int8_over_bitserial": int8[(m, threads)] / t})
            print("  W2A2 M %2d threads %d: bit-serial %8.3f ms  int8 %8.3f ms  %5.2fx" %
                  (m, threads, t * 1e3, int8[(m, threads)] * 1e3, int8[(m, threads)] / t), file=sys.stderr)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--installed", action="store_true", help="use the installed qcore, not the build tree")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing budget per cell and engine")
    parser.add_argument("--repeats", type=int, default=15, help="best-of runs for the bit-serial rows")
    parser.add_argument("--output", default="qdq_exec.json")
    parser.add_argument("--choice-only", action="store_true", help="only the low-bit kernel-choice and layer rows")
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    import onnxruntime as ort
    import qcore
    before = [round(v, 2) for v in os.getloadavg()]
    images = np.load(os.path.join(MODELS_DIR, "mnist_sample.npz"))["images"].astype(np.float32) / np.float32(255.0)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        choice = kernel_choice(qcore, images, folder, args.seconds)
        shapes = layer_shapes(qcore, args.seconds)
        if args.choice_only:
            report.write_json(args.output, {"benchmark": "bench_qdq_exec", "kernel_choice": choice, "layer_shapes": shapes})
            return
        for net in ("mlp", "cnn"):
            for fmt in FORMATS:
                rows += measure_model(qcore, ort, net, fmt, images, folder, args.seconds)
    print("%-4s %-5s %5s %10s %10s %10s %10s %9s %9s %9s" % ("net", "fmt", "batch", "int ms", "float ms", "ortQDQ ms",
                                                              "ortFP32 ms", "flt/int", "int/oQDQ", "int/oFP32"))
    for r in rows:
        print("%-4s %-5s %5d %10.3f %10.3f %10.3f %10.3f %9.2f %9.2f %9.2f" % (
            r["model"], r["format"], r["batch"], r["qcore_int_ms"], r["qcore_float_ms"], r["ort_qdq_ms"],
            r["ort_fp32_ms"], r["float_over_int"], r["int_over_ort_qdq"], r["int_over_ort_fp32"]))
    bitserial = bitserial_vs_int8(qcore, args.repeats)
    result = {"benchmark": "bench_qdq_exec", "qcore_source": source, "arch": qcore.Context(threads=1).arch,
              "onnxruntime": ort.__version__, "timing": "median wall time, 1 thread", "openblas": timing.openblas_kernel(),
              "load_average_before": before, "rows": rows,
              "bitserial_w2a2_vs_int8": bitserial, "kernel_choice": choice, "layer_shapes": shapes}
    result.update(report.machine(qcore))
    report.write_json(args.output, result)


if __name__ == "__main__":
    main()
