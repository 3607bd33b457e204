"""Evaluate one cell's predictions: tune per-class thresholds on validation, report on test.

The contract for the output is `eval_report.json` in docs/ARCHITECTURE.md. Two rules shape this module:

* Thresholds are tuned on a dataset's validation rows only. `evaluate_predictions` splits the rows
  first and hands nothing but validation arrays to the tuner, so test rows cannot leak into tuning.
* Metrics are computed over the labels a dataset covers (its `label_mask`). An uncovered label has no
  ground truth in that dataset (its 0s mean "not annotated", not "absent"), so it is left out of both
  macro- and micro-F1.

A label is predicted when its probability is >= its threshold (here and in tuning alike).

Coarser levels (the config's `label_groups`, e.g. Ekman and sentiment) are scored the same way: a
group's truth is "any covered member is positive", its probability the highest of its covered members'
probabilities, so "probability >= the group threshold" means "some member's probability reaches the
group's own threshold". Group thresholds are tuned on validation like label thresholds, apart from
the members' thresholds: with tuned thresholds a group can be predicted where no member label is, or
the reverse (only at 0.5 everywhere is it "a group is predicted when any member is"). A group none of
whose members the dataset covers is not scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emogrid import io

DEFAULT_THRESHOLD = 0.5
# Name of the fine level (the 28 labels) beside the configured label_groups levels.
LABEL_LEVEL = "labels"
SPLIT_FOR_TUNING = "validation"
SPLIT_FOR_REPORTING = "test"
# Decimals kept on grid values, so 0.05 * 7 is reported as 0.35 and not 0.35000000000000003.
_GRID_DECIMALS = 10
# Cells of the (row, class, threshold) problem that threshold tuning gives scikit-learn at once.
_MAX_TUNING_CELLS = 4_000_000


# The schema's default `evaluation.threshold_grid` (a test keeps them equal). Training logs a
# validation F1 tuned on this grid, whatever the config's grid: only `evaluate` reads that one.
DEFAULT_THRESHOLD_GRID = {"start": 0.05, "stop": 0.95, "step": 0.05}


def threshold_grid(grid: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    """Candidate thresholds as a sorted float array.

    `grid` is either the config's `{start, stop, step}` (stop included) or explicit values.
    """
    if isinstance(grid, Mapping):
        start, stop, step = float(grid["start"]), float(grid["stop"]), float(grid["step"])
        if step <= 0 or stop < start:
            raise ValueError(f"threshold grid {dict(grid)}: need step > 0 and stop >= start")
        # Count the steps rather than using np.arange, whose float end point may drop `stop`.
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        values = start + step * np.arange(count)
    else:
        values = np.asarray(grid, dtype=float)
    values = np.unique(np.round(values, _GRID_DECIMALS))
    if values.size == 0 or not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > 1:
        raise ValueError(f"threshold grid must be non-empty values in [0, 1], got {values.tolist()}")
    return values


def _best_threshold(f1_per_threshold: np.ndarray, grid: np.ndarray) -> float:
    """The grid value with the highest F1; ties go to the value closest to 0.5, then the lowest.

    Closest to 0.5 because, among equally good thresholds, that is the least extreme choice and the
    one least likely to be an artefact of a small validation set.
    """
    is_best = np.isclose(f1_per_threshold, f1_per_threshold.max(), rtol=0.0, atol=1e-12)
    candidates = grid[is_best]
    # Rounded distances, so 0.45 and 0.55 count as equally far from 0.5 despite float error.
    distance = np.round(np.abs(candidates - DEFAULT_THRESHOLD), _GRID_DECIMALS)
    order = np.lexsort((candidates, distance))
    return float(candidates[order[0]])


def _f1_per_threshold(y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """F1 of every class at every grid value, (n_classes, n_grid).

    Each (class, grid value) pair becomes a column of one multilabel problem, so `average=None` returns
    one F1 per pair: one scikit-learn call per chunk of classes (all of them at the demo's and the real
    datasets' sizes) instead of one per class, whose input checks took most of an evaluation's time.
    """
    n, classes = y_true.shape
    # Classes in chunks of at most ~4M (row, class, threshold) cells: scikit-learn converts the
    # indicator matrices to sparse ones, about 20 bytes a cell.
    chunk = max(1, _MAX_TUNING_CELLS // max(1, n * grid.size))
    parts = []
    for start in range(0, classes, chunk):
        predicted = probs[:, start : start + chunk, None] >= grid[None, None, :]
        truth = np.broadcast_to(y_true[:, start : start + chunk, None], predicted.shape)
        parts.append(_f1_per_column(truth.reshape(n, -1), predicted.reshape(n, -1)))
    return np.concatenate(parts).reshape(classes, grid.size)


def _f1_per_column(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """F1 of each column of two (n, k) boolean indicator matrices, as scikit-learn's average=None.

    scikit-learn reads a one-column matrix as a binary problem and returns F1 for both classes 0 and 1;
    here a single column gives its positive class's F1 alone, as every wider matrix does per column.
    """
    from sklearn.metrics import f1_score

    if truth.shape[1] == 1:
        return np.array([f1_score(truth[:, 0], predicted[:, 0], zero_division=0)])
    return f1_score(truth, predicted, average=None, zero_division=0)


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray, grid) -> np.ndarray:
    """Per-class thresholds maximising each class's F1 on the data given (the validation split).

    `y_true` and `probs` are (n_examples, n_classes); `grid` is as for `threshold_grid`. Ties are
    broken towards 0.5, then towards the lower value (see `_best_threshold`). A class with no
    positive example gets 0.5: its F1 is 0 at every threshold, so there is nothing to tune.
    """
    y_true = np.asarray(y_true).astype(bool)
    probs = np.asarray(probs, dtype=float)
    if y_true.shape != probs.shape or y_true.ndim != 2:
        raise ValueError(f"y_true {y_true.shape} and probs {probs.shape} must be equal 2-d shapes")
    grid = threshold_grid(grid)
    thresholds = np.full(y_true.shape[1], DEFAULT_THRESHOLD)
    tunable = np.flatnonzero(y_true.any(axis=0))
    if tunable.size == 0:
        return thresholds
    f1_values = _f1_per_threshold(y_true[:, tunable], probs[:, tunable], grid)
    for column, values in zip(tunable, f1_values, strict=True):
        thresholds[column] = _best_threshold(values, grid)
    return thresholds


def score(
    y_true: np.ndarray, y_pred: np.ndarray, covered_idx: Sequence[int], label_names: Sequence[str]
) -> dict:
    """Macro-F1, micro-F1 and per-class F1 over the covered label columns only.

    `y_true`/`y_pred` have one column per name in `label_names`; `covered_idx` selects the columns
    the dataset annotates. Returns {"f1_macro", "f1_micro", "per_class": {label: f1}}.
    """
    # scikit-learn imported here and in _f1_per_column: the bootstrap job imports this module without it.
    from sklearn.metrics import f1_score

    covered_idx = np.asarray(covered_idx, dtype=int)
    if covered_idx.size == 0:
        raise ValueError("no covered labels: nothing to score")
    truth = np.asarray(y_true)[:, covered_idx].astype(bool)
    predicted = np.asarray(y_pred)[:, covered_idx].astype(bool)
    per_class = _f1_per_column(truth, predicted)
    return {
        # scikit-learn's average="macro" is the unweighted mean of these per-class F1 (zero_division per
        # class alike); taking it from per_class saves a call (tests/test_evaluate.py checks they agree).
        "f1_macro": float(np.mean(per_class)),
        # Micro-F1 pools every covered (row, label) decision: the binary F1 of the flattened matrices,
        # as average="micro" computes it, and right for one covered label too (scikit-learn would read
        # a single column as a two-class problem and average over both classes).
        "f1_micro": float(f1_score(truth.ravel(), predicted.ravel(), zero_division=0)),
        "per_class": {label_names[i]: float(f1) for i, f1 in zip(covered_idx, per_class, strict=True)},
    }


@dataclass(frozen=True)
class SplitArrays:
    """One dataset split as arrays: (n, n_labels) labels, probabilities and the shared label mask."""

    labels: np.ndarray
    probs: np.ndarray
    mask: np.ndarray

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])


def _stack_lists(column: pd.Series, n_labels: int, what: str) -> np.ndarray:
    """A column of equal-length lists as a 2-d array, checking the width."""
    array = np.array([np.asarray(value) for value in column], dtype=float)
    if array.ndim != 2 or array.shape[1] != n_labels:
        raise ValueError(f"{what}: expected lists of {n_labels} values, got shape {array.shape}")
    return array


def _split_arrays(rows: pd.DataFrame, n_labels: int, where: str) -> SplitArrays:
    probs = _stack_lists(rows["probs"], n_labels, f"{where} probs")
    if not np.all(np.isfinite(probs)):
        raise ValueError(f"{where}: probs contain NaN or infinite values")
    return SplitArrays(
        labels=_stack_lists(rows["labels"], n_labels, f"{where} labels").astype(np.int8),
        probs=probs,
        mask=_stack_lists(rows["label_mask"], n_labels, f"{where} label_mask").astype(np.int8),
    )


def _shared_mask(dataset: str, splits: Mapping[str, SplitArrays]) -> np.ndarray:
    """The one label mask all rows of a dataset share; differing masks are an error."""
    masks = np.concatenate([arrays.mask for arrays in splits.values()])
    if not (masks == masks[0]).all():
        raise ValueError(f"dataset {dataset!r}: rows have different label_mask values; expected one mask")
    return masks[0].astype(bool)


# A model whose probabilities for every covered label differ between rows by less than this gives all
# rows the same output (float noise aside): it learned nothing from the text, and its scores are a
# constant predictor's. Flagged in the training log, the runs table and the F1 tables' notes.
CONSTANT_SPREAD = 1e-4
# A split's metric: each covered label's count of positive rows.
POSITIVES = "positives"


def prediction_spread(probs: np.ndarray, covered_idx: np.ndarray) -> float:
    """The largest difference between two rows' probabilities of one covered label (0 for one row)."""
    if len(probs) == 0 or len(covered_idx) == 0:
        return 0.0
    columns = probs[:, covered_idx]
    return float((columns.max(axis=0) - columns.min(axis=0)).max())


def _split_metrics(
    arrays: SplitArrays, thresholds: np.ndarray, covered_idx: np.ndarray, labels, *, with_per_class: bool
) -> dict:
    """n, each covered label's count of positive rows (POSITIVES), macro/micro F1 at 0.5 and at the tuned
    thresholds, the prediction spread (CONSTANT_SPREAD), optionally per-class F1 for both."""
    at_default = score(arrays.labels, arrays.probs >= DEFAULT_THRESHOLD, covered_idx, labels)
    at_tuned = score(arrays.labels, arrays.probs >= thresholds[None, :], covered_idx, labels)
    positives = arrays.labels[:, covered_idx].astype(bool).sum(axis=0)
    metrics: dict[str, Any] = {
        "n": arrays.n,
        # A label with none: on validation its threshold stays at 0.5 (tune_thresholds), on test its F1 is
        # 0 at any threshold and still counts in the macro average. The report names such labels.
        POSITIVES: {labels[i]: int(count) for i, count in zip(covered_idx, positives, strict=True)},
        "prediction_spread": prediction_spread(arrays.probs, covered_idx),
        "f1_macro@0.5": at_default["f1_macro"],
        "f1_macro@tuned": at_tuned["f1_macro"],
        "f1_micro@0.5": at_default["f1_micro"],
        "f1_micro@tuned": at_tuned["f1_micro"],
    }
    if with_per_class:
        metrics["per_class@0.5"] = at_default["per_class"]
        metrics["per_class@tuned"] = at_tuned["per_class"]
    return metrics


def is_single_label(splits: Mapping[str, SplitArrays], covered_idx: np.ndarray) -> bool:
    """Every row of every split has exactly one positive covered label (MELD, ISEAR)."""
    return all((arrays.labels[:, covered_idx].sum(axis=1) == 1).all() for arrays in splits.values())


# The decisions `argmax_metrics` scores (split_decisions' key for them), and a metric its entries carry.
ARGMAX_MODE = "argmax"
ARGMAX_SCORED = "f1_weighted@argmax"


def argmax_metrics(arrays: SplitArrays, covered_idx: np.ndarray) -> dict[str, float]:
    """A single-label dataset scored as its literature scores it: each row's most probable covered
    label against its one true label (no threshold). Accuracy, and F1 averaged over the covered labels
    weighted by their true counts (MELD's usual figure) and unweighted."""
    from sklearn.metrics import accuracy_score, f1_score

    truth = covered_idx[arrays.labels[:, covered_idx].argmax(axis=1)]
    predicted = covered_idx[arrays.probs[:, covered_idx].argmax(axis=1)]
    return {
        "accuracy@argmax": float(accuracy_score(truth, predicted)),
        **{
            f"f1_{average}@argmax": float(
                f1_score(truth, predicted, labels=covered_idx, average=average, zero_division=0)
            )
            for average in ("weighted", "macro")
        },
    }


def tune_covered_thresholds(
    y_true: np.ndarray, probs: np.ndarray, covered_idx: np.ndarray, grid
) -> np.ndarray:
    """Thresholds for every label column: tuned for the covered ones, 0.5 elsewhere."""
    thresholds = np.full(y_true.shape[1], DEFAULT_THRESHOLD)
    thresholds[covered_idx] = tune_thresholds(y_true[:, covered_idx], probs[:, covered_idx], grid)
    return thresholds


def _tune_on_validation(validation: SplitArrays, covered_idx: np.ndarray, grid) -> np.ndarray:
    """Thresholds tuned on validation for covered labels, 0.5 elsewhere.

    Takes validation arrays only, so no caller can tune on test rows through this path.
    """
    return tune_covered_thresholds(validation.labels, validation.probs, covered_idx, grid)


def group_arrays(
    arrays: SplitArrays, covered: np.ndarray, groups: Mapping[str, Sequence[str]], labels: Sequence[str]
) -> SplitArrays:
    """One split at a group level: column g is group g (in `groups` order).

    Only covered members count: truth = any covered member positive, probability = the highest covered
    member probability, mask 1 when the group has a covered member. Rows of a group without covered
    members are 0 everywhere and the group is never scored.
    """
    index = {label: i for i, label in enumerate(labels)}
    n_groups = len(groups)
    truth = np.zeros((arrays.n, n_groups), dtype=np.int8)
    probs = np.zeros((arrays.n, n_groups), dtype=float)
    mask = np.zeros(n_groups, dtype=np.int8)
    for column, members in enumerate(groups.values()):
        member_idx = np.array([index[m] for m in members], dtype=int)
        member_idx = member_idx[covered[member_idx]]
        if member_idx.size == 0:
            continue
        truth[:, column] = arrays.labels[:, member_idx].max(axis=1)
        probs[:, column] = arrays.probs[:, member_idx].max(axis=1)
        mask[column] = 1
    return SplitArrays(labels=truth, probs=probs, mask=np.broadcast_to(mask, truth.shape))


def _evaluate_level(
    splits: Mapping[str, SplitArrays], covered: np.ndarray, names: Sequence[str], grid
) -> dict:
    """covered_labels, validation-tuned thresholds and metrics of one level (labels or groups)."""
    covered_idx = np.flatnonzero(covered)
    thresholds = _tune_on_validation(splits[SPLIT_FOR_TUNING], covered_idx, grid)
    return {
        "covered_labels": [names[i] for i in covered_idx],
        # Uncovered labels are not listed: they are never scored, so a threshold would mean nothing.
        "thresholds": {names[i]: float(thresholds[i]) for i in covered_idx},
        SPLIT_FOR_TUNING: _split_metrics(
            splits[SPLIT_FOR_TUNING], thresholds, covered_idx, names, with_per_class=False
        ),
        SPLIT_FOR_REPORTING: _split_metrics(
            splits[SPLIT_FOR_REPORTING], thresholds, covered_idx, names, with_per_class=True
        ),
    }


def _dataset_splits(dataset: str, rows: pd.DataFrame, labels: Sequence[str]) -> dict[str, SplitArrays]:
    present_splits = set(rows["split"].unique())
    unexpected = present_splits - {SPLIT_FOR_TUNING, SPLIT_FOR_REPORTING}
    if unexpected:
        raise ValueError(f"dataset {dataset!r}: unexpected splits {sorted(unexpected)} in predictions")
    missing = {SPLIT_FOR_TUNING, SPLIT_FOR_REPORTING} - present_splits
    if missing:
        raise ValueError(f"dataset {dataset!r}: no {sorted(missing)} rows in predictions")
    return {
        split: _split_arrays(rows[rows["split"] == split], len(labels), f"{dataset}/{split}")
        for split in (SPLIT_FOR_TUNING, SPLIT_FOR_REPORTING)
    }


def _evaluate_dataset(
    dataset: str,
    rows: pd.DataFrame,
    labels: Sequence[str],
    grid,
    label_groups: Mapping[str, Mapping[str, Sequence[str]]],
) -> dict:
    splits = _dataset_splits(dataset, rows, labels)
    covered = _shared_mask(dataset, splits)
    if not covered.any():
        raise ValueError(f"dataset {dataset!r}: label_mask covers no label")
    result = _evaluate_level(splits, covered, labels, grid)
    covered_idx = np.flatnonzero(covered)
    if is_single_label(splits, covered_idx):
        for split, arrays in splits.items():
            result[split].update(argmax_metrics(arrays, covered_idx))
    if label_groups:
        result["levels"] = {}
        for level, groups in label_groups.items():
            grouped = {
                split: group_arrays(arrays, covered, groups, labels) for split, arrays in splits.items()
            }
            result["levels"][level] = _evaluate_level(
                grouped, grouped[SPLIT_FOR_TUNING].mask[0].astype(bool), list(groups), grid
            )
    return result


def split_decisions(
    dataset: str,
    rows: pd.DataFrame,
    entry: Mapping[str, Any],
    labels: Sequence[str],
    label_groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    split: str = SPLIT_FOR_REPORTING,
) -> dict[str, dict[str, Any]]:
    """Per level ("labels" and each label_groups level): the ids, the covered truth columns and the
    decisions at 0.5 and at the thresholds of a dataset's eval_report entry, for one split.

    Returns {level: {"ids", "truth", "decisions": {"0.5": array, "tuned": array}}}, arrays (n, k) over
    the k covered columns. The thresholds come from `entry` (tuned on validation when it was written).
    Where the entry carries the argmax scores (a single-label dataset, labels level), "decisions" also
    has ARGMAX_MODE: one-hot rows of the most probable covered label.
    """
    arrays = _split_arrays(rows[rows["split"] == split], len(labels), f"{dataset}/{split}")
    ids = rows.loc[rows["split"] == split, "id"].astype(str).to_numpy()
    covered = arrays.mask[0].astype(bool)
    levels: dict[str, tuple[SplitArrays, Sequence[str], Mapping[str, Any]]] = {
        LABEL_LEVEL: (arrays, list(labels), entry)
    }
    for level, groups in (label_groups or {}).items():
        levels[level] = (group_arrays(arrays, covered, groups, labels), list(groups), entry["levels"][level])
    out = {}
    for level, (level_arrays, names, level_entry) in levels.items():
        covered_names = list(level_entry["covered_labels"])
        columns = np.array([names.index(name) for name in covered_names], dtype=int)
        thresholds = np.array([level_entry["thresholds"][name] for name in covered_names], dtype=float)
        probs = level_arrays.probs[:, columns]
        decisions = {"0.5": probs >= DEFAULT_THRESHOLD, "tuned": probs >= thresholds[None, :]}
        if ARGMAX_SCORED in level_entry.get(split, {}):
            # A single-label dataset (argmax_metrics scored it): each row's most probable covered label,
            # the columns in label order as there, so ties go the same way.
            decisions[ARGMAX_MODE] = np.eye(len(columns), dtype=bool)[probs.argmax(axis=1)]
        out[level] = {
            "ids": ids,
            "truth": level_arrays.labels[:, columns].astype(bool),
            "decisions": decisions,
        }
    return out


def _check_unique_ids(pred_df: pd.DataFrame) -> None:
    """Ids are unique within a dataset (ARCHITECTURE.md); one id in both validation and test would
    also mean the splits overlap, so this is checked across splits."""
    duplicated = pred_df.duplicated(subset=["dataset", "id"])
    if duplicated.any():
        first = pred_df.loc[duplicated, ["dataset", "split", "id"]].iloc[0].tolist()
        count = int(duplicated.sum())
        raise ValueError(f"predictions: {count} rows repeat a (dataset, id) pair, e.g. {first}")


def evaluate_predictions(
    pred_df: pd.DataFrame,
    labels: Sequence[str],
    grid,
    cell: Mapping[str, Any],
    label_groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict:
    """The eval_report.json content for one cell's predictions (see docs/ARCHITECTURE.md).

    `pred_df` has the predictions.parquet columns; `labels` are the 28 label names in column order;
    `grid` is `evaluation.threshold_grid`; `cell` is {"mix", "loss", "imbalance", "seed"};
    `label_groups` is the config's {level: {group: [labels]}} (None: the labels only). Datasets appear
    in the order of their first row.
    """
    required = {"dataset", "split", "id", "probs", "labels", "label_mask"}
    missing_columns = required - set(pred_df.columns)
    if missing_columns:
        raise ValueError(f"predictions: missing columns {sorted(missing_columns)}")
    if pred_df.empty:
        raise ValueError("predictions: no rows")
    _check_unique_ids(pred_df)
    labels = list(labels)
    datasets = {
        str(dataset): _evaluate_dataset(
            str(dataset), pred_df[pred_df["dataset"] == dataset], labels, grid, label_groups or {}
        )
        for dataset in pd.unique(pred_df["dataset"])
    }
    return {
        "cell": cell_key(cell),
        "threshold_source": SPLIT_FOR_TUNING,
        # The candidates the thresholds were tuned over (the config's evaluation.threshold_grid).
        "threshold_grid": dict(grid) if isinstance(grid, Mapping) else [float(t) for t in grid],
        "datasets": datasets,
    }


def cell_key(cell: Mapping[str, Any]) -> dict:
    """A cell's coordinates as written in eval_report.json: mix, loss, imbalance, seed."""
    return {
        "mix": str(cell["mix"]),
        "loss": str(cell["loss"]),
        "imbalance": str(cell["imbalance"]),
        "seed": int(cell["seed"]),
    }


def evaluate_file(
    pred_path: str | Path,
    out_path: str | Path,
    labels: Sequence[str],
    grid,
    cell: Mapping[str, Any],
    label_groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict:
    """Read predictions.parquet, write eval_report.json atomically, and return the report."""
    report = evaluate_predictions(pd.read_parquet(pred_path), labels, grid, cell, label_groups)
    io.write_json(out_path, report)
    return report
