"""Benchmark: qcore's ONNX loader and executor against the peers (onnx, onnxruntime) in the same run.
Prints two tables and writes JSON to benchmarks/results/onnx.json.

1. Loading all-MiniLM-L6-v2 (build/models/minilm.onnx, ~90 MB): qcore.Model(path) (qc_model_load: mmap +
   protobuf-c) against onnx.load(path). Each load runs in a fresh subprocess, so that the peak RSS is the
   loader's own: the child imports its library, then reports the wall time of the load, its peak RSS
   (getrusage ru_maxrss, absolute and minus the child's RSS just before the load) and its RSS after the
   load split into anonymous and file-backed pages (an mmap'ed file counts in RSS once touched). Best of
   LOAD_RUNS children each; the file is read once beforehand so that both loaders find it in the page cache.
2. Executor latency of qcore.Session against onnxruntime.InferenceSession (CPU provider, default graph
   optimizations, intra_op_num_threads = the qcore Context's threads, inter_op_num_threads 1, sequential
   execution), for the Fashion-MNIST MLP and CNN (tests/data/models, inputs: the committed sample images
   /255) and MiniLM, at batch 1 and 32 and 1 and 2 threads. Both engines run the same feeds; their outputs
   must agree (max abs diff below TOLERANCE) or the benchmark stops. Each engine is warmed up, then timed
   in its own block (no interleaving: onnxruntime's spinning pool threads and OpenMP's would slow the other
   engine) as the best of N runs, N chosen so that a cell takes about CELL_SECONDS (at least MIN_RUNS,
   at most MAX_RUNS). Times are wall times of the Python call (feeds in, numpy outputs out) for both.
   MiniLM inputs are real text at sequence length 128: consecutive lines of tests/data/text/heldout.txt
   joined into passages of at least 128 tokens, tokenized by scripts/models/minilm_tokenizer.py with
   truncation to 128 ([CLS] ... [SEP] included), so every position is text and no row is padded;
   batch 1 is the first passage, batch 32 the first 32.

qcore is taken from the build tree (build/libqcore, build/bindings/python) when QCORE_LIBRARY is not set and
the build exists; --installed uses the pip-installed package instead. The JSON records which.
Run (OpenBLAS overrides unset for this command alone, as the project's benchmarks do):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_onnx.py
"""
import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
MINILM = os.path.join(BUILD, "models", "minilm.onnx")
MODELS_DIR = os.path.join(ROOT, "tests", "data", "models")
HELDOUT = os.path.join(ROOT, "tests", "data", "text", "heldout.txt")

LOAD_RUNS = 3
SEQ_LEN = 128
BATCHES = (1, 32)
THREADS = (1, 2)
CELL_SECONDS = 1.0   # timing budget per engine and cell, warm-up excluded
WARMUP_SECONDS = 0.2
MIN_RUNS, MAX_RUNS = 3, 10000
TOLERANCE = 1e-3     # max abs diff allowed between qcore's and onnxruntime's outputs
GOAL = 1.5           # the project's goal: qcore within 1.5x of onnxruntime on the MLP and MiniLM
GOAL_MODELS = ("mlp", "minilm")


def use_build_tree(installed):
    """Points qcore at the build tree (before it is imported) unless told otherwise; returns the source."""
    if installed:
        os.environ.pop("QCORE_LIBRARY", None)
        os.environ.pop("QCORE_ONNX_LIBRARY", None)
        return "installed"
    if os.environ.get("QCORE_LIBRARY"):
        return "environment (QCORE_LIBRARY)"
    lib = os.path.join(BUILD, "libqcore", "libqcore.so.1")
    onnx_lib = os.path.join(BUILD, "libqcore", "model", "libqcore-onnx.so.1")
    package = os.path.join(BUILD, "bindings", "python")
    if not (os.path.exists(lib) and os.path.exists(onnx_lib) and os.path.isdir(os.path.join(package, "qcore"))):
        return "installed"
    os.environ["QCORE_LIBRARY"], os.environ["QCORE_ONNX_LIBRARY"] = lib, onnx_lib
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, package)
    return "build tree"


# ---------------------------------------------------------------------------------------------- loading

