"""Padding in a whole training epoch, as the DataLoader cuts emogrid's sampler stream into batches.

    python bench/epoch_padding.py DATA_DIR --model models/all-MiniLM-L6-v2 [--dataset goemotions]

Reads and tokenizes one dataset's real training split, then counts, over every batch of one epoch,
the padding share (padded positions / all positions) for three orders of the same draws:
- `random`: no length grouping (group_by_length: false);
- `grouped`: emogrid's `MixtureLengthSampler`, which puts a short remainder batch last;
- `grouped_short_batch_inside`: the same groups with the short batch moved to a random place inside
  the epoch, as the sampler did before 2026-11-25. The DataLoader cuts the sampler's flat stream every
  `batch` rows, so from that place on every batch straddles two length groups. Given as the median
  (min-max) over `--placements` random places.
Counts, not timings: the figures are exact for the seeds. Prints JSON and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from _common import REPO, load_config, machine, save, spread

from emogrid.batching import MixtureLengthSampler
from emogrid.preprocess import preprocess_dataset
from emogrid.tokenize import load_tokenizer, tokenize_texts


def padding_share(order: np.ndarray, lengths: np.ndarray, batch: int) -> float:
    cuts = [order[i : i + batch] for i in range(0, len(order), batch)]
    padded = sum(len(c) * int(lengths[c].max()) for c in cuts)
    return 1 - int(lengths[order].sum()) / padded


def short_batch_inside(order: np.ndarray, batch: int, seed: int) -> np.ndarray:
    remainder = len(order) % batch
    if remainder == 0 or len(order) // batch < 2:
        return order  # no short batch, or no place inside the epoch to put it
    full, short = order[: len(order) - remainder], order[len(order) - remainder :]
    place = np.random.default_rng(seed).integers(1, len(full) // batch) * batch
    return np.concatenate([full[:place], short, full[place:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", required=True, help="a local model directory (its tokenizer is used)")
    parser.add_argument("--dataset", default="goemotions")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--placements", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/epoch_padding.json")
    args = parser.parse_args()
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        preprocess_dataset(args.dataset, args.data_dir / args.dataset, config, Path(tmp))
        texts = pd.read_parquet(Path(tmp) / "train.parquet")["text"].tolist()
    ids = tokenize_texts(load_tokenizer(args.model), texts, args.max_length)
    lengths = np.array([len(x) for x in ids])
    weights = np.full(len(lengths), 1 / len(lengths))

    def sampler(group: bool) -> MixtureLengthSampler:
        return MixtureLengthSampler(lengths, weights, args.batch, seed=args.seed, group_by_length=group)

    grouped = sampler(True).epoch_indices(0)
    result = {
        "machine": machine(),
        "dataset": args.dataset,
        "rows": len(lengths),
        "batch": args.batch,
        "short_batch_rows": len(lengths) % args.batch,
        "mean_tokens": round(float(lengths.mean()), 2),
        "padding_share": {
            "random": round(padding_share(sampler(False).epoch_indices(0), lengths, args.batch), 4),
            "grouped": round(padding_share(grouped, lengths, args.batch), 4),
            "grouped_short_batch_inside": spread(
                [
                    padding_share(short_batch_inside(grouped, args.batch, seed), lengths, args.batch)
                    for seed in range(args.placements)
                ],
                4,
            ),
        },
    }
    print(json.dumps(result, indent=1))
    save(args.out, result)


if __name__ == "__main__":
    main()
