"""Benchmark: qcore's bit-serial kernels (qc_kernels.h) against this machine's measured popcount roofline and
against OpenBLAS sgemm (numpy float32 x @ W^T) at the same shapes, in the same run. Prints a table and
writes JSON to benchmarks/results/bitserial.json.

- Roofline: build/benchmarks/popcount_roofline (C) times independent register chains of XOR + VPOPCNTQ +
  VPADDQ (the three operations 512 binary multiply-accumulates cost) and a dependent scalar add chain
  (1/cycle, for the clock); best of its rounds, run before and after the kernels, best kept. Efficiency =
  kernel binary MACs/ns / roofline MACs/ns, both measured here; MAC/cycle = MACs/ns / the add chain's GHz.
  The issue's 683 MAC/cycle figure was measured on an AMD Zen 5; it is printed beside ours for reference.
- Kernel rows (1 thread): W1A1 GEMM with M in 8, 16, 64 (n = O = 4096): `dots` is qc_bitserial_dots on
  pre-packed planes (the integer core alone), `gemm` is qc_bitserial_gemm from float inputs (activation
  encoding fused, float scaling), `il` the same from the interleaved weights (qc_bitserial_gemm_interleaved,
  what ai.qcore.LQGemm runs); codes +-1 x +-1 (XOR) and {0,1} x +-1 (AND, inputs after a ReLU). Timed as
  the process's CPU time, as the probe now times itself, so that other work on the shared cores does not
  count against either.
- The same W1A1 GEMM rows timed from C (build/benchmarks/bitserial_probe: qc_bitserial_gemm and
  qc_bitserial_gemm_interleaved through the public C API, random planes, CPU time, best of --repeats), so
  that the efficiency of the kernels themselves is seen without the Python call's cost (cffi argument
  conversion and the output array's allocation: about a tenth of the call at M = 8). Both are printed
  and kept; `c_*` fields in the JSON.
- Peer rows: W1A1, W2A2, W3A3 (and W1A2, W2A4) qc_bitserial_gemm from float inputs against numpy's
  OpenBLAS sgemm of the same float32 shapes (M = 64 and the GEMV M = 1; n = O = 4096) on 1 and 2 threads
  (qcore Context(threads), OpenBLAS through threadpoolctl), and against qcore's exact int8 product
  (qc_int8_gemm, AVX-512 VNNI here) on uint8 x int8 data of the same shape (integers only: no encoding or
  scaling, which favours int8). Ratios = the peer's time / bit-serial time.
Times are the best of --repeats runs after a warm-up. Other agents share this machine's 2 cores; its
load average is recorded before and after.

Run from the repository root (OpenBLAS overrides unset for this command alone):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_bitserial.py
qcore is taken from the build tree unless QCORE_LIBRARY is set or --installed is given (bench_onnx's rule).
"""
import argparse
import json
import os
import platform
import subprocess
import time
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_onnx import BUILD, use_build_tree  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402

N = O = 4096
CLOCK = time.process_time  # the kernel rows run on one thread: their CPU time, as the probe measures
ZEN5_ROOFLINE = 683


def roofline():
    probe = os.path.join(BUILD, "benchmarks", "popcount_roofline")
    if not os.path.exists(probe):
        return None
    return json.loads(subprocess.run([probe, "30"], check=True, capture_output=True, text=True).stdout)


def layer(rng, qcore, m, ka, kw, x_code):
    w = rng.standard_normal((O, N)).astype(np.float32)
    wfit = qcore.lq_fit(w, kw, "signed", qcore.LqOptions(max_iters=5))
    planes = qcore.lq_pack(qcore.lq_encode(w, wfit.basis, "signed"), kw)
    x = rng.standard_normal((m, N)).astype(np.float32)
    if x_code == "unsigned":
        x = np.maximum(x, 0)
    xfit = qcore.lq_fit(x.reshape(1, -1), ka, x_code, qcore.LqOptions(max_iters=5))
    return w, planes, wfit.basis, x, xfit.basis[0]


def c_kernel_rows(repeats):
    """{(codes, M): row} of bitserial_probe, or {} when it is not built."""
    probe = os.path.join(BUILD, "benchmarks", "bitserial_probe")
    if not os.path.exists(probe):
        return {}
    out = subprocess.run([probe, str(repeats), "8", "16", "64"], check=True, capture_output=True, text=True).stdout
    return {(r["codes"], r["M"]): r for r in json.loads(out)["rows"]}


