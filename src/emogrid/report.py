"""Tables and figures over all cells: eval reports, training logs and data summaries.

Every file is written atomically (emogrid.io). Figures are drawn on a bare `Figure` with the Agg canvas,
never through pyplot, so no display backend or global matplotlib state is involved.

Conventions:
* Rows are grouped by loss, then mix, then imbalance strategy. Losses, mixes, strategies, datasets,
  levels and labels keep the order in which they first appear in the input (the workflow feeds them in
  config order), not alphabetical order.
* `level` is "labels" for the 28 labels and the name of a `label_groups` level (ekman, sentiment) for
  the grouped scores.
* Standard deviations are over seeds with ddof=1. With a single seed the std is undefined: NaN in
  CSV files, "± n/a" in display tables and no error bar in plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from emogrid import io
from emogrid.evaluate import ARGMAX_MODE, CONSTANT_SPREAD, POSITIVES
from emogrid.htmlpage import synthetic_warning, to_html_document

LONG_COLUMNS = ["mix", "loss", "imbalance", "seed", "dataset", "level", "split", "metric", "label", "value"]
CELL_COLUMNS = ["loss", "mix", "imbalance"]
SUMMARY_COLUMNS = [*CELL_COLUMNS, "dataset", "level", "mean", "std", "n"]
# Bootstrap interval columns a summary may carry (see `add_intervals`).
INTERVAL_COLUMNS = ["ci_low", "ci_high"]
LABEL_LEVEL = "labels"
# Every written table's csv ends with this column: True for rows of a dataset read from the generated
# demo corpus (`emogrid.config.synthetic_datasets`), so no number of it passes for a published result.
SYNTHETIC_COLUMN = "synthetic_data"
# Keys of a dataset's entry in eval_report.json that are not splits.
_NON_SPLIT_KEYS = {"covered_labels", "thresholds", "levels"}
_MISSING_CELL = "—"
_PNG_DPI = 150


# --------------------------------------------------------------------------- eval reports -> long table


def _level_rows(base: Mapping[str, Any], result: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Rows of one level's entry (thresholds, then every split's metrics)."""
    for label, threshold in result.get("thresholds", {}).items():
        yield {**base, "split": "validation", "metric": "threshold", "label": label, "value": threshold}
    for split, metrics in result.items():
        if split in _NON_SPLIT_KEYS:
            continue
        for metric, value in metrics.items():
            if isinstance(value, Mapping):
                for label, class_value in value.items():
                    yield {**base, "split": split, "metric": metric, "label": label, "value": class_value}
            else:
                yield {**base, "split": split, "metric": metric, "label": None, "value": value}


def _report_rows(report: Mapping[str, Any], source: str) -> Iterator[dict[str, Any]]:
    """Long-format rows of one eval report; per-class values carry their label, others label=None."""
    if report.get("threshold_source") != "validation":
        source_split = report.get("threshold_source")
        raise ValueError(f"{source}: threshold_source is {source_split!r}, not 'validation'")
    cell = report["cell"]
    base = {
        "mix": str(cell["mix"]),
        "loss": str(cell["loss"]),
        "imbalance": str(cell["imbalance"]),
        "seed": int(cell["seed"]),
    }
    for dataset, result in report["datasets"].items():
        yield from _level_rows({**base, "dataset": dataset, "level": LABEL_LEVEL}, result)
        for level, level_result in result.get("levels", {}).items():
            yield from _level_rows({**base, "dataset": dataset, "level": level}, level_result)


