"""Benchmark: qcore's OPTQ and GPFQ, plain and accumulator-aware (AXE), against Brevitas' GPTQ, GPFQ,
A2GPTQ and A2GPFQ in the same run, on identical layers, inputs and bit widths. Prints a table and writes
JSON to benchmarks/results/gpxq.json.

Setup (the same for both tools; one square linear layer W [d, d], no bias, d in --sizes):
- Inputs: synthetic and heavy-tailed (documented substitute for real activations, since MiniLM has no
  768- or 4096-wide activations): z = (correlated Gaussian: rank-d/8 mixing plus iid noise) scaled per
  sample by a Student-t(4) factor and per channel by a log-normal(0, 1) factor (outlier channels), then
  x = relu(z) (post-activation, non-negative). N = 2048 calibration samples, fed in 8 batches of 256.
- Weights: Student-t(5) / sqrt(d), float32, fixed seed.
- Weight grid W4: signed 4-bit, symmetric, narrow range [-7, 7], per output channel, scale = absmax(W)/7
  chosen once from the original W. qcore: QuantOptions(bits=4, narrow_range=True, granularity="channel",
  axis=0). Brevitas: Int8WeightPerChannelFloat with bit_width 4 and scaling_impl_type
  'parameter_from_stats' (initialized by one forward before timing). Brevitas' default 'stats' scaling
  recomputes the scale from the running weights on every call, so GPTQ's updates would move the grid,
  and A2GPTQ's bounds (computed once from `quant_weight().scale`) would no longer match the grid used.
- Inputs A8: unsigned 8-bit per tensor, x~ = clamp(round(x / s), 0, 255) * s with a constant s =
  percentile_99.99(x) / 255 (Brevitas: Uint8ActPerTensorFloat with const scaling). All variants, plain
  ones included, see these quantized inputs (Brevitas' gpxq modes with use_quant_activations=True, its
  default and a requirement of the AXE classes); qcore is given x~ as computed by Brevitas' own input
  quantizer (checked against the formula above).
- OPTQ/GPTQ: H from x~. GPFQ: H = x~ x~^T and G = x~ x^T, x from the float model (Brevitas' gpfq_mode
  runs each batch twice: quantized, then with quantization off).
- act_order on for both; each tool's own defaults otherwise: damping 0.01 * mean(diag H) (both OPTQ;
  qcore also damps GPFQ by default, Brevitas' GPFQ has no damping, so qcore GPFQ is also run with
  damp_ratio = 0, the exact algorithm), Brevitas' GPTQ block of ceil(K/100) columns, qcore's 128.
- AXE: P = 16-bit accumulator, N = 8-bit unsigned inputs, T = K (one monolithic accumulator per row),
  soft (L1) and strict constraints. qcore: GpxqOptions(accumulator_bits=16, input_bits=8,
  input_signed=False, tile_size=0). Brevitas: brevitas_examples.common.axe.a2gptq_mode / a2gpfq_mode
  (classes A2GPTQ, A2GPFQ) with max_accumulator_bit_width=16, max_accumulator_tile_size=None (= K);
  N and signedness come from the input quantizer's metadata.

Metrics, per layer:
- error = ||x W^T - x~ Q^T||_F / ||x W^T||_F over the 2048 calibration samples, Q each tool's dequantized
  weights (qcore: layer.dequantized; Brevitas: QuantLinear.quant_weight().value after the update), x the
  float inputs and x~ the A8 inputs the quantized layer sees.
- time: wall time of the whole per-layer job. qcore: GpxqStats over the 8 batches, then qcore.optq from
  the statistics (no copy of H) or hessian()/cross() + qcore.gpfq. Brevitas: entering the gpxq mode (hooks, optimizer buffers), its calibration forwards
  over the same 8 batches (statistics) and update() (the quantization). Model construction and the
  scale-initializing forward are outside the timing for Brevitas. Best of --repeats runs for qcore,
  of --brevitas-repeats for Brevitas (1 at d >= 4096).
- AXE rows: the integer levels of both tools are checked with qcore.verify_accumulator against a 16-bit
  accumulator and unsigned 8-bit inputs ("fits P16"; also reported for plain rows, where it is expected
  to fail). For the plain OPTQ/GPTQ pair, the fraction of identical integer levels is reported as a
  like-for-like check (the two implement the same algorithm with different blocking and precision).
- Ratios: time_qcore / time_brevitas (speed-up is its inverse) and error_qcore / error_brevitas.
Threads: the same count (--threads, default 1) for torch (torch.set_num_threads) and qcore
(Context(threads=...), which also sizes its OpenBLAS team). Default 1 because the 2-core machine of the
recorded run had one core busy with another job (a fuzzer): there, torch's 2-thread OpenMP team made
Brevitas' small per-column tensor ops ~100x slower (spinning against the busy core), which would have
flattered qcore. Which BLAS libraries were loaded and their kernels (threadpoolctl) are recorded. When
qcore's OpenBLAS would fall back to its generic Prescott kernels on this CPU (bench_gptq_reference's
qcore_blas_kernel decides, and says why), the benchmark re-runs itself with OPENBLAS_CORETYPE naming the
CPU's OpenBLAS core type (benchmark-only; torch's MKL ignores it); "openblas_kernel" records the decision.
d = 4096 runs the OPTQ pair only (--gpfq-max-size, default 1536): Brevitas' GPFQ and A2GPFQ re-quantize
the whole weight at every column (get_quant_weights(with_quant_history=True), O(K * OC * K) elementwise
work in Python-driven torch ops); at d = 1536 they took about a minute each here, which extrapolates
(cubic) to roughly 15-25 minutes each at 4096, beyond this benchmark's time budget.

Run from the repository root (OpenBLAS overrides unset for this command alone, as the project's
benchmarks do):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_gpxq.py
qcore is taken from the build tree unless QCORE_LIBRARY is set or --installed is given (bench_onnx's rule).
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_onnx import use_build_tree  # noqa: E402  (shared rule for picking the build tree)

SAMPLES = 2048
BATCHES = 8
WEIGHT_BITS = 4
ACC_BITS, INPUT_BITS, INPUT_SIGNED = 16, 8, False
INPUT_PERCENTILE = 99.99
GOAL_SPEEDUP = 5.0
VARIANTS = (  # (name, qcore method, AXE, Brevitas mode)
    ("OPTQ", "optq", False, "gptq"),
    ("OPTQ+AXE", "optq", True, "a2gptq"),
    ("GPFQ", "gpfq", False, "gpfq"),
    ("GPFQ+AXE", "gpfq", True, "a2gpfq"),
)


def best_of(runs, fn):
    """(best wall time, result of the best run) of `runs` calls of fn() -> (seconds, result)."""
    best = None
    for _ in range(runs):
        seconds, result = fn()
        if best is None or seconds < best[0]:
            best = (seconds, result)
    return best


# ---------------------------------------------------------------------------------------------- data

def make_layer(d, np):
    rng = np.random.default_rng(4000 + d)
    rank = max(8, d // 8)
    z = rng.standard_normal((SAMPLES, rank)) @ rng.standard_normal((rank, d)) / np.sqrt(rank)
    z += 0.5 * rng.standard_normal((SAMPLES, d))
    z *= np.sqrt(4.0 / rng.chisquare(4.0, (SAMPLES, 1)))       # Student-t(4) sample scale: heavy tails
    z *= rng.lognormal(0.0, 1.0, (1, d))                         # outlier channels
    x = np.maximum(z, 0.0).astype(np.float32)
    w = (rng.standard_t(5.0, (d, d)) / np.sqrt(d)).astype(np.float32)
    input_scale = float(np.percentile(x, INPUT_PERCENTILE)) / (2 ** INPUT_BITS - 1)
    return x, w, input_scale


# ---------------------------------------------------------------------------------------------- Brevitas

def brevitas_model(w, input_scale, torch):
    import brevitas.nn as qnn
    from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

    class W4PerChannel(Int8WeightPerChannelFloat):
        bit_width = WEIGHT_BITS
        scaling_impl_type = "parameter_from_stats"

    class A8Const(Uint8ActPerTensorFloat):
        scaling_impl_type = "const"
        scaling_init = input_scale * (2 ** INPUT_BITS - 1)

    d_out, d_in = w.shape
    layer = qnn.QuantLinear(d_in, d_out, bias=False, weight_quant=W4PerChannel, input_quant=A8Const)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
    model = torch.nn.Sequential(layer).eval()
    with torch.no_grad():
        model(torch.zeros(1, d_in))  # initializes the weight scale from W (parameter_from_stats)
    return model


def brevitas_mode(kind, model):
    from brevitas.graph.gpfq import gpfq_mode
    from brevitas.graph.gptq import gptq_mode
    from brevitas_examples.common.axe import a2gpfq_mode, a2gptq_mode
    common = dict(act_order=True, use_quant_activations=True)
    axe = dict(max_accumulator_bit_width=ACC_BITS, max_accumulator_tile_size=None)
    return {"gptq": lambda: gptq_mode(model, **common),
            "a2gptq": lambda: a2gptq_mode(model, **common, **axe),
            "gpfq": lambda: gpfq_mode(model, **common),
            "a2gpfq": lambda: a2gpfq_mode(model, **common, **axe)}[kind]()


def brevitas_run(kind, w, batches, input_scale, torch):
    model = brevitas_model(w, input_scale, torch)
    start = time.perf_counter()
    with torch.no_grad():
        with brevitas_mode(kind, model) as gpxq:
            for _ in range(gpxq.num_layers):
                for b in batches:
                    gpxq.model(b)
                gpxq.update()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        qw = model[0].quant_weight()
        deq = qw.value.detach().numpy().astype("float32")
        levels = torch.round(qw.value / qw.scale).to(torch.int32).numpy()
    return seconds, (deq, levels)


# ---------------------------------------------------------------------------------------------- qcore

def qcore_run(method, axe, damp_ratio, w, x_batches, xq_batches, ctx, qcore):
    grid = qcore.QuantOptions(bits=WEIGHT_BITS, narrow_range=True, granularity="channel", axis=0)
    opts = qcore.GpxqOptions(act_order=True, damp_ratio=damp_ratio)
    if axe:
        opts.accumulator_bits, opts.input_bits, opts.input_signed, opts.tile_size = (ACC_BITS, INPUT_BITS,
                                                                                     INPUT_SIGNED, 0)
    start = time.perf_counter()
    stats = qcore.GpxqStats(method, w.shape[1])
    if method == "optq":
        for xq in xq_batches:
            stats.add(xq, ctx=ctx)
        layer = qcore.optq(w, stats, grid, opts, ctx=ctx)  # H read from the statistics (qc_optq_from_stats)
    else:
        for x, xq in zip(x_batches, xq_batches):
            stats.add(x, xq, ctx=ctx)
        layer = qcore.gpfq(w, stats.hessian(), stats.cross(), grid, opts, ctx=ctx)
    seconds = time.perf_counter() - start
    return seconds, (layer.dequantized, layer.centered())


# ---------------------------------------------------------------------------------------------- measure

def rel_error(reference, xq, deq, np):
    out = xq @ deq.T
    return float(np.linalg.norm((reference - out).astype(np.float64)) / np.linalg.norm(reference.astype(np.float64)))


def fits(levels, qcore):
    report = qcore.verify_accumulator(np.ascontiguousarray(levels, np.int32), ACC_BITS,
                                      qcore.input_range(INPUT_BITS, INPUT_SIGNED))
    return bool(report.passed), int(report.required_bits)


def measure(d, args, variants, qcore, torch, np):
    x, w, input_scale = make_layer(d, np)
    x_batches = np.split(x, BATCHES)
    t_batches = [torch.from_numpy(b) for b in x_batches]
    # x~ as Brevitas' input quantizer produces it; qcore gets exactly these values
    probe = brevitas_model(w, input_scale, torch)
    with torch.no_grad():
        xq = probe[0].input_quant(torch.from_numpy(x)).value.numpy().astype(np.float32)
    formula = (np.clip(np.rint(x / np.float32(input_scale)), 0, 2 ** INPUT_BITS - 1) * np.float32(input_scale))
    if np.abs(xq - formula).max() > 1e-5 * max(1.0, float(np.abs(formula).max())):
        raise SystemExit("Brevitas' input quantizer is not the documented A8 grid: the comparison would be unfair")
    xq_batches = [np.ascontiguousarray(b) for b in np.split(xq, BATCHES)]
    reference = x @ w.T
    ctx = qcore.Context(threads=args.threads)
    rtn = qcore.rtn(w, qcore.QuantOptions(bits=WEIGHT_BITS, narrow_range=True, granularity="channel", axis=0))
    rtn_error = rel_error(reference, xq, rtn.dequantized, np)
    b_repeats = 1 if d >= 4096 else args.brevitas_repeats
    rows = []
    for name, method, axe, kind in variants:
        t_q, (deq_q, lev_q) = best_of(args.repeats, lambda: qcore_run(method, axe, 0.01, w, x_batches, xq_batches,
                                                                     ctx, qcore))
        print("  d=%d %-9s qcore    %8.3f s" % (d, name, t_q), flush=True)
        t_b, (deq_b, lev_b) = best_of(b_repeats, lambda: brevitas_run(kind, w, t_batches, input_scale, torch))
        print("  d=%d %-9s Brevitas %8.3f s" % (d, name, t_b), flush=True)
        e_q, e_b = rel_error(reference, xq, deq_q, np), rel_error(reference, xq, deq_b, np)
        fit_q, bits_q = fits(lev_q, qcore)
        fit_b, bits_b = fits(lev_b, qcore)
        row = {"d": d, "variant": name, "brevitas_class": {"gptq": "GPTQ", "a2gptq": "A2GPTQ", "gpfq": "GPFQ",
                                                          "a2gpfq": "A2GPFQ"}[kind],
               "qcore_s": t_q, "brevitas_s": t_b, "time_ratio": t_q / t_b, "speedup": t_b / t_q,
               "qcore_error": e_q, "brevitas_error": e_b, "error_ratio": e_q / e_b, "rtn_error": rtn_error,
               "qcore_fits_P16": fit_q, "brevitas_fits_P16": fit_b, "qcore_required_bits": bits_q,
               "brevitas_required_bits": bits_b, "qcore_runs": args.repeats, "brevitas_runs": b_repeats}
        if name == "OPTQ":
            row["levels_equal"] = float(np.mean(lev_q == lev_b))
        if method == "gpfq":  # the exact algorithm (no damping), as Brevitas runs it
            t0, (deq0, lev0) = best_of(args.repeats, lambda: qcore_run(method, axe, 0.0, w, x_batches, xq_batches,
                                                                      ctx, qcore))
            row.update({"qcore_undamped_s": t0, "qcore_undamped_error": rel_error(reference, xq, deq0, np),
                        "qcore_undamped_fits_P16": fits(lev0, qcore)[0]})
            row["qcore_undamped_error_ratio"] = row["qcore_undamped_error"] / e_b
        rows.append(row)
    return rows


def blas_info():
    from threadpoolctl import threadpool_info
    return [{k: i.get(k) for k in ("user_api", "internal_api", "prefix", "version", "architecture",
                                    "threading_layer", "num_threads")} for i in threadpool_info()]


KERNEL_VARIABLE = "QCORE_BENCH_OPENBLAS_KERNEL"  # the decision, handed to the re-run process


def openblas_kernel():
    """qcore's OpenBLAS kernel decision (bench_gptq_reference.qcore_blas_kernel); when it names a core type,
    re-runs this process with OPENBLAS_CORETYPE set (the libraries read it when they load)."""
    if KERNEL_VARIABLE in os.environ:
        return json.loads(os.environ.pop(KERNEL_VARIABLE))
    from bench_gptq_reference import qcore_blas_kernel
    kernel = qcore_blas_kernel()
    print("qcore's OpenBLAS by itself: %s; %s" % (kernel["own"], kernel["why"]), flush=True)
    if kernel["coretype"]:
        env = dict(os.environ, OPENBLAS_CORETYPE=kernel["coretype"], **{KERNEL_VARIABLE: json.dumps(kernel)})
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)
    return kernel


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[768, 1536, 4096])
    parser.add_argument("--variants", nargs="+", default=[v[0] for v in VARIANTS])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpfq-max-size", type=int, default=1536,
                        help="GPFQ variants only for d up to this (Brevitas' GPFQ is slow, see the docstring)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--brevitas-repeats", type=int, default=2)
    parser.add_argument("--installed", action="store_true", help="use the pip-installed qcore")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                         "gpxq.json"))
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    kernel = openblas_kernel()
    load_before = [round(v, 2) for v in os.getloadavg()]

    import torch
    import brevitas
    import qcore

    torch.set_num_threads(args.threads)
    variants = [v for v in VARIANTS if v[0] in args.variants]
    rows = []
    for d in args.sizes:
        rows += measure(d, args, [v for v in variants if v[1] == "optq" or d <= args.gpfq_max_size], qcore, torch, np)

    print()
    print("%5s %-9s %-7s %10s %11s %8s %10s %10s %8s %7s %11s" % (
        "d", "variant", "peer", "qcore s", "Brevitas s", "speedup", "qcore err", "Brev err", "err q/B", "RTN err",
        "fits P16 q/B"))
    for r in rows:
        print("%5d %-9s %-7s %10.3f %11.3f %7.1fx %10.4f %10.4f %8.3f %7.4f %6s/%-5s" % (
            r["d"], r["variant"], r["brevitas_class"], r["qcore_s"], r["brevitas_s"], r["speedup"], r["qcore_error"],
            r["brevitas_error"], r["error_ratio"], r["rtn_error"], "yes" if r["qcore_fits_P16"] else "no",
            "yes" if r["brevitas_fits_P16"] else "no"))
    for r in rows:
        if "levels_equal" in r:
            print("d=%d OPTQ vs GPTQ: %.2f%% of integer levels identical" % (r["d"], 100 * r["levels_equal"]))
        if "qcore_undamped_error" in r:
            print("d=%d %s qcore damp_ratio=0: %.3f s, error %.4f (ratio to Brevitas %.3f)" % (
                r["d"], r["variant"], r["qcore_undamped_s"], r["qcore_undamped_error"],
                r["qcore_undamped_error_ratio"]))
    goals = {"speedup_at_least_%gx" % GOAL_SPEEDUP: all(r["speedup"] >= GOAL_SPEEDUP for r in rows),
             "axe_error_no_worse": all(r["error_ratio"] <= 1.0 for r in rows if r["variant"].endswith("AXE"))}
    blas = blas_info()
    print("goals:", goals)
    print("BLAS/OpenMP libraries:", [(b["internal_api"], b["version"], b["architecture"], b["num_threads"],
                                      os.path.basename(b["prefix"] or "")) for b in blas])
    result = {"benchmark": "OPTQ/GPFQ (+AXE) per layer vs Brevitas", "qcore_source": source,
              "samples": SAMPLES, "batches": BATCHES, "weight_bits": WEIGHT_BITS, "accumulator_bits": ACC_BITS,
              "input_bits": INPUT_BITS, "input_signed": INPUT_SIGNED, "tile": "K", "act_order": True,
              "inputs": "synthetic heavy-tailed (see docstring)", "threads": args.threads,
              "machine": platform.node(), "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "cpu_features": sorted(qcore.cpu_features()), "qcore": qcore.__version__,
              "brevitas": brevitas.__version__, "torch": torch.__version__, "numpy": np.__version__,
              "python": sys.version.split()[0], "blas": blas, "openblas_kernel": kernel,
              "load_average_before_after": [load_before, [round(v, 2) for v in os.getloadavg()]], "goals": goals,
              "rows": rows}
    with open(args.output + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(args.output + ".tmp", args.output)
    print("written", os.path.relpath(args.output))


if __name__ == "__main__":
    main()