def proc_status_kb(*keys):
    """Fields of /proc/self/status in kB (VmRSS, RssAnon, RssFile, ...)."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in keys:
                values[name] = int(rest.split()[0])
    return values


def child_load(loader, path):
    """Runs in a fresh interpreter: one load, measured; prints one JSON line."""
    if loader == "qcore":
        import qcore
        load = qcore.Model
    else:
        import onnx
        load = onnx.load
    gc.collect()
    before = proc_status_kb("VmRSS")["VmRSS"]
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    model = load(path)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    after = proc_status_kb("VmRSS", "RssAnon", "RssFile")
    start = time.perf_counter()
    checksum = read_every_weight(loader, model)
    read_seconds = time.perf_counter() - start
    peak_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del model
    print(json.dumps({"seconds": seconds, "rss_before_MiB": before / 1024, "peak_before_MiB": peak_before / 1024,
                      "peak_MiB": peak / 1024, "peak_delta_MiB": (peak - before) / 1024,
                      "rss_after_MiB": after["VmRSS"] / 1024, "rss_anon_after_MiB": after["RssAnon"] / 1024,
                      "rss_file_after_MiB": after["RssFile"] / 1024, "read_seconds": read_seconds,
                      "peak_after_read_delta_MiB": (peak_read - before) / 1024, "checksum": checksum}))


def read_every_weight(loader, model):
    """Sums every float initializer once, so that a loader that maps the file lazily pays for its pages
    too: the peak after this is the memory a model costs once it is used."""
    import numpy as np
    if loader == "qcore":
        arrays = (model.initializer(name)[2] for name in model.initializer_names())
    else:
        from onnx import numpy_helper
        arrays = (numpy_helper.to_array(t) for t in model.graph.initializer)
    return float(sum(np.sum(a, dtype=np.float64) for a in arrays if a.dtype == np.float32))


def measure_load(path, installed):
    with open(path, "rb") as f:          # page cache warm for both loaders
        while f.read(1 << 24):
            pass
    size_mb = os.path.getsize(path) / 2**20
    rows = []
    for loader, call in (("qcore", "qcore.Model(path)"), ("onnx", "onnx.load(path)")):
        runs = []
        for _ in range(LOAD_RUNS):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child-load", loader, path]
                                 + (["--installed"] if installed else []),
                                 check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["seconds"])
        rows.append({"loader": loader, "call": call, "file_MiB": size_mb, "seconds": best["seconds"],
                     "peak_delta_MiB": min(r["peak_delta_MiB"] for r in runs),
                     "peak_MiB": min(r["peak_MiB"] for r in runs),
                     "peak_delta_over_size": min(r["peak_delta_MiB"] for r in runs) / size_mb,
                     "read_seconds": best["read_seconds"],
                     "peak_after_read_delta_MiB": min(r["peak_after_read_delta_MiB"] for r in runs),
                     "peak_after_read_over_size": min(r["peak_after_read_delta_MiB"] for r in runs) / size_mb,
                     "checksum": best["checksum"],
                     "rss_before_MiB": best["rss_before_MiB"], "rss_anon_after_MiB": best["rss_anon_after_MiB"],
                     "rss_file_after_MiB": best["rss_file_after_MiB"], "runs": runs})
    q, o = rows
    q["ratio_vs_onnx_time"] = q["seconds"] / o["seconds"]
    q["ratio_vs_onnx_peak_delta"] = q["peak_delta_MiB"] / o["peak_delta_MiB"]
    q["ratio_vs_onnx_peak_after_read"] = q["peak_after_read_delta_MiB"] / o["peak_after_read_delta_MiB"]
    if abs(q["checksum"] - o["checksum"]) > 1e-6 * max(1.0, abs(o["checksum"])):
        raise SystemExit("the loaders read different weights: %r vs %r" % (q["checksum"], o["checksum"]))
    return rows


# --------------------------------------------------------------------------------------------- executor

def minilm_feeds():
    """[32, SEQ_LEN] int64 feeds from real text, every position a token (see the module docstring)."""
    sys.path.insert(0, os.path.join(ROOT, "scripts", "models"))
    from minilm_tokenizer import encode
    with open(HELDOUT, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    passages, i = [], 0
    while len(passages) < max(BATCHES):
        text = lines[i]
        i += 1
        while int(encode(text, max_length=4 * SEQ_LEN)["attention_mask"].sum()) < SEQ_LEN:
            text += " " + lines[i]
            i += 1
        passages.append(text)
    feeds = encode(passages, max_length=SEQ_LEN)
    assert feeds["input_ids"].shape == (max(BATCHES), SEQ_LEN) and feeds["attention_mask"].all()
    return feeds, i


def best_of(fn):
    """Warm-up, then the best wall time of N runs, N sized to CELL_SECONDS; returns (seconds, N)."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < WARMUP_SECONDS:
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < MAX_RUNS and (len(times) < MIN_RUNS or time.perf_counter() - start < CELL_SECONDS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), len(times)


