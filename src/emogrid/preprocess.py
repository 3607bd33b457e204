"""Native dataset files -> unified parquet splits and a summary, all or nothing."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emogrid.errors import DatasetFormatError
from emogrid.fetch import MANIFEST
from emogrid.io import temp_file_beside
from emogrid.readers import SPLITS, UNIFIED_COLUMNS, read_dataset, texts_in_other_train

log = logging.getLogger(__name__)

UNIFIED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("labels", pa.list_(pa.int8())),
        ("label_mask", pa.list_(pa.int8())),
    ]
)
SUMMARY_FILE = "summary.json"


def output_paths(out_dir: str | Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    return {**{split: out_dir / f"{split}.parquet" for split in SPLITS}, "summary": out_dir / SUMMARY_FILE}


def cross_dataset_overlap(data_dirs: Mapping[str, str | Path]) -> dict[str, dict[str, int]]:
    """`texts_in_other_train` over the preprocessed splits in each dataset's directory."""
    texts = {
        name: {
            split: pd.read_parquet(Path(d) / f"{split}.parquet", columns=["text"])["text"] for split in SPLITS
        }
        for name, d in data_dirs.items()
    }
    return texts_in_other_train(texts)


def expected_rows_check(summary: dict, expected: dict[str, int]) -> tuple[bool, dict[str, int]]:
    """Whether the rows read match the published counts; key `all` is the total over splits."""
    read = {split: counts["read"] for split, counts in summary["splits"].items()}
    read["all"] = sum(read.values())
    mismatches = {key: read.get(key) for key, count in expected.items() if read.get(key) != count}
    return not mismatches, mismatches


def _write_parquet(frame, path: Path) -> None:
    table = pa.Table.from_pandas(frame[UNIFIED_COLUMNS], schema=UNIFIED_SCHEMA, preserve_index=False)
    pq.write_table(table, path)


def _write_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def preprocess_dataset(name: str, raw_dir: str | Path, config: dict, out_dir: str | Path) -> dict:
    """Write out_dir/{train,validation,test}.parquet and out_dir/summary.json; return the summary.

    All or nothing: stale outputs are removed first and the new ones are renamed into place only
    after every one of them was written, so after an error none of them exists.
    """
    ds_cfg = config["datasets"][name]
    finals = output_paths(out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in finals.values():
        path.unlink(missing_ok=True)
    temps: dict[str, Path] = {}
    try:
        frames, summary = read_dataset(name, raw_dir, ds_cfg, config["labels"])
        expected = ds_cfg.get("expected_rows") or {}
        matches, mismatches = expected_rows_check(summary, expected)
        summary["expected_rows"] = dict(expected)
        summary["expected_rows_match"] = matches
        # key -> rows read, for each published count that differs: shown in the report's data summary.
        summary["expected_rows_mismatches"] = mismatches
        if not matches:
            # Synthetic and demo corpora have other sizes, so this is worth a warning, not a failure.
            log.warning("%s: rows read %s differ from expected_rows %s", name, mismatches, expected)
        for split in SPLITS:
            temps[split] = temp_file_beside(finals[split])
            _write_parquet(frames[split], temps[split])
        temps["summary"] = temp_file_beside(finals["summary"])
        _write_json(summary, temps["summary"])
        for key, temp in temps.items():
            os.replace(temp, finals[key])
    except BaseException as error:
        for path in [*temps.values(), *finals.values()]:
            path.unlink(missing_ok=True)
        if isinstance(error, DatasetFormatError):
            raise _naming_the_source(error, Path(raw_dir)) from None
        raise
    return summary


def _naming_the_source(error: DatasetFormatError, raw_dir: Path) -> DatasetFormatError:
    """The error with the file the user has named too: a raw file is a byte-for-byte copy of the source
    its fetch manifest records (a local file or a URL), so the line number holds there as well."""
    try:
        manifest = json.loads((raw_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return error
    entry = manifest.get(Path(error.path).name) if isinstance(manifest, dict) else None
    inside = Path(error.path).resolve().parent == raw_dir.resolve()
    if not inside or not isinstance(entry, dict) or not entry.get("source"):
        return error
    return DatasetFormatError(
        error.path, error.line, f"{error.problem} [the fetched copy of {entry['source']}]"
    )
