import sys

import pandas as pd

from emogrid.tiny_model import build_tiny_tokenizer

sys.stderr = open(snakemake.log[0], "w")

# Training text only: the tokenizer must not learn from validation or test text.
texts = [text for path in snakemake.input for text in pd.read_parquet(path, columns=["text"])["text"]]
build_tiny_tokenizer(texts, snakemake.output[0])
