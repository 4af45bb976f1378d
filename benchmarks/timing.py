"""Timing shared by the benchmarks."""
import json
import os
import time


def best_time(fn, repeats):
    """Best wall time of `repeats` runs of fn(), after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def openblas_kernel():
    """(internal API, version, kernel architecture, threading layer) of each loaded BLAS (threadpoolctl)."""
    from threadpoolctl import threadpool_info
    return [(i.get("internal_api"), i.get("version"), i.get("architecture"), i.get("threading_layer"))
            for i in threadpool_info() if i.get("user_api") == "blas"]

