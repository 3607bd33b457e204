"""GoEmotions (simplified): headerless TSV `text<TAB>label ids<TAB>id`, plus emotions.txt.

About 2.5% of the lines are CSV-quoted (text with `"` is wrapped in quotes, inner quotes doubled),
so the lines go through a quote-aware CSV reader rather than a plain split on tabs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from emogrid.errors import DatasetFormatError
from emogrid.labels import is_identity
from emogrid.readers._common import (
    FileRecords,
    Record,
    check_field_count,
    check_unique_ids,
    decode_utf8,
    is_ascii_int,
    iter_csv_rows,
    map_labels,
    physical_lines,
    require_id,
    require_text,
    skips_malformed,
)

FIELDS = 3  # text, comma-separated label ids, id


def read_goemotions_label_names(path: str | Path, ds_cfg: dict, labels: Sequence[str]) -> list[str]:
    """The label names of emotions.txt (one a line; line k-1 is label id k).

    With an identity label map they must be the configured labels, in the same order, because the
    label ids in the TSVs index this list.
    """
    path = Path(path)
    names = [name.strip() for name in physical_lines(decode_utf8(path))]
    for line, name in enumerate(names, start=1):
        if not name:
            raise DatasetFormatError(path, line, "empty label name")
    if is_identity(ds_cfg):
        for line, (name, expected) in enumerate(zip(names, labels, strict=False), start=1):
            if name != expected:
                raise DatasetFormatError(
                    path, line, f"label {name!r} differs from config labels[{line - 1}] = {expected!r}"
                )
        if len(names) != len(labels):
            raise DatasetFormatError(path, None, f"{len(names)} label names, config has {len(labels)} labels")
    return names


def parse_label_ids(path: Path, line: int, field: str, label_names: Sequence[str]) -> list[str]:
    """Names of a comma-separated list of label ids such as `0,26`."""
    names = []
    for part in field.split(","):
        part = part.strip()
        if not is_ascii_int(part) or int(part) >= len(label_names):
            raise DatasetFormatError(
                path, line, f"unknown label id {part!r} in {field!r} (ids are 0..{len(label_names) - 1})"
            )
        names.append(label_names[int(part)])
    return names


def check_one_line(path: Path, line: int, fields: Sequence[str]) -> None:
    """A GoEmotions example is one line. A record that spans several (or holds a tab inside quotes)
    comes from a text starting with a stray `"`: the CSV reader then swallows the following lines up
    to the next quote, merging examples into one."""
    joined = "\t".join(fields)
    stray = "an unbalanced '\"' at the start of a text?"
    if "\n" in joined:
        last = line + joined.count("\n")
        raise DatasetFormatError(path, line, f"one record runs over lines {line}-{last}: {stray}")
    if any("\t" in field for field in fields):
        raise DatasetFormatError(path, line, f"a quoted field holds a tab: {stray}")


def read_goemotions(
    path: str | Path, label_names: Sequence[str], ds_cfg: dict, labels: Sequence[str]
) -> FileRecords:
    """One GoEmotions TSV; `label_names` come from `read_goemotions_label_names`."""
    path = Path(path)
    result = FileRecords(path, skip_malformed=skips_malformed(ds_cfg))
    for line, fields in iter_csv_rows(path, decode_utf8(path), delimiter="\t"):
        # Broken quoting merges examples into one record: a problem of the file, an error even where
        # malformed rows are skipped (skipping would lose every merged example and count one).
        check_one_line(path, line, fields)
        with result.row(line):
            check_field_count(path, line, fields, FIELDS)
            text, label_field, example_id = fields
            names = parse_label_ids(path, line, label_field, label_names)
            result.records.append(
                Record(
                    id=require_id(path, line, example_id),
                    text=require_text(path, line, text),
                    labels=map_labels(path, line, ds_cfg, names, labels),
                    line=line,
                )
            )
    check_unique_ids(path, result.records)
    return result
