"""Tokenizing without torch, and the training job's check that the tokens fit the model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emogrid.io import parquet_attrs
from emogrid.tokenize import (
    check_tokens,
    load_declared_tokenizer,
    load_tokenizer,
    tokenize_split,
    tokenize_texts,
)


def truncated_rows(path):
    return parquet_attrs(path).get("truncated_rows")


TEXTS = ["I am so happy today!", "this is awful and sad", "ok", "Wow... what a surprise?! " * 20]


def test_declared_tokenizer_loads_without_torch_and_tokenizes_as_autotokenizer(tiny_corpus):
    folder = tiny_corpus["model_dir"]
    probe = (
        "import json, sys\n"
        "from emogrid.tokenize import load_declared_tokenizer, tokenize_texts\n"
        f"tokenizer = load_declared_tokenizer({str(folder)!r})\n"
        f"ids = tokenize_texts(tokenizer, {TEXTS!r}, 32)\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'class': type(tokenizer).__name__,"
        " 'ids': [x.tolist() for x in ids]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    auto = load_tokenizer(folder)
    assert not seen["torch"], "loading the declared tokenizer imported torch"
    assert seen["class"] == type(auto).__name__ == "DebertaV2Tokenizer"
    assert seen["ids"] == [x.tolist() for x in tokenize_texts(auto, TEXTS, 32)]


@pytest.mark.parametrize(
    "declared",
    [None, "NoSuchTokenizer", "evil.Tokenizer", "PythonBackend", "TokenizersBackend"],
)
def test_declared_tokenizer_falls_back_to_autotokenizer(tiny_corpus, tmp_path, declared):
    """No declared class, one transformers does not have (a name from the folder's own code) or a
    generic base class: AutoTokenizer decides."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_corpus["model_dir"], folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.pop("tokenizer_class")
    if declared is not None:
        settings["tokenizer_class"] = declared
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    tokenizer = load_declared_tokenizer(folder)
    auto = load_tokenizer(folder)
    assert type(tokenizer) is type(auto)
    assert [x.tolist() for x in tokenize_texts(tokenizer, TEXTS, 32)] == [
        x.tolist() for x in tokenize_texts(auto, TEXTS, 32)
    ]


@pytest.mark.parametrize("content", ['{"tokenizer_class": "DebertaV2Tokenizer",', "[1, 2]"])
def test_a_broken_tokenizer_config_is_named(tiny_corpus, tmp_path, content):
    folder = tmp_path / "model"
    shutil.copytree(tiny_corpus["model_dir"], folder)
    (folder / "tokenizer_config.json").write_text(content)
    with pytest.raises(ValueError, match=f"{folder / 'tokenizer_config.json'}: not a JSON object"):
        load_declared_tokenizer(folder)


def test_a_model_class_named_as_the_tokenizer_is_refused_not_loaded(tiny_corpus, tmp_path):
    """AutoTokenizer instantiates any transformers class tokenizer_config.json names; a model class
    there is refused by both loaders, naming the file."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_corpus["model_dir"], folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(
        json.dumps(settings | {"tokenizer_class": "DebertaV2Model"})
    )
    for load in (load_tokenizer, load_declared_tokenizer):
        with pytest.raises(ValueError, match="tokenizer_config.json: its tokenizer_class .* DebertaV2Model"):
            load(folder)


def test_check_tokens_accepts_the_models_own_tokens(tiny_corpus):
    path = tiny_corpus["files"][("alpha", "train")]
    check_tokens(pd.read_parquet(path), load_tokenizer(tiny_corpus["model_dir"]), 32, path)


@pytest.mark.parametrize("row", [0, 50, 95])
def test_check_tokens_names_the_file_and_row_of_foreign_tokens(tiny_corpus, row):
    path = tiny_corpus["files"][("alpha", "train")]
    frame = pd.read_parquet(path)
    assert len(frame) == 96
    ids = np.array(frame.at[row, "input_ids"])
    ids[1] = ids[1] + 1  # one id off, as a different vocabulary would give
    frame.at[row, "input_ids"] = ids
    with pytest.raises(ValueError, match=rf"{path}: row {row} .*not made by this model's tokenizer") as error:
        check_tokens(frame, load_tokenizer(tiny_corpus["model_dir"]), 32, path)
    assert "differ first at position 1 " in str(error.value) and "--forcerun tokenize" in str(error.value)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"class": "BertTokenizer"}, "class"),
        ({"backend_sha256": "0" * 64}, "backend_sha256"),
        ({"max_length": 64}, "max_length"),
    ],
)
def test_check_tokens_refuses_a_file_recording_another_tokenizer(tiny_corpus, change, named):
    """The record is exact where the row sample is not: a tokenizer that transformers overrides may give
    the same ids for every sampled row and differ elsewhere."""
    path = tiny_corpus["files"][("beta", "test")]
    frame = pd.read_parquet(path)
    recorded = frame.attrs["tokenizer"]
    assert recorded["class"] == "DebertaV2Tokenizer" and len(recorded["backend_sha256"]) == 64
    frame.attrs["tokenizer"] = recorded | change | {"folder": "/models/x/tokenizer"}
    with pytest.raises(ValueError, match=rf"{path}: made by another tokenizer .*\({named} differ\)") as error:
        check_tokens(frame, load_tokenizer(tiny_corpus["model_dir"]), 32, path)
    assert "/models/x/tokenizer" in str(error.value)


def test_the_record_survives_tokenizing_and_another_load(tiny_corpus, tmp_path):
    """Tokenizing sets truncation on the backend; that per-call state is not part of the record, so two
    loads of one folder, before and after use, record the same tokenizer."""
    from emogrid.tokenize import tokenizer_record

    first = load_declared_tokenizer(tiny_corpus["model_dir"])
    before = tokenizer_record(first, 32)
    tokenize_texts(first, TEXTS, 8)
    assert (
        tokenizer_record(first, 32)
        == before
        == tokenizer_record(load_tokenizer(tiny_corpus["model_dir"]), 32)
    )


def test_check_tokens_refuses_tokens_cut_at_another_max_length(tiny_corpus, tmp_path):
    tokenizer = load_tokenizer(tiny_corpus["model_dir"])
    frame = pd.DataFrame({"id": ["long"], "text": [TEXTS[-1]]})
    frame["input_ids"] = tokenize_texts(tokenizer, frame["text"].tolist(), 64)
    assert len(frame.at[0, "input_ids"]) == 64
    check_tokens(frame, tokenizer, 64, tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="row 0 \\('long'\\)"):
        check_tokens(frame, tokenizer, 32, tmp_path / "t.parquet")


def test_training_refuses_token_files_from_another_tokenizer(tiny_corpus, make_cell, tmp_path):
    """The train job checks every token file it reads against the model's tokenizer before training."""
    from emogrid.train import build_trainer

    source = tiny_corpus["files"][("beta", "train")]
    frame = pd.read_parquet(source)
    frame["input_ids"] = [np.asarray(x)[::-1].copy() for x in frame["input_ids"]]  # [SEP] ... [CLS]
    foreign = tmp_path / "beta_train.parquet"
    frame.to_parquet(foreign, index=False)
    cell = make_cell()
    build_trainer(cell)  # the corpus's own tokens pass
    cell["train_files"] = [str(foreign) if f == str(source) else f for f in cell["train_files"]]
    assert str(foreign) in cell["train_files"]
    with pytest.raises(ValueError, match=f"{foreign}: row 0 "):
        build_trainer(cell)


def test_a_declared_class_that_transformers_overrides_stops_training(tiny_corpus, tmp_path):
    """With model_type "modernbert" AutoTokenizer ignores the declared DebertaV2Tokenizer and loads a
    generic TokenizersBackend. The tokenize job's tokens then record another tokenizer than training's,
    and the check refuses them even where the sampled rows happen to agree."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_corpus["model_dir"], folder)
    settings = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(settings | {"model_type": "modernbert"}))
    declared, auto = load_declared_tokenizer(folder), load_tokenizer(folder)
    assert type(declared).__name__ == "DebertaV2Tokenizer" and type(auto).__name__ == "TokenizersBackend"
    out = tmp_path / "tokens.parquet"
    tokenize_split(tiny_corpus["root"] / "data" / "alpha" / "test.parquet", declared, 32, out, folder=folder)
    frame = pd.read_parquet(out)
    with pytest.raises(ValueError, match="made by another tokenizer than this model's \\(class") as error:
        check_tokens(frame, auto, 32, out)
    assert "set tokenizer_class there to 'TokenizersBackend'" in str(error.value)
    assert str(folder) in str(error.value)
    # The rows alone would not have told: here the two classes give the same ids.
    frame.attrs.pop("tokenizer")
    check_tokens(frame, auto, 32, out)


def test_token_files_count_the_rows_max_length_cut(tiny_corpus, tmp_path):
    tokenizer = load_tokenizer(tiny_corpus["model_dir"])
    lengths = [len(ids) for ids in tokenizer(TEXTS, truncation=False)["input_ids"]]
    # A limit that one text fills exactly and another exceeds: only the second loses tokens.
    max_length = sorted(lengths)[-2]
    assert max(lengths) > max_length and lengths.count(max_length) >= 1
    source = tmp_path / "data.parquet"
    pd.DataFrame({"id": [str(i) for i in range(len(TEXTS))], "text": TEXTS}).to_parquet(source)
    out = tmp_path / "tokens.parquet"
    tokenize_split(source, tokenizer, max_length, out)
    expected = sum(length > max_length for length in lengths)
    assert truncated_rows(out) == pd.read_parquet(out).attrs["truncated_rows"] == expected >= 1
    tokenize_split(source, tokenizer, max(lengths), out)
    assert truncated_rows(out) == 0
    # A token file from before the count existed has none to report.
    pd.DataFrame({"id": ["0"], "input_ids": [np.array([1, 2], dtype=np.int32)]}).to_parquet(out)
    assert truncated_rows(out) is None
