"""Benchmark: per-channel int8 and int4 quantize + dequantize of a 4096x4096 float32 weight, qcore
against numpy computing the same formula in the same run. Prints a table and writes JSON to
benchmarks/results/quant.json.

Throughput counts the float32 input once (4 bytes per element) per quantize+dequantize round trip.
Run (OpenBLAS overrides unset for this command alone, as the project's benchmarks do):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_quant.py
"""
import json
import os
import platform
import sys

import numpy as np

import qcore
import timing

ROWS = COLS = 4096
REPEATS = 7


def best_time(fn):
    return timing.best_time(fn, REPEATS)


def numpy_roundtrip(x, scale, zero_point, qmin, qmax, pack):
    """The ONNX formula in numpy, per output channel (axis 0)."""
    s, z = scale[:, None], zero_point[:, None].astype(np.float32)
    q = np.clip(np.rint(x / s) + z, qmin, qmax).astype(np.int8)
    if pack:
        flat = q.reshape(-1)
        packed = (flat[0::2] & 0x0F).astype(np.uint8) | ((flat[1::2] & 0x0F).astype(np.uint8) << 4)
        low = (packed & 0x0F).astype(np.int8)
        high = (packed >> 4).astype(np.int8)
        q = np.empty_like(flat)
        q[0::2], q[1::2] = np.where(low > 7, low - 16, low), np.where(high > 7, high - 16, high)
        q = q.reshape(x.shape)
    return (q.astype(np.float32) - z) * s


def qcore_roundtrip(x, scale, zero_point, opts, dtype, ctx):
    q = qcore.quantize(x, scale, zero_point, opts, dtype=dtype, ctx=ctx)
    return qcore.dequantize(q, scale, zero_point, opts, ctx=ctx)


def openblas_kernel():
    try:
        from threadpoolctl import threadpool_info
        return [(i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()]
    except ImportError:
        return "threadpoolctl not installed"


def measure(x, bits, dtype, threads):
    opts = qcore.QuantOptions(bits=bits, granularity="channel", axis=0)
    ctx = qcore.Context(threads=threads)
    scale, zero_point = qcore.choose_params(x, opts, ctx=ctx)
    qmin, qmax = opts.qrange()
    ours = qcore_roundtrip(x, scale, zero_point, opts, dtype, ctx)
    theirs = numpy_roundtrip(x, scale, zero_point, qmin, qmax, pack=dtype == "int4")
    if not np.array_equal(ours, theirs):
        raise SystemExit("qcore and numpy disagree for %d-bit: the benchmark compares different work" % bits)
    t_qcore = best_time(lambda: qcore_roundtrip(x, scale, zero_point, opts, dtype, ctx))
    t_numpy = best_time(lambda: numpy_roundtrip(x, scale, zero_point, qmin, qmax, pack=dtype == "int4"))
    gbytes = x.nbytes / 1e9
    return {"format": "int%d per-channel%s" % (bits, " packed" if dtype == "int4" else ""), "threads": threads,
            "qcore_s": t_qcore, "numpy_s": t_numpy, "qcore_GBps": gbytes / t_qcore, "numpy_GBps": gbytes / t_numpy,
            "speedup": t_numpy / t_qcore, "arch": ctx.arch}


def main():
    x = np.random.default_rng(0).standard_normal((ROWS, COLS)).astype(np.float32)
    rows = [measure(x, bits, dtype, threads) for bits, dtype in ((8, np.int8), (4, "int4")) for threads in (1, 2)]
    print("%-26s %7s %8s %11s %11s %8s" % ("format (4096x4096 f32)", "threads", "kernels", "qcore GB/s", "numpy GB/s",
                                            "ratio"))
    for r in rows:
        print("%-26s %7d %8s %11.2f %11.2f %7.2fx" % (r["format"], r["threads"], r["arch"], r["qcore_GBps"],
                                                      r["numpy_GBps"], r["speedup"]))
    result = {"benchmark": "quantize+dequantize round trip", "shape": [ROWS, COLS], "machine": platform.node(),
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "cpu_features": sorted(qcore.cpu_features()), "numpy": np.__version__, "openblas": openblas_kernel(),
              "python": sys.version.split()[0], "rows": rows}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "quant.json")
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    print("written", os.path.relpath(out))


if __name__ == "__main__":
    main()
