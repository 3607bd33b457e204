"""Readers: the native formats with their quirks, every kind of bad input, the ISEAR split, and the
real files (when ../shared/data is there)."""

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest

import data_fixtures
from data_fixtures import (
    ISEAR_HEADER_LINE,
    MELD_HEADER_LINE,
    isear_line,
    meld_line,
    real_data_dir,
    write_bytes,
    write_lines,
)
from emogrid.config import check_config
from emogrid.errors import ConfigError, DatasetFormatError
from emogrid.labels import covered_labels
from emogrid.readers import (
    SPLITS,
    UNIFIED_COLUMNS,
    read_dataset,
    read_goemotions,
    read_goemotions_label_names,
    read_isear,
    read_meld,
    read_semeval,
    texts_in_other_train,
)
from emogrid.readers.isear import assign_isear_splits, clean_isear_text, is_non_answer

config, synthetic_dir = data_fixtures.config, data_fixtures.synthetic_dir

DATASETS = ["goemotions", "semeval2018_ec", "isear", "meld"]


def ds_and_labels(config, name):
    return config["datasets"][name], config["labels"]


# ----------------------------------------------------------------------------- synthetic corpus


@pytest.mark.parametrize("name", DATASETS)
def test_synthetic_corpus_reads_into_unified_rows(config, synthetic_dir, name):
    ds, labels = ds_and_labels(config, name)
    frames, summary = read_dataset(name, synthetic_dir / name, ds, labels)
    assert set(frames) == set(SPLITS)
    covered = covered_labels(ds, labels)
    ids = set()
    for split, frame in frames.items():
        assert list(frame.columns) == UNIFIED_COLUMNS
        assert len(frame) == summary["splits"][split]["kept"] > 0
        assert (frame["dataset"] == name).all() and (frame["split"] == split).all()
        assert frame["text"].str.strip().str.len().gt(0).all()
        y = np.stack(frame["labels"].to_list())
        mask = np.stack(frame["label_mask"].to_list())
        assert y.shape == mask.shape == (len(frame), len(labels)) and y.dtype == np.int8
        assert ((y == 1) <= (mask == 1)).all(), "a label outside the dataset's coverage is set"
        assert [labels[i] for i in np.flatnonzero(mask[0])] == covered
        counts = dict(zip(labels, y.sum(axis=0).tolist(), strict=True))
        assert summary["label_counts"][split] == {label: counts[label] for label in covered}
        assert ids.isdisjoint(frame["id"]) and frame["id"].is_unique
        ids |= set(frame["id"])
    assert summary["covered_labels"] == covered


# ----------------------------------------------------------------------------- GoEmotions


@pytest.fixture
def goemotions_dir(tmp_path, config):
    write_lines(tmp_path / "emotions.txt", config["labels"], final_newline=False)
    return tmp_path


def test_goemotions_quoted_lines_lose_outer_quotes_and_doubled_quotes(goemotions_dir, config):
    ds, labels = ds_and_labels(config, "goemotions")
    path = write_lines(
        goemotions_dir / "train.tsv",
        ['"He said ""stop"" twice. "\t0,26\tabc1', "plain text\t27\tabc2", '"a, b"\t3\tabc3'],
    )
    names = read_goemotions_label_names(goemotions_dir / "emotions.txt", ds, labels)
    records = read_goemotions(path, names, ds, labels).records
    assert [r.text for r in records] == ['He said "stop" twice.', "plain text", "a, b"]
    assert records[0].labels == (labels[0], labels[26])
    assert [r.line for r in records] == [1, 2, 3]


def test_goemotions_label_file_must_equal_config_labels(goemotions_dir, config):
    ds, labels = ds_and_labels(config, "goemotions")
    swapped = [labels[1], labels[0], *labels[2:]]
    path = write_lines(goemotions_dir / "emotions.txt", swapped)
    with pytest.raises(DatasetFormatError) as error:
        read_goemotions_label_names(path, ds, labels)
    assert error.value.line == 1 and str(path) in str(error.value)
    write_lines(path, labels[:-1])
    with pytest.raises(DatasetFormatError, match="27 label names"):
        read_goemotions_label_names(path, ds, labels)


