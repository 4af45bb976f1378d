"""Benchmark: the accumulator simulator (qcore.simulate_accumulator) on MiniLM-sized layers, per kernel set
(the reference lane kernel against the AVX2 and AVX-512 ones this machine runs, in the same run). Prints a
table and writes JSON to benchmarks/results/accum.json.

Layers: all-MiniLM-L6-v2's feed-forward shapes, up [1536, 384] and down [384, 1536], with W4 levels
(qcore.rtn of Student-t(5) weights, signed 4-bit per channel, centred) and 256 samples of unsigned 8-bit
inputs (uniform over [0, 255]: every partial sum of a row is exercised, not only a sparse few). Each
layer runs at P = 16 with the whole row as one tile (T = K) and at P = 14 with T = 64, once with plain
RTN levels (whose tiles may overflow: the wrapping and saturating registers work, with overflows at
P = 14) and once with RTN+AXE levels for that P and T (every tile provably fits: the case of checking
AXE's guarantee on real inputs, where only the exact sums are needed). Counts and register values are
checked equal across the kernel sets before anything is timed.

Time: best of --repeats runs after a warm-up (benchmarks/timing.best_time), --threads threads (default 1:
the machine is shared). --baseline FILE adds the times of an earlier run of this script (e.g. on the
build before a change) as "before", with the ratio.

Run from the repository root, with the OpenBLAS overrides unset for this command alone:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_accum.py
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_onnx import use_build_tree  # noqa: E402
from report import machine, write_json  # noqa: E402
from timing import best_time  # noqa: E402

SAMPLES = 256
LAYERS = {"ffn_up": (1536, 384), "ffn_down": (384, 1536)}
SETTINGS = ((16, 0, False), (14, 64, False), (16, 0, True), (14, 64, True))  # (P, T, levels from RTN+AXE)


def layer_levels(shape, bits, tile, axe, qcore):
    """Centred W4 levels: plain RTN (they overflow P), or RTN+AXE at (P, T) (every tile fits: the simulator
    then checks a guarantee and needs no register arithmetic)."""
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    w = (rng.standard_t(5.0, shape) / np.sqrt(shape[1])).astype(np.float32)
    opts = qcore.GpxqOptions(accumulator_bits=bits, tile_size=tile) if axe else None
    return qcore.rtn(w, qcore.QuantOptions(bits=4, granularity="channel", axis=0), opts).centered()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", help="JSON of an earlier run whose times are reported as 'before'")
    parser.add_argument("--installed", action="store_true", help="use the pip-installed qcore")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "accum.json"))
    args = parser.parse_args()
    source = use_build_tree(args.installed)
    import qcore

    archs = ["ref"] + [a for a in ("avx2", "avx512") if qcore.arch_supported(a)]
    before = {}
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as f:
            before = {(r["layer"], r["bits"], r["tile"], r["axe"], r["arch"]): r["seconds"]
                      for r in json.load(f)["rows"]}
    rows = []
    for name, shape in LAYERS.items():
        x = np.random.default_rng(1).integers(0, 256, (SAMPLES, shape[1])).astype(np.int32)
        for bits, tile, axe in SETTINGS:
            q = layer_levels(shape, bits, tile, axe, qcore)
            results = {}
            for arch in archs:
                ctx = qcore.Context(threads=args.threads, arch=arch)
                sim = qcore.simulate_accumulator(x, q, bits, (0, 255), tile=tile, ctx=ctx)
                results[arch] = sim
                seconds = best_time(lambda: qcore.simulate_accumulator(x, q, bits, (0, 255), tile=tile, ctx=ctx),
                                    args.repeats)
                row = {"layer": name, "shape": list(shape), "bits": bits, "tile": tile, "axe": axe, "arch": arch,
                       "seconds": seconds, "macs_per_ns": SAMPLES * shape[0] * shape[1] / seconds / 1e9,
                       "wrap_events": sim.wrap_events, "max_abs_partial_sum": sim.max_abs_partial_sum}
                key = (name, bits, tile, axe, arch)
                if key in before:
                    row["before_s"], row["speedup_vs_before"] = before[key], before[key] / seconds
                rows.append(row)
            first = results[archs[0]]
            for arch in archs[1:]:
                other = results[arch]
                same = all(getattr(first, f) == getattr(other, f) for f in (
                    "dot_products", "max_abs_partial_sum", "max_abs_outer_sum", "wrap_events", "wrap_outer_events",
                    "wrap_overflowing_products", "saturate_events", "saturate_outer_events",
                    "saturate_overflowing_products"))
                if not (same and np.array_equal(first.y_wrap, other.y_wrap)
                        and np.array_equal(first.y_saturate, other.y_saturate)):
                    raise SystemExit("kernel sets disagree on %s P=%d T=%d: not timing a wrong kernel"
                                     % (name, bits, tile))

    print("%-9s %-11s %3s %4s %-6s %-7s %10s %8s %10s %8s %11s" % ("layer", "shape", "P", "T", "levels", "arch", "ms",
                                                                   "MAC/ns", "before ms", "speedup", "wrap events"))
    for r in rows:
        print("%-9s %-11s %3d %4d %-6s %-7s %10.2f %8.2f %10s %8s %11d" % (
            r["layer"], "%dx%d" % tuple(r["shape"]), r["bits"], r["tile"], "AXE" if r["axe"] else "RTN", r["arch"],
            1e3 * r["seconds"],
            r["macs_per_ns"], "%.2f" % (1e3 * r["before_s"]) if "before_s" in r else "-",
            "%.1fx" % r["speedup_vs_before"] if "before_s" in r else "-", r["wrap_events"]))
    result = {"benchmark": "accumulator simulator per kernel set", "qcore_source": source, "samples": SAMPLES,
              "threads": args.threads, "baseline": args.baseline, **machine(qcore), "rows": rows}
    write_json(args.output, result)

if __name__ == "__main__":
    main()