def measure_latency(name, path, feeds_for, qcore, ort, np):
    model = qcore.Model(path)
    rows = []
    for threads in THREADS:
        ctx = qcore.Context(threads=threads)
        session = qcore.Session(model, ctx)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        peer = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [o.name for o in peer.get_outputs()]
        for batch in BATCHES:
            feeds = feeds_for(batch)
            ours = session.run(feeds)
            theirs = dict(zip(names, peer.run(None, feeds)))
            diff = {n: float(np.max(np.abs(ours[n] - theirs[n]))) for n in names}
            if max(diff.values()) > TOLERANCE or any(ours[n].shape != theirs[n].shape for n in names):
                raise SystemExit("%s batch %d threads %d: qcore and onnxruntime disagree (%s): the benchmark "
                                 "compares different work" % (name, batch, threads, diff))
            t_qcore, n_qcore = best_of(lambda: session.run(feeds))
            t_ort, n_ort = best_of(lambda: peer.run(None, feeds))
            rows.append({"model": name, "batch": batch, "threads": threads, "arch": ctx.arch,
                         "input_shapes": {k: list(v.shape) for k, v in feeds.items()},
                         "qcore_ms": t_qcore * 1e3, "ort_ms": t_ort * 1e3, "ratio_qcore_over_ort": t_qcore / t_ort,
                         "runs_qcore": n_qcore, "runs_ort": n_ort, "max_abs_diff": diff,
                         "goal_met": (t_qcore / t_ort <= GOAL) if name in GOAL_MODELS else None})
            print("  %-6s batch %2d threads %d: qcore %9.3f ms  ort %9.3f ms  %5.2fx" %
                  (name, batch, threads, t_qcore * 1e3, t_ort * 1e3, t_qcore / t_ort), file=sys.stderr)
        del session, peer
    return rows


# ----------------------------------------------------------------------------------------------- report

def openblas_kernel():
    try:
        from threadpoolctl import threadpool_info
        return [{"internal_api": i.get("internal_api"), "architecture": i.get("architecture"),
                 "num_threads": i.get("num_threads"), "version": i.get("version"), "filepath": i.get("filepath")}
                for i in threadpool_info()]
    except ImportError:
        return "threadpoolctl not installed"


