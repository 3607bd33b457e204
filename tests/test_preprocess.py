"""preprocess_dataset: unified parquet + summary, expected-row check, all-or-nothing on errors."""

import json
import logging
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import data_fixtures
from emogrid.errors import DatasetFormatError
from emogrid.labels import coverage_mask, covered_labels
from emogrid.preprocess import output_paths, preprocess_dataset
from emogrid.readers import SPLITS, UNIFIED_COLUMNS

config, cfg, synthetic_dir = data_fixtures.config, data_fixtures.cfg, data_fixtures.synthetic_dir


def test_writes_unified_parquet_and_summary(cfg, synthetic_dir, tmp_path, caplog):
    out = tmp_path / "data" / "semeval2018_ec"
    with caplog.at_level(logging.WARNING):
        summary = preprocess_dataset("semeval2018_ec", synthetic_dir / "semeval2018_ec", cfg, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "summary.json",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    assert json.loads((out / "summary.json").read_text()) == summary
    schema = pq.read_schema(out / "train.parquet")
    assert schema.names == UNIFIED_COLUMNS
    assert schema.field("labels").type == pa.list_(pa.int8()) == schema.field("label_mask").type
    for split in SPLITS:
        frame = pd.read_parquet(out / f"{split}.parquet")
        assert len(frame) == summary["splits"][split]["kept"]
        assert np.stack(frame["labels"].to_list()).shape == (len(frame), len(cfg["labels"]))
        # Rows whose labels are all unmapped (trust, anticipation, pessimism) are kept and counted.
        no_label = int((np.stack(frame["labels"].to_list()).sum(axis=1) == 0).sum())
        assert summary["splits"][split]["no_covered_label"] == no_label
    assert sum(summary["splits"][s]["no_covered_label"] for s in SPLITS) > 0
    # The synthetic corpus is smaller than the published one: reported and warned about, not fatal.
    assert summary["expected_rows_match"] is False
    assert summary["expected_rows"] == cfg["datasets"]["semeval2018_ec"]["expected_rows"]
    assert summary["expected_rows_mismatches"] == {s: summary["splits"][s]["read"] for s in SPLITS}
    assert "expected_rows" in caplog.text


def test_expected_rows_match_and_all_means_the_total(cfg, synthetic_dir, tmp_path):
    from emogrid.readers import read_dataset

    _, summary = read_dataset("isear", synthetic_dir / "isear", cfg["datasets"]["isear"], cfg["labels"])
    total = sum(counts["read"] for counts in summary["splits"].values())
    cfg["datasets"]["isear"]["expected_rows"] = {"all": total}
    result = preprocess_dataset("isear", synthetic_dir / "isear", cfg, tmp_path / "isear")
    assert result["expected_rows_match"] is True
    cfg["datasets"]["isear"]["expected_rows"] = {"all": total + 1}
    assert (
        preprocess_dataset("isear", synthetic_dir / "isear", cfg, tmp_path / "isear")["expected_rows_match"]
        is False
    )


def test_the_data_keeps_the_coverage_mask_when_masking_is_off(cfg, synthetic_dir, tmp_path):
    # The mask in the data is what evaluation scores on: switching masking off (a training setting)
    # must not make ISEAR or MELD be scored on labels they never annotate.
    cfg.setdefault("data", {})["coverage_masking"] = False
    preprocess_dataset("meld", synthetic_dir / "meld", cfg, tmp_path / "meld")
    frame = pd.read_parquet(tmp_path / "meld" / "train.parquet")
    masks = np.stack(frame["label_mask"].to_list())
    covered = covered_labels(cfg["datasets"]["meld"], cfg["labels"])
    assert (masks == coverage_mask(cfg["datasets"]["meld"], cfg["labels"])).all()
    assert masks.sum(axis=1).max() == len(covered) < len(cfg["labels"])


def test_error_leaves_no_output_and_removes_stale_outputs(cfg, synthetic_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(synthetic_dir / "meld", raw)
    out = tmp_path / "data" / "meld"
    preprocess_dataset("meld", raw, cfg, out)
    assert all(path.exists() for path in output_paths(out).values())
    test_file = raw / cfg["datasets"]["meld"]["splits"]["test"]
    test_file.write_bytes(test_file.read_bytes() + b'999,"broken,Chandler,joy\r\n')
    with pytest.raises(DatasetFormatError) as error:
        preprocess_dataset("meld", raw, cfg, out)
    assert error.value.path == str(test_file)
    assert list(out.iterdir()) == [], "outputs or temp files survived the error"


def test_error_while_writing_leaves_no_output(cfg, synthetic_dir, tmp_path, monkeypatch):
    import emogrid.preprocess as preprocess

    calls = []

    def fail_on_second(frame, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        frame.to_parquet(path)

    monkeypatch.setattr(preprocess, "_write_parquet", fail_on_second)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        preprocess_dataset("goemotions", synthetic_dir / "goemotions", cfg, out)
    assert list(out.iterdir()) == []


def test_texts_shared_with_train_are_counted_not_removed(cfg, synthetic_dir, tmp_path):
    from emogrid.readers import normalized_text, texts_also_in_train

    frames = {
        "train": pd.DataFrame({"text": ["Hello  World", "x"]}),
        "validation": pd.DataFrame({"text": ["hello world", "y", "HELLO WORLD"]}),
        "test": pd.DataFrame({"text": [" X "]}),
    }
    assert texts_also_in_train(frames) == {"validation": 2, "test": 1}
    # On a dataset: the count is in the summary and every row is still there.
    out = tmp_path / "meld"
    summary = preprocess_dataset("meld", synthetic_dir / "meld", cfg, out)
    train = set(pd.read_parquet(out / "train.parquet")["text"].map(normalized_text))
    for split in ("validation", "test"):
        frame = pd.read_parquet(out / f"{split}.parquet")
        assert len(frame) == summary["splits"][split]["kept"]
        assert summary["texts_also_in_train"][split] == frame["text"].map(normalized_text).isin(train).sum()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o027])
def test_outputs_get_the_mode_the_umask_gives_not_mkstemps_private_one(cfg, synthetic_dir, tmp_path, umask):
    # On a shared project directory the group reads the results: mkstemp's 0600 must not survive the
    # rename into place (it did for every file emogrid wrote).
    from emogrid.fetch import fetch_dataset
    from emogrid.io import write_json, write_parquet, write_text

    previous = os.umask(umask)
    try:
        fetched = tmp_path / "raw"
        meld = {**cfg["datasets"]["meld"], "source_dir": str(synthetic_dir / "meld")}
        fetch_dataset("meld", meld, fetched, verify_md5=False)  # the synthetic files, not the real ones
        preprocess_dataset("meld", fetched, cfg, tmp_path / "meld")
        write_json(tmp_path / "w/a.json", {"a": 1})
        write_text(tmp_path / "w/b.md", "b")
        write_parquet(tmp_path / "w/c.parquet", pd.DataFrame({"c": [1]}))
    finally:
        os.umask(previous)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 3 + 4 + 1 + len(cfg["datasets"]["meld"]["files"])
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {oct(0o666 & ~umask)}


def test_a_bad_line_in_a_fetched_file_names_the_users_file_too(cfg, synthetic_dir, tmp_path):
    # Readers see the copy under results/raw/; the user edits the source_dir file it was copied from.
    from emogrid.fetch import fetch_dataset

    source = tmp_path / "mine" / "meld"
    shutil.copytree(synthetic_dir / "meld", source)
    test_file = source / cfg["datasets"]["meld"]["splits"]["test"]
    lines = test_file.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(",", ";", 3)
    test_file.write_text("".join(lines), encoding="utf-8")
    fetched = tmp_path / "raw"
    fetch_dataset("meld", {**cfg["datasets"]["meld"], "source_dir": str(source)}, fetched, verify_md5=False)
    with pytest.raises(DatasetFormatError) as error:
        preprocess_dataset("meld", fetched, cfg, tmp_path / "meld")
    assert error.value.path == str(fetched / test_file.name) and error.value.line == 3
    assert f"[the fetched copy of {test_file}]" in str(error.value)
    # Read from a folder without a manifest (no fetch), the message is the reader's own.
    with pytest.raises(DatasetFormatError) as error:
        preprocess_dataset("meld", source, cfg, tmp_path / "meld")
    assert "fetched copy" not in str(error.value) and error.value.path == str(test_file)