@pytest.mark.parametrize(
    ("lines", "bad_line", "problem"),
    [
        (["ok\t1\ta", "only two\t1"], 2, "expected 3 fields"),
        (["ok\t1\ta", "ok\t1\tb", "ok\t28\tc"], 3, "unknown label id '28'"),
        (["ok\t1\ta", "ok\t\tb"], 2, "unknown label id ''"),
        (["ok\t1\ta", "ok\tx\tb"], 2, "unknown label id 'x'"),
        (["  \t1\ta"], 1, "empty or whitespace-only text"),
        (["ok\t1\ta", "ok\t2\tb", "again\t3\ta"], 3, "duplicate id 'a' (first on line 1)"),
        (["ok\t1\ta", "ok\t1\t"], 2, "empty id"),
        (["ok\t1\ta", "ok\t\u00b2\tb"], 2, "unknown label id '\u00b2'"),
        # A stray quote opening a text swallows the next line: two examples would become one.
        (["ok\t1\ta", '"I love this\t17\tb', 'so true"\t0\tc', "last\t27\td"], 2, "runs over lines 2-3"),
        (["ok\t1\ta", '"tab\tinside"\t1\tb'], 2, "holds a tab"),
    ],
)
def test_goemotions_bad_input_names_file_and_line(goemotions_dir, config, lines, bad_line, problem):
    ds, labels = ds_and_labels(config, "goemotions")
    path = write_lines(goemotions_dir / "train.tsv", lines)
    with pytest.raises(DatasetFormatError) as error:
        read_goemotions(path, labels, ds, labels)
    assert (error.value.path, error.value.line) == (str(path), bad_line)
    assert problem in error.value.problem
    assert str(error.value).startswith(f"{path}:{bad_line}: ")


def test_goemotions_broken_quoting_is_an_error_even_where_malformed_rows_are_skipped(goemotions_dir, config):
    # Skipping the merged record would lose every example it swallowed and count one.
    ds, labels = ds_and_labels(config, "goemotions")
    lines = ["ok\t1\ta", '"I love this\t17\tb', "x\t0\tc", "y\t0\td", 'so true"\t0\te', "last\t27\tf"]
    path = write_lines(goemotions_dir / "train.tsv", lines)
    with pytest.raises(DatasetFormatError, match="runs over lines 2-5") as error:
        read_goemotions(path, labels, {**ds, "malformed_rows": "skip"}, labels)
    assert error.value.line == 2
    # A row whose own content is bad is still skipped and counted.
    path = write_lines(goemotions_dir / "train.tsv", ["ok\t1\ta", "ok\t99\tb", "ok\t2\tc"])
    records = read_goemotions(path, labels, {**ds, "malformed_rows": "skip"}, labels)
    assert [r.id for r in records.records] == ["a", "c"] and [line for line, _ in records.malformed] == [2]


def test_bytes_that_are_not_utf8_name_their_line(goemotions_dir, config):
    ds, labels = ds_and_labels(config, "goemotions")
    path = write_bytes(goemotions_dir / "train.tsv", b"ok\t1\ta\nok\t1\tb\ncompany\x92s\t1\tc\n")
    with pytest.raises(DatasetFormatError, match="not UTF-8") as error:
        read_goemotions(path, labels, ds, labels)
    assert error.value.line == 3


def test_missing_file_is_named(tmp_path, config):
    ds, labels = ds_and_labels(config, "semeval2018_ec")
    with pytest.raises(DatasetFormatError, match="missing file") as error:
        read_semeval(tmp_path / "absent.txt", ds, labels)
    assert error.value.path == str(tmp_path / "absent.txt")


def test_missing_split_file_through_read_dataset(goemotions_dir, config):
    ds, labels = ds_and_labels(config, "goemotions")
    write_lines(goemotions_dir / ds["splits"]["train"], ["ok\t1\ta"])
    with pytest.raises(DatasetFormatError, match="missing file") as error:
        read_dataset("goemotions", goemotions_dir, ds, labels)
    assert error.value.path == str(goemotions_dir / ds["splits"]["validation"])


