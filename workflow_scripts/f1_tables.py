import sys
from pathlib import Path

from emogrid.report import collect_reports, summarize_metric, write_tables

sys.stderr = open(snakemake.log[0], "w")

reports = collect_reports(snakemake.input)
prefix = Path(snakemake.output.csv).with_suffix("")
write_tables(summarize_metric(reports, "f1_macro@tuned"), prefix)
write_tables(
    summarize_metric(reports, "f1_macro@0.5"),
    Path(snakemake.output.at_half).with_suffix(""),
    title="Test macro-F1 (threshold 0.5)",
)
write_tables(
    summarize_metric(reports, "f1_micro@tuned"),
    Path(snakemake.output.micro).with_suffix(""),
    title="Test micro-F1 (tuned thresholds)",
)
