"""Benchmark: qcore's fast Walsh-Hadamard transform (x <- x H_n / sqrt(n) on every row, O(n log n)) against
OpenBLAS multiplying by the same matrix materialized (numpy's float32 x @ H, an sgemm, O(n^2)), at the widths
of all-MiniLM-L6-v2 (384 = 12 * 32, 1536 = 12 * 128) and 4096 = 2^12, on 2048 rows, with 1 and 2 threads
for both (numpy's OpenBLAS limited through threadpoolctl). Also the randomized Hadamard rotation, and the
time of one Cayley SGD step on a 384 x 384 rotation (three n^3 products and the fixed-point iterations).
Prints a table and writes JSON to benchmarks/results/rotate.json.

Run (OpenBLAS overrides unset for this command alone, as the project's benchmarks do):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_rotate.py
"""
import json
import os
import platform
import sys

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import qcore
import timing

ROWS = 2048
WIDTHS = (384, 1536, 4096)
REPEATS = 5
CAYLEY_N = 384


def best_time(fn):
    return timing.best_time(fn, REPEATS)


def openblas_kernel():
    return [(i.get("internal_api"), i.get("version"), i.get("architecture"), i.get("threading_layer"))
            for i in threadpool_info() if i.get("user_api") == "blas"]


def check_same_work(x, h, r, ctx):
    """Both engines compute the same product (to float32 rounding) before either is timed."""
    for ours, theirs in ((qcore.fwht(x, ctx=ctx), x @ h), (qcore.random_hadamard(x, stream=1, ctx=ctx), x @ r)):
        err = np.abs(ours - theirs).max()
        if err > 1e-4:
            raise SystemExit("qcore and OpenBLAS disagree by %g: the benchmark compares different work" % err)


def measure(n, threads):
    x = np.random.default_rng(n).standard_normal((ROWS, n)).astype(np.float32)
    ctx = qcore.Context(threads=threads)
    h = (qcore.hadamard_matrix(n) / np.float32(np.sqrt(n))).astype(np.float32)
    r = qcore.random_hadamard_matrix(n, np.float32, stream=1, ctx=ctx)
    y = x.copy()  # transformed in place again and again: an orthogonal map keeps its values bounded
    with threadpool_limits(limits=threads, user_api="blas"):
        check_same_work(x, h, r, ctx)
        t_fwht = best_time(lambda: qcore.fwht(y, inplace=True, ctx=ctx))
        t_rand = best_time(lambda: qcore.random_hadamard(y, stream=1, inplace=True, ctx=ctx))
        t_blas = best_time(lambda: x @ h)
    return {"n": n, "K": qcore.hadamard_factor(n), "rows": ROWS, "threads": threads, "fwht_s": t_fwht,
            "random_hadamard_s": t_rand, "openblas_sgemm_s": t_blas, "fwht_Gelem_per_s": ROWS * n / t_fwht / 1e9,
            "speedup_fwht": t_blas / t_fwht, "speedup_random_hadamard": t_blas / t_rand}


def cayley_step_time(n, threads):
    ctx = qcore.Context(threads=threads)
    x = qcore.random_orthogonal(n, np.float64, stream=1, ctx=ctx)
    grad = qcore.random_normal((n, n), np.float64, stream=2, ctx=ctx)
    opt = qcore.CayleySGD(n, options=qcore.CayleyOptions(lr=1e-3, qr_every=0))
    return {"n": n, "threads": threads, "step_s": best_time(lambda: opt.step(x, grad, ctx))}


def main():
    rows = [measure(n, threads) for n in WIDTHS for threads in (1, 2)]
    cayley = [cayley_step_time(CAYLEY_N, threads) for threads in (1, 2)]
    print("%6s %4s %7s %10s %12s %13s %9s %9s" % ("n", "K", "threads", "FWHT ms", "rand-H ms", "OpenBLAS ms",
                                                   "FWHT x", "rand-H x"))
    for r in rows:
        print("%6d %4d %7d %10.2f %12.2f %13.2f %8.1fx %8.1fx" % (
            r["n"], r["K"], r["threads"], 1e3 * r["fwht_s"], 1e3 * r["random_hadamard_s"],
            1e3 * r["openblas_sgemm_s"], r["speedup_fwht"], r["speedup_random_hadamard"]))
    for c in cayley:
        print("Cayley SGD step, n = %d, %d thread(s): %.2f ms" % (c["n"], c["threads"], 1e3 * c["step_s"]))
    kernel = openblas_kernel()
    print("OpenBLAS:", kernel)
    result = {"benchmark": "FWHT vs dense product by the same matrix", "rows_per_call": ROWS,
              "machine": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "cpu_features": sorted(qcore.cpu_features()), "numpy": np.__version__, "openblas": kernel,
              "qcore": qcore.__version__, "python": sys.version.split()[0], "rows": rows, "cayley_step": cayley}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "rotate.json")
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    print("written", os.path.relpath(out))


if __name__ == "__main__":
    main()
