"""SemEval-2018 Task 1 E-c: TSV with header `ID Tweet <11 labels>` and 0/1 label columns.

The files have no quoting, so lines are split on tabs as they are (a CSV reader would treat a tweet
starting with `"` as quoted). A row whose labels are all 0 means "neutral or no emotion" and gets
the configured `empty_label`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from emogrid.errors import DatasetFormatError
from emogrid.readers._common import (
    FileRecords,
    Record,
    check_field_count,
    check_unique_ids,
    decode_utf8,
    map_labels,
    physical_lines,
    require_id,
    require_text,
    skips_malformed,
)

ID_COLUMN, TEXT_COLUMN = "ID", "Tweet"
LABEL_VALUES = {"0": False, "1": True}


def check_semeval_header(path: Path, header: Sequence[str], ds_cfg: dict) -> list[str]:
    """The label column names; the header must be ID, Tweet, then exactly the label map's keys."""
    if list(header[:2]) != [ID_COLUMN, TEXT_COLUMN]:
        raise DatasetFormatError(
            path,
            1,
            f"wrong header: expected it to start with {ID_COLUMN}, {TEXT_COLUMN}; got {list(header[:2])}",
        )
    columns = list(header[2:])
    expected = list(ds_cfg["label_map"])
    if sorted(columns) != sorted(expected) or len(set(columns)) != len(columns):
        raise DatasetFormatError(
            path, 1, f"wrong header: label columns {columns} differ from label_map keys {expected}"
        )
    return columns


def read_semeval(path: str | Path, ds_cfg: dict, labels: Sequence[str]) -> FileRecords:
    path = Path(path)
    lines = physical_lines(decode_utf8(path))
    if not lines:
        raise DatasetFormatError(path, 1, "missing header (empty file)")
    header = lines[0].rstrip("\r").split("\t")
    columns = check_semeval_header(path, header, ds_cfg)
    empty_label = ds_cfg.get("empty_label")
    result = FileRecords(path, skip_malformed=skips_malformed(ds_cfg))
    for line, content in enumerate(lines[1:], start=2):
        with result.row(line):
            fields = content.rstrip("\r").split("\t")
            check_field_count(path, line, fields, len(header))
            present = []
            for column, value in zip(columns, fields[2:], strict=True):
                if value not in LABEL_VALUES:
                    raise DatasetFormatError(
                        path, line, f"label column {column!r} has value {value!r}, expected 0 or 1"
                    )
                if LABEL_VALUES[value]:
                    present.append(column)
            targets = map_labels(path, line, ds_cfg, present, labels)
            if not present and empty_label:
                targets = (empty_label,)
            result.records.append(
                Record(
                    id=require_id(path, line, fields[0]),
                    text=require_text(path, line, fields[1]),
                    labels=targets,
                    line=line,
                )
            )
    check_unique_ids(path, result.records)
    return result
