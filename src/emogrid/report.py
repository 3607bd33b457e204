"""Tables and figures over all cells: eval reports, training logs and data summaries.

Every file is written atomically (emogrid.io). Figures are drawn on a bare `Figure` with the Agg canvas,
never through pyplot, so no display backend or global matplotlib state is involved.

Conventions:
* Rows are grouped by loss, then mix. Losses, mixes, datasets and labels keep the order in which they
  first appear in the input (the workflow feeds them in config order), not alphabetical order.
* Standard deviations are over seeds with ddof=1. With a single seed the std is undefined: NaN in
  CSV files, "± n/a" in display tables and no error bar in plots.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emogrid import io

LONG_COLUMNS = ["mix", "loss", "seed", "dataset", "split", "metric", "label", "value"]
SUMMARY_COLUMNS = ["loss", "mix", "dataset", "mean", "std", "n"]
# Keys of a dataset's entry in eval_report.json that are not splits.
_NON_SPLIT_KEYS = {"covered_labels", "thresholds"}
_MISSING_CELL = "—"
_PNG_DPI = 150


# --------------------------------------------------------------------------- eval reports -> long table


def _report_rows(report: Mapping[str, Any], source: str) -> Iterator[dict[str, Any]]:
    """Long-format rows of one eval report; per-class values carry their label, others label=None."""
    if report.get("threshold_source") != "validation":
        source_split = report.get("threshold_source")
        raise ValueError(f"{source}: threshold_source is {source_split!r}, not 'validation'")
    cell = report["cell"]
    base = {"mix": str(cell["mix"]), "loss": str(cell["loss"]), "seed": int(cell["seed"])}
    for dataset, result in report["datasets"].items():
        for label, threshold in result.get("thresholds", {}).items():
            yield {
                **base,
                "dataset": dataset,
                "split": "validation",
                "metric": "threshold",
                "label": label,
                "value": threshold,
            }
        for split, metrics in result.items():
            if split in _NON_SPLIT_KEYS:
                continue
            for metric, value in metrics.items():
                if isinstance(value, Mapping):
                    for label, class_value in value.items():
                        yield {
                            **base,
                            "dataset": dataset,
                            "split": split,
                            "metric": metric,
                            "label": label,
                            "value": class_value,
                        }
                else:
                    yield {
                        **base,
                        "dataset": dataset,
                        "split": split,
                        "metric": metric,
                        "label": None,
                        "value": value,
                    }


def collect_reports(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All eval_report.json files as one long table with columns LONG_COLUMNS.

    `metric` is a report key ("f1_macro@tuned", "n", "per_class@tuned", ...) plus "threshold" (split
    "validation", where thresholds are tuned). `label` names the class for per-class metrics and
    thresholds and is missing otherwise. Two reports for the same (mix, loss, seed) are an error.
    """
    rows: list[dict[str, Any]] = []
    source_of_cell: dict[tuple[str, str, int], str] = {}
    for path in paths:
        report = io.read_json(path)
        cell = report["cell"]
        key = (str(cell["mix"]), str(cell["loss"]), int(cell["seed"]))
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
    long_df: pd.DataFrame, metric: str = "f1_macro@tuned", split: str = "test"
) -> pd.DataFrame:
    """Tidy mean/std/n over seeds of one scalar metric: columns SUMMARY_COLUMNS, one row per
    (loss, mix, dataset). std uses ddof=1 and is NaN when n == 1."""
    selected = long_df[(long_df["metric"] == metric) & (long_df["split"] == split) & long_df["label"].isna()]
    if selected.empty:
        raise ValueError(f"no values for metric {metric!r} on split {split!r}")
    grouped = selected.groupby(["loss", "mix", "dataset"], sort=False)["value"]
    summary = grouped.agg(mean="mean", std=lambda values: values.std(ddof=1), n="count").reset_index()
    summary["n"] = summary["n"].astype("int64")
    return _sorted_by_loss_then_mix(summary)[SUMMARY_COLUMNS]


