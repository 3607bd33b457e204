"""A tiny, randomly initialised DeBERTa-v3 built offline, for the demo and the tests.

It exercises the real DeBERTa-v3 code path (v3 relative attention, sentencepiece tokenizer) without
the hub: a unigram sentencepiece model is trained on the corpus text, loaded through
`DebertaV2Tokenizer.from_pretrained(dir)` and saved next to a small `DebertaV2Config`.

The tokenizer and the weights do not depend on each other: the embedding table has a fixed size,
TINY_VOCAB_SIZE, that the tokenizer never exceeds. So the workflow builds them as two jobs that run at
the same time and `assemble_tiny_model` puts their files into one model folder.
"""

from __future__ import annotations

import argparse
import io
import shutil
from pathlib import Path

from emogrid.io import read_json, readable_as_umask_allows

# Special-token ids follow DeBERTa-v3's spm.model: pad 0, [CLS] 1, [SEP] 2, unk 3, [MASK] a user symbol.
SPECIALS = {
    "pad_id": 0,
    "pad_piece": "[PAD]",
    "bos_id": 1,
    "bos_piece": "[CLS]",
    "eos_id": 2,
    "eos_piece": "[SEP]",
    "unk_id": 3,
    "unk_piece": "[UNK]",
}


# The embedding table's rows, and the sentencepiece vocabulary's limit: `hard_vocab_limit=False` gives
# fewer pieces on a small corpus, never more (build_tiny_tokenizer and assemble_tiny_model check it).
TINY_VOCAB_SIZE = 1000


def train_sentencepiece(
    texts: list[str], out_dir: Path, vocab_size: int = TINY_VOCAB_SIZE, seed: int = 0
) -> Path:
    """Train a unigram sentencepiece model on `texts`; returns the path of spm.model."""
    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        # The corpus may be too small for vocab_size: take what it supports instead of failing.
        hard_vocab_limit=False,
        user_defined_symbols=["[MASK]"],
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **SPECIALS,
    )
    path = out_dir / "spm.model"
    path.write_bytes(model.getvalue())
    return path


def tiny_config(
    vocab_size: int,
    num_labels: int,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    dropout: float = 0.1,
):
    from transformers import DebertaV2Config

    return DebertaV2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden_size * 4,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pooler_dropout=dropout,
        max_position_embeddings=512,
        # DeBERTa-v3 attention: relative positions in log buckets, shared keys, no absolute positions.
        relative_attention=True,
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type="p2c|c2p",
        position_biased_input=False,
        max_relative_positions=-1,
        type_vocab_size=0,
        pad_token_id=0,
        num_labels=num_labels,
        problem_type="multi_label_classification",
    )


def build_tiny_tokenizer(texts: list[str], out_dir: str | Path, seed: int = 0) -> Path:
    """Train the sentencepiece model on `texts` and save it as a DeBERTa-v3 tokenizer in `out_dir`.

    Needs transformers but not torch, so the workflow tokenizes while the weights are still being built.
    """
    from transformers import DebertaV2Tokenizer

    out_dir = Path(out_dir)
    train_sentencepiece(texts, out_dir, seed=seed)
    tokenizer = DebertaV2Tokenizer.from_pretrained(out_dir)
    # Guard against the silent empty-vocabulary failure: real text must map to known pieces.
    ids = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    if not ids or all(i == tokenizer.unk_token_id for i in ids):
        raise RuntimeError(f"tokenizer from {out_dir / 'spm.model'} maps {texts[0]!r} to unknown tokens only")
    if len(tokenizer) > TINY_VOCAB_SIZE:
        raise RuntimeError(
            f"tokenizer in {out_dir} has {len(tokenizer)} tokens, more than the tiny model's "
            f"{TINY_VOCAB_SIZE} embedding rows"
        )
    tokenizer.save_pretrained(out_dir)
    readable_as_umask_allows(out_dir)
    return out_dir


def build_tiny_weights(labels: list[str], out_dir: str | Path, seed: int = 0, dropout: float = 0.1) -> Path:
    """A randomly initialised tiny DeBERTa-v3 classifier (config.json, model.safetensors) in `out_dir`,
    with TINY_VOCAB_SIZE embedding rows: it needs no tokenizer, so it is built alongside one."""
    import torch
    from transformers import AutoModelForSequenceClassification

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = tiny_config(TINY_VOCAB_SIZE, len(labels), dropout=dropout)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(out_dir)
    readable_as_umask_allows(out_dir)
    return out_dir


def largest_token_id(tokenizer_dir: str | Path) -> int:
    """The largest id the tokenizer in `tokenizer_dir` can produce, read from its tokenizer.json
    (its model's vocabulary and its added tokens), without importing transformers."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    try:
        spec = read_json(path)
        vocab = spec["model"]["vocab"]
        ids = [len(vocab) - 1] if isinstance(vocab, list) else list(vocab.values())
        ids += [token["id"] for token in spec.get("added_tokens") or []]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a readable tokenizer.json ({error})") from error
    return max(ids)


def assemble_tiny_model(weights_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path) -> Path:
    """Copy the weights' and the tokenizer's files into one model folder, `out_dir`.

    Refuses a file name both have, and a tokenizer that can produce an id the embedding table lacks.
    Hidden files (Snakemake's `.snakemake_timestamp` in directory outputs) are not model files.
    """
    weights_dir, tokenizer_dir, out_dir = Path(weights_dir), Path(tokenizer_dir), Path(out_dir)

    def files(folder: Path) -> dict[str, Path]:
        return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}

    weights, tokenizer = files(weights_dir), files(tokenizer_dir)
    if both := sorted(weights.keys() & tokenizer.keys()):
        raise ValueError(
            f"{weights_dir} and {tokenizer_dir} both have {both}: which one belongs in {out_dir}?"
        )
    try:
        rows = read_json(weights_dir / "config.json")["vocab_size"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{weights_dir / 'config.json'}: no readable vocab_size ({error!r})") from error
    if (largest := largest_token_id(tokenizer_dir)) >= rows:
        raise ValueError(
            f"{tokenizer_dir} produces token ids up to {largest}, but the weights in {weights_dir} have "
            f"{rows} embedding rows"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, path in (weights | tokenizer).items():
        shutil.copyfile(path, out_dir / name)
    readable_as_umask_allows(out_dir)
    return out_dir


def build_tiny_deberta(
    texts: list[str], labels: list[str], out_dir: str | Path, seed: int = 0, dropout: float = 0.1
) -> Path:
    """Write a tokenizer and a randomly initialised tiny DeBERTa-v3 classifier to `out_dir`."""
    build_tiny_tokenizer(texts, out_dir, seed=seed)
    return build_tiny_weights(labels, out_dir, seed=seed, dropout=dropout)


def main(argv: list[str] | None = None) -> None:
    import pandas as pd
    import yaml

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--config", required=True, help="workflow config (for the label names)")
    parser.add_argument(
        "--texts", nargs="+", required=True, help="unified parquet files to train the tokenizer on"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    labels = yaml.safe_load(Path(args.config).read_text())["labels"]
    texts = [t for path in args.texts for t in pd.read_parquet(path, columns=["text"])["text"]]
    build_tiny_deberta(texts, labels, args.out_dir, seed=args.seed)


if __name__ == "__main__":
    main()
