import sys

from emogrid.io import write_json

sys.stderr = open(snakemake.log[0], "w")

write_json(snakemake.output[0], snakemake.params.cell)
