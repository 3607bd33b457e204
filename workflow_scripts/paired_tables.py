import sys
from pathlib import Path

import pandas as pd

from emogrid.report import (
    clustered_datasets,
    collect_reports,
    plot_paired_differences,
    write_paired_tables,
)

sys.stderr = open(snakemake.log[0], "w")

# Names as written ("2018" stays a name, not a number).
names = {"dataset": str, "a": str, "b": str, "within": str}
paired = pd.read_csv(snakemake.input.paired, keep_default_na=False, na_values=[""], dtype=names)
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
)
plot_paired_differences(paired, snakemake.output.plot, synthetic=snakemake.params.synthetic)
