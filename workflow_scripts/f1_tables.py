import sys
from pathlib import Path

from emogrid.report import collect_reports, read_statistics_csv, write_score_tables

sys.stderr = open(snakemake.log[0], "w")

write_score_tables(
    collect_reports(snakemake.input.reports),
    read_statistics_csv(snakemake.input.intervals),
    {
        key: Path(snakemake.output[name]).with_suffix("")
        for key, name in (("tuned", "csv"), ("0.5", "at_half"), ("micro", "micro"), ("single", "single"))
    },
    confidence=snakemake.params.confidence,
    clusters=snakemake.params.clusters,
    synthetic=snakemake.params.synthetic,
)