def _sorted_by_loss_then_mix(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by loss, then mix, each in order of first appearance (a stable sort)."""
    loss_rank = {loss: rank for rank, loss in enumerate(pd.unique(frame["loss"]))}
    mix_rank = {mix: rank for rank, mix in enumerate(pd.unique(frame["mix"]))}
    order = np.lexsort((frame["mix"].map(mix_rank).to_numpy(), frame["loss"].map(loss_rank).to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def format_mean_std(mean: float, std: float, n: int, decimals: int = 3) -> str:
    """ "0.512 ± 0.010 (n=3)"; "± n/a" when the std is undefined (a single seed)."""
    spread = "n/a" if pd.isna(std) else f"{std:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {spread} (n={n})"


def _display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows (loss, mix), one column per dataset, cells "mean ± std (n=k)"."""
    _check_summary(summary)
    text = summary.assign(
        cell=[
            format_mean_std(m, s, n)
            for m, s, n in zip(summary["mean"], summary["std"], summary["n"], strict=True)
        ]
    )
    table = text.pivot(index=["loss", "mix"], columns="dataset", values="cell")
    row_order = pd.MultiIndex.from_frame(summary[["loss", "mix"]].drop_duplicates())
    table = table.reindex(index=row_order, columns=pd.unique(summary["dataset"]))
    table.columns.name = "dataset"
    return table.fillna(_MISSING_CELL)


def f1_macro_table(long_df: pd.DataFrame, metric: str = "f1_macro@tuned") -> pd.DataFrame:
    """Test-split display table: index (loss, mix), one column per evaluation dataset, string cells
    "mean ± std (n=k)" over seeds; "—" where a (loss, mix) has no value for a dataset."""
    return _display_table(summarize_metric(long_df, metric=metric, split="test"))


def _check_summary(summary: pd.DataFrame) -> None:
    missing = set(SUMMARY_COLUMNS) - set(summary.columns)
    if missing:
        raise ValueError(f"expected a summarize_metric() table, missing columns {sorted(missing)}")


def write_tables(
    summary: pd.DataFrame, out_prefix: str | Path, title: str = "Test macro-F1 (tuned thresholds)"
) -> dict[str, Path]:
    """Write `summary` (from `summarize_metric`) as <prefix>.csv (tidy numbers, columns
    SUMMARY_COLUMNS) and as the "mean ± std (n=k)" display table in <prefix>.md and <prefix>.html."""
    _check_summary(summary)
    display = _display_table(summary).reset_index()
    paths = _output_paths(out_prefix)
    _write_csv(paths["csv"], summary[SUMMARY_COLUMNS])
    note = "Mean ± std over seeds (ddof=1; n/a with one seed); thresholds tuned on validation."
    io.write_text(paths["md"], f"## {title}\n\n{note}\n\n{to_markdown(display)}")
    io.write_text(paths["html"], to_html_document(title, [(title, note, display)]))
    return paths


# --------------------------------------------------------------------------- per-class table


def per_class_table(
    long_df: pd.DataFrame, dataset: str, metric: str = "per_class@tuned", split: str = "test"
) -> pd.DataFrame:
    """Mean per-class F1 over seeds for one evaluation dataset: index (loss, mix), one column per
    label the dataset covers."""
    selected = long_df[
        (long_df["metric"] == metric)
        & (long_df["split"] == split)
        & (long_df["dataset"] == dataset)
        & long_df["label"].notna()
    ]
    if selected.empty:
        raise ValueError(f"no {metric!r} values for dataset {dataset!r} on split {split!r}")
    means = selected.groupby(["loss", "mix", "label"], sort=False)["value"].mean().reset_index()
    means = _sorted_by_loss_then_mix(means)
    table = means.pivot(index=["loss", "mix"], columns="label", values="value")
    row_order = pd.MultiIndex.from_frame(means[["loss", "mix"]].drop_duplicates())
    table = table.reindex(index=row_order, columns=pd.unique(selected["label"]))
    table.columns.name = "label"
    return table


# --------------------------------------------------------------------------- plots


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Figure, path: str | Path) -> None:
    # The temp file ends in ".tmp", so the format must be named rather than inferred.
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=_PNG_DPI)


