"""Tokenize a dataset split once, for every grid cell that uses it.

Texts are tokenized without padding (batches are padded dynamically at train time) and stored as
`input_ids` next to the unified columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from emogrid.io import write_parquet


def load_tokenizer(model_dir: str | Path):
    """The model's tokenizer as transformers picks it (AutoTokenizer): what training uses and checks."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)


def load_declared_tokenizer(model_dir: str | Path):
    """The tokenizer class that `tokenizer_config.json` names, loaded without torch; else AutoTokenizer.

    AutoTokenizer reads the model config first, and transformers' config module imports torch: a fresh
    process took 1.8 s to load the demo's tokenizer that way, 0.7 s through the declared class (best
    of 3, 2-core Xeon), and every tokenize job pays it. The declared class is what AutoTokenizer picks
    for the model folders emogrid uses; where transformers overrides it and the ids differ,
    `check_tokens` stops the training job.
    """
    import transformers

    config_path = Path(model_dir) / "tokenizer_config.json"
    declared = None
    if config_path.is_file():
        try:
            declared = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer_class")
        except (ValueError, AttributeError) as error:  # not JSON, or JSON but not an object
            raise ValueError(f"{config_path}: not a JSON object of tokenizer settings: {error}") from None
    # transformers 5 keeps one class per tokenizer; "...Fast" names are aliases where they still exist.
    names = [declared, declared.removesuffix("Fast")] if isinstance(declared, str) else []
    for name in names:
        cls = getattr(transformers, name, None)
        # Only transformers' own tokenizer classes: never a model class, never the folder's own code.
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedTokenizerBase):
            return cls.from_pretrained(str(model_dir))
    return load_tokenizer(model_dir)


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


def check_tokens(
    frame: pd.DataFrame, tokenizer, max_length: int, path: str | Path, sample: int = 256
) -> None:
    """Raise unless `tokenizer` turns a sample of `frame`'s texts into the `input_ids` stored for them.

    The training job calls this with the model's own tokenizer on every token file it reads, so tokens
    made by another tokenizer (another model, a stale file, a loader that differs from AutoTokenizer)
    stop the cell before it trains instead of training on ids the model does not know. The sample is
    spread evenly over the file, first and last rows included.
    """
    if frame.empty:
        return
    rows = np.unique(np.linspace(0, len(frame) - 1, num=min(sample, len(frame))).round().astype(int))
    texts = frame["text"].iloc[rows].tolist()
    expected = tokenize_texts(tokenizer, texts, max_length)
    for row, stored, wanted in zip(rows, frame["input_ids"].iloc[rows], expected, strict=True):
        if not np.array_equal(np.asarray(stored), wanted):
            raise ValueError(
                f"{path}: row {row} ({frame['id'].iloc[row]!r}): its input_ids were not made by this model's "
                f"tokenizer ({type(tokenizer).__name__}, max_length {max_length}): stored "
                f"{np.asarray(stored)[:12].tolist()}..., the tokenizer gives {wanted[:12].tolist()}... "
                "If the file is stale, rerun the tokenize jobs (snakemake --forcerun tokenize). If it was "
                "made for this model, the class named in the model folder's tokenizer_config.json "
                f"tokenizes differently from {type(tokenizer).__name__}: set tokenizer_class there to it."
            )
