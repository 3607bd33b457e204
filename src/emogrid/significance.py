"""Bootstrap intervals and paired comparisons over a whole grid, from predictions and eval reports.

The numbers come from each cell's predictions.parquet and the thresholds in its eval_report.json (tuned
on validation), applied to the test rows. For every evaluation dataset one set of resamples of its test
rows (`emogrid.bootstrap.resample_counts`, seeded; in whole clusters of rows for the datasets
`evaluation.statistics.clusters` names) is shared by every cell, level and threshold mode, so paired
comparisons resample the same examples for both cells.

A cell here is (loss, mix, imbalance); its seeds are averaged: the statistic is the mean over seeds of
macro-F1 (and, for the single-label datasets, of the argmax scores: weighted-F1, accuracy and macro-F1 of
each row's most probable label), the same number as the table's mean, and its interval is over test
examples.

Paired comparisons (macro-F1 over the labels, tuned thresholds): for each dimension (loss, mix,
imbalance), every pair of its values with the other two fixed, on each evaluation dataset. The family
for the Holm correction is all of those comparisons together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emogrid import io
from emogrid.bootstrap import (
    holm,
    paired_difference,
    percentile_interval,
    resample_counts,
    resampled_statistics,
    statistics_of,
)
from emogrid.evaluate import ARGMAX_MODE, LABEL_LEVEL, split_decisions

CELL_DIMENSIONS = ("loss", "mix", "imbalance")
THRESHOLD_MODES = ("tuned", "0.5")
# The statistics (bootstrap.COUNT_STATISTICS) with an interval, per decision mode: macro-F1 at both
# threshold modes, and for single-label datasets the argmax scores (evaluate.argmax_metrics). The
# interval table's `metric` is "<statistic>@<mode>", the eval report's name for the same number.
MODE_STATISTICS = {
    "tuned": ("f1_macro",),
    "0.5": ("f1_macro",),
    ARGMAX_MODE: ("f1_weighted", "accuracy", "f1_macro"),
}
INTERVAL_TABLE_COLUMNS = [
    *CELL_DIMENSIONS,
    "dataset",
    "level",
    "threshold",
    "metric",
    "estimate",
    "ci_low",
    "ci_high",
    "seeds",
    "n_examples",
    "n_clusters",
]
PAIRED_COLUMNS = [
    "dataset",
    "compared",
    "a",
    "b",
    "within",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
]
# How far a recomputed macro-F1 may sit from the eval report's before it counts as a different run.
_TOLERANCE = 1e-9


class _Scores:
    """Test truth and decisions of every cell on one (dataset, level), aligned on sorted ids."""

    def __init__(self, ids: np.ndarray, truth: np.ndarray):
        self.order_ids = np.sort(ids)
        order = np.argsort(ids, kind="stable")
        self.truth = truth[order]
        # (loss, mix, imbalance) -> decision mode -> one decision array per seed (ARGMAX_MODE: only the
        # seeds whose eval report has the argmax scores)
        self.decisions: dict[tuple[str, str, str], dict[str, list[np.ndarray]]] = {}

    def add(self, cell: tuple[str, str, str], ids: np.ndarray, truth: np.ndarray, decisions, where: str):
        order = np.argsort(ids, kind="stable")
        if not np.array_equal(ids[order], self.order_ids):
            raise ValueError(f"{where}: test ids differ from the other cells' (same data expected)")
        if not np.array_equal(truth[order], self.truth):
            raise ValueError(f"{where}: test labels differ from the other cells' (same data expected)")
        modes = self.decisions.setdefault(cell, {})
        # In MODE_STATISTICS order, so the interval table's rows come in the same order on every run.
        for mode in MODE_STATISTICS:
            if mode in decisions:
                modes.setdefault(mode, []).append(decisions[mode][order])


def collect_decisions(
    cells: Sequence[tuple[str | Path, str | Path]],
    labels: Sequence[str],
    label_groups: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict[tuple[str, str], _Scores]:
    """Test decisions of every cell: {(dataset, level): _Scores} from (predictions, eval report) pairs.

    Each recomputed test statistic (MODE_STATISTICS) is checked against the eval report's, so intervals
    can only be attached to the numbers they belong to.
    """
    scores: dict[tuple[str, str], _Scores] = {}
    for predictions_path, report_path in cells:
        report = io.read_json(report_path)
        cell = tuple(str(report["cell"][d]) for d in CELL_DIMENSIONS)
        predictions = pd.read_parquet(predictions_path)
        for dataset, entry in report["datasets"].items():
            rows = predictions[predictions["dataset"] == dataset]
            per_level = split_decisions(dataset, rows, entry, labels, label_groups)
            for level, found in per_level.items():
                level_entry = entry if level == LABEL_LEVEL else entry["levels"][level]
                for mode, decided in found["decisions"].items():
                    recomputed_all = statistics_of(found["truth"], decided, MODE_STATISTICS[mode])
                    for statistic, recomputed in recomputed_all.items():
                        reported = level_entry["test"][f"{statistic}@{mode}"]
                        if abs(recomputed - reported) > _TOLERANCE:
                            raise ValueError(
                                f"{report_path}: {dataset}/{level} test {statistic}@{mode} is {reported} in "
                                f"the report but {recomputed} from {predictions_path}"
                            )
                key = (dataset, level)
                if key not in scores:
                    scores[key] = _Scores(found["ids"], found["truth"])
                scores[key].add(cell, found["ids"], found["truth"], found["decisions"], str(report_path))
    return scores


def cluster_index(ids: np.ndarray, pattern: str, dataset: str) -> np.ndarray:
    """Each id's cluster as 0..k-1: the first group of `pattern` (evaluation.statistics.clusters), which
    must match the whole id."""
    compiled = re.compile(pattern)
    names = []
    for row_id in ids:
        found = compiled.fullmatch(str(row_id))
        if found is None:
            raise ValueError(
                f"config key 'evaluation.statistics.clusters.{dataset}': {pattern!r} does not match the "
                f"test id {row_id!r}"
            )
        if found.group(1) is None:
            raise ValueError(
                f"config key 'evaluation.statistics.clusters.{dataset}': the first group of {pattern!r} "
                f"took no part in matching the test id {row_id!r}"
            )
        names.append(found.group(1))
    return np.unique(np.array(names, dtype=object), return_inverse=True)[1].astype(np.int64)


def bootstrap_grid(
    scores: Mapping[tuple[str, str], _Scores],
    resamples: int,
    seed: int,
    confidence: float,
    clusters: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, dict[tuple[str, str, str, tuple[str, str, str]], tuple[float, np.ndarray]]]:
    """The interval table (INTERVAL_TABLE_COLUMNS: a row per cell, dataset, level and MODE_STATISTICS
    statistic) and, per (dataset, level, threshold mode, cell), the macro-F1 estimate and its resampled
    values for paired comparisons. `clusters`: {dataset: pattern} for the datasets resampled by whole
    clusters of rows (`cluster_index`); the others by rows."""
    weights_of: dict[str, np.ndarray] = {}
    clusters_of: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    resampled: dict = {}
    for (dataset, level), entry in scores.items():
        n = entry.truth.shape[0]
        # One set of resamples per dataset: every cell and level of it sees the same examples.
        if dataset not in weights_of:
            pattern = (clusters or {}).get(dataset)  # None: rows resampled alone
            index = None if pattern is None else cluster_index(entry.order_ids, pattern, dataset)
            weights_of[dataset] = resample_counts(n, resamples, seed, index)
            clusters_of[dataset] = n if index is None else int(index.max()) + 1
        weights = weights_of[dataset]
        for cell, modes in entry.decisions.items():
            for mode, decisions in modes.items():
                statistics = MODE_STATISTICS[mode]
                # One count of TP, FP and FN per seed serves every statistic of the mode.
                resampled_all = resampled_statistics(weights, entry.truth, decisions, statistics)
                unresampled = [statistics_of(entry.truth, d, statistics) for d in decisions]
                for statistic in statistics:
                    estimate = float(np.mean([scores[statistic] for scores in unresampled]))
                    values = resampled_all[statistic]
                    low, high = percentile_interval(values, confidence)
                    if mode in THRESHOLD_MODES:
                        resampled[(dataset, level, mode, cell)] = (estimate, values)
                    rows.append(
                        {
                            **dict(zip(CELL_DIMENSIONS, cell, strict=True)),
                            "dataset": dataset,
                            "level": level,
                            "threshold": mode,
                            "metric": f"{statistic}@{mode}",
                            "estimate": estimate,
                            "ci_low": low,
                            "ci_high": high,
                            "seeds": len(decisions),
                            "n_examples": n,
                            "n_clusters": clusters_of[dataset],
                        }
                    )
    return pd.DataFrame(rows, columns=INTERVAL_TABLE_COLUMNS), resampled


def _within(cell: Mapping[str, str], compared: str) -> str:
    return ", ".join(f"{d}={cell[d]}" for d in CELL_DIMENSIONS if d != compared)


def paired_comparisons(
    resampled: Mapping,
    confidence: float,
    method: str,
    alpha: float,
    level: str = LABEL_LEVEL,
    mode: str = "tuned",
) -> pd.DataFrame:
    """One row per comparison (PAIRED_COLUMNS): a minus b on one dataset, the other two dimensions
    fixed; p-values Holm-corrected across all rows."""
    cells_of: dict[str, list[tuple[str, str, str]]] = {}
    for dataset, lvl, mod, cell in resampled:
        if lvl == level and mod == mode:
            cells_of.setdefault(dataset, []).append(cell)
    rows: list[dict[str, Any]] = []
    for dataset, cells in cells_of.items():
        present = set(cells)
        for position, compared in enumerate(CELL_DIMENSIONS):
            values = list(dict.fromkeys(cell[position] for cell in cells))
            contexts = list(dict.fromkeys(cell[:position] + cell[position + 1 :] for cell in cells))
            for context in contexts:
                for a, b in combinations(values, 2):
                    cell_a = context[:position] + (a,) + context[position:]
                    cell_b = context[:position] + (b,) + context[position:]
                    if cell_a not in present or cell_b not in present:
                        continue
                    estimate_a, values_a = resampled[(dataset, level, mode, cell_a)]
                    estimate_b, values_b = resampled[(dataset, level, mode, cell_b)]
                    result = paired_difference(values_a, values_b, estimate_a, estimate_b, confidence, method)
                    rows.append(
                        {
                            "dataset": dataset,
                            "compared": compared,
                            "a": a,
                            "b": b,
                            "within": _within(dict(zip(CELL_DIMENSIONS, cell_a, strict=True)), compared),
                            "difference": result.difference,
                            "ci_low": result.low,
                            "ci_high": result.high,
                            "p_value": result.p_value,
                        }
                    )
    table = pd.DataFrame(rows, columns=PAIRED_COLUMNS[:-2])
    adjusted, reject = holm(table["p_value"].to_numpy(), alpha)
    return table.assign(p_holm=adjusted, significant=reject)[PAIRED_COLUMNS]


def grid_statistics(
    cells: Sequence[tuple[str | Path, str | Path]],
    labels: Sequence[str],
    label_groups: Mapping[str, Mapping[str, Sequence[str]]] | None,
    settings: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interval table, paired table) for the grid, with `settings` = evaluation.statistics."""
    scores = collect_decisions(cells, labels, label_groups)
    intervals, resampled = bootstrap_grid(
        scores,
        int(settings["resamples"]),
        int(settings["seed"]),
        float(settings["confidence"]),
        settings.get("clusters") or {},
    )
    paired = paired_comparisons(
        resampled, float(settings["confidence"]), str(settings["p_value"]), float(settings["alpha"])
    )
    return intervals, paired
