#!/usr/bin/env python3
"""Build a small English text corpus from Debian's ``fortunes`` package.

The corpus is used to calibrate (calibration.txt) and evaluate (heldout.txt)
quantized text models such as all-MiniLM-L6-v2.  It is committed to the repo
(tests/data/text/), so tests never need the Debian package; this script only
documents and reproduces how it was made.

Steps: read the fortune files of the categories in CATEGORIES (the
``fortunes`` + ``fortunes-min`` packages; the offensive ``fortunes-off`` set
and a few categories that are mostly ASCII art or jokes about ethnic groups,
sexes, drugs or politics are left out), split each file on lines consisting of
a single ``%``, strip control/overstrike characters, join each fortune's lines
with single spaces, keep those with MIN_CHARS..MAX_CHARS characters and mostly
letters, drop duplicates, sort, shuffle with a fixed seed, and write the first
N to calibration.txt and the next N to heldout.txt, one text per line (UTF-8,
'\n' line ends).

Usage:  python scripts/models/text_corpus.py [--src DIR] [--out DIR] [--n 512] [--check]
        (--check: exit 1 if the files on disk differ from what would be written)
Needs:  apt-get install fortunes   (files in /usr/share/games/fortunes)
"""
from __future__ import annotations

import argparse
import random
import re
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEED = 20240601
MIN_CHARS = 40
MAX_CHARS = 400
CATEGORIES = [
    "computers", "cookie", "debian", "definitions", "education", "food",
    "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law", "linux",
    "linuxcookie", "literature", "love", "magic", "medicine", "miscellaneous",
    "news", "paradoxum", "people", "perl", "pets", "platitudes", "pratchett",
    "riddles", "science", "songs-poems", "sports", "startrek", "tao",
    "translate-me", "wisdom", "work",
]
# Left out: art, ascii-art (drawings), ethnic, men-women, drugs, politics, zippy.


def clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    # Remove overstrike sequences (char BACKSPACE char) and other control chars.
    text = re.sub(r".\x08", "", text)
    text = "".join(ch if (ch in "\t\n" or unicodedata.category(ch)[0] != "C") else " "
                   for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def acceptable(text: str) -> bool:
    if not (MIN_CHARS <= len(text) <= MAX_CHARS):
        return False
    letters = sum(ch.isalpha() for ch in text)
    if letters < 0.65 * len(text):  # tables, code, ASCII art
        return False
    return bool(re.search(r"[A-Za-z]{3,}", text))


def read_fortunes(src: Path) -> list[str]:
    texts: set[str] = set()
    for cat in CATEGORIES:
        path = src / cat
        if not path.exists():
            print(f"warning: {path} missing", file=sys.stderr)
            continue
        raw = path.read_bytes().decode("utf-8", errors="replace")
        for chunk in re.split(r"^%\s*$", raw, flags=re.M):
            t = clean(chunk)
            if acceptable(t):
                texts.add(t)
    return sorted(texts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=Path("/usr/share/games/fortunes"))
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "text")
    ap.add_argument("--n", type=int, default=512, help="texts per file")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the files differ")
    args = ap.parse_args()

    if not args.src.is_dir():
        print(f"error: {args.src} not found (apt-get install fortunes)", file=sys.stderr)
        return 2
    texts = read_fortunes(args.src)
    if len(texts) < 2 * args.n:
        print(f"error: only {len(texts)} usable fortunes", file=sys.stderr)
        return 2
    random.Random(SEED).shuffle(texts)
    files = {
        "calibration.txt": texts[:args.n],
        "heldout.txt": texts[args.n:2 * args.n],
    }
    status = 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        data = ("\n".join(lines) + "\n").encode("utf-8")
        path = args.out / name
        if args.check:
            same = path.exists() and path.read_bytes() == data
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            status |= 0 if same else 1
        else:
            path.write_bytes(data)
            print(f"{path}: {len(lines)} texts, {len(data)} bytes "
                  f"(from {len(texts)} usable fortunes)")
    return status


if __name__ == "__main__":
    sys.exit(main())
