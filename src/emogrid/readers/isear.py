"""ISEAR: `|`-separated, 43-field header, a trailing `|` on every line, no official split.

When the text (SIT) held line breaks they were exported as extra `|`, so a line can have more than
43 fields: the first 40 are the coded columns, the text is everything up to the last two fields
(STATE and the empty field after the trailing `|`). `á` also marks a former line break and `\\"` an
escaped quote. Non-answers ("[ No response.]") are the one documented exception to "nothing is
dropped": they are dropped and counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emogrid.errors import ConfigError, DatasetFormatError
from emogrid.readers._common import (
    FileRecords,
    Record,
    check_header,
    check_unique_ids,
    decode_utf8,
    map_labels,
    physical_lines,
    require_id,
    require_text,
    skips_malformed,
)
from emogrid.splits import split_folds

# The header as exported, including the empty name after the trailing `|`.
ISEAR_HEADER = (
    "ID CITY COUN SUBJ SEX AGE RELI PRAC FOCC MOCC FIEL EMOT WHEN LONG INTS ERGO TROPHO TEMPER EXPRES "
    "MOVE EXP1 EXP2 EXP10 PARAL CON EXPC PLEA PLAN FAIR CAUS COPING MORL SELF RELA VERBAL NEUTRO "
    "Field1 Field3 Field2 MYKEY SIT STATE"
).split() + [""]
FIXED_COLUMNS = 40  # the columns before SIT
RESPONDENT, EMOTION, CODE, KEY = (ISEAR_HEADER.index(name) for name in ("ID", "Field1", "EMOT", "MYKEY"))
# Field1's names in the order of their EMOT codes 1..7 (so in every row of the file).
ISEAR_EMOTIONS = ("joy", "fear", "anger", "sadness", "disgust", "shame", "guilt")
EMOTION_CODES = {name: str(code) for code, name in enumerate(ISEAR_EMOTIONS, start=1)}
LINE_BREAK_MARKERS = re.compile(r"[á|]")
BACKSLASH, ESCAPED_QUOTE = "\\", '\\"'
NON_ANSWER_NOISE = re.compile(r'[\[\]"\\]')
FINAL_PUNCTUATION = ".!?;:, "
NON_ANSWER = "non_answer"


def clean_isear_text(raw: str) -> str:
    """The situation text without export artefacts.

    Quotes were exported as `\\` (opening) and `\\"` (closing), and such a text kept a stray `"`
    at its end (the close of a CSV quoting whose opening was lost): all three become plain quotes
    or go. Line-break markers (`á`, `|`) become spaces, and runs of whitespace one space.
    """
    text = raw.strip()
    if BACKSLASH in text and text.endswith('"'):
        text = text[:-1]
    text = text.replace(ESCAPED_QUOTE, '"').replace(BACKSLASH, '"')
    text = LINE_BREAK_MARKERS.sub(" ", text)
    return " ".join(text.split())


def normalize_non_answer(text: str) -> str:
    """Lower case without brackets, quotes, backslashes, outer spaces and final punctuation."""
    text = NON_ANSWER_NOISE.sub(" ", text.replace("’", "'").lower())
    return " ".join(text.split()).strip(FINAL_PUNCTUATION)


def is_non_answer(text: str, non_answers: Sequence[str]) -> bool:
    return normalize_non_answer(text) in {normalize_non_answer(n) for n in non_answers}


# STATE is 1 on every row of the published file (twice written 1", with a stray quote).
_STATE = re.compile(r'\d+"?')


def split_isear_line(path: Path, line: int, content: str) -> list[str]:
    """Fields 0..39, SIT and STATE of one data line."""
    fields = content.split("|")
    if len(fields) < len(ISEAR_HEADER):
        raise DatasetFormatError(
            path, line, f"expected at least {len(ISEAR_HEADER)} |-separated fields, got {len(fields)}"
        )
    if fields[-1] != "":
        raise DatasetFormatError(path, line, "line does not end with the trailing '|'")
    if not _STATE.fullmatch(fields[-2]):
        # Else a '|' after STATE would move it into the text (and could turn a non-answer into a row).
        raise DatasetFormatError(
            path, line, f"STATE (the last field before the trailing '|') is {fields[-2]!r}, not a number"
        )
    return fields[:FIXED_COLUMNS] + ["|".join(fields[FIXED_COLUMNS:-2]), fields[-2]]


def check_emotion_columns_agree(path: Path, line: int, fields: Sequence[str]) -> None:
    """Field1, EMOT and MYKEY name one emotion. A `|` inside a coded column (where only the text may
    hold one) shifts the columns after it, and the row would be read with another column as its id
    and text."""
    emotion, code, key = fields[EMOTION].strip(), fields[CODE].strip(), fields[KEY].strip()
    expected = EMOTION_CODES.get(emotion)
    # MYKEY is the respondent's number followed by the code (7 digits in the file).
    key_ok = key.endswith(code) and len(key) > len(code)
    if expected is not None and (code != expected or not key_ok):
        raise DatasetFormatError(
            path,
            line,
            f"columns disagree: Field1 {emotion!r} has EMOT code {expected}, the row has EMOT {code!r}"
            f" and MYKEY {key!r} (shifted by a '|' in a coded column?)",
        )


def read_isear(path: str | Path, ds_cfg: dict, labels: Sequence[str]) -> FileRecords:
    """All ISEAR records; non-answers (config `non_answers`) go to `dropped` with reason non_answer."""
    path = Path(path)
    lines = physical_lines(decode_utf8(path))
    if not lines:
        raise DatasetFormatError(path, 1, "missing header (empty file)")
    check_header(path, lines[0].split("|"), ISEAR_HEADER)
    non_answers = {normalize_non_answer(n) for n in ds_cfg.get("non_answers") or []}
    result = FileRecords(path, skip_malformed=skips_malformed(ds_cfg))
    for line, content in enumerate(lines[1:], start=2):
        with result.row(line):
            fields = split_isear_line(path, line, content)
            emotion = fields[EMOTION].strip()
            record = Record(
                id=require_id(path, line, fields[KEY]),
                text=require_text(path, line, clean_isear_text(fields[FIXED_COLUMNS])),
                labels=map_labels(path, line, ds_cfg, [emotion], labels),
                line=line,
                group=require_id(path, line, fields[RESPONDENT]),
                stratum=emotion,
            )
            check_emotion_columns_agree(path, line, fields)
            if normalize_non_answer(record.text) in non_answers:
                result.dropped.append((record, NON_ANSWER))
            else:
                result.records.append(record)
    check_unique_ids(path, sorted(result.records + [r for r, _ in result.dropped], key=lambda r: r.line))
    return result


def _one_fold(strata: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Boolean mask of one of `n_splits` folds of the groups, stratified by stratum."""
    if len(np.unique(groups)) < n_splits:
        raise ConfigError(
            "split.fractions",
            f"{len(np.unique(groups))} respondents are too few for {n_splits} folds (1/{n_splits} each)",
        )
    # Imported here: scikit-learn costs about a second to import, and only ISEAR's split needs it.
    from sklearn.model_selection import StratifiedGroupKFold

    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held_out = next(folds.split(np.zeros(len(strata)), strata, groups))
    mask = np.zeros(len(strata), dtype=bool)
    mask[held_out] = True
    return mask


def assign_isear_splits(records: Sequence[Record], split_cfg: dict) -> list[str]:
    """train / validation / test for each record, grouped by respondent and stratified by emotion.

    Test is one of k stratified group folds, validation one of m folds of the rest (`split_folds`; the
    config check refuses fractions whole folds cannot meet).
    """
    fractions, seed = split_cfg["fractions"], int(split_cfg.get("seed", 2018))
    folds_test, folds_validation = split_folds(fractions)
    strata = np.array([r.stratum for r in records], dtype=object)
    groups = np.array([r.group for r in records], dtype=object)
    assigned = np.full(len(records), "train", dtype=object)
    is_test = _one_fold(strata, groups, folds_test, seed)
    assigned[is_test] = "test"
    rest = np.flatnonzero(~is_test)
    is_validation = _one_fold(strata[rest], groups[rest], folds_validation, seed)
    assigned[rest[is_validation]] = "validation"
    return assigned.tolist()