def test_a_split_file_copied_from_another_is_refused(synthetic_dir, config, tmp_path):
    # MELD ids carry their split, so a copy of train saved as the test file passes the id check.
    ds, labels = ds_and_labels(config, "meld")
    raw = tmp_path / "meld"
    shutil.copytree(synthetic_dir / "meld", raw)
    shutil.copyfile(raw / ds["splits"]["train"], raw / ds["splits"]["test"])
    with pytest.raises(DatasetFormatError, match="same bytes as the train file") as error:
        read_dataset("meld", raw, ds, labels)
    assert error.value.path == str(raw / ds["splits"]["test"])


def test_ids_must_be_unique_across_splits(goemotions_dir, config):
    ds, labels = ds_and_labels(config, "goemotions")
    for split, line in zip(SPLITS, ["a\t1\tx", "b\t1\ty", "c\t1\tx"], strict=True):
        write_lines(goemotions_dir / ds["splits"][split], [line])
    with pytest.raises(DatasetFormatError, match="duplicate id 'x'") as error:
        read_dataset("goemotions", goemotions_dir, ds, labels)
    assert error.value.path == str(goemotions_dir / ds["splits"]["test"])


# ----------------------------------------------------------------------------- SemEval


def semeval_header(ds):
    return "\t".join(["ID", "Tweet", *ds["label_map"]])


def semeval_row(ds, example_id, text, present=()):
    return "\t".join([example_id, text, *("1" if c in present else "0" for c in ds["label_map"])])


def test_semeval_all_zero_row_gets_empty_label_and_unmapped_only_row_gets_none(tmp_path, config):
    ds, labels = ds_and_labels(config, "semeval2018_ec")
    unmapped = next(k for k, v in ds["label_map"].items() if v is None)
    mapped = next(k for k, v in ds["label_map"].items() if v is not None)
    rows = [
        semeval_row(ds, "1", "nothing to see"),
        semeval_row(ds, "2", "only unmapped", [unmapped]),
        semeval_row(ds, "3", 'mixed "quote #tag 😀', [unmapped, mapped]),
    ]
    records = read_semeval(write_lines(tmp_path / "e.txt", [semeval_header(ds), *rows]), ds, labels).records
    assert [r.labels for r in records] == [(ds["empty_label"],), (), (ds["label_map"][mapped],)]
    assert records[2].text == 'mixed "quote #tag 😀' and records[2].line == 4


def test_semeval_header_columns_may_come_in_any_order(tmp_path, config):
    ds, labels = ds_and_labels(config, "semeval2018_ec")
    columns = list(reversed(ds["label_map"]))
    lines = ["\t".join(["ID", "Tweet", *columns]), "\t".join(["1", "t", "1", *["0"] * (len(columns) - 1)])]
    (record,) = read_semeval(write_lines(tmp_path / "e.txt", lines), ds, labels).records
    assert record.labels == tuple(filter(None, [ds["label_map"][columns[0]]]))


@pytest.mark.parametrize(
    ("mutate", "bad_line", "problem"),
    [
        (lambda lines: [lines[0].replace("Tweet", "Text"), *lines[1:]], 1, "wrong header"),
        (lambda lines: [lines[0].replace("anger", "rage"), *lines[1:]], 1, "wrong header"),
        (lambda lines: [], 1, "missing header"),
        (lambda lines: [*lines, lines[1] + "\t0"], 3, "expected 13 fields"),
        (lambda lines: [*lines, lines[1].rsplit("\t", 1)[0] + "\t2"], 3, "has value '2'"),
        (lambda lines: [*lines, ""], 3, "expected 13 fields"),
        (lambda lines: [*lines, lines[1].replace("fine", " ")], 3, "whitespace-only"),
        (lambda lines: [*lines, lines[1]], 3, "duplicate id"),
    ],
)
def test_semeval_bad_input_names_file_and_line(tmp_path, config, mutate, bad_line, problem):
    ds, labels = ds_and_labels(config, "semeval2018_ec")
    lines = mutate([semeval_header(ds), semeval_row(ds, "id1", "fine")])
    path = write_lines(tmp_path / "e.txt", lines, final_newline=bool(lines))
    with pytest.raises(DatasetFormatError) as error:
        read_semeval(path, ds, labels)
    assert (error.value.path, error.value.line) == (str(path), bad_line)
    assert problem in error.value.problem


# ----------------------------------------------------------------------------- ISEAR


