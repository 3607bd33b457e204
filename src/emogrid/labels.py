"""Label maps from the config: which source labels become which GoEmotions labels.

Label names live in the config only (`labels`, each dataset's `label_map` and `empty_label`); the
functions here derive everything else from those, so a new dataset needs no code change here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from emogrid.errors import ConfigError

IDENTITY = "identity"


def is_identity(ds_cfg: dict) -> bool:
    """True when the dataset already uses the target labels (GoEmotions)."""
    return ds_cfg["label_map"] == IDENTITY


def source_labels(ds_cfg: dict, labels: Sequence[str]) -> list[str]:
    """The label names the dataset's own files use."""
    return list(labels) if is_identity(ds_cfg) else list(ds_cfg["label_map"])


def target_label(ds_cfg: dict, source: str, labels: Sequence[str]) -> str | None:
    """The target label of one source label; None when it has no equivalent.

    Raises KeyError for a name the label map does not know, so a reader can report the line.
    """
    if is_identity(ds_cfg):
        if source not in labels:
            raise KeyError(source)
        return source
    return ds_cfg["label_map"][source]


def covered_labels(ds_cfg: dict, labels: Sequence[str]) -> list[str]:
    """Target labels the dataset's taxonomy speaks about, in `labels` order.

    Identity maps cover every label; otherwise the non-null targets of the map plus `empty_label`.
    """
    if is_identity(ds_cfg):
        return list(labels)
    targets = {t for t in ds_cfg["label_map"].values() if t is not None}
    if ds_cfg.get("empty_label"):
        targets.add(ds_cfg["empty_label"])
    unknown = sorted(targets - set(labels))
    if unknown:
        raise ConfigError("label_map", f"targets {unknown} are not among the configured labels")
    return [label for label in labels if label in targets]


def coverage_mask(ds_cfg: dict, labels: Sequence[str]) -> np.ndarray:
    """int8 vector over `labels`: 1 where the dataset covers the label.

    This is the data's `label_mask`, whatever `data.coverage_masking` says: evaluation always scores a
    dataset on the labels it covers. Switching masking off changes only the training loss
    (`emogrid.train.training_label_mask`).
    """
    return multi_hot(covered_labels(ds_cfg, labels), labels)


def multi_hot(names: Iterable[str], labels: Sequence[str]) -> np.ndarray:
    """int8 vector over `labels` with 1 at each name; ValueError for a name not in `labels`."""
    index = {label: i for i, label in enumerate(labels)}
    vector = np.zeros(len(labels), dtype=np.int8)
    for name in names:
        if name not in index:
            raise ValueError(f"unknown label {name!r}; expected one of {list(labels)}")
        vector[index[name]] = 1
    return vector