def plot_f1_bars(long_df: pd.DataFrame, path: str | Path, metric: str = "f1_macro@tuned") -> None:
    """Grouped bars of a test metric: one panel per evaluation dataset, groups of bars by loss, one
    bar per mix, error bars = std over seeds."""
    summary = summarize_metric(long_df, metric=metric, split="test")
    datasets = list(pd.unique(summary["dataset"]))
    losses = list(pd.unique(summary["loss"]))
    mixes = list(pd.unique(summary["mix"]))
    figure = _new_figure(max(4.0, 3.2 * len(datasets)), 3.6)
    axes = figure.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
    bar_width = 0.8 / len(mixes)
    colours = [f"C{i % 10}" for i in range(len(mixes))]
    for axis, dataset in zip(axes, datasets, strict=True):
        rows = summary[summary["dataset"] == dataset].set_index(["loss", "mix"])
        for mix_index, mix in enumerate(mixes):
            keys = [(loss, mix) for loss in losses]
            means = [rows.loc[key, "mean"] if key in rows.index else np.nan for key in keys]
            # No error bar where std is undefined (one seed) rather than a misleading zero-width one.
            stds = [rows.loc[key, "std"] if key in rows.index else np.nan for key in keys]
            positions = np.arange(len(losses)) + (mix_index - (len(mixes) - 1) / 2) * bar_width
            axis.bar(
                positions,
                means,
                bar_width,
                # NaN entries draw nothing: no zero-width bar pretending the spread is 0.
                yerr=np.asarray(stds, dtype=float),
                capsize=3,
                color=colours[mix_index],
                label=mix,
            )
        axis.set_title(dataset)
        axis.set_xticks(np.arange(len(losses)), losses)
        axis.set_ylim(0, 1)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"test {metric}")
    # Outside the panels: bars start at 0, so any corner inside would hide one.
    handles, names = axes[-1].get_legend_handles_labels()
    figure.legend(handles, names, title="mix", loc="outside right center", fontsize="small")
    _save_png(figure, path)


def plot_per_class_heatmap(
    per_class_df: pd.DataFrame, path: str | Path, title: str = "test per-class F1"
) -> None:
    """Heatmap of a `per_class_table`: rows (loss, mix), columns labels, colour = F1 in [0, 1]."""
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


def plot_training_curves(train_logs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path) -> None:
    """Two panels, one line per cell: training loss ("loss") and validation macro-F1
    ("eval_f1_macro") against the optimizer step."""
    figure = _new_figure(11.0, 4.0)
    loss_axis, f1_axis = figure.subplots(1, 2)
    panels = [(loss_axis, "loss", "training loss"), (f1_axis, "eval_f1_macro", "validation macro-F1")]
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


def data_summary_table(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (dataset, split): columns dataset, split, read, kept, dropped (total) and
    dropped_reasons ("reason: n; ..."; empty when nothing was dropped)."""
    rows = []
    for dataset, summary in summaries.items():
        for split, counts in summary["splits"].items():
            dropped = counts.get("dropped", {}) or {}
            rows.append(
                {
                    "dataset": summary.get("dataset", dataset),
                    "split": split,
                    "read": int(counts["read"]),
                    "kept": int(counts["kept"]),
                    "dropped": int(sum(dropped.values())),
                    "dropped_reasons": _dropped_text(dropped),
                }
            )
    return pd.DataFrame(rows, columns=["dataset", "split", "read", "kept", "dropped", "dropped_reasons"])


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
) -> dict[str, Path]:
    """<prefix>.csv (rows per split), <prefix>_label_counts.csv, and <prefix>.md / <prefix>.html with
    both tables."""
    rows_table = data_summary_table(summaries)
    frequency = label_frequency_table(summaries, split=split, labels=labels)
    paths = _output_paths(out_prefix)
    paths["label_counts_csv"] = Path(f"{out_prefix}_label_counts.csv")
    _write_csv(paths["csv"], rows_table)
    _write_csv(paths["label_counts_csv"], frequency.reset_index())
    sections = [
        (
            "Rows read, kept and dropped",
            "Per dataset and split, with the reasons rows were dropped.",
            rows_table,
        ),
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


def to_html_document(title: str, sections: Sequence[tuple[str, str, pd.DataFrame]]) -> str:
    """A standalone HTML page with one (heading, note, table) section per entry."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif} table{border-collapse:collapse} "
        "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right} th{background:#eee}</style>",
        "</head><body>",
    ]
    for heading, note, frame in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<p>{html.escape(note)}</p>")
        parts.append(frame.to_html(index=False, na_rep="", border=0, float_format=lambda v: f"{v:.4f}"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
