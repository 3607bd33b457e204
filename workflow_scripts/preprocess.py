import sys
from pathlib import Path

from emogrid.preprocess import preprocess_dataset

sys.stderr = open(snakemake.log[0], "w")

preprocess_dataset(
    snakemake.wildcards.dataset,
    Path(snakemake.input[0]).parent,
    snakemake.config,
    Path(snakemake.output.summary).parent,
)
