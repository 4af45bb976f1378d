#!/usr/bin/env python3
"""Facts about the Silero VAD ONNX models shipped in the PyPI ``silero-vad`` wheel.

Prints, for every ``silero_vad*.onnx`` in the installed package's data folder:
size, sha256, IR version, opsets, inputs/outputs, initializer dtypes and the op
types (with counts; ops that occur only inside If/Loop subgraphs are listed
separately) -- then runs each model with onnxruntime over a 16 kHz speech clip,
chunk by chunk as silero-vad's own wrappers do (512 new samples + 64 samples of
context = 576 per frame, LSTM state carried between frames), and compares the
per-frame speech probabilities with the package's TorchScript model
(silero_vad.jit) and between the speech and silence parts of the clip.

Audio: --wav PATH (16 kHz mono 16-bit), default tests/data/audio/speech_16k.wav
(committed; made by --write-wav with espeak-ng + sox).  If that file is absent,
espeak-ng/sox are tried, then a synthetic vowel-like signal is used.

Usage:  python scripts/models/silero_info.py [--wav PATH] [--json OUT]
        python scripts/models/silero_info.py --write-wav tests/data/audio/speech_16k.wav
Needs:  pip install silero-vad==6.2.3   (wheel contains the .onnx and .jit files; nothing
        is downloaded at run time).  --write-wav needs apt-get install espeak-ng sox.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_WAV = REPO / "tests" / "data" / "audio" / "speech_16k.wav"
SR = 16000
FRAME, CONTEXT = 512, 64
SPEECH_TEXT = "The quick brown fox jumps over the lazy dog."
PAD_S = 0.75  # seconds of silence before and after the speech


# --------------------------------------------------------------------------- audio
def write_speech_wav(path: Path) -> None:
    """espeak-ng (en-us, 22.05 kHz) -> sox: 16 kHz mono 16-bit, PAD_S s of silence each side."""
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install espeak-ng sox)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        raw = Path(td) / "espeak.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SPEECH_TEXT],
                       check=True)
        subprocess.run(["sox", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(path),
                        "pad", str(PAD_S), str(PAD_S)], check=True)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SR or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: need 16 kHz mono 16-bit PCM")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (data.astype(np.float32) / 32768.0)


def synthetic_audio() -> np.ndarray:
    """PAD_S s silence, 2 s of a vowel-like harmonic signal with syllable-rate AM, PAD_S s silence."""
    rng = np.random.default_rng(0)
    t = np.arange(int(2.0 * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum((1.0 / k) * np.sin(k * phase) for k in range(1, 20))
    env = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * 0.3
    speech = (voice * env + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    pad = np.zeros(int(PAD_S * SR), np.float32)
    return np.concatenate([pad, speech / np.abs(speech).max() * 0.5, pad])


def get_audio(wav: Path | None) -> tuple[np.ndarray, str]:
    if wav is not None:
        return read_wav(wav), str(wav)
    if DEFAULT_WAV.exists():
        return read_wav(DEFAULT_WAV), str(DEFAULT_WAV.relative_to(REPO))
    if shutil.which("espeak-ng") and shutil.which("sox"):
        with tempfile.TemporaryDirectory() as td:
            p = Path(td) / "speech.wav"
            write_speech_wav(p)
            return read_wav(p), "espeak-ng (generated now)"
    return synthetic_audio(), "synthetic vowel-like signal"


def frames_with_context(audio: np.ndarray) -> np.ndarray:
    """[n_frames, 576]: each 512-sample frame prefixed with the previous 64 samples."""
    n = (len(audio) + FRAME - 1) // FRAME
    padded = np.zeros(n * FRAME, np.float32)
    padded[:len(audio)] = audio
    fr = padded.reshape(n, FRAME)
    ctx = np.zeros((n, CONTEXT), np.float32)
    ctx[1:] = fr[:-1, -CONTEXT:]
    return np.concatenate([ctx, fr], axis=1)


# --------------------------------------------------------------------------- onnx facts
def walk_ops(graph, top: dict, sub: dict, nested=False) -> None:
    import onnx

    for n in graph.node:
        d = sub if nested else top
        d[n.op_type] = d.get(n.op_type, 0) + 1
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                walk_ops(a.g, top, sub, True)
            for g in a.graphs:
                walk_ops(g, top, sub, True)


def model_facts(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path))
    top: dict[str, int] = {}
    sub: dict[str, int] = {}
    walk_ops(m.graph, top, sub)

    def vi(v):
        tt = v.type.tensor_type
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name,
                "shape": [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                          for d in tt.shape.dim]}

    init_dtypes: dict[str, int] = {}
    n_params = 0
    for t in m.graph.initializer:
        k = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name
        init_dtypes[k] = init_dtypes.get(k, 0) + 1
        n_params += int(np.prod(t.dims)) if len(t.dims) else 1
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "ir_version": m.ir_version,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "inputs": [vi(v) for v in m.graph.input],
        "outputs": [vi(v) for v in m.graph.output],
        "initializers": {"count": len(m.graph.initializer), "dtypes": init_dtypes,
                         "elements": n_params},
        "op_types": sorted(set(top) | set(sub)),
        "op_counts_main_graph": dict(sorted(top.items())),
        "op_counts_in_subgraphs": dict(sorted(sub.items())),
        "ops_only_in_subgraphs": sorted(set(sub) - set(top)),
    }


# --------------------------------------------------------------------------- running
def run_onnx(path: Path, frames: np.ndarray) -> np.ndarray:
    """Per-frame speech probabilities [n_frames] from onnxruntime."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    if "h" in names:  # sequence model: all frames in one call, h/c carried inside
        h = np.zeros((1, 1, 128), np.float32)
        c = np.zeros((1, 1, 128), np.float32)
        probs, _, _ = sess.run(None, {"input": frames, "h": h, "c": c})
        return np.asarray(probs, np.float32).reshape(-1)
    state = np.zeros((2, 1, 128), np.float32)
    out = []
    for fr in frames:
        feeds = {"input": fr[None, :], "state": state}
        if "sr" in names:
            feeds["sr"] = np.array(SR, dtype=np.int64)
        p, state = sess.run(None, feeds)
        out.append(float(np.asarray(p).reshape(-1)[0]))
    return np.array(out, np.float32)


