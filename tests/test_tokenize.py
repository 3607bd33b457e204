"""Tokenizing without torch, and the training job's check that the tokens fit the model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emogrid.tokenize import check_tokens, load_declared_tokenizer, load_tokenizer, tokenize_texts

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


@pytest.mark.parametrize("declared", [None, "NoSuchTokenizer", "evil.Tokenizer"])
def test_declared_tokenizer_falls_back_to_autotokenizer(tiny_corpus, tmp_path, declared):
    """No declared class, or one that is not a transformers tokenizer class: AutoTokenizer decides."""
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
    with pytest.raises(ValueError, match=rf"{path}: row {row} .*not made by this model's tokenizer"):
        check_tokens(frame, load_tokenizer(tiny_corpus["model_dir"]), 32, path)


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