def collect_reports(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All eval_report.json files as one long table with columns LONG_COLUMNS.

    `metric` is a report key ("f1_macro@tuned", "n", "per_class@tuned", ...) plus "threshold" (split
    "validation", where thresholds are tuned). `label` names the class for per-class metrics and
    thresholds and is missing otherwise. Two reports for the same (mix, loss, imbalance, seed) are an
    error.
    """
    rows: list[dict[str, Any]] = []
    source_of_cell: dict[tuple[str, str, str, int], str] = {}
    for path in paths:
        report = io.read_json(path)
        cell = report["cell"]
        key = (str(cell["mix"]), str(cell["loss"]), str(cell["imbalance"]), int(cell["seed"]))
        if key in source_of_cell:
            raise ValueError(f"cell {key} reported twice: {source_of_cell[key]} and {path}")
        source_of_cell[key] = str(path)
        rows.extend(_report_rows(report, str(path)))
    long_df = pd.DataFrame(rows, columns=LONG_COLUMNS)
    long_df["seed"] = long_df["seed"].astype("int64")
    long_df["value"] = long_df["value"].astype(float)
    return long_df


# --------------------------------------------------------------------------- macro-F1 table


def summarize_metric(
    long_df: pd.DataFrame,
    metric: str = "f1_macro@tuned",
    split: str = "test",
    levels: Sequence[str] | None = (LABEL_LEVEL,),
) -> pd.DataFrame:
    """Tidy mean/std/n over seeds of one scalar metric: columns SUMMARY_COLUMNS, one row per
    (loss, mix, imbalance, dataset, level). std uses ddof=1 and is NaN when n == 1. `levels` selects
    the levels (None: all, the labels first, then the groups)."""
    selected = long_df[(long_df["metric"] == metric) & (long_df["split"] == split) & long_df["label"].isna()]
    if levels is not None:
        selected = selected[selected["level"].isin(list(levels))]
    if selected.empty:
        raise ValueError(f"no values for metric {metric!r} on split {split!r}")
    grouped = selected.groupby([*CELL_COLUMNS, "dataset", "level"], sort=False)["value"]
    summary = grouped.agg(mean="mean", std=lambda values: values.std(ddof=1), n="count").reset_index()
    summary["n"] = summary["n"].astype("int64")
    return _sorted_by_cell(summary)[SUMMARY_COLUMNS]


def _sorted_by_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by loss, then mix, then imbalance, each in order of first appearance (stable)."""
    keys = [
        frame[column].map({value: rank for rank, value in enumerate(pd.unique(frame[column]))}).to_numpy()
        for column in reversed(CELL_COLUMNS)
    ]
    return frame.iloc[np.lexsort(keys)].reset_index(drop=True)


def format_mean_std(mean: float, std: float, n: int, decimals: int = 3) -> str:
    """ "0.512 ± 0.010 (n=3)"; "± n/a" when the std is undefined (a single seed)."""
    spread = "n/a" if pd.isna(std) else f"{std:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {spread} (n={n})"


def format_interval(low: float, high: float, decimals: int = 3) -> str:
    """ "[0.490, 0.530]" """
    return f"[{low:.{decimals}f}, {high:.{decimals}f}]"


def add_intervals(
    summary: pd.DataFrame, intervals: pd.DataFrame, threshold: str, metric: str | None = None
) -> pd.DataFrame:
    """`summary` with the bootstrap interval columns (ci_low, ci_high) of `intervals` (the
    significance.INTERVAL_TABLE_COLUMNS CSV) for one decision mode ("tuned", "0.5" or "argmax") and
    one metric (default macro-F1 at that mode, "f1_macro@<mode>"; a table made before the `metric`
    column had macro-F1 only).

    The interval's estimate is the same seed mean as the summary's, computed again from the predictions:
    a mismatch means the two were made from different runs, and is an error.
    """
    selected = intervals[intervals["threshold"].astype(str) == threshold]
    if "metric" in selected:
        selected = selected[selected["metric"] == (metric or f"f1_macro@{threshold}")]
    keys = [*CELL_COLUMNS, "dataset", "level"]
    carried = [*keys, "estimate", *INTERVAL_COLUMNS, *(["seeds"] if "seeds" in selected else [])]
    merged = summary.merge(selected[carried], on=keys, how="left")
    missing = merged["estimate"].isna()
    if missing.any():
        first = merged.loc[missing, keys].iloc[0].tolist()
        raise ValueError(f"no bootstrap interval for {first} (threshold {threshold}, {metric or 'f1_macro'})")
    if not np.allclose(merged["estimate"], merged["mean"], rtol=0, atol=1e-9):
        raise ValueError("bootstrap estimates differ from the eval reports' means: made from other runs?")
    # Equal means can still come from other seeds (every seed of a collapsed model scores the same).
    if "seeds" in merged and (merged["seeds"] != merged["n"]).any():
        first = merged.loc[merged["seeds"] != merged["n"], [*keys, "seeds", "n"]].iloc[0].tolist()
        raise ValueError(
            f"bootstrap intervals over other seeds than the eval reports' (made from other runs?): {first}"
        )
    return merged.drop(columns=["estimate", "seeds"], errors="ignore")


def _column_name(dataset: str, level: str) -> str:
    return dataset if level == LABEL_LEVEL else f"{dataset} · {level}"


def _display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows (loss, mix, imbalance), one column per (dataset, level), cells "mean ± std (n=k)", followed
    by the bootstrap interval "[low, high]" when the summary has one."""
    _check_summary(summary)
    has_intervals = set(INTERVAL_COLUMNS) <= set(summary.columns)
    cells = []
    for row in summary.itertuples(index=False):
        text = format_mean_std(row.mean, row.std, row.n)
        if has_intervals:
            text += " " + format_interval(row.ci_low, row.ci_high)
        cells.append(text)
    text = summary.assign(
        cell=cells,
        column=[_column_name(d, lvl) for d, lvl in zip(summary["dataset"], summary["level"], strict=True)],
    )
    table = text.pivot(index=CELL_COLUMNS, columns="column", values="cell")
    row_order = pd.MultiIndex.from_frame(summary[CELL_COLUMNS].drop_duplicates())
    # Columns dataset by dataset, each dataset's labels level first, then its groups.
    dataset_rank = {d: i for i, d in enumerate(pd.unique(summary["dataset"]))}
    level_rank = {lvl: i for i, lvl in enumerate(pd.unique(summary["level"]))}
    pairs = summary[["dataset", "level"]].drop_duplicates()
    pairs = pairs.assign(
        d=pairs["dataset"].map(dataset_rank),
        lvl=pairs["level"].map(level_rank).where(pairs["level"] != LABEL_LEVEL, -1),
    ).sort_values(["d", "lvl"], kind="stable")
    columns = [_column_name(d, lvl) for d, lvl in zip(pairs["dataset"], pairs["level"], strict=True)]
    table = table.reindex(index=row_order, columns=columns)
    table.columns.name = "dataset"
    return table.fillna(_MISSING_CELL)


def f1_macro_table(long_df: pd.DataFrame, metric: str = "f1_macro@tuned", levels=None) -> pd.DataFrame:
    """Test-split display table: index (loss, mix, imbalance), one column per evaluation dataset (and
    per grouped level of it), string cells "mean ± std (n=k)" over seeds; "—" where a cell has no value."""
    return _display_table(summarize_metric(long_df, metric=metric, split="test", levels=levels))


def _check_summary(summary: pd.DataFrame) -> None:
    missing = set(SUMMARY_COLUMNS) - set(summary.columns)
    if missing:
        raise ValueError(f"expected a summarize_metric() table, missing columns {sorted(missing)}")


def _with_synthetic_column(frame: pd.DataFrame, synthetic: Sequence[str]) -> pd.DataFrame:
    return frame.assign(**{SYNTHETIC_COLUMN: frame["dataset"].isin(list(synthetic))})


def constant_prediction_warning(long_df: pd.DataFrame) -> str:
    """A sentence naming the cells whose model gave every validation or test row of a dataset the same
    probabilities (`prediction_spread` below evaluate.CONSTANT_SPREAD: it learned nothing from the
    text); "" when none did; a sentence saying the check did not run when the reports predate it."""
    spread = long_df[(long_df["metric"] == "prediction_spread") & (long_df["level"] == LABEL_LEVEL)]
    if spread.empty:
        return (
            "Not checked for collapsed models (constant predictions): the eval reports predate the check "
            "(snakemake --forcerun evaluate writes it, retraining nothing). "
        )
    flat = spread[spread["value"] < CONSTANT_SPREAD]
    if flat.empty:
        return ""
    flagged = [
        f"{row.mix}/{row.loss}/{row.imbalance}/seed{row.seed} on {row.dataset} {row.split}"
        for row in flat.itertuples(index=False)
    ]
    return (
        "WARNING: these cells gave every row of a split the same probabilities (a collapsed model; their "
        f"scores are a constant predictor's, not a comparison of losses or mixes): {'; '.join(flagged)}. "
    )


def missing_positives_warning(long_df: pd.DataFrame) -> str:
    """A sentence naming the covered labels (or groups) that have no positive row in a validation or
    test split (evaluate.POSITIVES): on validation their threshold stays at 0.5, untuned; on test their
    F1 is 0 whatever the model predicts, and it counts in the macro average. "" when every label has one
    (or the reports predate the count, which constant_prediction_warning already says)."""
    counts = long_df[long_df["metric"] == POSITIVES]
    if counts.empty and not (long_df["metric"] == "prediction_spread").any():
        return ""
    if counts.empty:
        return (
            "Not checked for labels without positive rows: the eval reports predate the count "
            "(snakemake --forcerun evaluate writes it, retraining nothing). "
        )
    empty = counts[counts["value"] == 0].drop_duplicates(["dataset", "level", "split", "label"])
    if empty.empty:
        return ""
    consequence = {
        "validation": "threshold left at 0.5, not tuned",
        "test": "F1 0 whatever the model predicts, counted in the macro average",
    }
    parts = []
    for split, rows in empty.groupby("split", sort=False):
        names = [f"{_column_name(r.dataset, r.level)} {r.label}" for r in rows.itertuples(index=False)]
        parts.append(f"in {split} ({consequence.get(split, 'no positive row')}): {', '.join(names)}")
    return f"WARNING: labels without a positive row {'; '.join(parts)}. "


def covered_label_counts(long_df: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(dataset, level) -> how many labels (or groups) its scores average over: the ones it covers,
    which have a tuned threshold each."""
    thresholds = long_df[long_df["metric"] == "threshold"].drop_duplicates(["dataset", "level", "label"])
    return {key: len(rows) for key, rows in thresholds.groupby(["dataset", "level"], sort=False)}


def _covered_text(summary: pd.DataFrame, covered: Mapping[tuple[str, str], int] | None) -> str:
    if not covered:
        return ""
    pairs = summary[["dataset", "level"]].drop_duplicates().itertuples(index=False)
    counts = [f"{_column_name(d, lvl)} {covered[(d, lvl)]}" for d, lvl in pairs if (d, lvl) in covered]
    if not counts:
        return ""
    return (
        " Each column is over the labels (or groups) its dataset covers, not a dataset's own label set: "
        f"{', '.join(counts)}."
    )


def clustered_datasets(clusters: Mapping[str, str | None] | None) -> list[str]:
    """The datasets `evaluation.statistics.clusters` resamples in whole clusters (null: by rows)."""
    return [name for name, pattern in (clusters or {}).items() if pattern]


def resampled_units(intervals: pd.DataFrame) -> str:
    """A sentence with each dataset's test rows, and the clusters they were resampled as where those are
    fewer: from the interval table (`significance.INTERVAL_TABLE_COLUMNS`). "" without one."""
    if intervals.empty or "n_examples" not in intervals:
        return ""
    parts = []
    for dataset, rows in intervals.groupby("dataset", sort=False):
        n, k = int(rows["n_examples"].iloc[0]), int(rows.get("n_clusters", rows["n_examples"]).iloc[0])
        parts.append(f"{dataset} {n}" + (f" (resampled as {k} clusters)" if k < n else ""))
    return f" Test rows: {', '.join(parts)}."


def _clusters_text(clustered: Sequence[str]) -> str:
    return f" ({', '.join(clustered)} in whole clusters of rows)" if clustered else ""


def write_tables(
    summary: pd.DataFrame,
    out_prefix: str | Path,
    title: str = "Test macro-F1 (tuned thresholds)",
    confidence: float | None = None,
    synthetic: Sequence[str] = (),
    thresholds: str = "thresholds tuned on validation",
    warning: str = "",
    clustered: Sequence[str] = (),
    units: str = "",
    covered: Mapping[tuple[str, str], int] | None = None,
) -> dict[str, Path]:
    """Write `summary` (from `summarize_metric`, optionally `add_intervals`) as <prefix>.csv (tidy
    numbers, columns SUMMARY_COLUMNS [+ INTERVAL_COLUMNS] + [SYNTHETIC_COLUMN]) and as the
    "mean ± std (n=k) [low, high]" display table in <prefix>.md and <prefix>.html. `synthetic`: the
    datasets read from the demo corpus, marked in the csv and named first in the note. `thresholds`:
    how the scores were thresholded, as the note says it. `warning` (constant_prediction_warning) opens
    the note, after the SYNTHETIC DATA label where there is one. `covered` (covered_label_counts): how
    many labels each column averages over."""
    _check_summary(summary)
    display = _display_table(summary).reset_index()
    paths = _output_paths(out_prefix)
    has_intervals = set(INTERVAL_COLUMNS) <= set(summary.columns)
    numbers = summary[SUMMARY_COLUMNS + (INTERVAL_COLUMNS if has_intervals else [])]
    _write_csv(paths["csv"], _with_synthetic_column(numbers, synthetic))
    note = synthetic_warning(synthetic) + warning
    note += f"Mean ± std over n seeds (ddof=1; n/a with one seed); {thresholds}."
    note += _covered_text(summary, covered)
    if has_intervals:
        level = f"{confidence:.0%} " if confidence is not None else ""
        note += (
            f" In brackets: {level}bootstrap interval over test examples{_clusters_text(clustered)} of the"
            f" seed mean.{units}"
        )
    io.write_text(paths["md"], f"## {title}\n\n{note}\n\n{to_markdown(display)}")
    io.write_text(paths["html"], to_html_document(title, [(title, note, display)]))
    return paths


# --------------------------------------------------------------------------- single-label datasets

# evaluate.argmax_metrics, as the single-label table names them (its column order).
ARGMAX_METRICS = {
    "f1_weighted@argmax": "weighted-F1",
    "accuracy@argmax": "accuracy",
    "f1_macro@argmax": "macro-F1",
}


def has_argmax_intervals(intervals: pd.DataFrame | None) -> bool:
    """Whether the interval table has the argmax scores' intervals (it predates them otherwise)."""
    return intervals is not None and "metric" in intervals and (intervals["threshold"] == ARGMAX_MODE).any()


def single_label_summary(long_df: pd.DataFrame, intervals: pd.DataFrame | None = None) -> pd.DataFrame:
    """Test-split mean/std/n over seeds of the argmax metrics of the single-label datasets, with the
    metric's name as the `level` (so the display table has a "dataset · metric" column per pair), and
    their bootstrap intervals when `intervals` has them; no rows when no evaluated dataset is
    single-label (or the reports predate the metrics)."""
    frames = []
    for metric, name in ARGMAX_METRICS.items():
        if not ((long_df["metric"] == metric) & (long_df["split"] == "test")).any():
            continue
        summary = summarize_metric(long_df, metric=metric, levels=[LABEL_LEVEL])
        if has_argmax_intervals(intervals):
            summary = add_intervals(summary, intervals, ARGMAX_MODE, metric)
        frames.append(summary.assign(level=name))
    if not frames:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    summary = pd.concat(frames, ignore_index=True)
    # Dataset by dataset, each with its metrics in ARGMAX_METRICS order.
    rank = {dataset: i for i, dataset in enumerate(pd.unique(summary["dataset"]))}
    summary = summary.iloc[np.argsort(summary["dataset"].map(rank).to_numpy(), kind="stable")]
    return _sorted_by_cell(summary)


def _older_reports_note(long_df: pd.DataFrame, summary: pd.DataFrame) -> str:
    """A sentence when some eval reports of a single-label dataset predate the argmax scores: the table's
    n then counts only the newer seeds. "" when every report has them."""
    test = long_df[(long_df["split"] == "test") & (long_df["level"] == LABEL_LEVEL) & long_df["label"].isna()]
    keys = [*CELL_COLUMNS, "seed"]
    short = []
    for dataset in pd.unique(summary["dataset"]):
        rows = test[test["dataset"] == dataset]
        scored = rows[rows["metric"] == "f1_macro@tuned"][keys].drop_duplicates()
        with_argmax = rows[rows["metric"] == next(iter(ARGMAX_METRICS))][keys].drop_duplicates()
        if len(with_argmax) < len(scored):
            short.append(f"{dataset} ({len(scored) - len(with_argmax)} of {len(scored)})")
    if not short:
        return ""
    return (
        f"Eval reports that predate these scores are left out, so n counts fewer seeds: {', '.join(short)} "
        "(snakemake --forcerun evaluate writes them, retraining nothing). "
    )


def write_single_label_tables(
    long_df: pd.DataFrame,
    out_prefix: str | Path,
    synthetic: Sequence[str] = (),
    warning: str = "",
    intervals: pd.DataFrame | None = None,
    confidence: float | None = None,
    clustered: Sequence[str] = (),
) -> dict[str, Path]:
    """<prefix>.csv/.md/.html of `single_label_summary`, with the bootstrap intervals of `intervals`
    when it has them (the note says when it predates them, and names the table's clustered datasets
    and test rows when not); with no single-label dataset, the csv has the header only and the page
    says why."""
    title = "Single-label datasets: test scores of the most probable label"
    summary = single_label_summary(long_df, intervals)
    if not summary.empty:
        shown = set(summary["dataset"])
        units = resampled_units(intervals[intervals["dataset"].isin(shown)]) if intervals is not None else ""
        no_intervals = (
            ""
            if intervals is None or has_argmax_intervals(intervals)
            else "No bootstrap intervals: the interval table predates them (snakemake --forcerun bootstrap "
            "writes them, retraining nothing). "
        )
        return write_tables(
            summary,
            out_prefix,
            title=title,
            confidence=confidence,
            synthetic=synthetic,
            warning=warning + _older_reports_note(long_df, summary) + no_intervals,
            thresholds="no threshold: each row's most probable covered label against its one true label",
            clustered=[name for name in clustered if name in shown],
            units=units,
        )
    paths = _output_paths(out_prefix)
    _write_csv(paths["csv"], pd.DataFrame(columns=[*SUMMARY_COLUMNS, SYNTHETIC_COLUMN]))
    note = (
        "No evaluated dataset is single-label (every row exactly one covered label), or the eval reports "
        "predate these scores (snakemake --forcerun evaluate writes them, retraining nothing)."
    )
    io.write_text(paths["md"], f"## {title}\n\n{note}\n")
    io.write_text(paths["html"], to_html_document(title, [(title, note, pd.DataFrame())]))
    return paths


def write_score_tables(
    reports: pd.DataFrame,
    intervals: pd.DataFrame,
    prefixes: Mapping[str, str | Path],
    confidence: float,
    clusters: Mapping[str, str | None] | None,
    synthetic: Sequence[str] = (),
) -> None:
    """The `f1_tables` job's tables, each at its prefix (<prefix>.csv/.md/.html): test macro-F1 at the
    tuned thresholds ("tuned") and at 0.5 ("0.5"), every level, with bootstrap intervals; micro-F1
    ("micro"), without; and the single-label table ("single"), with intervals when `intervals` has
    them. `clusters` is evaluation.statistics.clusters."""
    shared = {
        "synthetic": synthetic,
        "warning": constant_prediction_warning(reports) + missing_positives_warning(reports),
    }
    with_intervals = {**shared, "confidence": confidence, "clustered": clustered_datasets(clusters)}
    covered = covered_label_counts(reports)
    for mode, title, thresholds in (
        ("tuned", "Test macro-F1 (tuned thresholds)", "thresholds tuned on validation"),
        ("0.5", "Test macro-F1 (threshold 0.5)", "every threshold fixed at 0.5 (no tuning)"),
    ):
        write_tables(
            add_intervals(summarize_metric(reports, f"f1_macro@{mode}", levels=None), intervals, mode),
            prefixes[mode],
            title=title,
            thresholds=thresholds,
            units=resampled_units(intervals),
            covered=covered,
            **with_intervals,
        )
    write_tables(
        summarize_metric(reports, "f1_micro@tuned", levels=None),
        prefixes["micro"],
        title="Test micro-F1 (tuned thresholds)",
        covered=covered,
        **shared,
    )
    # MELD and ISEAR as their literature scores them: the most probable label, no threshold.
    write_single_label_tables(reports, prefixes["single"], intervals=intervals, **with_intervals)


# --------------------------------------------------------------------------- paired comparisons


def format_p(p: float) -> str:
    """ "0.012", "<0.001" below a thousandth."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# Columns of the statistics CSVs (significance's interval and paired tables) that hold names.
NAME_COLUMNS = (*CELL_COLUMNS, "dataset", "level", "threshold", "metric", "compared", "a", "b", "within")


def read_statistics_csv(path: str | Path) -> pd.DataFrame:
    """One of significance's CSVs (intervals, paired comparisons), its names as written: a mix named
    "2018" stays the name "2018", not the number no eval report row would match."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=dict.fromkeys(NAME_COLUMNS, str))


def paired_seed_std(paired: pd.DataFrame, reports: pd.DataFrame) -> pd.DataFrame:
    """`paired` with the std over seeds of each compared cell's test macro-F1 at tuned thresholds (the
    labels level, as the comparisons; `collect_reports` rows): `seed_std_a`, `seed_std_b`, NaN with one
    seed. The comparisons cover test sampling only; these say how far another seed may move a cell."""
    if paired.empty:
        return paired.assign(seed_std_a=pd.Series(dtype=float), seed_std_b=pd.Series(dtype=float))
    summary = summarize_metric(reports, "f1_macro@tuned")
    std = {
        (row.loss, row.mix, row.imbalance, row.dataset): row.std for row in summary.itertuples(index=False)
    }

    def cell_std(row, side: str) -> float:
        # Names are [A-Za-z0-9_]+ (the schema), so "loss=bce, imbalance=none" splits safely.
        cell = dict(part.split("=", 1) for part in str(row.within).split(", "))
        cell[row.compared] = str(getattr(row, side))
        return std.get((cell["loss"], cell["mix"], cell["imbalance"], row.dataset), np.nan)

    rows = list(paired.itertuples(index=False))
    return paired.assign(
        seed_std_a=[cell_std(row, "a") for row in rows], seed_std_b=[cell_std(row, "b") for row in rows]
    )


def below_seed_std(paired: pd.DataFrame) -> pd.Series:
    """Rows whose |a − b| is smaller than the larger seed std of the two cells (False without one). A
    rule of thumb: the error of a difference of seed means also shrinks with the number of seeds."""
    larger = paired[["seed_std_a", "seed_std_b"]].max(axis=1)
    return larger.notna() & (paired["difference"].abs() < larger)


def _std_text(std: float) -> str:
    return "n/a" if pd.isna(std) else f"{std:.3f}"


def paired_display_table(paired: pd.DataFrame) -> pd.DataFrame:
    """A `significance.paired_comparisons` table for reading: one row per comparison; with the cells'
    seed std (`paired_seed_std`) when `paired` has it, and significant rows below it marked."""
    with_std = {"seed_std_a", "seed_std_b"} <= set(paired.columns)
    flagged = below_seed_std(paired) if with_std else pd.Series(False, index=paired.index)
    table = pd.DataFrame(
        {
            "dataset": paired["dataset"],
            "compared": paired["compared"],
            "a − b": [f"{a} − {b}" for a, b in zip(paired["a"], paired["b"], strict=True)],
            "within": paired["within"],
            "difference [CI]": [
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                for d, lo, hi in zip(paired["difference"], paired["ci_low"], paired["ci_high"], strict=True)
            ],
            "p": [format_p(p) for p in paired["p_value"]],
            "p (Holm)": [format_p(p) for p in paired["p_holm"]],
            "significant": [
                ("yes, below seed std" if below else "yes") if s else ""
                for s, below in zip(paired["significant"], flagged, strict=True)
            ],
        }
    )
    if with_std:
        table.insert(
            5,
            "seed std a; b",
            [
                f"{_std_text(sa)}; {_std_text(sb)}"
                for sa, sb in zip(paired["seed_std_a"], paired["seed_std_b"], strict=True)
            ],
        )
    return table


def write_paired_tables(
    paired: pd.DataFrame,
    out_prefix: str | Path,
    confidence: float,
    method: str,
    alpha: float,
    synthetic: Sequence[str] = (),
    clustered: Sequence[str] = (),
    reports: pd.DataFrame | None = None,
    steps_follow_epochs: bool = False,
) -> dict[str, Path]:
    """<prefix>.csv (the numbers, with SYNTHETIC_COLUMN), <prefix>.md and <prefix>.html (the display
    table, its note naming the `synthetic` datasets first and the `clustered` ones). With the eval
    reports (`collect_reports`), each row also gets its two cells' seed std (`paired_seed_std`).
    `steps_follow_epochs` (training by epochs, no max_steps): the note says that mix rows also compare
    training lengths."""
    if reports is not None:
        paired = paired_seed_std(paired, reports)
    paths = _output_paths(out_prefix)
    _write_csv(paths["csv"], _with_synthetic_column(paired, synthetic))
    title = "Paired comparisons of test macro-F1"
    if paired.empty:
        note = synthetic_warning(synthetic) + (
            "No comparisons: no two cells of the grid differ in one dimension (loss, mix or imbalance "
            "strategy) only."
        )
    else:
        note = synthetic_warning(synthetic) + (
            f"a − b on the same bootstrap resamples of the test examples{_clusters_text(clustered)}; "
            f"{confidence:.0%} percentile "
            f"interval; two-sided p-value ({method}); Holm correction over all {len(paired)} comparisons, "
            f"significant at family-wise alpha = {alpha:g}. The intervals are per comparison, not "
            "adjusted: one may exclude 0 on a row that is not significant."
        )
        if steps_follow_epochs and (paired["compared"] == "mix").any():
            note += (
                " Mix rows compare training lengths too: trained by epochs (training.max_steps unset), "
                "a mix's epoch is as many draws as its datasets have training rows, so a larger mix takes "
                "more optimizer steps, and draws each dataset as its share of that. training.max_steps "
                "gives every cell the same number of steps."
            )
    if reports is not None and not paired.empty:
        one_seed = paired[["seed_std_a", "seed_std_b"]].isna().all(axis=None)
        note += (
            " These cover test sampling, not training randomness. Seed std a; b: each cell's std over its "
            "seeds of the same test macro-F1 (n/a with one seed); 'yes, below seed std': significant, but "
            "smaller than the larger seed std of the two cells, so seeds alone move a cell that much (a "
            "rule of thumb: it does not weigh how many seeds the means average)."
            + (
                " Every cell has one seed here: whether a difference survives another seed is unknown."
                if one_seed
                else ""
            )
        )
    display = paired_display_table(paired)
    io.write_text(paths["md"], f"## {title}\n\n{note}\n\n{to_markdown(display)}")
    io.write_text(paths["html"], to_html_document(title, [(title, note, display)]))
    return paths


def plot_paired_differences(paired: pd.DataFrame, path: str | Path, synthetic: Sequence[str] = ()) -> None:
    """Forest plot of the paired table: one panel per dataset sharing one row per comparison (named
    on the left), the difference with its interval; filled markers where significant after Holm.
    Panels of `synthetic` datasets say so in their title."""
    datasets = list(pd.unique(paired["dataset"])) or ["(no comparisons)"]
    keys = list(
        dict.fromkeys(zip(paired["compared"], paired["a"], paired["b"], paired["within"], strict=True))
    )
    position_of = {key: len(keys) - 1 - i for i, key in enumerate(keys)}
    figure = _new_figure(2.8 + 2.6 * len(datasets), 1.6 + 0.22 * max(len(keys), 1))
    axes = figure.subplots(1, len(datasets), sharey=True, sharex=True, squeeze=False)[0]
    for axis, dataset in zip(axes, datasets, strict=True):
        for row in paired[paired["dataset"] == dataset].itertuples(index=False):
            position = position_of[(row.compared, row.a, row.b, row.within)]
            colour = f"C{CELL_COLUMNS.index(row.compared) % 10}"
            axis.plot([row.ci_low, row.ci_high], [position, position], color=colour, linewidth=1.2)
            axis.plot(
                row.difference,
                position,
                marker="o",
                color=colour,
                markerfacecolor=colour if row.significant else "white",
                markersize=4,
            )
        axis.axvline(0.0, color="0.4", linewidth=0.8, linestyle="--")
        axis.set_title(dataset_title(dataset, synthetic))
        axis.set_xlabel("a − b, test macro-F1")
        axis.grid(axis="x", alpha=0.3)
    names = [f"{a} − {b} ({within})" for _, a, b, within in keys]
    axes[0].set_yticks([position_of[key] for key in keys], names, fontsize=6)
    axes[0].set_ylim(-0.8, max(len(keys), 1) - 0.2)
    legend = [
        Line2D([], [], color=f"C{i}", marker="o", label=f"{dimension} pair")
        for i, dimension in enumerate(CELL_COLUMNS)
        if dimension in set(paired["compared"])
    ]
    legend.append(Line2D([], [], color="0.3", marker="o", linestyle="", label="significant (Holm)"))
    legend.append(
        Line2D(
            [], [], color="0.3", marker="o", markerfacecolor="white", linestyle="", label="not significant"
        )
    )
    figure.legend(handles=legend, loc="outside lower center", ncols=len(legend), fontsize="small")
    _save_png(figure, path)


# --------------------------------------------------------------------------- per-class table


def per_class_table(
    long_df: pd.DataFrame, dataset: str, metric: str = "per_class@tuned", split: str = "test"
) -> pd.DataFrame:
    """Mean per-class F1 over seeds for one evaluation dataset: index (loss, mix, imbalance), one
    column per label the dataset covers."""
    selected = long_df[
        (long_df["metric"] == metric)
        & (long_df["split"] == split)
        & (long_df["dataset"] == dataset)
        & (long_df["level"] == LABEL_LEVEL)
        & long_df["label"].notna()
    ]
    if selected.empty:
        raise ValueError(f"no {metric!r} values for dataset {dataset!r} on split {split!r}")
    means = selected.groupby([*CELL_COLUMNS, "label"], sort=False)["value"].mean().reset_index()
    means = _sorted_by_cell(means)
    table = means.pivot(index=CELL_COLUMNS, columns="label", values="value")
    row_order = pd.MultiIndex.from_frame(means[CELL_COLUMNS].drop_duplicates())
    table = table.reindex(index=row_order, columns=pd.unique(selected["label"]))
    table.columns.name = "label"
    return table


# --------------------------------------------------------------------------- plots


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def dataset_title(dataset: str, synthetic: Sequence[str] = ()) -> str:
    """A panel's title: the dataset, marked when it is the generated demo corpus, so a figure copied
    out of the report still says so."""
    return f"{dataset} (SYNTHETIC)" if dataset in synthetic else dataset


def _save_png(figure: Figure, path: str | Path) -> None:
    # The temp file ends in ".tmp", so the format must be named rather than inferred.
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_PNG_DPI)


