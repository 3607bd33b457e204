import sys
from pathlib import Path

from emogrid.report import (
    clustered_datasets,
    collect_reports,
    plot_paired_differences,
    read_statistics_csv,
    write_paired_tables,
)

sys.stderr = open(snakemake.log[0], "w")

paired = read_statistics_csv(snakemake.input.paired)
settings = snakemake.params.settings
write_paired_tables(
    paired,
    Path(snakemake.output.csv).with_suffix(""),
    settings["confidence"],
    settings["p_value"],
    settings["alpha"],
    synthetic=snakemake.params.synthetic,
    clustered=clustered_datasets(settings.get("clusters")),
    reports=collect_reports(snakemake.input.reports),
    steps_follow_epochs=snakemake.params.steps_follow_epochs,
)
plot_paired_differences(paired, snakemake.output.plot, synthetic=snakemake.params.synthetic)
