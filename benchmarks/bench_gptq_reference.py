"""Benchmark: qcore's OPTQ against the reference PyTorch GPTQ on CPU, in the same run: time and peak memory
to quantize one 4096 x 4096 linear layer from 2048 samples (W4 per channel, act-order off and on), and the
reconstruction error of both, so that the comparison is like for like. Prints a table and writes JSON to
benchmarks/results/gptq_reference.json. Goal (issue 4): qcore at least 3x faster.

The peer: the GPTQ class of PyPI's auto-gptq 0.7.1 (auto_gptq/quantization/gptq.py and quantizer.py), the
IST-DASLab GPTQ code (add_batch, fasterquant with lazy blocks and act-order, its min-max Quantizer) as
that package ships it, run on CPU torch. Other candidates did not install beside the project's pins:
PyPI's `gptq` 0.0.3 imports its CUDA extension at import time and has no act-order; llmcompressor
0.14 requires transformers <= 5.17 (the project pins 5.23). auto-gptq's top-level package imports its
model zoo, which no longer imports with transformers 5.23 (no_init_weights moved), so the worker loads
only its quantization subpackage, under a stub parent package; that subpackage's code runs unchanged,
with one patch: fasterquant ends with torch.cuda.synchronize(), which CPU builds of torch reject, so it is
made a no-op (nothing runs asynchronously on the CPU). Nothing of the peer is copied into this repository.

The peer lives in its own benchmark-only virtual environment, so that its dependencies (accelerate,
peft, datasets, ...) never touch the project's pinned .venv. It sees the project's packages (torch,
numpy, threadpoolctl) through a .pth file and adds only what they lack. Made once with:
    .venv/bin/python benchmarks/bench_gptq_reference.py --make-peer-venv /tmp/gptq-peer
(python -m venv DIR; DIR/.../site-packages/qcore-shared.pth naming .venv's site-packages;
BUILD_CUDA_EXT=0 DIR/bin/python -m pip install auto-gptq==0.7.1). --peer-python or GPTQ_PEER_PYTHON
names its interpreter (default /tmp/gptq-peer/bin/python).

Setup (identical for both tools):
- Layer and inputs: bench_gpxq.make_layer(4096): W [4096, 4096] Student-t(5) / sqrt(d); x [2048, 4096]
  synthetic, correlated, heavy-tailed and non-negative (see bench_gpxq.py). Float inputs, no activation
  quantization (the reference GPTQ has none). Written once to .npy files that each worker loads.
- Statistics: H = (2/n) sum x x^T from 8 batches of 256 (qcore.GpxqStats: each batch's products in float32,
  accumulated in double (qc_gpxq.h); GPTQ.add_batch: products and accumulation in float32).
- Grid: 4-bit unsigned asymmetric min-max per output channel, chosen from W (dead columns zeroed):
  scale = (max(w, 0) - min(w, 0)) / 15, zero point round(-min / scale) - the reference Quantizer's
  configure(4, perchannel=True, sym=False) and qcore's QuantOptions(bits=4, signed=False,
  symmetric=False, granularity="channel", axis=0), the same rule.
- damping 0.01 * mean(diag H), block size 128, act-order off / on (descending diag H) for both.
Measured:
- time: best of --repeats runs (benchmarks/timing.best_time, after one warm-up run) of the whole job:
  statistics over the 8 batches + the quantization (qcore: GpxqStats, then optq straight from the
  statistics (qc_optq_from_stats: H is factored in the statistics' own storage, no copy) into output
  arrays allocated once before the runs (out=, as the reference writes into its existing layer); reference: a new GPTQ object,
  its Quantizer configured, add_batch x 8, fasterquant). The reference job also restores the layer's
  weight in place first (fasterquant overwrites it; a 64 MB copy, milliseconds). The split between
  statistics and quantization is reported from the fastest run. The machine is shared, so the smallest
  CPU time of the runs (time.process_time: all of the worker's threads) is reported as well, and the
  ratio of those ("cpu_speedup"), which other processes' load disturbs less than wall time.
- peak memory: each (tool, act-order) runs in its own subprocess; peak = ru_maxrss after the runs minus
  the resident size (VmRSS) once the libraries are imported and W, x (and the reference's nn.Linear) are
  loaded, i.e. the memory the job itself needed at its high-water mark (an upper bound, flagged, if the
  job never raised ru_maxrss above what loading had reached).
- error = ||x W^T - x Q^T||_F / ||x W^T||_F with each tool's dequantized weights Q, and the fraction of
  weights on the same grid level in both (a like-for-like check: same algorithm, different precision -
  H, its Cholesky factor and U in float32 in the reference; H accumulated in double (from float32 products
  per batch) and its Cholesky factor in double in qcore,
  whose per-channel updates use that factor itself (qc_gpxq.h's R form, no inverse); the weight updates in
  float32 in both - and a different summation order).
The commands of the recorded runs (768 and 1536 in their own files; the machine is shared, so each tool
gets a few timed runs more than the defaults to find a quiet moment):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_gptq_reference.py
        --repeats 5 --reference-repeats 3 [--size 1536 --output benchmarks/results/gptq_reference_1536.json]
Threads: the same count (--threads, default 1) for torch (torch.set_num_threads) and qcore
(Context(threads=...), which also sizes its OpenBLAS team); the machine's other load is printed. Which
BLAS each worker loaded (threadpoolctl) is recorded.
OpenBLAS kernels: on a CPU newer than Debian's OpenBLAS 0.3.21 knows (this machine's, family 6 model 207),
that library falls back to its generic Prescott (SSE3) kernels, while torch picks its own MKL kernels for
the CPU. So that the comparison measures OPTQ rather than that fallback, the driver first asks (in a
subprocess, threadpoolctl) which kernel qcore's OpenBLAS picks by itself; when it is Prescott on a CPU with
AVX2 or AVX-512, the qcore worker alone runs with OPENBLAS_CORETYPE naming the newest OpenBLAS core type
whose instructions the CPU has (/proc/cpuinfo flags: Cooperlake for AVX-512 with BF16, SkylakeX for
AVX-512, Haswell for AVX2 + FMA). "blas_kernel" in each row records, per tool, the kernel it ran and why.
This is a benchmark-only setting: the library, its tests and CI never set it.

Run from the repository root, with the OpenBLAS overrides unset for this command alone:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_gptq_reference.py
qcore is taken from the build tree unless QCORE_LIBRARY is set or --installed is given (bench_onnx's rule).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_gpxq import blas_info, make_layer  # noqa: E402  (the same synthetic layer as the Brevitas benchmark)
from bench_onnx import use_build_tree  # noqa: E402
from report import machine, write_json  # noqa: E402
from timing import best_time  # noqa: E402

SIZE, SAMPLES, BATCHES = 4096, 2048, 8
WEIGHT_BITS, DAMP_RATIO, BLOCK = 4, 0.01, 128
GOAL_SPEEDUP = 3.0
PEER_PACKAGE = "auto-gptq==0.7.1"
DEFAULT_PEER_PYTHON = "/tmp/gptq-peer/bin/python"


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def current_rss_mb():
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024.0


# ---------------------------------------------------------------------------------------------- workers

def qcore_job(w, batches, act_order, threads):
    """(run(phases) -> dequantized, versions) for qcore's OPTQ."""
    import qcore
    ctx = qcore.Context(threads=threads)
    grid = qcore.QuantOptions(bits=WEIGHT_BITS, signed=False, symmetric=False, granularity="channel", axis=0)
    opts = qcore.GpxqOptions(damp_ratio=DAMP_RATIO, block_size=BLOCK, act_order=act_order)
    # The outputs exist (resident) before the job, as the reference's layer does (it writes its weight in
    # place): both tools' peaks then count the job's own memory only.
    out = (np.full(w.shape, -1, np.int32), np.full(w.shape, np.nan, np.float32))

    def run(phases):
        start = time.perf_counter()
        stats = qcore.GpxqStats("optq", w.shape[1])
        for b in batches:
            stats.add(b, ctx=ctx)
        middle = time.perf_counter()
        layer = qcore.optq(w, stats, grid, opts, ctx=ctx, out=out)  # H read from the statistics, no copy
        del stats
        phases.append((middle - start, time.perf_counter() - middle))
        return layer.dequantized
    return run, {"qcore": qcore.__version__}