# Axis labels of the test metrics a figure shows.
METRIC_NAMES = {
    "f1_macro@tuned": "test macro-F1 (tuned thresholds)",
    "f1_macro@0.5": "test macro-F1 (threshold 0.5)",
    "f1_micro@tuned": "test micro-F1 (tuned thresholds)",
}


def plot_f1_bars(
    long_df: pd.DataFrame, path: str | Path, metric: str = "f1_macro@tuned", synthetic: Sequence[str] = ()
) -> None:
    """Grouped bars of a test metric: one panel per evaluation dataset, groups of bars by loss, one
    bar per (mix, imbalance strategy), error bars = std over seeds. Panels of `synthetic` datasets say
    so in their title."""
    summary = summarize_metric(long_df, metric=metric, split="test")
    datasets = list(pd.unique(summary["dataset"]))
    losses = list(pd.unique(summary["loss"]))
    series = list(dict.fromkeys(zip(summary["mix"], summary["imbalance"], strict=True)))
    one_strategy = len({imbalance for _, imbalance in series}) == 1
    figure = _new_figure(max(4.0, 3.2 * len(datasets)), 3.6)
    axes = figure.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
    bar_width = 0.8 / len(series)
    colours = [f"C{i % 10}" for i in range(len(series))]
    for axis, dataset in zip(axes, datasets, strict=True):
        rows = summary[summary["dataset"] == dataset].set_index(CELL_COLUMNS)
        for index, (mix, imbalance) in enumerate(series):
            keys = [(loss, mix, imbalance) for loss in losses]
            means = [rows.loc[key, "mean"] if key in rows.index else np.nan for key in keys]
            # No error bar where std is undefined (one seed) rather than a misleading zero-width one.
            stds = [rows.loc[key, "std"] if key in rows.index else np.nan for key in keys]
            positions = np.arange(len(losses)) + (index - (len(series) - 1) / 2) * bar_width
            axis.bar(
                positions,
                means,
                bar_width,
                # NaN entries draw nothing: no zero-width bar pretending the spread is 0.
                yerr=np.asarray(stds, dtype=float),
                capsize=3,
                color=colours[index],
                label=mix if one_strategy else f"{mix} / {imbalance}",
            )
        axis.set_title(dataset_title(dataset, synthetic))
        axis.set_xticks(np.arange(len(losses)), losses)
        axis.set_ylim(0, 1)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(METRIC_NAMES.get(metric, f"test {metric}"))
    # Outside the panels: bars start at 0, so any corner inside would hide one.
    handles, names = axes[-1].get_legend_handles_labels()
    title = "mix" if one_strategy else "mix / imbalance"
    figure.legend(handles, names, title=title, loc="outside right center", fontsize="small")
    _save_png(figure, path)


