import sys
from pathlib import Path

from emogrid.io import parquet_attrs, read_json
from emogrid.preprocess import cross_dataset_overlap
from emogrid.report import write_data_summary

sys.stderr = open(snakemake.log[0], "w")

data_dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.summaries}
truncated = {}
for path in map(Path, snakemake.input.tokens):
    truncated.setdefault(path.parent.name, {})[path.stem] = parquet_attrs(path).get("truncated_rows")
write_data_summary(
    {name: read_json(d / "summary.json") for name, d in data_dirs.items()},
    Path(snakemake.output.csv).with_suffix(""),
    labels=snakemake.params.labels,
    other_train=cross_dataset_overlap(data_dirs),
    synthetic=snakemake.params.synthetic,
    truncated=truncated,
)