def run_jit(audio: np.ndarray) -> np.ndarray | None:
    try:
        import torch
        from silero_vad import load_silero_vad
    except ImportError:
        return None
    model = load_silero_vad(onnx=False)  # silero_vad.jit from the wheel
    model.reset_states()
    n = (len(audio) + FRAME - 1) // FRAME
    padded = np.zeros(n * FRAME, np.float32)
    padded[:len(audio)] = audio
    with torch.no_grad():
        return np.array([float(model(torch.from_numpy(padded[i * FRAME:(i + 1) * FRAME]), SR))
                         for i in range(n)], np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wav", type=Path, help="16 kHz mono 16-bit wav to run the models on")
    ap.add_argument("--write-wav", type=Path, metavar="PATH",
                    help="generate the espeak-ng speech clip at PATH and exit")
    ap.add_argument("--json", type=Path, help="also write all facts as JSON here")
    args = ap.parse_args()

    if args.write_wav:
        write_speech_wav(args.write_wav)
        a = read_wav(args.write_wav)
        print(f"wrote {args.write_wav}: {len(a)} samples ({len(a) / SR:.2f} s), "
              f"{args.write_wav.stat().st_size} bytes")
        return 0

    try:
        import silero_vad
        from importlib.metadata import version
    except ImportError:
        print("silero-vad is not installed (pip install silero-vad==6.2.3)")
        return 2
    import onnxruntime as ort

    data_dir = Path(silero_vad.__file__).resolve().parent / "data"
    print(f"silero-vad {version('silero-vad')} ({data_dir}); onnxruntime {ort.__version__}")
    onnx_files = sorted(data_dir.glob("silero_vad*.onnx"))
    others = sorted(p.name for p in data_dir.iterdir()
                    if p.is_file() and p.suffix not in (".onnx", ".py"))
    print(f"shipped ONNX files: {len(onnx_files)}; other model files: {', '.join(others)}")

    audio, audio_src = get_audio(args.wav)
    frames = frames_with_context(audio)
    n_pad = int(PAD_S * SR) // FRAME  # frames fully inside the leading silence
    speech_idx = np.arange(n_pad + 2, len(frames) - n_pad - 2)
    silence_idx = np.r_[np.arange(0, n_pad - 1), np.arange(len(frames) - n_pad + 1, len(frames))]
    print(f"audio: {audio_src}, {len(audio) / SR:.2f} s, {len(frames)} frames of 512 (+64 context)")
    ref = run_jit(audio)

    report = {"silero_vad_version": version("silero-vad"), "audio": audio_src, "models": []}
    for path in onnx_files:
        f = model_facts(path)
        print(f"\n== {f['file']}  {f['bytes']} bytes  IR {f['ir_version']}  opsets {f['opsets']}")
        print(f"   sha256 {f['sha256']}")
        for v in f["inputs"]:
            print(f"   in   {v['name']:8s} {v['dtype']:8s} {v['shape']}")
        for v in f["outputs"]:
            print(f"   out  {v['name']:8s} {v['dtype']:8s} {v['shape']}")
        print(f"   initializers: {f['initializers']}")
        print(f"   op types ({len(f['op_types'])}): {' '.join(f['op_types'])}")
        print("   main graph: " + " ".join(f"{k}x{v}" for k, v in f["op_counts_main_graph"].items()))
        if f["op_counts_in_subgraphs"]:
            print("   in If/Loop subgraphs: "
                  + " ".join(f"{k}x{v}" for k, v in f["op_counts_in_subgraphs"].items()))
        try:
            probs = run_onnx(path, frames)
            run = {
                "runs": True,
                "mean_prob_speech": float(probs[speech_idx].mean()),
                "mean_prob_silence": float(probs[silence_idx].mean()),
                "frames_over_0.5": int((probs > 0.5).sum()),
            }
            if ref is not None and len(ref) == len(probs):
                run["max_abs_diff_vs_jit"] = float(np.abs(probs - ref).max())
            print("   onnxruntime: runs; " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in run.items() if k != "runs"))
        except Exception as e:  # noqa: BLE001 - report any failure as a fact
            run = {"runs": False, "error": f"{type(e).__name__}: {e}"[:300]}
            print(f"   onnxruntime: FAILS: {run['error']}")
        f["onnxruntime"] = run
        report["models"].append(f)
    if ref is not None:
        print(f"\nsilero_vad.jit reference: mean prob speech {ref[speech_idx].mean():.4g}, "
              f"silence {ref[silence_idx].mean():.4g}, frames over 0.5: {int((ref > 0.5).sum())}"
              f"/{len(ref)}")
        report["jit_reference"] = {"mean_prob_speech": float(ref[speech_idx].mean()),
                                   "mean_prob_silence": float(ref[silence_idx].mean())}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
