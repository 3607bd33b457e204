import sys

from emogrid.runs import write_runs_overview

sys.stderr = open(snakemake.log[0], "w")

write_runs_overview(
    snakemake.input.run_info,
    snakemake.input.train_logs,
    snakemake.output[0],
    synthetic=snakemake.params.synthetic,
)
