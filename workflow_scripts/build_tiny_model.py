import sys

from emogrid.tiny_model import assemble_tiny_model

sys.stderr = open(snakemake.log[0], "w")

assemble_tiny_model(snakemake.input.weights, snakemake.input.tokenizer, snakemake.output[0])
