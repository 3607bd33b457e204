"""Recompute a finished grid's statistics with this checkout's code, in whole clusters and by rows.

    python bench/statistics_rerun.py RESULTS_DIR --out-prefix bench/results/NAME

RESULTS_DIR is a workflow's results directory (its config.resolved.yaml, runs/*/*/*/seed*/ with
predictions.parquet and eval_report.json). Nothing in it is written. Writes:

- PREFIX_intervals.csv: the interval table as the `bootstrap` job makes it, with `width_vs_rows` (the
  interval's width over the width of the same interval with rows resampled alone);
- PREFIX_paired_rows.csv: the paired comparisons with rows resampled alone (the clustered ones are
  the workflow's own paired.csv);
- PREFIX_single_label.md: the single-label table as the `f1_tables` job makes it.

Prints, per dataset, how many paired decisions (Holm) differ between clusters and rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from emogrid.report import clustered_datasets, collect_reports, write_single_label_tables
from emogrid.significance import grid_statistics


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path)
    parser.add_argument("--out-prefix", required=True)
    args = parser.parse_args()
    config = yaml.safe_load((args.results / "config.resolved.yaml").read_text())
    reports = sorted(args.results.glob("runs/*/*/*/seed*/eval_report.json"))
    if not reports:
        raise SystemExit(f"{args.results}: no runs/*/*/*/seed*/eval_report.json")
    cells = [(report.with_name("predictions.parquet"), report) for report in reports]
    settings = config["evaluation"]["statistics"]
    labels, groups = config["labels"], config.get("label_groups")
    intervals, paired = grid_statistics(cells, labels, groups, settings)
    by_rows, paired_rows = grid_statistics(cells, labels, groups, {**settings, "clusters": {}})
    widths = [(table["ci_high"] - table["ci_low"]).to_numpy() for table in (intervals, by_rows)]
    ratio = np.divide(widths[0], widths[1], out=np.full(len(intervals), np.nan), where=widths[1] > 0)
    intervals.assign(width_vs_rows=ratio).to_csv(f"{args.out_prefix}_intervals.csv", index=False)
    paired_rows.to_csv(f"{args.out_prefix}_paired_rows.csv", index=False)
    write_single_label_tables(
        collect_reports(reports),
        f"{args.out_prefix}_single_label",
        intervals=intervals,
        confidence=float(settings["confidence"]),
        clustered=clustered_datasets(settings.get("clusters")),
    )
    for suffix in (".csv", ".html"):  # the markdown table is the one to read
        Path(f"{args.out_prefix}_single_label{suffix}").unlink()
    changed = paired.assign(rows=paired_rows["significant"])
    for dataset, rows in changed.groupby("dataset", sort=False):
        print(
            f"{dataset}: {int(rows['significant'].sum())} of {len(rows)} significant in clusters, "
            f"{int(rows['rows'].sum())} by rows, {int((rows['significant'] != rows['rows']).sum())} differ"
        )
    print("width in clusters / by rows:")
    print(
        intervals.assign(ratio=ratio)
        .groupby(["dataset", "threshold"])["ratio"]
        .describe()
        .round(3)
        .to_string()
    )


if __name__ == "__main__":
    main()
