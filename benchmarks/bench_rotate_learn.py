"""Benchmark: one evaluation (loss and gradient) of qcore's built-in rotation objective,
qc_linear_rotation_loss ||X W^T - Q_a(X R) Q_w(W R)^T||^2 / n with W4 per-channel weights and A4 per-token
activations, against torch autograd computing the same loss and straight-through gradient (round
straight-through, min-max scales differentiated: SpinQuant's fake quantizers), in float64 products with
float32 quantization as qcore does, in the same run. Shapes of all-MiniLM-L6-v2: X [2048, 384] with
W [1152, 384] (q, k, v stacked), and X [2048, 1536] with W [384, 1536] (FFN output). 1 and 2 threads for
both (torch.set_num_threads). Also the Cayley driver's overhead: qc_cayley_minimize's time per step with
the objective against the objective alone. Prints a table; JSON in benchmarks/results/rotate_learn.json.

Run:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_rotate_learn.py
"""
import os
import platform
import sys

import numpy as np
import torch

import qcore
import report
import timing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "python"))
import rotation_oracle  # noqa: E402  (the torch formulation the tests use as their oracle)

ROWS = 2048
SHAPES = ((384, 1152), (1536, 384))  # (in, out)
REPEATS = 3
STEPS = 5
ACT = qcore.QuantOptions(bits=4, signed=False, symmetric=False, granularity="channel", axis=0)
WEIGHT = qcore.QuantOptions(bits=4, granularity="channel", axis=0)


def measure(n_in, n_out, threads):
    rng = np.random.default_rng(n_in)
    x = rng.standard_normal((ROWS, n_in)).astype(np.float32)
    x[:, :: n_in // 6] *= 20.0  # a few outlier channels, as the real inputs have
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    r = qcore.random_hadamard_matrix(n_in, np.float64, stream=1)
    ctx = qcore.Context(threads=threads)
    torch.set_num_threads(threads)
    ours, theirs = qcore.LinearRotationLoss(x, w, ACT, WEIGHT), rotation_oracle.objective(x, w, 4, 4)
    (l1, g1), (l2, g2) = ours(r, ctx=ctx), theirs(r)
    if abs(l1 - l2) > 1e-6 * abs(l2) or np.abs(g1 - g2).max() > 1e-5 * np.abs(g2).max():
        raise SystemExit("qcore and torch disagree: the benchmark would compare different work")
    t_ours = timing.best_time(lambda: ours(r, ctx=ctx), REPEATS)
    t_torch = timing.best_time(lambda: theirs(r), REPEATS)
    options = qcore.CayleyOptions(lr=0.01, momentum=0.0)
    t_run = timing.best_time(lambda: qcore.cayley_run(r, ours, STEPS, options, ctx=ctx), 1) / (STEPS + 1)
    return {"in": n_in, "out": n_out, "rows": ROWS, "threads": threads, "qcore_eval_s": t_ours, "torch_eval_s": t_torch,
            "speedup": t_torch / t_ours, "qcore_driver_per_evaluation_s": t_run}


def main():
    rows = [measure(n_in, n_out, threads) for n_in, n_out in SHAPES for threads in (1, 2)]
    print("%6s %6s %7s %12s %12s %8s %18s" % ("in", "out", "threads", "qcore ms", "torch ms", "ratio", "driver ms/eval"))
    for r in rows:
        print("%6d %6d %7d %12.1f %12.1f %7.2fx %18.1f" % (r["in"], r["out"], r["threads"], 1e3 * r["qcore_eval_s"],
                                                         1e3 * r["torch_eval_s"], r["speedup"],
                                                         1e3 * r["qcore_driver_per_evaluation_s"]))
    kernel = timing.openblas_kernel()
    print("OpenBLAS:", kernel, "load average:", os.getloadavg())
    result = {"benchmark": "rotation objective (loss + STE gradient) vs torch autograd", "machine": platform.node(),
              "cores": os.cpu_count(), "load_average": os.getloadavg(), "openblas": kernel, "torch": torch.__version__,
              "qcore": qcore.__version__, "python": sys.version.split()[0], "rows": rows}
    report.write_json("rotate_learn.json", result)


if __name__ == "__main__":
    main()
