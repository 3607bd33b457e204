import sys

from emogrid.hub import fetch_model

sys.stderr = open(snakemake.log[0], "w")

fetch_model(snakemake.params.name, snakemake.output[0], revision=snakemake.params.revision)