def plot_per_class_heatmap(
    per_class_df: pd.DataFrame, path: str | Path, title: str = "test per-class F1"
) -> None:
    """Heatmap of a `per_class_table`: rows (loss, mix, imbalance), columns labels, colour = F1 in [0, 1]."""
    values = per_class_df.to_numpy(dtype=float)
    row_names = [
        " / ".join(map(str, key)) if isinstance(key, tuple) else str(key) for key in per_class_df.index
    ]
    figure = _new_figure(max(5.0, 0.45 * values.shape[1] + 2.5), max(2.5, 0.45 * values.shape[0] + 1.8))
    axis = figure.subplots()
    image = axis.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    column_names = [str(column) for column in per_class_df.columns]
    axis.set_xticks(np.arange(values.shape[1]), column_names, rotation=60, ha="right")
    axis.set_yticks(np.arange(values.shape[0]), row_names)
    for (row, column), value in np.ndenumerate(values):
        if np.isfinite(value):
            # Dark text on the bright end of viridis, light text on the dark end.
            axis.text(
                column,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="black" if value > 0.6 else "white",
            )
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label="F1")
    _save_png(figure, path)


def load_log_history(path: str | Path) -> list[dict]:
    """A train_log.json as a Trainer log_history list; accepts the bare list or {"log_history": [...]}."""
    content = io.read_json(path)
    if isinstance(content, Mapping):
        content = content["log_history"]
    return list(content)


