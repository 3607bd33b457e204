import sys

from emogrid.tiny_model import build_tiny_weights

sys.stderr = open(snakemake.log[0], "w")

build_tiny_weights(snakemake.params.labels, snakemake.output[0])
