import sys
from pathlib import Path

from emogrid.io import read_json
from emogrid.report import write_data_summary

sys.stderr = open(snakemake.log[0], "w")

summaries = {Path(p).parent.name: read_json(p) for p in snakemake.input}
write_data_summary(
    summaries, Path(snakemake.output.csv).with_suffix(""), labels=snakemake.params.labels
)