def kernel_rows(qcore, rng, repeats):
    ctx = qcore.Context(threads=1)
    rows = []
    for x_code in ("signed", "unsigned"):
        for m in (8, 16, 64):
            w, planes, w_basis, x, x_basis = layer(rng, qcore, m, 1, 1, x_code)
            x_planes = qcore.lq_pack(qcore.lq_encode(x, x_basis[None], x_code), 1)
            t_dots = timing.best_time(lambda: qcore.bitserial_dots(x_planes, x_code, planes, "signed", N, ctx=ctx), repeats,
                                      CLOCK)
            t_gemm = timing.best_time(lambda: qcore.bitserial_gemm(x, x_basis, x_code, planes, w_basis, "signed",
                                                                   ctx=ctx), repeats, CLOCK)
            il = qcore.bitserial_interleave(planes)
            t_il = timing.best_time(lambda: qcore.bitserial_gemm(x, x_basis, x_code, planes, w_basis, "signed", ctx=ctx,
                                                                 w_interleaved=il), repeats, CLOCK)
            macs = m * O * N
            rows.append({"codes": "%s x signed" % x_code, "M": m, "n": N, "O": O, "dots_s": t_dots, "gemm_s": t_gemm,
                         "gemm_interleaved_s": t_il, "dots_mac_per_ns": macs / t_dots * 1e-9,
                         "gemm_mac_per_ns": macs / t_gemm * 1e-9, "gemm_interleaved_mac_per_ns": macs / t_il * 1e-9})
    return rows


def int8_times(qcore, rng, repeats):
    """qc_int8_gemm (VNNI where present) at the peer rows' shapes: {(M, threads): seconds}."""
    w = rng.integers(-128, 128, size=(O, N), dtype=np.int8)
    times = {}
    for m in (64, 1):
        x = rng.integers(0, 256, size=(m, N), dtype=np.uint8)
        for threads in (1, 2):
            ctx = qcore.Context(threads=threads)
            times[(m, threads)] = timing.best_time(lambda: qcore.int8_gemm(x, w, ctx=ctx), repeats)
    return times


def peer_rows(qcore, rng, repeats):
    from threadpoolctl import threadpool_limits
    int8 = int8_times(qcore, rng, repeats)
    rows = []
    for ka, kw in ((1, 1), (2, 2), (3, 3), (2, 1), (4, 2)):
        for m in (64, 1):
            w, planes, w_basis, x, x_basis = layer(rng, qcore, m, ka, kw, "unsigned")
            xv = x[0] if m == 1 else x
            for threads in (1, 2):
                ctx = qcore.Context(threads=threads)
                with threadpool_limits(limits=threads, user_api="blas"):
                    t_bs = timing.best_time(lambda: qcore.bitserial_gemm(xv, x_basis, "unsigned", planes, w_basis,
                                                                         "signed", ctx=ctx), repeats)
                    t_blas = timing.best_time(lambda: xv @ w.T, repeats)
                rows.append({"format": "W%dA%d" % (kw, ka), "M": m, "n": N, "O": O, "threads": threads,
                             "bitserial_s": t_bs, "sgemm_s": t_blas, "speedup": t_blas / t_bs,
                             "int8_gemm_s": int8[(m, threads)], "speedup_vs_int8": int8[(m, threads)] / t_bs})
    return rows


