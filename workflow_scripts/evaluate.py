import sys

from emogrid.evaluate import evaluate_file

sys.stderr = open(snakemake.log[0], "w")

w = snakemake.wildcards
evaluate_file(
    snakemake.input[0],
    snakemake.output[0],
    snakemake.params.labels,
    snakemake.params.grid,
    {"mix": w.mix, "loss": w.loss, "imbalance": w.imbalance, "seed": int(w.seed)},
    snakemake.params.label_groups,
)
