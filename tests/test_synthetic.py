"""The synthetic corpus: deterministic, in the native formats with their quirks, and learnable."""

import hashlib

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.multiclass import OneVsRestClassifier

import data_fixtures
from emogrid.readers import read_dataset
from emogrid.readers.isear import ISEAR_HEADER
from emogrid.synthetic import main, write_corpus

config, synthetic_dir = data_fixtures.config, data_fixtures.synthetic_dir


def digests(root):
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def raw(synthetic_dir, config, name, split):
    ds = config["datasets"][name]
    return (synthetic_dir / name / ds["splits"][split]).read_bytes()


def test_files_are_named_as_in_config(config, synthetic_dir):
    from emogrid.config import SYNTHETIC_MARKER

    expected = {
        f"{name}/{filename}"
        for name, ds in config["datasets"].items()
        for filename in [*ds["files"], SYNTHETIC_MARKER]
    }
    assert set(digests(synthetic_dir)) == expected


def test_deterministic_given_seed(config, tmp_path):
    write_corpus(tmp_path / "a", config, seed=3, scale=0.3)
    write_corpus(tmp_path / "b", config, seed=3, scale=0.3)
    write_corpus(tmp_path / "c", config, seed=4, scale=0.3)
    a, b, c = (digests(tmp_path / x) for x in "abc")
    assert a == b
    assert all(a[k] != c[k] for k in a if k.endswith((".tsv", ".txt", ".csv")) and "emotions" not in k)


def test_scale_changes_size(config, tmp_path):
    write_corpus(tmp_path / "small", config, scale=0.25)
    write_corpus(tmp_path / "large", config, scale=1.0)
    name, ds = "meld", config["datasets"]["meld"]
    small = (tmp_path / "small" / name / ds["splits"]["train"]).read_bytes().count(b"\r\n")
    large = (tmp_path / "large" / name / ds["splits"]["train"]).read_bytes().count(b"\r\n")
    # One line a row plus the header; at least one row per label (and one more) at any scale.
    from emogrid.synthetic import SIZES, sized

    minimum = len(ds["label_map"]) + 1
    assert large == SIZES[name]["train"] + 1 == sized(SIZES[name]["train"], 1.0, minimum) + 1
    assert small == sized(SIZES[name]["train"], 0.25, minimum) + 1 == round(SIZES[name]["train"] / 4) + 1


def test_goemotions_quirks(config, synthetic_dir):
    lines = raw(synthetic_dir, config, "goemotions", "train").decode().split("\n")
    assert any(line.startswith('"') and '""' in line for line in lines), "no CSV-quoted line"
    assert any("," in line.split("\t")[-2] for line in lines if line), "no multi-label row"
    emotions = (synthetic_dir / "goemotions" / "emotions.txt").read_text()
    assert emotions.split("\n") == config["labels"] and not emotions.endswith("\n")


def test_semeval_quirks(config, synthetic_dir):
    ds = config["datasets"]["semeval2018_ec"]
    lines = raw(synthetic_dir, config, "semeval2018_ec", "train").decode().splitlines()
    assert lines[0].split("\t") == ["ID", "Tweet", *ds["label_map"]]
    assert any(set(line.split("\t")[2:]) == {"0"} for line in lines[1:]), "no all-zero row"


def test_isear_quirks(config, synthetic_dir):
    text = raw(synthetic_dir, config, "isear", "all").decode()
    lines = text.split("\n")
    assert lines[0] == "|".join(ISEAR_HEADER) and not text.endswith("\n")
    assert all(line.endswith("|") for line in lines)
    assert any(len(line.split("|")) > len(ISEAR_HEADER) for line in lines), "no embedded |"
    assert "á" in text and '\\"' in text and ("[ " in text or "RESPONSE" in text.upper())


def test_meld_quirks(config, synthetic_dir):
    data = raw(synthetic_dir, config, "meld", "train")
    text = data.decode("utf-8")
    assert data.count(b"\r\n") == data.count(b"\n")
    assert all(ch in text for ch in "’“”") and ',"Well, ' in text


def test_cli_writes_the_same_corpus(config, tmp_path, capsys):
    main(
        [
            str(tmp_path / "cli"),
            "--config",
            str(data_fixtures.REPO_ROOT / "config/config.yaml"),
            "--scale",
            "0.3",
        ]
    )
    write_corpus(tmp_path / "api", config, seed=0, scale=0.3)
    assert digests(tmp_path / "cli") == digests(tmp_path / "api")
    assert "isear.csv" in capsys.readouterr().out


def features(frames):
    vectorizer = CountVectorizer(binary=True).fit(frames["train"]["text"])
    return {split: vectorizer.transform(frame["text"]) for split, frame in frames.items()}


@pytest.fixture(scope="module")
def full_size_dir(tmp_path_factory, config):
    root = tmp_path_factory.mktemp("full_size")
    write_corpus(root, config, seed=0, scale=1.0)
    return root


@pytest.mark.parametrize("name", ["goemotions", "semeval2018_ec", "isear", "meld"])
def test_text_is_learnable(config, full_size_dir, name):
    """At the demo's size a bag-of-words classifier gets a macro-F1 far above chance
    (chance is about 0.1 for GoEmotions' 28 labels)."""
    ds = config["datasets"][name]
    frames, summary = read_dataset(name, full_size_dir / name, ds, config["labels"])
    covered = [config["labels"].index(label) for label in summary["covered_labels"]]
    x = features(frames)
    y = {split: np.stack(frame["labels"].to_list())[:, covered] for split, frame in frames.items()}
    model = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=500)).fit(x["train"], y["train"])
    present = y["test"].sum(axis=0) > 0
    predicted = model.predict(x["test"])
    score = f1_score(y["test"][:, present], predicted[:, present], average="macro", zero_division=0)
    assert score > 0.5, score
