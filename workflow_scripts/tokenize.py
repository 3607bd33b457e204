import sys

from emogrid.tokenize import load_declared_tokenizer, tokenize_split

sys.stderr = open(snakemake.log[0], "w")

tokenizer = load_declared_tokenizer(snakemake.input.tokenizer)
for source, target in zip(snakemake.input.data, snakemake.output):
    rows = tokenize_split(
        source, tokenizer, snakemake.params.max_length, target, folder=snakemake.input.tokenizer
    )
    print(f"{source}: {rows} rows -> {target}", file=sys.stderr)
