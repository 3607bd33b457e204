import sys
from pathlib import Path

import pandas as pd

from emogrid.report import clustered_datasets, plot_paired_differences, write_paired_tables

sys.stderr = open(snakemake.log[0], "w")

paired = pd.read_csv(snakemake.input[0], keep_default_na=False, na_values=[""])
settings = snakemake.params.settings
write_paired_tables(
    paired,
    Path(snakemake.output.csv).with_suffix(""),
    settings["confidence"],
    settings["p_value"],
    settings["alpha"],
    synthetic=snakemake.params.synthetic,
    clustered=clustered_datasets(settings.get("clusters")),
)
plot_paired_differences(paired, snakemake.output.plot, synthetic=snakemake.params.synthetic)
