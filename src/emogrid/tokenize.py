"""Tokenize a dataset split once, for every grid cell that uses it.

Texts are tokenized without padding (batches are padded dynamically at train time) and stored as
`input_ids` next to the unified columns.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from emogrid.io import write_parquet


def load_tokenizer(model_dir: str | Path):
    """The model's tokenizer as transformers picks it (AutoTokenizer): what training uses and checks."""
    from transformers import AutoTokenizer, PreTrainedTokenizerBase

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    # AutoTokenizer instantiates whatever transformers class tokenizer_config.json names, models too.
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise ValueError(
            f"{Path(model_dir) / 'tokenizer_config.json'}: its tokenizer_class makes AutoTokenizer load a "
            f"{type(tokenizer).__name__}, which is not a tokenizer"
        )
    return tokenizer


# Generic classes a folder may name: for these AutoTokenizer decides (some it replaces, some cannot load).
GENERIC_TOKENIZER_CLASSES = {
    "PreTrainedTokenizerBase",
    "PreTrainedTokenizer",
    "PreTrainedTokenizerFast",
    "PythonBackend",
    "TokenizersBackend",
}


def load_declared_tokenizer(model_dir: str | Path):
    """The tokenizer class that `tokenizer_config.json` names, loaded without torch; else AutoTokenizer.

    AutoTokenizer reads the model config first, and transformers' config module imports torch: a fresh
    process took 1.8 s to load the demo's tokenizer that way, 0.7 s through the declared class (best
    of 3, 2-core Xeon), and every tokenize job pays it. The declared class is what AutoTokenizer picks
    for the model folders emogrid uses. Where transformers overrides it (some model types, byte-level
    Llama tokenizers), the token files record another class or backend than training's AutoTokenizer
    has, and `check_tokens` stops the training job.
    """
    import transformers

    config_path = Path(model_dir) / "tokenizer_config.json"
    declared = None
    if config_path.is_file():
        try:
            declared = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer_class")
        except (ValueError, AttributeError) as error:  # not JSON, or JSON but not an object
            raise ValueError(f"{config_path}: not a JSON object of tokenizer settings: {error}") from None
    if declared in GENERIC_TOKENIZER_CLASSES:
        declared = None  # AutoTokenizer picks a concrete backend for these
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


def count_truncated(tokenizer, texts: list[str], ids: list[np.ndarray], max_length: int) -> int:
    """How many texts lost tokens to max_length. Only a text whose ids came out at max_length can have:
    those are tokenized again without truncation."""
    at_limit = [text for text, row in zip(texts, ids, strict=True) if len(row) >= max_length]
    if not at_limit:
        return 0
    full = tokenizer(at_limit, truncation=False, padding=False, verbose=False)["input_ids"]
    return sum(len(row) > max_length for row in full)


def tokenizer_record(tokenizer, max_length: int, folder: str | Path | None = None) -> dict:
    """What made a token file: the tokenizer's class, a digest of its backend (normalizer,
    pre-tokenizer, model, post-processor, added tokens) and the max length; stored in the file."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    digest = None
    if backend is not None:
        # Truncation and padding are per-call state that tokenizing sets; they are not the tokenizer.
        settings = json.loads(backend.to_str())
        settings.pop("truncation", None)
        settings.pop("padding", None)
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return {
        "class": type(tokenizer).__name__,
        "backend_sha256": digest,
        "max_length": max_length,
        "folder": None if folder is None else str(folder),
    }


def tokenize_split(
    unified_path: str | Path,
    tokenizer,
    max_length: int,
    out_path: str | Path,
    folder: str | Path | None = None,
) -> int:
    """Write `out_path` = the unified rows of `unified_path` plus `input_ids`; returns the row count.

    The file's metadata records the tokenizer (`tokenizer_record`; `folder`: where it was loaded from)
    and how many rows max_length cut (`attrs["truncated_rows"]`, shown in the data summary).
    """
    frame = pd.read_parquet(unified_path)
    texts = frame["text"].tolist()
    frame["input_ids"] = tokenize_texts(tokenizer, texts, max_length)
    frame.attrs["tokenizer"] = tokenizer_record(tokenizer, max_length, folder)
    frame.attrs["truncated_rows"] = count_truncated(tokenizer, texts, frame["input_ids"].tolist(), max_length)
    write_parquet(out_path, frame)
    return len(frame)


def first_difference(stored: np.ndarray, wanted: np.ndarray) -> int:
    """The first position where two id sequences differ (the shorter length if one is a prefix)."""
    common = min(len(stored), len(wanted))
    unequal = np.flatnonzero(stored[:common] != wanted[:common])
    return int(unequal[0]) if len(unequal) else common


def check_tokens(
    frame: pd.DataFrame, tokenizer, max_length: int, path: str | Path, sample: int = 256
) -> None:
    """Raise unless `frame`'s tokens are what `tokenizer` makes, naming the file and what differs.

    The training job calls this with the model's own tokenizer (AutoTokenizer) on every token file it
    reads, so tokens made by another tokenizer (another model, a stale file, a declared class that
    transformers overrides) stop the cell before it trains on ids the model does not know. Two checks:
    the tokenizer the file records (`tokenizer_record`: class, backend digest, max length) must equal
    this one's, and this tokenizer must give the stored ids for a sample of rows spread evenly over the
    file, first and last included. Files written before the record existed get the sample check only.
    """
    recorded = frame.attrs.get("tokenizer")
    fix = "then rerun the tokenize jobs (snakemake --forcerun tokenize)"
    if recorded:
        current = tokenizer_record(tokenizer, max_length)
        differs = [k for k in ("class", "backend_sha256", "max_length") if recorded.get(k) != current[k]]
        if differs:
            folder = recorded.get("folder") or "the folder the tokenize jobs read"
            raise ValueError(
                f"{path}: made by another tokenizer than this model's ({', '.join(differs)} differ): "
                f"{recorded.get('class')} from {folder}, max_length {recorded.get('max_length')}, "
                f"against {current['class']}, max_length {max_length} for training. If {folder} is this "
                f"model's tokenizer, transformers overrides the class its tokenizer_config.json names: "
                f"set tokenizer_class there to {current['class']!r} or remove the key, {fix}. "
                f"Otherwise the file is stale: {fix}."
            )
    if frame.empty:
        return
    rows = np.unique(np.linspace(0, len(frame) - 1, num=min(sample, len(frame))).round().astype(int))
    texts = frame["text"].iloc[rows].tolist()
    expected = tokenize_texts(tokenizer, texts, max_length)
    for row, stored, wanted in zip(rows, frame["input_ids"].iloc[rows], expected, strict=True):
        stored = np.asarray(stored)
        if not np.array_equal(stored, wanted):
            at = first_difference(stored, wanted)
            window = slice(max(at - 3, 0), at + 4)
            raise ValueError(
                f"{path}: row {row} ({frame['id'].iloc[row]!r}): its input_ids were not made by this model's "
                f"tokenizer ({type(tokenizer).__name__}, max_length {max_length}): they differ first at "
                f"position {at} (stored {len(stored)} ids, the tokenizer gives {len(wanted)}; positions "
                f"{window.start}-{window.stop - 1}: stored {stored[window].tolist()}, the tokenizer gives "
                f"{wanted[window].tolist()}). The file is stale or from another model: {fix}."
            )
