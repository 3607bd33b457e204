import sys
from pathlib import Path

from emogrid.preprocess import preprocess_dataset

sys.stderr = open(snakemake.log[0], "w")

name = snakemake.wildcards.dataset
preprocess_dataset(
    name,
    Path(snakemake.input[0]).parent,
    {
        "datasets": {name: snakemake.params.dataset_config},
        "labels": snakemake.params.labels,
    },
    Path(snakemake.output.summary).parent,
)
