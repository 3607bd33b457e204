"""Class-imbalance strategies, a grid dimension beside losses and mixes.

* ``none``: the mix's sampling weights, the configured loss.
* ``oversample``: repeat-factor sampling (as in LVIS, Gupta et al. 2019). Within each dataset, a label's
  factor is f_max / f_c, the frequency of the dataset's most frequent label over its own, capped at
  `cap`; a row's factor is the largest among its positive labels (1 for a row with none). Rows are
  drawn in proportion to their factor *within their dataset*, so the mix's dataset shares are unchanged.
* ``pos_weight``: the positive term of the loss for label c is weighted by (1 - f_c) / f_c, capped at
  `cap`, where f_c is c's frequency in the training draws (the mix's sampling weights, covered rows
  only). BCE's `pos_weight`; the same weight multiplies ASL's positive term.

Everything here is computed from the training rows a cell was given: validation and test rows never
reach these functions (emogrid.train calls them with the training split only).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from emogrid.batching import mixture_weights

STRATEGIES = ("none", "oversample", "pos_weight")


def _check_strategy(imbalance: Mapping) -> str:
    strategy = imbalance.get("strategy", "none")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown imbalance strategy {strategy!r}; expected one of {STRATEGIES}")
    return strategy


def label_frequencies(labels: np.ndarray, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per label: the (weighted) share of rows covering it that are positive; 0 where no row covers it."""
    labels = np.asarray(labels, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.float64)
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    covered = weights @ mask
    positive = weights @ (labels * mask)
    return np.divide(positive, covered, out=np.zeros_like(covered), where=covered > 0)


def repeat_factors(labels: np.ndarray, mask: np.ndarray, cap: float) -> np.ndarray:
    """Per row of one dataset: the largest capped f_max / f_c over its positive covered labels (>= 1)."""
    if cap < 1:
        raise ValueError(f"oversample cap must be >= 1, got {cap}")
    frequency = label_frequencies(labels, mask)
    seen = frequency > 0
    label_factor = np.ones_like(frequency)
    label_factor[seen] = np.minimum(cap, frequency[seen].max() / frequency[seen])
    positive = (np.asarray(labels) * np.asarray(mask)) > 0
    # Rows with no positive label keep factor 1.
    return np.where(positive, label_factor[None, :], 1.0).max(axis=1, initial=1.0)


def sampling_weights(
    dataset_names: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    mix: Mapping[str, float],
    imbalance: Mapping,
) -> np.ndarray:
    """Per training row, the probability of being drawn: the mix's weights, oversampled within each
    dataset when the strategy is ``oversample``. Sums to 1; each dataset keeps its mix share."""
    weights = mixture_weights(dataset_names, dict(mix))
    if _check_strategy(imbalance) != "oversample":
        return weights
    dataset_names = np.asarray(dataset_names)
    for name in mix:
        rows = dataset_names == name
        factors = repeat_factors(labels[rows], mask[rows], float(imbalance["cap"]))
        weights[rows] = weights[rows].sum() * factors / factors.sum()
    return weights / weights.sum()


def positive_weights(
    labels: np.ndarray, mask: np.ndarray, weights: np.ndarray, imbalance: Mapping
) -> np.ndarray | None:
    """Per-label positive-term weights for ``pos_weight`` (None for the other strategies).

    `weights` are the training rows' sampling probabilities, so f_c is the frequency the model sees.
    A label no training row has as positive gets weight 1 (its positive term never occurs).
    """
    if _check_strategy(imbalance) != "pos_weight":
        return None
    cap = float(imbalance["cap"])
    if cap < 1:
        raise ValueError(f"pos_weight cap must be >= 1, got {cap}")
    frequency = label_frequencies(labels, mask, weights)
    result = np.ones_like(frequency)
    seen = frequency > 0
    result[seen] = np.minimum(cap, (1 - frequency[seen]) / frequency[seen])
    return result
