import sys
from pathlib import Path

from emogrid.synthetic import write_corpus

sys.stderr = open(snakemake.log[0], "w")

out_dir = Path(snakemake.output[0]).parents[1]
config = {"datasets": snakemake.params.datasets, "labels": snakemake.params.labels}
write_corpus(out_dir, config, **snakemake.params.synthetic)
