import sys
from pathlib import Path

from emogrid.synthetic import write_corpus

sys.stderr = open(snakemake.log[0], "w")

out_dir = Path(snakemake.output[0]).parents[1]
write_corpus(out_dir, snakemake.config, **snakemake.params.synthetic)