def import_reference_gptq():
    """auto-gptq's quantization subpackage without its top-level package (see the docstring)."""
    import importlib.util
    spec = importlib.util.find_spec("auto_gptq")
    if spec is None:
        raise SystemExit("auto-gptq is not installed for %s (see --make-peer-venv)" % sys.executable)
    stub = types.ModuleType("auto_gptq")
    stub.__path__ = list(spec.submodule_search_locations)
    sys.modules["auto_gptq"] = stub
    from auto_gptq.quantization import GPTQ
    import torch
    torch.cuda.synchronize = lambda *args, **kwargs: None  # CPU: nothing to wait for
    return GPTQ


def reference_job(w, batches, act_order, threads):
    import importlib.metadata
    import torch
    GPTQ = import_reference_gptq()
    torch.set_num_threads(threads)
    w_t = torch.from_numpy(w)
    layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(w_t)
    t_batches = [torch.from_numpy(b) for b in batches]

    def run(phases):
        start = time.perf_counter()
        with torch.no_grad():
            layer.weight.data.copy_(w_t)
            gptq = GPTQ(layer)
            gptq.quantizer.configure(WEIGHT_BITS, perchannel=True, sym=False, mse=False)
            for b in t_batches:
                gptq.add_batch(b, None)
            middle = time.perf_counter()
            gptq.fasterquant(blocksize=BLOCK, percdamp=DAMP_RATIO, actorder=act_order)
        phases.append((middle - start, time.perf_counter() - middle))
        gptq.free()
        return layer.weight.data.numpy()
    config = torch.__config__.show().replace(",", " ").split()
    blas = [t for t in config if t.startswith(("BLAS_INFO=", "LAPACK_INFO="))]
    return run, {"auto_gptq": importlib.metadata.version("auto-gptq"), "torch": torch.__version__,
                 "torch_blas": blas}


