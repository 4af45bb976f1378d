"""Timing shared by the benchmarks."""
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


def openblas_kernel():
    """(internal API, version, kernel architecture, threading layer) of each loaded BLAS (threadpoolctl)."""
    from threadpoolctl import threadpool_info
    return [(i.get("internal_api"), i.get("version"), i.get("architecture"), i.get("threading_layer"))
            for i in threadpool_info() if i.get("user_api") == "blas"]