def _curve(log_history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the log entries that have `key` with a finite value."""
    points = [
        (entry["step"], entry[key])
        for entry in log_history
        if "step" in entry and isinstance(entry.get(key), (int, float)) and np.isfinite(entry[key])
    ]
    return [step for step, _ in points], [value for _, value in points]


def plot_training_curves(
    train_logs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, synthetic: Sequence[str] = ()
) -> None:
    """Two panels, one line per cell: training loss ("loss") and validation macro-F1
    ("eval_f1_macro") against the optimizer step. With `synthetic` datasets, the figure's title names them."""
    figure = _new_figure(11.0, 4.0)
    if synthetic:
        figure.suptitle(f"SYNTHETIC DATA: {', '.join(synthetic)} (the generated demo corpus)")
    loss_axis, f1_axis = figure.subplots(1, 2)
    # Training's own validation F1 (emogrid.train.masked_macro_f1): at 0.5, averaged over the mix's
    # datasets, so it compares steps of one cell, not cells of different mixes.
    f1_name = "validation macro-F1 at 0.5\n(mean over the mix's datasets)"
    panels = [(loss_axis, "loss", "training loss"), (f1_axis, "eval_f1_macro", f1_name)]
    for axis, key, name in panels:
        plotted = 0
        for cell_name, log_history in train_logs.items():
            steps, values = _curve(log_history, key)
            if steps:
                axis.plot(steps, values, marker="." if len(steps) < 30 else None, label=cell_name)
                plotted += 1
        if plotted:
            axis.legend(fontsize="x-small")
        else:
            axis.text(0.5, 0.5, f"no '{key}' entries", ha="center", va="center", transform=axis.transAxes)
        axis.set_xlabel("step")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    _save_png(figure, path)


# --------------------------------------------------------------------------- data summaries


def _dropped_text(dropped: Mapping[str, int]) -> str:
    return "; ".join(f"{reason}: {count}" for reason, count in dropped.items() if count)


def data_summary_table(
    summaries: Mapping[str, Mapping[str, Any]],
    other_train: Mapping[str, Mapping[str, int]] | None = None,
    truncated: Mapping[str, Mapping[str, int | None]] | None = None,
) -> pd.DataFrame:
    """One row per (dataset, split), with the columns:

    - dataset, split, read, kept, dropped (total);
    - published: the split's row count from `expected_rows` (empty when none is given);
    - dropped_reasons: "reason: n; ..." (empty when nothing was dropped);
    - no_covered_label: kept rows whose labels are all unmapped, so they are negatives for every
      covered label (empty for older summaries);
    - text_in_train: kept rows of an evaluation split whose text, case and spacing ignored, a train
      row also has (empty for train);
    - text_in_other_train, given `other_train` (`emogrid.preprocess.cross_dataset_overlap`): the same
      against the other datasets' train splits, which a mix trains on too;
    - truncated, given `truncated` (the `truncated_rows` each token file records): kept rows
      whose text has more tokens than model.max_length, so the model sees only its beginning."""
    other_train = other_train or {}
    truncated = truncated or {}
    rows = []
    for dataset, summary in summaries.items():
        name = summary.get("dataset", dataset)
        overlap = summary.get("texts_also_in_train", {})
        published = summary.get("expected_rows", {})
        for split, counts in summary["splits"].items():
            dropped = counts.get("dropped", {}) or {}
            rows.append(
                {
                    "dataset": name,
                    "split": split,
                    "read": int(counts["read"]),
                    "published": published.get(split),
                    "kept": int(counts["kept"]),
                    "dropped": int(sum(dropped.values())),
                    "dropped_reasons": _dropped_text(dropped),
                    "no_covered_label": counts.get("no_covered_label"),
                    "text_in_train": overlap.get(split),
                    "text_in_other_train": other_train.get(name, {}).get(split),
                    "truncated": truncated.get(name, {}).get(split),
                }
            )
    columns = [
        "dataset",
        "split",
        "read",
        "published",
        "kept",
        "dropped",
        "dropped_reasons",
        "no_covered_label",
        "text_in_train",
        "text_in_other_train",
        "truncated",
    ]
    counts = {
        name: "Int64"
        for name in ("published", "no_covered_label", "text_in_train", "text_in_other_train", "truncated")
    }
    return pd.DataFrame(rows, columns=columns).astype(counts)


def row_count_mismatches(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line "<dataset> <split>: read <n>, published <m>" per published row count (`expected_rows`;
    split `all` is the total) that the rows read differ from."""
    lines = []
    for dataset, summary in summaries.items():
        published = summary.get("expected_rows", {})
        for key, read in (summary.get("expected_rows_mismatches") or {}).items():
            lines.append(
                f"{summary.get('dataset', dataset)} {key}: read {read}, published {published.get(key)}"
            )
    return lines


def label_frequency_table(
    summaries: Mapping[str, Mapping[str, Any]], split: str = "train", labels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Label counts on one split: index dataset, one column per label. Labels a dataset does not
    cover are missing (<NA>), not 0, so "never annotated" differs from "annotated, never present"."""
    rows = {}
    for dataset, summary in summaries.items():
        counts = summary.get("label_counts", {}).get(split, {})
        covered = list(summary.get("covered_labels", counts.keys()))
        # A covered label absent from the counts was simply never seen on this split.
        rows[summary.get("dataset", dataset)] = {label: int(counts.get(label, 0)) for label in covered}
    if labels is None:
        labels = list(dict.fromkeys(label for counts in rows.values() for label in counts))
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(labels)).astype("Int64")
    table.index.name = "dataset"
    return table


def write_data_summary(
    summaries: Mapping[str, Mapping[str, Any]],
    out_prefix: str | Path,
    split: str = "train",
    labels: Sequence[str] | None = None,
    other_train: Mapping[str, Mapping[str, int]] | None = None,
    synthetic: Sequence[str] = (),
    truncated: Mapping[str, Mapping[str, int | None]] | None = None,
) -> dict[str, Path]:
    """<prefix>.csv (rows per split, with SYNTHETIC_COLUMN), <prefix>_label_counts.csv, and
    <prefix>.md / <prefix>.html with both tables, the note naming the `synthetic` datasets first."""
    rows_table = data_summary_table(summaries, other_train, truncated)
    frequency = label_frequency_table(summaries, split=split, labels=labels)
    paths = _output_paths(out_prefix)
    paths["label_counts_csv"] = Path(f"{out_prefix}_label_counts.csv")
    _write_csv(paths["csv"], _with_synthetic_column(rows_table, synthetic))
    _write_csv(paths["label_counts_csv"], _with_synthetic_column(frequency.reset_index(), synthetic))
    mismatches = row_count_mismatches(summaries)
    rows_note = synthetic_warning(synthetic) + (
        "Per dataset and split, with the reasons rows were dropped. truncated: kept rows with more tokens "
        "than the model's max_length, which training and scoring see only the beginning of."
    )
    if rows_table["truncated"].isna().any():
        rows_note += (
            " An empty truncated cell: the token file was written before the count existed (2026-12-07),"
            " not a count of 0."
        )
    if mismatches:
        rows_note += (
            " Rows read differ from the published counts (expected for the synthetic demo corpus or a"
            " subset; for the real files a sign of a changed or misread file): " + "; ".join(mismatches) + "."
        )
    sections = [
        ("Rows read, kept and dropped", rows_note, rows_table),
        (
            f"Label counts ({split} split)",
            "Empty where the dataset's taxonomy does not cover the label.",
            frequency.reset_index(),
        ),
    ]
    markdown = "\n".join(
        f"## {heading}\n\n{note}\n\n{to_markdown(frame)}" for heading, note, frame in sections
    )
    io.write_text(paths["md"], markdown)
    io.write_text(paths["html"], to_html_document("Data summary", sections))
    return paths


# --------------------------------------------------------------------------- writers


def _output_paths(out_prefix: str | Path) -> dict[str, Path]:
    return {suffix: Path(f"{out_prefix}.{suffix}") for suffix in ("csv", "md", "html")}


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    io.write_text(path, frame.to_csv(index=False))


def _markdown_cell(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pd.DataFrame) -> str:
    """A pipe table of `frame`'s columns (index not included); missing values are empty cells."""
    header = "| " + " | ".join(_markdown_cell(str(column)) for column in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(_markdown_cell(value) for value in row) + " |"
        for row in frame.itertuples(index=False, name=None)
    ]
    return "\n".join([header, rule, *body]) + "\n"
