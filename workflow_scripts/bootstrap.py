import sys

from emogrid.io import write_text
from emogrid.significance import grid_statistics

sys.stderr = open(snakemake.log[0], "w")

intervals, paired = grid_statistics(
    list(zip(snakemake.input.predictions, snakemake.input.reports, strict=True)),
    snakemake.params.labels,
    snakemake.params.label_groups,
    snakemake.params.settings,
)
write_text(snakemake.output.intervals, intervals.to_csv(index=False))
write_text(snakemake.output.paired, paired.to_csv(index=False))