def test_isear_text_quirks_and_extra_pipes(tmp_path, config):
    ds, labels = ds_and_labels(config, "isear")
    lines = [
        ISEAR_HEADER_LINE,
        isear_line(1001, 1, "joy", "When we met and á especially when á|we had not met."),
        isear_line(1001, 2, "fear", 'A \\strange\\" noise á|at á|night."'),
        isear_line(1001, 3, "anger", "[ No response.]"),
        isear_line(1001, 4, "sadness", "NO RESPONSE."),
    ]
    result = read_isear(write_lines(tmp_path / "isear.csv", lines, final_newline=False), ds, labels)
    assert [r.text for r in result.records] == [
        "When we met and especially when we had not met.",
        'A "strange" noise at night.',
    ]
    assert [r.id for r in result.records] == ["0010011", "0010012"]
    assert result.records[1].labels == (ds["label_map"]["fear"],)
    assert (result.records[0].group, result.records[0].stratum) == ("1001", "joy")
    assert result.read == 4 and result.dropped_counts() == {"non_answer": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ No response.]", True),
        ("NO RESPONSE", True),
        ("[ Never experienced.]", True),
        ('The same as in \\shame\\".', True),
        ("No response from my friend hurt me.", False),
        ("When my dog died.", False),
    ],
)
def test_non_answer_matching(config, text, expected):
    assert is_non_answer(text, config["datasets"]["isear"]["non_answers"]) is expected


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a  á b|c  d. ", "a b c d."),
        (
            'speaking á \\the same language\\"- meaning á|encounter."',
            'speaking "the same language"- meaning encounter.',
        ),
        ('I thought \\ Oh God!\\""', 'I thought " Oh God!"'),
        ('no quotes, keep the end"', 'no quotes, keep the end"'),
    ],
)
def test_clean_isear_text(raw, clean):
    assert clean_isear_text(raw) == clean


@pytest.mark.parametrize(
    ("line", "bad_line", "problem"),
    [
        ("1|2|3|", 2, "expected at least 43"),
        (isear_line(7, 1, "joy", "text")[:-1], 2, "expected at least 43"),
        (isear_line(7, 1, "joy", "text") + "1", 2, "trailing '|'"),
        (isear_line(7, 1, "bliss", "text"), 2, "unknown label 'bliss'"),
        (isear_line(7, 1, "joy", " á "), 2, "whitespace-only"),
        # Field1, EMOT and MYKEY disagree; or a '|' in a coded column shifted Field2 into MYKEY.
        (isear_line(7, 2, "joy", "text"), 2, "Field1 'joy' has EMOT code 1, the row has EMOT '2'"),
        (isear_line(7, 1, "joy", "text").replace("|0000071|", "|0000072|"), 2, "MYKEY '0000072'"),
        (isear_line(7, 1, "joy", "text").replace("|3|3|0000071|", "|3|3|1|0000071|"), 2, "MYKEY '1'"),
        # A '|' after STATE used to move STATE into the text: a non-answer became "[ No response.] 1".
        (isear_line(7, 1, "joy", "[ No response.]", state="1|extra"), 2, "STATE (the last field"),
        (isear_line(7, 1, "joy", "text", state="1|"), 2, "before the trailing '|') is ''"),
    ],
)
def test_isear_bad_input_names_file_and_line(tmp_path, config, line, bad_line, problem):
    ds, labels = ds_and_labels(config, "isear")
    path = write_lines(tmp_path / "isear.csv", [ISEAR_HEADER_LINE, line])
    with pytest.raises(DatasetFormatError) as error:
        read_isear(path, ds, labels)
    assert (error.value.path, error.value.line, problem in error.value.problem) == (str(path), bad_line, True)


def test_isear_wrong_header_and_duplicate_key(tmp_path, config):
    ds, labels = ds_and_labels(config, "isear")
    path = write_lines(
        tmp_path / "isear.csv", [ISEAR_HEADER_LINE.replace("SIT", "TEXT"), isear_line(7, 1, "joy", "x")]
    )
    with pytest.raises(DatasetFormatError, match="wrong header") as error:
        read_isear(path, ds, labels)
    assert error.value.line == 1
    same = isear_line(7, 1, "joy", "x")
    path = write_lines(tmp_path / "isear.csv", [ISEAR_HEADER_LINE, same, isear_line(7, 2, "fear", "y"), same])
    with pytest.raises(DatasetFormatError, match="duplicate id '0000071' \\(first on line 2\\)") as error:
        read_isear(path, ds, labels)
    assert error.value.line == 4


