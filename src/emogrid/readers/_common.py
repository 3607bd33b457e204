"""What every reader shares: strict UTF-8 decoding, physical line numbers, checks that name the line."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from emogrid.errors import DatasetFormatError
from emogrid.labels import target_label

BOM = "\ufeff"
MAX_FIELD_CHARS = 16 * 1024 * 1024


@dataclass(frozen=True)
class Record:
    """One example as read from a native file; `labels` are already target (GoEmotions) names."""

    id: str
    text: str
    labels: tuple[str, ...]
    line: int
    # Grouping and stratification keys, for datasets split by us (ISEAR: respondent, emotion).
    group: str | None = None
    stratum: str | None = None


MALFORMED = "malformed row (skipped)"


@dataclass
class FileRecords:
    """The records of one file; `dropped` holds the documented exceptions with their reason.

    With `skip_malformed` (config `malformed_rows: skip`) a row whose own content is bad is kept out
    and listed in `malformed` as (line, problem) instead of stopping the read.
    """

    path: Path
    records: list[Record] = field(default_factory=list)
    dropped: list[tuple[Record, str]] = field(default_factory=list)
    skip_malformed: bool = False
    malformed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.records) + len(self.dropped) + len(self.malformed)

    def dropped_counts(self) -> dict[str, int]:
        counts = dict(Counter(reason for _, reason in self.dropped))
        if self.malformed:
            counts[MALFORMED] = len(self.malformed)
        return counts

    @contextmanager
    def row(self, line: int) -> Iterator[None]:
        """Read one row: its DatasetFormatError is raised, or recorded when malformed rows are skipped."""
        try:
            yield
        except DatasetFormatError as error:
            if not self.skip_malformed:
                raise
            self.malformed.append((error.line or line, error.problem))


def skips_malformed(ds_cfg: dict) -> bool:
    return ds_cfg.get("malformed_rows", "error") == "skip"


def decode_utf8(path: str | Path) -> str:
    """The file's text; a missing file or a byte sequence that is not UTF-8 names path and line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(path, None, "missing file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        bad = data[error.start : error.end].hex(" ")
        raise DatasetFormatError(path, line, f"bytes that are not UTF-8 ({bad}): {error.reason}") from None
    if "\x00" in text:
        # Text formats never hold NUL; it means binary data or a file cut by a crash. (Python's csv
        # module stopped rejecting it in 3.11, so check here.)
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DatasetFormatError(path, line, "NUL byte: binary or corrupted data in a text file")
    # A byte-order mark is an encoding artefact, not part of the first header name; one at the start of
    # a later line comes from files concatenated with `cat`, and is not part of that row's first field.
    return text.removeprefix(BOM).replace("\n" + BOM, "\n")


def physical_lines(text: str) -> list[str]:
    """Lines split on "\\n" only (line k is list item k-1); a final newline adds no empty line.

    str.splitlines would also split on characters like U+2028 that tweets may contain.
    """
    # CRLF and LF endings mixed in one file (edited on two systems) are the same line break.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def iter_csv_rows(path: Path, text: str, **csv_options) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, fields) per CSV record; a malformed record names its line."""
    lines = (line + "\n" for line in physical_lines(text))
    # The default 128 KiB field limit would reject a long (but genuine) text; keep a bound against
    # runaway quoting instead.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    reader = csv.reader(lines, strict=True, **csv_options)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DatasetFormatError(path, start, f"malformed CSV record: {error}") from None
        yield start, row
        start = reader.line_num + 1


def is_ascii_int(text: str) -> bool:
    """Whether `int(text)` reads it as a plain number: str.isdigit also accepts "²" or "٣", which
    `int` rejects or reads as another digit."""
    return text.isascii() and text.isdigit()


def check_field_count(path: Path, line: int, fields: Sequence[str], expected: int) -> None:
    if len(fields) != expected:
        raise DatasetFormatError(path, line, f"expected {expected} fields, got {len(fields)}")


def check_header(path: Path, found: Sequence[str], expected: Sequence[str]) -> None:
    if list(found) != list(expected):
        raise DatasetFormatError(path, 1, f"wrong header: expected {list(expected)}, got {list(found)}")


def require_text(path: Path, line: int, text: str) -> str:
    """The text without outer whitespace; empty or whitespace-only text is an error."""
    text = text.strip()
    if not text:
        raise DatasetFormatError(path, line, "empty or whitespace-only text")
    return text


def require_id(path: Path, line: int, example_id: str) -> str:
    example_id = example_id.strip()
    if not example_id:
        raise DatasetFormatError(path, line, "empty id")
    return example_id


def map_labels(
    path: Path, line: int, ds_cfg: dict, names: Sequence[str], labels: Sequence[str]
) -> tuple[str, ...]:
    """Target labels of source label names (unmapped ones vanish); an unknown name names the line."""
    targets = []
    for name in names:
        try:
            target = target_label(ds_cfg, name, labels)
        except KeyError:
            known = list(labels) if ds_cfg["label_map"] == "identity" else list(ds_cfg["label_map"])
            raise DatasetFormatError(path, line, f"unknown label {name!r}; known: {known}") from None
        if target is not None and target not in targets:
            targets.append(target)
    return tuple(targets)


def check_unique_ids(path: Path, records: Sequence[Record]) -> None:
    first_line: dict[str, int] = {}
    for record in records:
        if record.id in first_line:
            raise DatasetFormatError(
                path, record.line, f"duplicate id {record.id!r} (first on line {first_line[record.id]})"
            )
        first_line[record.id] = record.line