def load_average():
    return list(os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--installed", action="store_true")
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    import qcore
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(6)
    load_before = load_average()
    roof_before = roofline()
    kernels = kernel_rows(qcore, rng, args.repeats)
    c_rows = c_kernel_rows(args.repeats)
    for r in kernels:
        c = c_rows.get((r["codes"], r["M"]))
        if c:
            macs = r["M"] * r["n"] * r["O"]
            r["c_gemm_s"], r["c_gemm_interleaved_s"] = c["gemm_s"], c["gemm_interleaved_s"]
            r["c_gemm_mac_per_ns"] = macs / c["gemm_s"] * 1e-9
            r["c_gemm_interleaved_mac_per_ns"] = macs / c["gemm_interleaved_s"] * 1e-9
    peers = peer_rows(qcore, rng, args.repeats)
    roof_after = roofline()
    roofs = [r for r in (roof_before, roof_after) if r]
    roof = {"binary_mac_per_ns": max(r["binary_mac_per_ns"] for r in roofs),
            "add_chain_ghz": max(r["add_chain_ghz"] for r in roofs)} if roofs else None

    print("popcount roofline here: %s" % (
        "%.0f binary MAC/ns, add chain %.2f GHz = %.0f MAC/cycle (Zen 5 figure in the issue: %d)" % (
            roof["binary_mac_per_ns"], roof["add_chain_ghz"], roof["binary_mac_per_ns"] / roof["add_chain_ghz"],
            ZEN5_ROOFLINE) if roof else "probe not built"))
    print("%-20s %4s %10s %10s %10s %12s %12s %12s %9s %9s %9s" % (
        "W1A1 codes", "M", "dots ms", "gemm ms", "il ms", "dots MAC/ns", "gemm MAC/ns", "il MAC/ns", "dots eff",
        "gemm eff", "il eff"))
    for r in kernels:
        if roof:
            for kind in ("dots", "gemm", "gemm_interleaved", "c_gemm", "c_gemm_interleaved"):
                if kind + "_mac_per_ns" not in r:
                    continue
                r[kind + "_efficiency"] = r[kind + "_mac_per_ns"] / roof["binary_mac_per_ns"]
                r[kind + "_mac_per_cycle"] = r[kind + "_mac_per_ns"] / roof["add_chain_ghz"]
        print("%-20s %4d %10.3f %10.3f %10.3f %12.0f %12.0f %12.0f %8.0f%% %8.0f%% %8.0f%%" % (
            r["codes"], r["M"], 1e3 * r["dots_s"], 1e3 * r["gemm_s"], 1e3 * r["gemm_interleaved_s"],
            r["dots_mac_per_ns"], r["gemm_mac_per_ns"], r["gemm_interleaved_mac_per_ns"],
            100 * r.get("dots_efficiency", 0), 100 * r.get("gemm_efficiency", 0),
            100 * r.get("gemm_interleaved_efficiency", 0)))
    if c_rows:
        print("the same from C (bitserial_probe, no Python call cost):")
        print("%-20s %4s %10s %10s %12s %12s %9s %9s" % ("W1A1 codes", "M", "gemm ms", "il ms", "gemm MAC/ns",
                                                         "il MAC/ns", "gemm eff", "il eff"))
        for r in kernels:
            if "c_gemm_s" in r:
                print("%-20s %4d %10.3f %10.3f %12.0f %12.0f %8.0f%% %8.0f%%" % (
                    r["codes"], r["M"], 1e3 * r["c_gemm_s"], 1e3 * r["c_gemm_interleaved_s"], r["c_gemm_mac_per_ns"],
                    r["c_gemm_interleaved_mac_per_ns"], 100 * r.get("c_gemm_efficiency", 0),
                    100 * r.get("c_gemm_interleaved_efficiency", 0)))
    print("%-7s %4s %7s %13s %10s %9s %9s %9s" % ("format", "M", "threads", "bit-serial ms", "sgemm ms", "vs sgemm",
                                                  "int8 ms", "vs int8"))
    for r in peers:
        print("%-7s %4d %7d %13.3f %10.3f %8.2fx %9.3f %8.2fx" % (
            r["format"], r["M"], r["threads"], 1e3 * r["bitserial_s"], 1e3 * r["sgemm_s"], r["speedup"],
            1e3 * r["int8_gemm_s"], r["speedup_vs_int8"]))
    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "threading_layer")}
            for i in threadpool_info() if i.get("user_api") == "blas"]
    print("OpenBLAS:", blas)
    load_after = load_average()
    print("load average before %s, after %s (2 cores shared with other agents)" % (load_before, load_after))
    result = {"benchmark": "bit-serial GEMM/GEMV vs popcount roofline and OpenBLAS sgemm", "qcore_source": source,
              "machine": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "cpu_features": sorted(qcore.cpu_features()), "arch": qcore.best_arch(), "qcore": qcore.__version__,
              "numpy": np.__version__, "openblas": blas, "python": sys.version.split()[0], "repeats": args.repeats,
              "load_average_before": load_before, "load_average_after": load_after, "roofline": roof,
              "roofline_runs": roofs, "zen5_roofline_mac_per_cycle": ZEN5_ROOFLINE, "kernel_rows": kernels,
              "peer_rows": peers}
    report.write_json("bitserial.json", result)


if __name__ == "__main__":
    main()