def isear_records(n_respondents, ds):
    from emogrid.readers._common import Record

    return [
        Record(id=f"{p}-{e}", text="t", labels=(), line=1, group=str(p), stratum=e)
        for p in range(n_respondents)
        for e in ds["label_map"]
    ]


def test_isear_split_is_grouped_stratified_roughly_80_10_10_and_deterministic(config):
    ds = config["datasets"]["isear"]
    records = isear_records(200, ds)
    assigned = assign_isear_splits(records, ds["split"])
    assert assigned == assign_isear_splits(records, ds["split"])
    assert assigned != assign_isear_splits(records, {**ds["split"], "seed": ds["split"]["seed"] + 1})
    groups = {}
    for record, split in zip(records, assigned, strict=True):
        groups.setdefault(record.group, set()).add(split)
    assert all(len(splits) == 1 for splits in groups.values()), "a respondent is in two splits"
    for split, fraction in ds["split"]["fractions"].items():
        share = assigned.count(split) / len(assigned)
        assert abs(share - fraction) < 0.03, (split, share)
        strata = [r.stratum for r, s in zip(records, assigned, strict=True) if s == split]
        assert set(strata) == set(ds["label_map"])


@pytest.mark.parametrize(
    "fractions", [(0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (0.6, 0.2, 0.2), (0.5, 0.25, 0.25)]
)
def test_isear_split_meets_every_fraction_the_config_check_admits(config, fractions):
    ds = config["datasets"]["isear"]
    split = {**ds["split"], "fractions": dict(zip(("train", "validation", "test"), fractions, strict=True))}
    checked = copy.deepcopy(config)
    checked["datasets"]["isear"]["split"] = split
    check_config(checked)
    assigned = assign_isear_splits(isear_records(400, ds), split)
    for name, fraction in split["fractions"].items():
        # The check allows 0.02 between requested and whole-fold shares; folds of groups add a little.
        assert abs(assigned.count(name) / len(assigned) - fraction) < 0.03, (name, fractions)


def test_isear_split_needs_enough_respondents(config):
    ds = config["datasets"]["isear"]
    with pytest.raises(ConfigError, match="too few"):
        assign_isear_splits(isear_records(5, ds), ds["split"])


def test_isear_summary_counts_non_answers_per_split(config, synthetic_dir):
    ds, labels = ds_and_labels(config, "isear")
    frames, summary = read_dataset("isear", synthetic_dir / "isear", ds, labels)
    dropped = sum(s["dropped"].get("non_answer", 0) for s in summary["splits"].values())
    assert dropped > 0
    for split, counts in summary["splits"].items():
        assert counts["read"] == counts["kept"] + sum(counts["dropped"].values())
        assert len(frames[split]) == counts["kept"]
    respondents = {split: {i[:6] for i in frame["id"]} for split, frame in frames.items()}
    assert not (
        respondents["train"] & respondents["validation"] or respondents["train"] & respondents["test"]
    )


# ----------------------------------------------------------------------------- MELD


def test_meld_crlf_quotes_and_typographic_characters(tmp_path, config):
    ds, labels = ds_and_labels(config, "meld")
    lines = [
        MELD_HEADER_LINE,
        meld_line(1, "also I was the point person on my company’s transition, you know", "neutral", 0, 0),
        meld_line(2, 'He said “no” and "yes"', "joy", 0, 1),
    ]
    path = write_lines(tmp_path / "train_sent_emo.csv", lines, newline="\r\n")
    records = read_meld(path, ds, labels, id_prefix="train_").records
    assert records[0].text == "also I was the point person on my company’s transition, you know"
    assert records[1].text == 'He said “no” and "yes"'
    assert [r.id for r in records] == ["train_dia0_utt0", "train_dia0_utt1"]
    assert records[1].labels == (ds["label_map"]["joy"],) and records[1].line == 3


@pytest.mark.parametrize(
    ("line", "bad_line", "problem"),
    [
        ('3,"never closed,Chandler,joy', 4, "malformed CSV"),
        ("3,too,few", 4, "expected 11 fields"),
        (meld_line(3, "fine", "happiness", 0, 2), 4, "unknown label 'happiness'"),
        (meld_line(3, "   ", "joy", 0, 2), 4, "whitespace-only"),
        (meld_line(3, "again", "joy", 0, 1), 4, "duplicate id 'dia0_utt1' (first on line 3)"),
        (meld_line(3, "fine", "joy", 0, 2).replace(",0,2,", ",x,2,"), 4, "must be integers"),
        (meld_line(3, "fine", "joy", 0, 2).replace(",0,2,", ",\u00b2,2,"), 4, "must be integers"),
    ],
)
def test_meld_bad_input_names_file_and_line(tmp_path, config, line, bad_line, problem):
    ds, labels = ds_and_labels(config, "meld")
    lines = [MELD_HEADER_LINE, meld_line(1, "a", "joy", 0, 0), meld_line(2, "b", "fear", 0, 1), line]
    path = write_lines(tmp_path / "m.csv", lines, newline="\r\n")
    with pytest.raises(DatasetFormatError) as error:
        read_meld(path, ds, labels)
    assert (error.value.path, error.value.line) == (str(path), bad_line)
    assert problem in error.value.problem


def test_meld_cp1252_bytes_and_wrong_header(tmp_path, config):
    ds, labels = ds_and_labels(config, "meld")
    good = meld_line(1, "a", "joy", 0, 0).encode()
    path = write_bytes(
        tmp_path / "m.csv", MELD_HEADER_LINE.encode() + b"\r\n" + good + b"\r\n" + b"1,company\x92s\r\n"
    )
    with pytest.raises(DatasetFormatError, match="not UTF-8") as error:
        read_meld(path, ds, labels)
    assert error.value.line == 3
    path = write_lines(
        tmp_path / "m.csv", [MELD_HEADER_LINE.replace("Emotion", "Label"), meld_line(1, "a", "joy", 0, 0)]
    )
    with pytest.raises(DatasetFormatError, match="wrong header") as error:
        read_meld(path, ds, labels)
    assert error.value.line == 1


def test_meld_c1_controls_of_the_old_release_are_refused_naming_the_line(tmp_path, config):
    # Before 2020-11-15 MELD stored cp1252 punctuation as C1 controls: valid UTF-8, wrong text.
    ds, labels = ds_and_labels(config, "meld")
    lines = [MELD_HEADER_LINE, meld_line(1, "a", "joy", 0, 0), meld_line(2, "company\u0092s", "joy", 0, 1)]
    path = write_lines(tmp_path / "m.csv", lines, newline="\r\n")
    for skip in ("error", "skip"):
        with pytest.raises(DatasetFormatError, match="U\\+0092.*fixed release") as error:
            read_meld(path, {**ds, "malformed_rows": skip}, labels)
        assert (error.value.path, error.value.line) == (str(path), 3)
    # The fixed release read as cp1252 and saved again: the helper-found copy that used to pass.
    lines[2] = meld_line(2, "company\u2019s caf\u00e9".encode().decode("cp1252"), "joy", 0, 1)
    assert "\u00e2\u20ac\u2122" in lines[2]
    with pytest.raises(DatasetFormatError, match="decoded as cp1252 or latin-1") as error:
        read_meld(write_lines(path, lines), ds, labels)
    assert (error.value.path, error.value.line) == (str(path), 3)
    lines[2] = meld_line(2, "company\u2019s", "joy", 0, 1)  # the fixed release's ’
    assert [r.text for r in read_meld(write_lines(path, lines), ds, labels).records] == [
        "a",
        "company\u2019s",
    ]


# ----------------------------------------------------------------------------- files and splits without rows


@pytest.mark.parametrize("name", ["goemotions", "semeval2018_ec", "meld"])
def test_a_split_file_without_data_rows_is_named(synthetic_dir, config, tmp_path, name):
    ds = config["datasets"][name]
    raw_dir = tmp_path / name
    shutil.copytree(synthetic_dir / name, raw_dir)
    path = raw_dir / ds["splits"]["validation"]
    if name == "goemotions":  # no header: an empty file
        write_bytes(path, b"")
    else:
        write_lines(path, path.read_text(encoding="utf-8").splitlines()[:1])
    with pytest.raises(DatasetFormatError, match="no data rows") as error:
        read_dataset(name, raw_dir, ds, config["labels"])
    assert error.value.path == str(path)


def test_a_split_that_keeps_no_row_is_named_with_its_counts(synthetic_dir, config, tmp_path):
    ds = config["datasets"]["goemotions"]
    raw_dir = tmp_path / "goemotions"
    shutil.copytree(synthetic_dir / "goemotions", raw_dir)
    path = raw_dir / ds["splits"]["test"]
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    write_lines(path, ["\t".join([text, "99", example_id]) for text, _, example_id in rows])
    with pytest.raises(DatasetFormatError, match=f"the test split keeps no row of {len(rows)} read") as error:
        read_dataset("goemotions", raw_dir, {**ds, "malformed_rows": "skip"}, config["labels"])
    assert error.value.path == str(path) and f"malformed row (skipped): {len(rows)}" in str(error.value)


def test_synthetic_isear_reads_with_its_label_map_in_any_order_or_a_subset(tmp_path, config):
    # The generator writes ISEAR's own EMOT codes, which the reader checks against Field1.
    import random

    from emogrid.synthetic import write_isear

    ds, labels = ds_and_labels(config, "isear")
    for names in (sorted(ds["label_map"]), ["joy", "anger", "sadness"]):
        shuffled = {**ds, "label_map": {name: ds["label_map"][name] for name in names}}
        write_isear(tmp_path, shuffled, labels, random.Random(0), scale=0.05)
        records = read_isear(tmp_path / ds["splits"]["all"], shuffled, labels)
        assert {r.stratum for r in records.records} == set(names)


def test_an_isear_file_too_small_to_split_names_the_file(tmp_path, config):
    ds, labels = ds_and_labels(config, "isear")
    write_lines(tmp_path / "isear.csv", [ISEAR_HEADER_LINE])
    with pytest.raises(DatasetFormatError, match="no data rows"):
        read_dataset("isear", tmp_path, ds, labels)
    lines = [ISEAR_HEADER_LINE] + [
        isear_line(7, 1 + i, e, f"text {i}") for i, e in enumerate(["joy", "fear"])
    ]
    write_lines(tmp_path / "isear.csv", lines)
    with pytest.raises(ConfigError, match="datasets.isear.split.fractions") as error:
        read_dataset("isear", tmp_path, ds, labels)
    assert f"{tmp_path / 'isear.csv'} has 2 rows from 1 respondents" in str(error.value)


# ----------------------------------------------------------------------------- the real files

PUBLISHED_ROWS = {
    "goemotions": {"train": 43410, "validation": 5426, "test": 5427},
    "semeval2018_ec": {"train": 6838, "validation": 886, "test": 3259},
    "meld": {"train": 9989, "validation": 1109, "test": 2610},
}


@pytest.mark.realdata
@pytest.mark.skipif(not real_data_dir().is_dir(), reason="real datasets not available")
@pytest.mark.parametrize("name", DATASETS)
def test_real_files_give_published_counts(config, name):
    ds, labels = ds_and_labels(config, name)
    frames, summary = read_dataset(name, Path(real_data_dir()) / name, ds, labels)
    read = {split: counts["read"] for split, counts in summary["splits"].items()}
    if name == "isear":
        assert sum(read.values()) == 7666
        dropped = sum(counts["dropped"].get("non_answer", 0) for counts in summary["splits"].values())
        assert 100 <= dropped <= 250
        for split, fraction in ds["split"]["fractions"].items():
            assert abs(read[split] / 7666 - fraction) < 0.02
    else:
        assert read == PUBLISHED_ROWS[name]
        assert all(not counts["dropped"] for counts in summary["splits"].values())
    assert all(frame["text"].str.len().gt(0).all() for frame in frames.values())


def test_texts_in_other_train_count_evaluation_rows_another_datasets_train_has():
    texts = {
        "a": {"train": ["Hello  there", "x"], "validation": ["hello there", "y"], "test": ["z"]},
        "b": {"train": ["Y"], "validation": ["x"], "test": ["HELLO there", " X ", "w"]},
    }
    # a's own train text "hello there" is not counted for a (that is text_in_train), only b's "Y".
    assert texts_in_other_train(texts) == {
        "a": {"validation": 1, "test": 0},
        "b": {"validation": 1, "test": 2},
    }
