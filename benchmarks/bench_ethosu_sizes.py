"""Evidence: how much the Ethos-U weight stream shrinks when weights take fewer distinct values. The
Conv/Gemm/MatMul weights of the project's Fashion-MNIST models (tests/data/models/fashion_{mlp,cnn}.onnx)
and of all-MiniLM-L6-v2 (build/models/minilm.onnx) are quantized per output channel, symmetric, round to
nearest, to 8, 4, 3 and 2 bits held in int8 containers (what Ethos-U reads: the NPU has no native 4-bit
weights), with and without a randomized Hadamard rotation of the input axis of the linear layers (W -> W R,
the rotation that spreads outliers; convolutions are not rotated), and packed as Vela packs them for an
Ethos-U55-128 (qcore.ethosu_pack_layer: OFM block depth 16, Vela's traversal choice for convolutions,
depth-first for fully connected layers as Vela's VectorProduct uses). For the Fashion-MNIST models every
layer's weight stream is also compared with Vela's own mlw_codec.reorder_encode, and must be identical.
The same layers are also packed for Ethos-U85-256 and U85-512 (Regor's order, OFM block depth 16) in the
weight format Regor picks when optimising for size ("smaller": FWD when its stream is smaller than the
default streams; U85 default streams use qcore's legacy-identical encoder, whose sizes are close to but not
byte-equal with Regor's own encoder).

Sizes: "int8" = one byte per weight (the container), "packed" = bits/8 bytes per weight (the smallest dense
storage), "stream" = the encoded weight bytes, "entries" = the 10-byte bias/scale entries with their padding.

Run:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_ethosu_sizes.py
"""
import os
import platform
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

import qcore
import report  # noqa: E402
import timing

from ethosu import mlw_codec

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
MODELS = [("fashion_mlp", os.path.join(ROOT, "tests", "data", "models", "fashion_mlp.onnx"), True),
          ("fashion_cnn", os.path.join(ROOT, "tests", "data", "models", "fashion_cnn.onnx"), True),
          ("minilm", os.path.join(ROOT, "build", "models", "minilm.onnx"), False)]
BITS = (8, 4, 3, 2)
CONFIG = "ethos-u55-128"
U85 = ("ethos-u85-256", "ethos-u85-512")


def layers(path):
    """(name, OHWI float32 weights, is_conv) of every Conv/Gemm/MatMul with an initializer weight."""
    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or node.input[1] not in inits:
            continue
        w = inits[node.input[1]].astype(np.float32)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            yield node.input[1], np.ascontiguousarray(np.transpose(w, (0, 2, 3, 1))), True
            continue
        if node.op_type == "MatMul" or not attrs.get("transB", 0):
            w = w.T  # [in, out] -> [out, in]
        yield node.input[1], np.ascontiguousarray(w[:, None, None, :]), False


def rotate(w, stream):
    """W R over the input axis when a Hadamard order exists for it, else None."""
    try:
        qcore.hadamard_factor(w.shape[-1])
    except qcore.UnsupportedError:
        return None
    flat = np.ascontiguousarray(w.reshape(w.shape[0], -1))
    return qcore.random_hadamard(flat, stream=stream).reshape(w.shape)


def quantize(w, bits):
    qmax = 2 ** (bits - 1) - 1
    rows = w.reshape(w.shape[0], -1)
    scale = np.abs(rows).max(axis=1) / qmax
    scale[scale == 0] = 1
    q = np.clip(np.round(rows / scale[:, None]), -qmax, qmax).astype(np.int16).reshape(w.shape)
    return q, scale


def pack(q, scale, is_conv, config=CONFIG):
    entries = [qcore.ethosu_quantise_scale(float(s)) for s in scale]
    return qcore.ethosu_pack_layer(q, [e[0] for e in entries], [e[1] for e in entries], config=config,
                                   traversal="auto" if is_conv else "depth_first",
                                   weight_format="smaller" if config in U85 else "default")


def u85_key(config):
    return "stream_bytes_" + config.replace("ethos-", "").replace("-", "_")


