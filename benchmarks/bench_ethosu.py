"""Benchmark: qcore's Ethos-U weight-stream codec against Arm Vela's own C codec (ethosu.mlw_codec from
ethos-u-vela, the legacy encoder qcore matches byte for byte), on the same weights in the same run.

Data: the weight matrices of all-MiniLM-L6-v2 (build/models/minilm.onnx, when present) and synthetic layers,
quantized per output channel to 8-bit and to 4-bit values (round to nearest, symmetric, int8 container), as
a quantized model hands them to the packer. Each stream is checked to be byte-identical before anything
is timed (the benchmark stops otherwise), and qcore's decode must give the weights back.

Throughput is in MB/s of int8 weights (one byte per weight) encoded or decoded, best of REPEATS runs.
Vela's figures include its Python-list marshalling (encode takes a list, decode returns one), which is
part of what a caller of its API pays; the lists are built before timing. qcore runs on one thread (the
codec is sequential per stream). As the machine may be shared, encoding is also timed in CPU time of the
process (best of REPEATS), which other work on the cores disturbs less than wall time.

Run (OpenBLAS overrides unset for this command alone, as the project's benchmarks do):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_ethosu.py
"""
import os
import platform
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info

import qcore
import report  # noqa: E402
import timing

from ethosu import mlw_codec

REPEATS = 5
HERE = os.path.dirname(os.path.abspath(__file__))
MINILM = os.path.join(HERE, "..", "build", "models", "minilm.onnx")


def quantize_rows(w, bits):
    """Symmetric per-row (output channel) round to nearest onto bits-bit integers."""
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(w).max(axis=1, keepdims=True) / qmax
    scale[scale == 0] = 1
    return np.clip(np.round(w / scale), -qmax, qmax).astype(np.int16)


def minilm_matrices():
    """Two of each shape of MiniLM's MatMul weights (Q/K/V/O 384x384, FFN 384x1536 and 1536x384), as
    [out, in] so that quantization is per output channel."""
    if not os.path.exists(MINILM):
        return []
    import onnx
    from onnx import numpy_helper
    model = onnx.load(MINILM)
    inits = {t.name: t for t in model.graph.initializer}
    picked, shapes = [], {}
    for node in model.graph.node:
        name = node.input[1] if node.op_type == "MatMul" and len(node.input) > 1 else None
        if name in inits and len(inits[name].dims) == 2:
            m = numpy_helper.to_array(inits[name])
            if shapes.get(m.shape, 0) < 2:
                shapes[m.shape] = shapes.get(m.shape, 0) + 1
                picked.append(("minilm:" + name, np.ascontiguousarray(m.T, np.float32)))
    return picked


def synthetic_matrices():
    rng = np.random.default_rng(0)
    return [("gaussian 512x512", rng.standard_normal((512, 512)).astype(np.float32)),
            ("laplace 1536x384", rng.laplace(size=(1536, 384)).astype(np.float32)),
            ("pruned 50% 1024x1024", (rng.standard_normal((1024, 1024)) * (rng.random((1024, 1024)) < 0.5))
             .astype(np.float32))]


def measure(name, w):
    flat = np.ascontiguousarray(w.ravel())
    as_list = flat.tolist()
    ours = qcore.ethosu_encode(flat)
    theirs = bytes(mlw_codec.encode(as_list))
    if ours != theirs:
        raise SystemExit("%s: qcore's stream differs from Vela's: the benchmark compares different work" % name)
    if not np.array_equal(qcore.ethosu_decode(ours), flat):
        raise SystemExit("%s: qcore's decode does not give the weights back" % name)
    stream = bytearray(theirs)
    cpu_enc = timing.best_time(lambda: qcore.ethosu_encode(flat), REPEATS, time.process_time)
    cpu_enc_vela = timing.best_time(lambda: mlw_codec.encode(as_list), REPEATS, time.process_time)
    t_enc = timing.best_time(lambda: qcore.ethosu_encode(flat), REPEATS)
    t_enc_vela = timing.best_time(lambda: mlw_codec.encode(as_list), REPEATS)
    t_dec = timing.best_time(lambda: qcore.ethosu_decode(ours), REPEATS)
    t_dec_vela = timing.best_time(lambda: mlw_codec.decode(stream), REPEATS)
    mb = flat.size / 1e6
    return {"name": name, "weights": int(flat.size), "stream_bytes": len(ours), "identical": True,
            "encode_MBps": mb / t_enc, "encode_MBps_vela": mb / t_enc_vela, "encode_speedup": t_enc_vela / t_enc,
            "encode_cpu_s": cpu_enc, "encode_cpu_s_vela": cpu_enc_vela, "encode_cpu_speedup": cpu_enc_vela / cpu_enc,
            "decode_MBps": mb / t_dec, "decode_MBps_vela": mb / t_dec_vela, "decode_speedup": t_dec_vela / t_dec}


def main():
    load_before = os.getloadavg()
    rows = []
    for name, w in minilm_matrices() + synthetic_matrices():
        for bits in (8, 4):
            rows.append(measure("%s int%d" % (name, bits), quantize_rows(w, bits)))
    load_after = os.getloadavg()
    print("%-34s %8s %8s %9s %9s %7s %7s %9s %9s %7s" % ("weights", "n", "stream", "enc MB/s", "Vela", "x",
                                                         "cpu x", "dec MB/s", "Vela", "x"))
    for r in rows:
        print("%-34s %8d %8d %9.1f %9.1f %6.2fx %6.2fx %9.1f %9.1f %6.2fx" % (
            r["name"][:34], r["weights"], r["stream_bytes"], r["encode_MBps"], r["encode_MBps_vela"],
            r["encode_speedup"], r["encode_cpu_speedup"], r["decode_MBps"], r["decode_MBps_vela"],
            r["decode_speedup"]))
    total = sum(r["weights"] for r in rows)
    enc = total / sum(r["weights"] / r["encode_MBps"] for r in rows)
    enc_v = total / sum(r["weights"] / r["encode_MBps_vela"] for r in rows)
    dec = total / sum(r["weights"] / r["decode_MBps"] for r in rows)
    dec_v = total / sum(r["weights"] / r["decode_MBps_vela"] for r in rows)
    cpu = sum(r["encode_cpu_s_vela"] for r in rows) / sum(r["encode_cpu_s"] for r in rows)
    print("all: encode %.1f vs %.1f MB/s (%.2fx; CPU time %.2fx), decode %.1f vs %.1f MB/s (%.2fx); "
          "load average %s -> %s" % (enc, enc_v, enc / enc_v, cpu, dec, dec_v, dec / dec_v, load_before, load_after))
    blas = [(i.get("internal_api"), i.get("version"), i.get("architecture"), i.get("threading_layer"))
            for i in threadpool_info() if i.get("user_api") == "blas"]
    result = {"benchmark": "Ethos-U weight-stream codec vs Vela's mlw_codec (identical bytes asserted)",
              "vela": mlw_version(), "machine": platform.node(), "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "load_average_before": load_before, "load_average_after": load_after,
              "openblas": blas, "numpy": np.__version__, "qcore": qcore.__version__,
              "python": sys.version.split()[0], "repeats": REPEATS, "rows": rows,
              "total": {"encode_MBps": enc, "encode_MBps_vela": enc_v, "encode_speedup": enc / enc_v,
                        "encode_cpu_speedup": cpu,
                        "decode_MBps": dec, "decode_MBps_vela": dec_v, "decode_speedup": dec / dec_v}}
    report.write_json("ethosu.json", result)


def mlw_version():
    from importlib.metadata import version
    return version("ethos-u-vela")


if __name__ == "__main__":
    main()
