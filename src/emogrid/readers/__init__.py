"""One reader per dataset's native format, and `read_dataset`, which returns unified rows.

Unified rows (docs/ARCHITECTURE.md): id, text, dataset, split, labels (int8 multi-hot over the
configured labels) and label_mask (int8, 1 where the dataset's taxonomy covers the label).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from emogrid.errors import ConfigError, DatasetFormatError
from emogrid.labels import coverage_mask, covered_labels, multi_hot
from emogrid.readers._common import FileRecords, Record
from emogrid.readers.goemotions import read_goemotions, read_goemotions_label_names
from emogrid.readers.isear import assign_isear_splits, read_isear
from emogrid.readers.meld import read_meld
from emogrid.readers.semeval import read_semeval

__all__ = [
    "GOEMOTIONS_LABEL_FILE",
    "SPLITS",
    "UNIFIED_COLUMNS",
    "FileRecords",
    "Record",
    "read_dataset",
    "read_goemotions",
    "read_goemotions_label_names",
    "read_isear",
    "read_meld",
    "read_semeval",
]

SPLITS = ("train", "validation", "test")
UNIFIED_COLUMNS = ["id", "text", "dataset", "split", "labels", "label_mask"]
UNSPLIT = "all"
UNASSIGNED = "unassigned"  # summary key for skipped rows of an unsplit file
GOEMOTIONS_LABEL_FILE = "emotions.txt"  # part of the GoEmotions release: label id k is its line k+1

FileReader = Callable[[Path, str], FileRecords]


def _file_reader(name: str, reader: str, raw_dir: Path, ds_cfg: dict, labels: Sequence[str]) -> FileReader:
    """A function reading one of the dataset's files, given its path and split."""
    if reader == "goemotions":
        names = read_goemotions_label_names(raw_dir / GOEMOTIONS_LABEL_FILE, ds_cfg, labels)
        return lambda path, split: read_goemotions(path, names, ds_cfg, labels)
    if reader == "semeval2018_ec":
        return lambda path, split: read_semeval(path, ds_cfg, labels)
    if reader == "isear":
        return lambda path, split: read_isear(path, ds_cfg, labels)
    if reader == "meld":
        return lambda path, split: read_meld(path, ds_cfg, labels, id_prefix=f"{split}_")
    raise ConfigError(f"datasets.{name}.reader", f"unknown reader {reader!r}")


def _split_unsplit_file(name: str, records: FileRecords, ds_cfg: dict) -> dict[str, FileRecords]:
    """Distribute one file's records (kept and dropped alike) over train/validation/test.

    Dropped records are split too, so the split does not depend on which texts count as
    non-answers, and each split's summary shows what it lost.
    """
    if "split" not in ds_cfg:
        raise ConfigError(f"datasets.{name}.split", "a dataset without official splits needs a split: block")
    everything = [(r, None) for r in records.records] + records.dropped
    if any(r.group is None or r.stratum is None for r, _ in everything):
        raise ConfigError(
            f"datasets.{name}.splits", "only ISEAR-like files (respondent, emotion) can be split here"
        )
    try:
        assigned = assign_isear_splits([r for r, _ in everything], ds_cfg["split"])
    except ConfigError as error:
        respondents = len({r.group for r, _ in everything})
        raise ConfigError(
            f"datasets.{name}.{error.key}",
            f"{error.problem} ({records.path} has {len(everything)} rows from {respondents} respondents)",
        ) from None
    parts = {split: FileRecords(records.path) for split in SPLITS}
    for (record, reason), split in zip(everything, assigned, strict=True):
        if reason is None:
            parts[split].records.append(record)
        else:
            parts[split].dropped.append((record, reason))
    for part in parts.values():
        part.records.sort(key=lambda r: r.line)
        part.dropped.sort(key=lambda pair: pair[0].line)
    if records.malformed:
        # Skipped malformed rows have no respondent or emotion to split by: reported on their own.
        parts[UNASSIGNED] = FileRecords(records.path, malformed=list(records.malformed))
    return parts


def read_splits(
    name: str, raw_dir: str | Path, ds_cfg: dict, labels: Sequence[str]
) -> dict[str, FileRecords]:
    """The records of each split, read from the native files in `raw_dir`."""
    raw_dir = Path(raw_dir)
    read_file = _file_reader(name, ds_cfg.get("reader", name), raw_dir, ds_cfg, labels)
    splits = ds_cfg["splits"]
    if set(splits) == {UNSPLIT}:
        records = _require_data_rows(read_file(raw_dir / splits[UNSPLIT], UNSPLIT))
        by_split = _split_unsplit_file(name, records, ds_cfg)
    elif set(splits) == set(SPLITS):
        _check_split_files_differ(name, {split: raw_dir / splits[split] for split in SPLITS})
        by_split = {split: _require_data_rows(read_file(raw_dir / splits[split], split)) for split in SPLITS}
        _check_ids_unique_across_splits(by_split)
    else:
        raise ConfigError(
            f"datasets.{name}.splits", f"needs {list(SPLITS)} or {UNSPLIT}, got {sorted(splits)}"
        )
    for split in SPLITS:
        _require_kept_rows(name, split, by_split[split])
    return by_split


