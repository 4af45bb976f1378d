"""Timing and result files shared by the benchmarks."""
import json
import os
import time


def best_time(fn, repeats, clock=time.perf_counter):
    """Best wall time of `repeats` runs of fn(), after one warm-up run. With clock=time.process_time, the
    best CPU time of the process instead: steadier when other work shares the cores (single-threaded
    code only, since it sums every thread's time)."""
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def write_result(name, result):
    """Writes `result` as JSON to benchmarks/results/<name> atomically (temporary file, then rename) and
    says where."""
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", name)
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(out + ".tmp", out)
    print("written", os.path.relpath(out))
