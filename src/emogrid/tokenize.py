"""Tokenize a dataset split once, for every grid cell that uses it.

Texts are tokenized without padding (batches are padded dynamically at train time) and stored as
`input_ids` next to the unified columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emogrid.io import write_parquet


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)


def tokenize_texts(tokenizer, texts: list[str], max_length: int, batch_size: int = 2048) -> list[np.ndarray]:
    """Token ids (with [CLS]/[SEP]) per text, truncated to max_length, as int32 arrays."""
    ids: list[np.ndarray] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        enc = tokenizer(chunk, truncation=True, max_length=max_length, padding=False)
        ids.extend(np.asarray(x, dtype=np.int32) for x in enc["input_ids"])
    return ids


def tokenize_split(unified_path: str | Path, tokenizer, max_length: int, out_path: str | Path) -> int:
    """Write `out_path` = the unified rows of `unified_path` plus `input_ids`; returns the row count."""
    frame = pd.read_parquet(unified_path)
    frame["input_ids"] = tokenize_texts(tokenizer, frame["text"].tolist(), max_length)
    write_parquet(out_path, frame)
    return len(frame)