def _require_data_rows(records: FileRecords) -> FileRecords:
    """A file without a single data row (empty, or a header only) is an error, not an empty split."""
    if records.read == 0:
        raise DatasetFormatError(records.path, None, "no data rows (an empty file, or a header only)")
    return records


def _require_kept_rows(name: str, split: str, part: FileRecords) -> None:
    """A split that keeps no row cannot be trained or evaluated on: say why, naming the file."""
    if not part.records:
        dropped = "; ".join(f"{reason}: {n}" for reason, n in part.dropped_counts().items())
        raise DatasetFormatError(
            part.path, None, f"{name}: the {split} split keeps no row of {part.read} read ({dropped})"
        )


def _check_split_files_differ(name: str, paths: dict[str, Path]) -> None:
    """Two splits read from byte-identical files (a copy of train as test) would test on training
    data; MELD's split-prefixed ids would not catch it."""
    seen: dict[str, tuple[str, Path]] = {}
    for split, path in paths.items():
        if not path.is_file():
            continue  # the reader names the missing file
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            other, other_path = seen[digest]
            raise DatasetFormatError(
                path, None, f"{name}: the {split} file has the same bytes as the {other} file {other_path}"
            )
        seen[digest] = (split, path)


def _check_ids_unique_across_splits(by_split: dict[str, FileRecords]) -> None:
    seen: dict[str, tuple[Path, int]] = {}
    for part in by_split.values():
        for record in part.records:
            if record.id in seen:
                where = "{}:{}".format(*seen[record.id])
                raise DatasetFormatError(
                    part.path, record.line, f"duplicate id {record.id!r} (also at {where})"
                )
            seen[record.id] = (part.path, record.line)


def unified_frame(
    name: str, split: str, records: Sequence[Record], labels: Sequence[str], mask
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [r.id for r in records],
            "text": [r.text for r in records],
            "dataset": name,
            "split": split,
            "labels": [multi_hot(r.labels, labels) for r in records],
            # Every row of a dataset shares one taxonomy, hence one mask.
            "label_mask": [mask] * len(records),
        },
        columns=UNIFIED_COLUMNS,
    )


def _label_counts(records: Sequence[Record], covered: Sequence[str]) -> dict[str, int]:
    counts = dict.fromkeys(covered, 0)
    for record in records:
        for label in record.labels:
            counts[label] += 1
    return counts


def read_dataset(
    name: str, raw_dir: str | Path, ds_cfg: dict, labels: Sequence[str]
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Unified frames per split (train/validation/test) and the summary of what was read and kept."""
    by_split = read_splits(name, raw_dir, ds_cfg, labels)
    covered = covered_labels(ds_cfg, labels)
    mask = coverage_mask(ds_cfg, labels)
    frames = {split: unified_frame(name, split, by_split[split].records, labels, mask) for split in SPLITS}
    summary = {
        "dataset": name,
        "splits": {
            split: {
                "read": part.read,
                "kept": len(part.records),
                "dropped": part.dropped_counts(),
                # Kept rows with no covered label: every label they carry is unmapped (SemEval's
                # trust, anticipation, pessimism). They stay, as negatives for every covered label.
                "no_covered_label": sum(not record.labels for record in part.records),
            }
            for split, part in by_split.items()
        },
        # Every skipped malformed row, so each can be looked up and fixed at its source.
        "malformed_rows": [
            f"{part.path}:{line}: {problem}" for part in by_split.values() for line, problem in part.malformed
        ],
        "label_counts": {split: _label_counts(by_split[split].records, covered) for split in SPLITS},
        "covered_labels": covered,
        # Published splits can share texts (short replies in MELD, reposts): reported, not removed.
        "texts_also_in_train": texts_also_in_train(frames),
    }
    return frames, summary


def normalized_text(text: str) -> str:
    return " ".join(text.casefold().split())


def texts_in_other_train(texts: Mapping[str, Mapping[str, Sequence[str]]]) -> dict[str, dict[str, int]]:
    """Per dataset and evaluation split: how many rows have a text (case and spacing ignored) that a
    train row of another dataset has. In a mix those texts were seen in training too."""
    train = {name: {normalized_text(t) for t in splits["train"]} for name, splits in texts.items()}
    counts = {}
    for name, splits in texts.items():
        others = set().union(*(seen for other, seen in train.items() if other != name))
        counts[name] = {
            split: sum(normalized_text(t) in others for t in splits[split])
            for split in SPLITS
            if split != "train"
        }
    return counts


def texts_also_in_train(frames: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Per evaluation split: how many rows have a text (case and spacing ignored) that a train row has."""
    train = set(frames["train"]["text"].map(normalized_text))
    return {
        split: int(frames[split]["text"].map(normalized_text).isin(train).sum())
        for split in SPLITS
        if split != "train"
    }