def worker(args):
    """One (tool, act-order) in this process: loads the data, times the job, reports JSON on stdout."""
    w = np.load(os.path.join(args.data, "w.npy"))
    x = np.load(os.path.join(args.data, "x.npy"))
    batches = [np.ascontiguousarray(b) for b in np.split(x, BATCHES)]
    make = qcore_job if args.worker == "qcore" else reference_job
    run, versions = make(w, batches, bool(args.act_order), args.threads)
    baseline, peak_before = current_rss_mb(), peak_rss_mb()
    phases, cpu, out = [], [], {}

    def job():
        out.pop("q", None)  # the previous run's result is not part of this run's memory
        start = time.process_time()
        out["q"] = run(phases)
        cpu.append(time.process_time() - start)
    seconds = best_time(job, args.repeats)
    peak_after = peak_rss_mb()
    peak = peak_after - baseline
    stats_s, quant_s = min(phases[1:], key=sum)
    np.save(os.path.join(args.data, "q_%s_%d.npy" % (args.worker, args.act_order)), out["q"])
    json.dump({"seconds": seconds, "cpu_seconds": min(cpu[1:]), "statistics_s": stats_s, "quantize_s": quant_s,
               "peak_mb": peak,
               "baseline_mb": baseline,
               "peak_is_upper_bound": peak_after == peak_before, "runs": args.repeats, "versions": versions,
               "blas": blas_info(),
               "python": sys.executable}, sys.stdout)


# ---------------------------------------------------------------------------------------------- driver

def make_peer_venv(path):
    import site
    subprocess.run([sys.executable, "-m", "venv", path], check=True)
    python = os.path.join(path, "bin", "python")
    peer_site = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                               capture_output=True, text=True).stdout.strip()
    with open(os.path.join(peer_site, "qcore-shared.pth"), "w", encoding="utf-8") as f:
        f.write(site.getsitepackages()[0] + "\n")
    subprocess.run([python, "-m", "pip", "install", PEER_PACKAGE], check=True, env=dict(os.environ, BUILD_CUDA_EXT="0"))
    print("peer environment ready:", python)


# OpenBLAS core types (OPENBLAS_CORETYPE names) and the CPU flags their kernels need, newest first.
CORETYPES = (("Cooperlake", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"}),
             ("SkylakeX", {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}),
             ("Haswell", {"avx2", "fma"}))
FALLBACK_CORE = "Prescott"  # what OpenBLAS's dynamic build runs on a CPU model it does not know


def cpu_flags():
    with open("/proc/cpuinfo", encoding="ascii") as f:
        return set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())


def probe_qcore_blas():
    """Run as a worker: the OpenBLAS libraries that loading qcore adds to the process (not numpy's own)."""
    from threadpoolctl import threadpool_info
    before = {i["filepath"] for i in threadpool_info()}
    import qcore
    qcore.Context(threads=1)
    print(json.dumps([{k: i.get(k) for k in ("filepath", "prefix", "version", "architecture")} for i in threadpool_info()
                      if i.get("internal_api") == "openblas" and i["filepath"] not in before]))


