"""MELD `*_sent_emo.csv`: UTF-8 (the fixed 2020 version; never cp1252), CRLF, quoted CSV.

Dialogue and utterance numbers restart in each split file, so ids carry a prefix (the split) to be
unique within the dataset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from emogrid.errors import DatasetFormatError
from emogrid.readers._common import (
    FileRecords,
    Record,
    check_field_count,
    check_header,
    check_unique_ids,
    decode_utf8,
    is_ascii_int,
    iter_csv_rows,
    map_labels,
    require_text,
    skips_malformed,
)

MELD_HEADER = [
    "Sr No.",
    "Utterance",
    "Speaker",
    "Emotion",
    "Sentiment",
    "Dialogue_ID",
    "Utterance_ID",
    "Season",
    "Episode",
    "StartTime",
    "EndTime",
]
TEXT, EMOTION, DIALOGUE, UTTERANCE = (
    MELD_HEADER.index(c) for c in ("Utterance", "Emotion", "Dialogue_ID", "Utterance_ID")
)


def meld_id(path: Path, line: int, dialogue: str, utterance: str, prefix: str = "") -> str:
    """`{prefix}dia{D}_utt{U}`, the name MELD gives the utterance's clip."""
    if not (is_ascii_int(dialogue.strip()) and is_ascii_int(utterance.strip())):
        raise DatasetFormatError(
            path, line, f"Dialogue_ID {dialogue!r} and Utterance_ID {utterance!r} must be integers"
        )
    return f"{prefix}dia{int(dialogue)}_utt{int(utterance)}"


# U+0080-U+009F: what MELD's files before 2020-11-15 hold where Windows-1252 punctuation was (’ stored
# as U+0092). Valid UTF-8, so decoding passes; the fixed release has none.
C1_CONTROLS = re.compile("[\u0080-\u009f]")


# UTF-8 read as cp1252 or latin-1 and encoded again: ’ becomes â€™, é becomes Ã©. The published
# files have none (see ../shared/data's README); a copy read with the wrong encoding and saved has them.
DOUBLE_ENCODED = re.compile("\u00e2\u20ac|\u00c3[\u0080-\u00bf]")
# Each kind of damage, checked in this order: its pattern and what the error says about a match.
ENCODING_DAMAGE = (
    (
        DOUBLE_ENCODED,
        lambda found: (
            f"{found!r}: UTF-8 that was decoded as cp1252 or latin-1 and encoded again (e.g. ’"
            " saved as â€™); use the published file, or repair the strings (ftfy, or"
            " s.encode('cp1252').decode('utf-8'))"
        ),
    ),
    (
        C1_CONTROLS,
        lambda found: (
            f"control character U+{ord(found):04X}: Windows-1252 punctuation stored as a C1"
            " control, as in MELD's files before 2020-11-15; use the fixed release (declare-lab/MELD"
            " after commit ca3e126), or repair each string with s.encode('latin-1').decode('cp1252')"
        ),
    ),
)


def check_no_encoding_damage(path: Path, text: str) -> None:
    """The two ways MELD's text is known to be damaged: double encoding, and C1 controls for cp1252."""
    for pattern, problem in ENCODING_DAMAGE:
        found = pattern.search(text)
        if found:
            line = text.count("\n", 0, found.start()) + 1
            raise DatasetFormatError(path, line, problem(found.group()))


def read_meld(path: str | Path, ds_cfg: dict, labels: Sequence[str], id_prefix: str = "") -> FileRecords:
    path = Path(path)
    text = decode_utf8(path)
    check_no_encoding_damage(path, text)
    rows = iter_csv_rows(path, text)
    header = next(rows, None)
    if header is None:
        raise DatasetFormatError(path, 1, "missing header (empty file)")
    check_header(path, header[1], MELD_HEADER)
    result = FileRecords(path, skip_malformed=skips_malformed(ds_cfg))
    for line, fields in rows:
        with result.row(line):
            check_field_count(path, line, fields, len(MELD_HEADER))
            result.records.append(
                Record(
                    id=meld_id(path, line, fields[DIALOGUE], fields[UTTERANCE], id_prefix),
                    text=require_text(path, line, fields[TEXT]),
                    labels=map_labels(path, line, ds_cfg, [fields[EMOTION].strip()], labels),
                    line=line,
                )
            )
    check_unique_ids(path, result.records)
    return result
