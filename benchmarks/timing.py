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


def latency_and_throughput(single, batch, singles, block, repeats):
    """Batch-1 latency (the best pass of single() over every array of `singles`, per array) and the arrays
    per second of batch(block) (best of `repeats` each), for one model in one engine."""
    latency = best_time(lambda: [single(x) for x in singles], repeats) / len(singles)
    return latency, len(block) / best_time(lambda: batch(block), repeats)


def add_speed_arguments(parser):
    """--repeats and --latency-images, as latency_and_throughput's callers take them."""
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per figure (the best counts)")
    parser.add_argument("--latency-images", type=int, default=50, help="single images per batch-1 pass")


def openblas_kernel():
    """(internal API, version, kernel architecture, threading layer) of each loaded BLAS (threadpoolctl)."""
    from threadpoolctl import threadpool_info
    return [(i.get("internal_api"), i.get("version"), i.get("architecture"), i.get("threading_layer"))
            for i in threadpool_info() if i.get("user_api") == "blas"]

