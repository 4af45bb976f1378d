"""Timing shared by the benchmarks."""
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