def check_with_vela(q, is_conv, layer):
    part_kernel = is_conv and qcore.ethosu_part_kernel_first(q.shape[3], q.shape[1], q.shape[2])
    theirs, _ = mlw_codec.reorder_encode(8, 8, q, 16, False, part_kernel, 8, 8, 8)
    weights = layer.stream[layer.ranges[0].offset + layer.ranges[0].weight_offset:]
    if weights != bytes(theirs):
        raise SystemExit("weight stream differs from Vela's reorder_encode")


def measure(model, path, vela_check):
    rows = []
    for index, (name, w, is_conv) in enumerate(layers(path)):
        for rotated in (False, True):
            # the "rotated" variant keeps convolutions and inputs without a Hadamard order as they are, so
            # that both variants cover every layer
            source = rotate(w, index + 1) if rotated and not is_conv else None
            layer_rotated = source is not None
            source = w if source is None else source
            for bits in BITS:
                q, scale = quantize(source, bits)
                layer = pack(q, scale, is_conv)
                if vela_check:
                    check_with_vela(q, is_conv, layer)
                rows.append({"model": model, "layer": name, "rotated": rotated, "layer_rotated": layer_rotated,
                             "bits": bits, "weights": int(q.size),
                             "int8_bytes": int(q.size), "packed_bytes": int(q.size) * bits / 8,
                             "stream_bytes": layer.weight_bytes, "entry_bytes": len(layer.stream) - layer.weight_bytes,
                             **{u85_key(c): pack(q, scale, is_conv, c).weight_bytes for c in U85}})
    return rows


def totals(rows):
    out = []
    keys = sorted({(r["model"], r["rotated"], r["bits"]) for r in rows}, key=lambda k: (k[0], k[1], -k[2]))
    for model, rotated, bits in keys:
        sel = [r for r in rows if (r["model"], r["rotated"], r["bits"]) == (model, rotated, bits)]
        t = {"model": model, "rotated": rotated, "bits": bits, "layers": len(sel),
             "layers_rotated": sum(r["layer_rotated"] for r in sel)}
        for k in ("weights", "int8_bytes", "packed_bytes", "stream_bytes", "entry_bytes") + tuple(map(u85_key, U85)):
            t[k] = sum(r[k] for r in sel)
        t["stream_over_int8"] = t["stream_bytes"] / t["int8_bytes"]
        t["stream_over_packed"] = t["stream_bytes"] / t["packed_bytes"]
        out.append(t)
    return out


def main():
    rows = []
    for model, path, vela_check in MODELS:
        if os.path.exists(path):
            rows += measure(model, path, vela_check)
        else:
            print("skipped %s: %s not found" % (model, path))
    summary = totals(rows)
    print("%-12s %7s %4s %9s %10s %10s %10s %9s %9s %9s %10s %10s" % (
        "model", "rotated", "bits", "layers", "weights", "packed B", "stream B", "entries B", "/int8", "/packed",
        "U85-256 B", "U85-512 B"))
    for t in summary:
        print("%-12s %7s %4d %9s %10d %10d %10d %9d %9.3f %9.3f %10d %10d" % (
            t["model"], "yes" if t["rotated"] else "no", t["bits"], "%d/%d" % (t["layers_rotated"], t["layers"]),
            t["weights"], t["packed_bytes"],
            t["stream_bytes"], t["entry_bytes"], t["stream_over_int8"], t["stream_over_packed"],
            *(t[u85_key(c)] for c in U85)))
    result = {"benchmark": "Ethos-U encoded weight bytes at 8/4/3/2-bit weights, with and without rotation",
              "config": CONFIG, "u85_configs": list(U85), "u85_weight_format": "smaller",
              "machine": platform.node(), "qcore": qcore.__version__,
              "python": sys.version.split()[0], "vela_checked_models": [m for m, _, v in MODELS if v],
              "totals": summary, "layers": rows}
    report.write_json("ethosu_sizes.json", result)


if __name__ == "__main__":
    main()
