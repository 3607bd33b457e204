"""Batches for multi-label training: weighted dataset mixes, length grouping, dynamic padding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler


class EncodedExamples(Dataset):
    """Tokenized rows held as arrays; items are dicts the collator understands."""

    def __init__(self, frame: pd.DataFrame):
        self.input_ids = list(frame["input_ids"])
        self.labels = np.stack(frame["labels"].to_numpy()).astype(np.float32)
        self.label_mask = np.stack(frame["label_mask"].to_numpy()).astype(np.float32)
        self.lengths = np.fromiter(
            (len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids)
        )
        self.dataset_names = frame["dataset"].to_numpy()
        self.ids = frame["id"].to_numpy()

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i], "label_mask": self.label_mask[i]}


def mixture_weights(dataset_names: np.ndarray, mix: dict[str, float]) -> np.ndarray:
    """Per-example sampling probabilities so that dataset d gets share mix[d] of all draws."""
    weights = np.zeros(len(dataset_names), dtype=np.float64)
    total = sum(mix.values())
    for name, share in mix.items():
        members = dataset_names == name
        count = int(members.sum())
        if count == 0:
            raise ValueError(f"mix names dataset {name!r} but it has no training rows")
        weights[members] = share / total / count
    return weights / weights.sum()


def epoch_counts(
    weights: np.ndarray, draws: int, rng: np.random.Generator, groups: np.ndarray | None = None
) -> np.ndarray:
    """How often each row is drawn in an epoch of `draws` draws: the floor or the ceiling of
    `draws * weights[i]`, exactly that on average, and `draws` in all. Each group's rows (a mix's
    datasets) likewise get the floor or the ceiling of their expected total. Systematic sampling: one
    uniform offset on the running sum of the expected counts, with the rows in a random order within
    their group and the groups one after another.

    Drawing independently with replacement would leave rows out by chance (after three such epochs of
    one dataset about 5% of its rows were never seen); here a row of weight 1/n is drawn exactly once.
    """
    weights = np.asarray(weights, dtype=np.float64)
    shuffled = rng.random(len(weights))
    order = np.lexsort((shuffled,)) if groups is None else np.lexsort((shuffled, np.asarray(groups)))
    # Each row's expected count rounded before the running sum, so whole counts (weight 1/n, n draws)
    # add up exactly: a sum one ulp short of an integer would give one row no draw and the next two.
    expected = np.cumsum(np.round(weights[order] * (draws / weights.sum()), 9))
    expected[-1] = draws
    edges = np.floor(expected + rng.random())
    counts = np.empty(len(weights), dtype=np.int64)
    counts[order] = np.diff(edges, prepend=0)
    return counts


class MixtureLengthSampler(Sampler[int]):
    """Draw an epoch of examples with the mix's weights, then group similar lengths into batches.

    Each epoch holds `len(dataset)` draws, row i about `len(dataset) * weights[i]` times
    (`epoch_counts`; each of the `groups`, a mix's datasets, gets its share to within one draw): a
    single-dataset mix without oversampling is an ordinary epoch, every row once.
    The draws are shuffled, cut into mega-batches of `megabatch_factor * batch_size`, each sorted by
    length (longest first), and the batch order is shuffled, the longest batch first and a short
    remainder batch last. Padding waste drops while the sample stays random.
    The order depends only on (seed, epoch), so a resumed run sees the same data order.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        weights: np.ndarray,
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        megabatch_factor: int = 50,
        groups: np.ndarray | None = None,
    ):
        self.lengths = np.asarray(lengths)
        self.weights = np.asarray(weights)
        self.groups = None if groups is None else np.asarray(groups)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.megabatch = max(batch_size, batch_size * megabatch_factor)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        counts = epoch_counts(self.weights, len(self.lengths), rng, self.groups)
        drawn = rng.permutation(np.repeat(np.arange(len(self.lengths)), counts))
        if not self.group_by_length:
            return drawn
        groups = []
        for start in range(0, len(drawn), self.megabatch):
            mega = drawn[start : start + self.megabatch]
            groups.append(mega[np.argsort(-self.lengths[mega], kind="stable")])
        ordered = np.concatenate(groups)
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        # The DataLoader cuts this stream into batch_size again: a short batch anywhere but at the end
        # would shift every later cut across two length groups.
        tail = [batches.pop()] if len(batches) > 1 and len(batches[-1]) < self.batch_size else []
        # The longest batch goes first so an out-of-memory error shows at step 1, not hours in.
        longest = int(np.argmax([self.lengths[b].max() for b in batches]))
        rest = [b for i, b in enumerate(batches) if i != longest]
        order = rng.permutation(len(rest))
        return np.concatenate([batches[longest]] + [rest[i] for i in order] + tail)

    def __iter__(self):
        return iter(self.epoch_indices(self.epoch).tolist())


@dataclass
class MultiLabelCollator:
    """Pad `input_ids` to the longest sequence in the batch; stack labels and masks.

    With `pad_to_multiple_of`, to the next multiple of it, but never past `max_length` (a model with
    absolute positions may have none beyond it): the batch shapes a compiled model sees stay few.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    max_length: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            rounded = (longest + m - 1) // m * m
            longest = max(longest, min(rounded, self.max_length)) if self.max_length else rounded
        input_ids = np.full((len(features), longest), self.pad_token_id, dtype=np.int64)
        attention = np.zeros((len(features), longest), dtype=np.int64)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = f["input_ids"]
            attention[row, :n] = 1
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention),
            "labels": torch.from_numpy(np.stack([f["labels"] for f in features])),
            "label_mask": torch.from_numpy(np.stack([f["label_mask"] for f in features])),
        }
