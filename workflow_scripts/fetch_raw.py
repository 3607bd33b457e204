import sys
from pathlib import Path

from emogrid.fetch import fetch_dataset

sys.stderr = open(snakemake.log[0], "w")

fetch_dataset(
    snakemake.wildcards.dataset,
    snakemake.params.dataset_config,
    Path(snakemake.output[0]).parent,
    verify_md5=snakemake.params.verify_md5,
)
