"""Writing a benchmark's results, shared by the benchmarks and examples."""
import json
import os
import platform

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine(qcore):
    """Where the figures were measured: host, CPU, cores, the features qcore detected, the load average."""
    return {"machine": platform.node(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cpu_features": sorted(qcore.cpu_features()), "qcore": qcore.__version__,
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def write_json(path, result):
    """Writes `result` to `path` (a bare file name goes to benchmarks/results/) atomically: a temporary file in
    the same folder, then a rename. Says so, and returns the path."""
    if not os.path.dirname(path):
        path = os.path.join(RESULTS, path)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)
    print("written", os.path.relpath(path))
    return path


def add_speed_ratios(rows, base, base_bytes):
    """Sets each row's size_ratio (base_bytes over its bytes), latency_speedup and throughput_speedup
    against the row `base`."""
    for r in rows:
        r["size_ratio"] = base_bytes / r["bytes"]
        r["latency_speedup"] = base["latency_us"] / r["latency_us"]
        r["throughput_speedup"] = r["throughput_per_s"] / base["throughput_per_s"]