def quiet_numpy_blas():
    """numpy's own OpenBLAS (not under test) keeps worker threads that spin between its calls and take
    cores from both engines; one thread for it. Returns what was limited, for the record."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return "threadpoolctl not installed"
    numpy_blas = ThreadpoolController().select(prefix="libscipy_openblas")
    numpy_blas.limit(limits=1)
    return [i.get("filepath") for i in numpy_blas.info()]


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state():
    def git(*args):
        try:
            return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    status = git("status", "--porcelain", "--", "libqcore", "include", "bindings")
    return {"head": git("rev-parse", "--short", "HEAD"),
            "uncommitted_library_changes": None if status is None else bool(status)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--installed", action="store_true", help="use the pip-installed qcore, not the build tree")
    parser.add_argument("--child-load", nargs=2, metavar=("LOADER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    if args.child_load:
        child_load(*args.child_load)
        return

    import numpy as np
    import onnx
    import onnxruntime as ort
    import qcore

    numpy_blas_limited = quiet_numpy_blas()
    wall = time.perf_counter()
    load_avg_start = os.getloadavg()
    print("loading %s in fresh subprocesses (best of %d)..." % (os.path.relpath(MINILM, ROOT), LOAD_RUNS),
          file=sys.stderr)
    loads = measure_load(MINILM, args.installed)

    images = np.load(os.path.join(MODELS_DIR, "fashion_sample.npz"))["images"].astype(np.float32) / 255.0
    text, lines_used = minilm_feeds()
    models = [
        ("mlp", os.path.join(MODELS_DIR, "fashion_mlp.onnx"),
         lambda b: {"input": np.ascontiguousarray(images[:b].reshape(b, 784))}),
        ("cnn", os.path.join(MODELS_DIR, "fashion_cnn.onnx"),
         lambda b: {"input": np.ascontiguousarray(images[:b].reshape(b, 1, 28, 28))}),
        ("minilm", MINILM, lambda b: {k: np.ascontiguousarray(v[:b]) for k, v in text.items()}),
    ]
    print("executor latency:", file=sys.stderr)
    latency = [row for name, path, feeds_for in models
               for row in measure_latency(name, path, feeds_for, qcore, ort, np)]
    seconds = time.perf_counter() - wall

    q, o = loads
    print()
    print("Load %s (%.1f MiB), best of %d fresh processes" % (os.path.relpath(MINILM, ROOT), q["file_MiB"], LOAD_RUNS))
    print("%-18s %9s %15s %10s %11s %11s %11s" % ("loader", "time ms", "peak-rss0 MiB", "peak MiB", "peak/size",
                                                  "anon MiB", "file MiB"))
    for r in loads:
        print("%-18s %9.1f %15.1f %10.1f %11.2f %11.1f %11.1f" % (
            r["call"], r["seconds"] * 1e3, r["peak_delta_MiB"], r["peak_MiB"], r["peak_delta_over_size"],
            r["rss_anon_after_MiB"], r["rss_file_after_MiB"]))
    print("qcore/onnx: time %.2fx, peak-rss0 %.2fx" % (q["ratio_vs_onnx_time"], q["ratio_vs_onnx_peak_delta"]))
    print("(peak-rss0: peak RSS minus RSS just before the load; anon/file: RSS after the load by page kind)")
    print()
    print("Executor latency, best of N (MiniLM: real text, seq %d; goal: qcore/ort <= %.1fx on MLP and MiniLM)"
          % (SEQ_LEN, GOAL))
    print("%-7s %5s %7s %7s %11s %11s %9s %9s %10s %5s" % ("model", "batch", "threads", "kernels", "qcore ms",
                                                          "ort ms", "qcore/ort", "N q/ort", "max|diff|", "goal"))
    for r in latency:
        goal = "" if r["goal_met"] is None else ("ok" if r["goal_met"] else "MISS")
        print("%-7s %5d %7d %7s %11.3f %11.3f %8.2fx %9s %10.1e %5s" % (
            r["model"], r["batch"], r["threads"], r["arch"], r["qcore_ms"], r["ort_ms"], r["ratio_qcore_over_ort"],
            "%d/%d" % (r["runs_qcore"], r["runs_ort"]), max(r["max_abs_diff"].values()), goal))

    result = {"benchmark": "ONNX load (MiniLM) and executor latency (MLP, CNN, MiniLM) against onnx/onnxruntime",
              "machine": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(),
              "cores_usable": len(os.sched_getaffinity(0)), "cpu_features": sorted(qcore.cpu_features()),
              "load_average_start": load_avg_start, "load_average_end": os.getloadavg(),
              "openblas": openblas_kernel(), "numpy_blas_limited_to_one_thread": numpy_blas_limited,
              "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                              "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
              "python": sys.version.split()[0], "numpy": np.__version__, "onnx": onnx.__version__,
              "onnxruntime": ort.__version__, "qcore": qcore.__version__, "qcore_source": source,
              "qcore_package": os.path.dirname(qcore.__file__),
              "qcore_libraries": [os.environ.get("QCORE_LIBRARY"), os.environ.get("QCORE_ONNX_LIBRARY")],
              "git": git_state(),
              "settings": {"load_runs": LOAD_RUNS, "cell_seconds": CELL_SECONDS, "warmup_seconds": WARMUP_SECONDS,
                           "min_runs": MIN_RUNS, "max_runs": MAX_RUNS, "tolerance": TOLERANCE, "goal_ratio": GOAL,
                           "ort": "CPUExecutionProvider, default graph optimizations, inter_op 1, sequential",
                           "minilm_inputs": "heldout.txt lines 0-%d joined into 32 passages of >= %d tokens, "
                                            "truncated to %d, no padding" % (lines_used - 1, SEQ_LEN, SEQ_LEN)},
              "load": loads, "latency": latency, "seconds": seconds}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "onnx.json")
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    print("load average %s at start, %s at end (other work on the machine skews the 2-thread cells)" % (
        "/".join("%.2f" % x for x in load_avg_start), "/".join("%.2f" % x for x in result["load_average_end"])))
    print("written %s in %.0f s" % (os.path.relpath(out), seconds))


if __name__ == "__main__":
    main()
