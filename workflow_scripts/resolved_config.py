import sys

import yaml

from emogrid.io import write_text
from emogrid.provenance import scrub

sys.stderr = open(snakemake.log[0], "w")

header = (
    "# The merged, validated config this results directory was made with (defaults filled in),\n"
    "# without the scheduler-only training settings (threads, mem_mb, runtime), which change where and\n"
    "# how fast a cell runs, not its settings (on CPU the thread count can move probabilities in the\n"
    "# last digits; run_info.json records it; a run given this file takes them from config/config.yaml,\n"
    "# which the workflow merges first: set your machine's),\n"
    "# with each loss's keys its type reads (the schema gives every loss every key's default; given\n"
    "# back in this results directory, a loss whose keys come in another order, bce, reruns its cells:\n"
    "# use it for a new results directory), and\n"
    "# without training settings that newer versions added, where they are at their defaults\n"
    "# (pad_to_multiple_of and torch_compile unset, keep_checkpoints: weights);\n"
    f"# written by emogrid's workflow under snakemake {snakemake.params.snakemake_version}.\n"
)
write_text(snakemake.output[0], header + yaml.safe_dump(scrub(snakemake.params.config), sort_keys=False))