def qcore_blas_kernel():
    """{"own": the kernel qcore's OpenBLAS picks by itself, "coretype": the override for its worker or None,
    "why": ...}, decided in a subprocess that sees no override."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", "probe"], check=True,
                          capture_output=True, text=True, env=env)
    libraries = json.loads(done.stdout)
    own = [lib["architecture"] for lib in libraries]
    kernel = {"libraries": libraries, "own": own, "coretype": None, "inherited": os.environ.get("OPENBLAS_CORETYPE")}
    flags = cpu_flags()
    best = next((name for name, needs in CORETYPES if needs <= flags), None)
    if kernel["inherited"]:
        kernel["why"] = "OPENBLAS_CORETYPE=%s was set by the caller and is passed on" % kernel["inherited"]
    elif FALLBACK_CORE in own and best:
        kernel["coretype"] = best
        kernel["why"] = ("qcore's OpenBLAS does not know this CPU and falls back to %s; the CPU has the "
                         "instructions of %s (/proc/cpuinfo), so its worker runs with OPENBLAS_CORETYPE=%s"
                         % (FALLBACK_CORE, best, best))
    else:
        kernel["why"] = "qcore's OpenBLAS picks its kernel by itself (no fallback to %s)" % FALLBACK_CORE
    return kernel


def ran_kernel(blas, libraries):
    """The architecture a worker's threadpoolctl report gives qcore's OpenBLAS libraries."""
    names = {(lib["prefix"], lib["version"]) for lib in libraries}
    return [b["architecture"] for b in blas if (b["prefix"], b["version"]) in names]


def reference_blas_kernel():
    return {"coretype": None,
            "why": "torch runs its built-in MKL (its own CPU dispatch; threadpoolctl does not see it); numpy's "
                   "OpenBLAS in that process picks its kernel by itself; no override"}


def run_worker(python, tool, act_order, data, args, coretype=None):
    command = [python, os.path.abspath(__file__), "--worker", tool, "--act-order", str(int(act_order)), "--data",
               data, "--repeats", str(args.repeats if tool == "qcore" else args.reference_repeats), "--threads",
               str(args.threads)]
    env = dict(os.environ, OPENBLAS_CORETYPE=coretype) if coretype else os.environ
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout)


def rel_error(x, reference, q):
    """||x W^T - x Q^T|| / ||x W^T|| with reference = x W^T."""
    error = np.linalg.norm((reference - x @ q.T).astype(np.float64))
    return float(error / np.linalg.norm(reference.astype(np.float64)))


def same_level(q_a, q_b, w):
    """Fraction of weights whose dequantized values lie within half a step (the grid is the same)."""
    step = (np.maximum(w.max(1), 0) - np.minimum(w.min(1), 0)) / (2 ** WEIGHT_BITS - 1)
    return float(np.mean(np.abs(q_a - q_b) < 0.5 * step[:, None]))


def load_average():
    return [round(v, 2) for v in os.getloadavg()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=SIZE, help="layer size d (the goal is stated at 4096)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of qcore (after a warm-up)")
    parser.add_argument("--reference-repeats", type=int, default=2, help="timed runs of the reference")
    parser.add_argument("--peer-python", default=os.environ.get("GPTQ_PEER_PYTHON", DEFAULT_PEER_PYTHON))
    parser.add_argument("--make-peer-venv", metavar="DIR", help="create the peer's environment in DIR and exit")
    parser.add_argument("--installed", action="store_true", help="use the pip-installed qcore")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "gptq_reference.json"))
    parser.add_argument("--worker", choices=["qcore", "reference", "probe"], help=argparse.SUPPRESS)
    parser.add_argument("--act-order", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "probe":
        return probe_qcore_blas()
    if args.worker:
        return worker(args)
    if args.make_peer_venv:
        return make_peer_venv(args.make_peer_venv)
    source = use_build_tree(args.installed)
    kernel = qcore_blas_kernel()
    print("qcore's OpenBLAS by itself: %s; %s" % (kernel["own"], kernel["why"]), flush=True)
    x, w, _ = make_layer(args.size, np)
    reference = x @ w.T
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gptq-") as data:
        np.save(os.path.join(data, "w.npy"), w)
        np.save(os.path.join(data, "x.npy"), x)
        for act_order in (False, True):
            row = {"act_order": act_order, "load_before": load_average()}
            for tool, python in (("qcore", sys.executable), ("reference", args.peer_python)):
                result = run_worker(python, tool, act_order, data, args, kernel["coretype"] if tool == "qcore" else None)
                q = np.load(os.path.join(data, "q_%s_%d.npy" % (tool, act_order)))
                result["error"] = rel_error(x, reference, q)
                row[tool] = result
                print("  act_order=%d %-9s %8.2f s  peak %7.0f MB  error %.5f" % (
                    act_order, tool, result["seconds"], result["peak_mb"], result["error"]), flush=True)
            row["blas_kernel"] = {"qcore": dict(kernel, ran=ran_kernel(row["qcore"]["blas"], kernel["libraries"])),
                                  "reference": reference_blas_kernel()}
            row["same_level"] = same_level(np.load(os.path.join(data, "q_qcore_%d.npy" % act_order)),
                                           np.load(os.path.join(data, "q_reference_%d.npy" % act_order)), w)
            row["speedup"] = row["reference"]["seconds"] / row["qcore"]["seconds"]
            row["cpu_speedup"] = row["reference"]["cpu_seconds"] / row["qcore"]["cpu_seconds"]
            row["memory_ratio"] = row["qcore"]["peak_mb"] / row["reference"]["peak_mb"]
            row["error_ratio"] = row["qcore"]["error"] / row["reference"]["error"]
            row["load_after"] = load_average()
            rows.append(row)

    print()
    print("%-9s %9s %9s %8s %10s %10s %9s %9s %8s %10s" % ("act_order", "qcore s", "ref s", "speedup", "qcore MB",
                                                            "ref MB", "qcore err", "ref err", "err q/r", "same lvl"))
    for r in rows:
        q, ref = r["qcore"], r["reference"]
        print("%-9s %9.2f %9.2f %7.1fx %10.0f %10.0f %9.5f %9.5f %8.4f %9.2f%%" % (
            "on" if r["act_order"] else "off", q["seconds"], ref["seconds"], r["speedup"], q["peak_mb"],
            ref["peak_mb"], q["error"], ref["error"], r["error_ratio"], 100 * r["same_level"]))
    for r in rows:
        print("act_order=%d CPU time: qcore %.2f s, reference %.2f s (ratio %.2fx)" % (
            r["act_order"], r["qcore"]["cpu_seconds"], r["reference"]["cpu_seconds"], r["cpu_speedup"]))
        print("act_order=%d split (statistics + quantization): qcore %.2f + %.2f s, reference %.2f + %.2f s; "
              "load average before/after %s / %s" % (r["act_order"], r["qcore"]["statistics_s"],
                                                    r["qcore"]["quantize_s"], r["reference"]["statistics_s"],
                                                    r["reference"]["quantize_s"], r["load_before"], r["load_after"]))
    goals = {"speedup_at_least_%gx" % GOAL_SPEEDUP: all(r["speedup"] >= GOAL_SPEEDUP for r in rows),
             "cpu_speedup_at_least_%gx" % GOAL_SPEEDUP: all(r["cpu_speedup"] >= GOAL_SPEEDUP for r in rows)}
    print("goals:", goals)
    print("kernels: qcore's OpenBLAS ran %s (%s)" % (rows[0]["blas_kernel"]["qcore"]["ran"],
                                                    rows[0]["blas_kernel"]["qcore"]["why"]))
    for tool in ("qcore", "reference"):
        print("BLAS/OpenMP in the %s worker:" % tool, [(b["internal_api"], b["version"], b["architecture"],
                                                        b["num_threads"]) for b in rows[0][tool]["blas"]])
    print("torch's own BLAS/LAPACK (built in, not seen by threadpoolctl):",
          rows[0]["reference"]["versions"]["torch_blas"])
    import qcore
    result = {"benchmark": "OPTQ vs the reference PyTorch GPTQ (auto-gptq's GPTQ class) on CPU",
              "qcore_source": source, "peer": PEER_PACKAGE + " (auto_gptq.quantization.GPTQ)",
              "size": [args.size, args.size], "samples": SAMPLES, "batches": BATCHES, "weight_bits": WEIGHT_BITS,
              "grid": "unsigned asymmetric min-max per output channel", "damp_ratio": DAMP_RATIO,
              "block_size": BLOCK, "threads": args.threads, "inputs": "bench_gpxq.make_layer (synthetic)",
              **machine(qcore), "numpy": np.__version__, "python": sys.version.split()[0], "goals": goals,
              "rows": rows}
    write_json(args.output, result)

if __name__ == "__main__":
    main()
