import sys
from pathlib import Path

from emogrid.io import read_json
from emogrid.preprocess import cross_dataset_overlap
from emogrid.report import write_data_summary
from emogrid.tokenize import truncated_rows

sys.stderr = open(snakemake.log[0], "w")

data_dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.summaries}
truncated = {}
for path in map(Path, snakemake.input.tokens):
    truncated.setdefault(path.parent.name, {})[path.stem] = truncated_rows(path)
write_data_summary(
    {name: read_json(d / "summary.json") for name, d in data_dirs.items()},
    Path(snakemake.output.csv).with_suffix(""),
    labels=snakemake.params.labels,
    other_train=cross_dataset_overlap(data_dirs),
    synthetic=snakemake.params.synthetic,
    truncated=truncated,
)
