import sys
from pathlib import Path

import pandas as pd

from emogrid.report import (
    add_intervals,
    clustered_datasets,
    collect_reports,
    constant_prediction_warning,
    resampled_units,
    summarize_metric,
    write_single_label_tables,
    write_tables,
)

sys.stderr = open(snakemake.log[0], "w")

reports = collect_reports(snakemake.input.reports)
intervals = pd.read_csv(snakemake.input.intervals, keep_default_na=False, na_values=[""])
confidence = snakemake.params.confidence
clustered = clustered_datasets(snakemake.params.clusters)
units = resampled_units(intervals)
synthetic = snakemake.params.synthetic
warning = constant_prediction_warning(reports)
# Every macro-F1 (labels and grouped levels) with its bootstrap interval; micro-F1 without.
write_tables(
    add_intervals(summarize_metric(reports, "f1_macro@tuned", levels=None), intervals, "tuned"),
    Path(snakemake.output.csv).with_suffix(""),
    confidence=confidence,
    synthetic=synthetic,
    warning=warning,
    clustered=clustered,
    units=units,
)
write_tables(
    add_intervals(summarize_metric(reports, "f1_macro@0.5", levels=None), intervals, "0.5"),
    Path(snakemake.output.at_half).with_suffix(""),
    title="Test macro-F1 (threshold 0.5)",
    confidence=confidence,
    synthetic=synthetic,
    warning=warning,
    thresholds="every threshold fixed at 0.5 (no tuning)",
    clustered=clustered,
    units=units,
)
write_tables(
    summarize_metric(reports, "f1_micro@tuned", levels=None),
    Path(snakemake.output.micro).with_suffix(""),
    title="Test micro-F1 (tuned thresholds)",
    synthetic=synthetic,
    warning=warning,
)
# MELD and ISEAR as their literature scores them: the most probable label, no threshold.
write_single_label_tables(
    reports,
    Path(snakemake.output.single).with_suffix(""),
    synthetic=synthetic,
    warning=warning,
    intervals=intervals,
    confidence=confidence,
    clustered=clustered,
)
