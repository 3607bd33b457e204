"""fetch_model: one pinned commit, safetensors only (a hub pickle is converted with torch's restricted
loader), a record of what was fetched, and never a half-fetched model folder in place."""

import fnmatch
import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from emogrid import hub
from emogrid.errors import HubError
from emogrid.io import file_hash
from emogrid.modeling import load_classifier

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub(monkeypatch, files: dict, commit: str = COMMIT):
    """The hub with one repo whose `commit` holds `files` (name -> bytes, or a callable writing it)."""
    import huggingface_hub

    asked = {}

    class Api:
        def model_info(self, repo_id, revision=None):
            asked["revision"] = revision
            return SimpleNamespace(sha=commit, siblings=[SimpleNamespace(rfilename=n) for n in files])

    def snapshot_download(repo_id, revision=None, local_dir=None, allow_patterns=None):
        asked["download_revision"], asked["patterns"] = revision, allow_patterns
        for name, content in files.items():
            if not any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                continue
            (local_dir / name).parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                content(local_dir / name)
            else:
                (local_dir / name).write_bytes(content)
        (local_dir / ".cache").mkdir(exist_ok=True)
        (local_dir / ".cache" / "meta").write_text("hub bookkeeping")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return asked


def test_fetch_model_pins_the_commit_and_records_what_it_fetched(tmp_path, monkeypatch):
    asked = fake_hub(
        monkeypatch, {"model.safetensors": b"w", "config.json": b"{}", "pytorch_model.bin": b"p"}
    )
    out = hub.fetch_model("org/model", tmp_path / "model", revision="v1.0")
    assert asked["revision"] == "v1.0" and asked["download_revision"] == COMMIT
    assert (
        "pytorch_model.bin" not in asked["patterns"]
    )  # pickle weights are not asked for when safetensors exist
    assert (out / "model.safetensors").is_file() and not (out / "pytorch_model.bin").exists()
    assert not (tmp_path / "model.partial").exists()
    source = json.loads((out / hub.SOURCE_FILE).read_text())
    assert source["repo_id"] == "org/model" and source["commit"] == COMMIT
    assert source["revision_requested"] == "v1.0" and source["converted_from"] is None
    assert sorted(source["files"]) == ["config.json", "model.safetensors"]
    assert source["files"]["config.json"] == file_hash(out / "config.json")


def test_a_hub_pickle_is_converted_to_safetensors_with_the_same_tensors(tmp_path, monkeypatch, tiny_corpus):
    # As microsoft/deberta-v3-large: only pytorch_model.bin on the main branch. The tensors come from
    # the test's tiny DeBERTa-v3, with an extra tied tensor as an MLM head tied to the embeddings has.
    model_dir = tiny_corpus["model_dir"]
    state = load_file(str(model_dir / "model.safetensors"))
    embeddings = next(name for name in state if "word_embeddings" in name)
    state["lm_predictions.decoder.weight"] = state[embeddings]  # shares memory
    files = {
        p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file() and p.suffix != ".safetensors"
    }
    files["pytorch_model.bin"] = lambda path: torch.save(state, path)
    fake_hub(monkeypatch, files)
    out = hub.fetch_model("org/model", tmp_path / "model")
    assert not (out / "pytorch_model.bin").exists()
    converted = load_file(str(out / "model.safetensors"))
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)
    source = json.loads((out / hub.SOURCE_FILE).read_text())
    assert (
        source["converted_from"]["file"] == "pytorch_model.bin"
        and len(source["converted_from"]["sha256"]) == 64
    )
    # safetensors writes 0600: the converted weights get what the umask allows, like every other file.
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o444 & ~umask == 0o444 & ~umask for p in out.rglob("*") if p.is_file())
    # The converted folder is a model the workflow loads, without the pickle flag.
    classifier = load_classifier(str(out), 28, "mean")
    loaded = dict(classifier.encoder.named_parameters())
    assert torch.equal(loaded["embeddings.word_embeddings.weight"], state[embeddings])


class NotATensor:
    """Unpickling this means importing and building an arbitrary class: the restricted loader refuses."""


@pytest.mark.parametrize(
    ("content", "message"),
    [({"x": NotATensor()}, "[Ww]eights only load failed"), ({"x": 3}, "not a state dict of tensors")],
)
def test_a_pickle_that_is_not_plain_tensors_is_refused(tmp_path, monkeypatch, content, message):
    fake_hub(monkeypatch, {"config.json": b"{}", "pytorch_model.bin": lambda p: torch.save(content, p)})
    with pytest.raises(Exception, match=message):
        hub.fetch_model("org/model", tmp_path / "model")
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


def test_fetch_model_refuses_models_without_weights(tmp_path, monkeypatch):
    fake_hub(monkeypatch, {"config.json": b"{}", "tf_model.h5": b"tf"})
    with pytest.raises(FileNotFoundError, match="neither safetensors weights nor"):
        hub.fetch_model("org/model", tmp_path / "model")
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


def test_run_info_names_the_commit_the_weights_came_from(tmp_path):
    from emogrid.train import model_source

    assert model_source(str(tmp_path)) is None  # a local model folder: nothing to name
    (tmp_path / hub.SOURCE_FILE).write_text(json.dumps({"repo_id": "org/model", "commit": COMMIT}))
    assert model_source(str(tmp_path))["commit"] == COMMIT


def test_safetensors_in_a_subfolder_do_not_hide_a_top_level_pickle(tmp_path, monkeypatch):
    # A sentence-transformers layout: the encoder's weights only as a pickle, a dense head's weights in
    # a subfolder as safetensors. The encoder's pickle is fetched and converted.
    tensors = {"w": torch.ones(2, 2)}
    files = {
        "config.json": b"{}",
        "pytorch_model.bin": lambda p: torch.save(tensors, p),
        "2_Dense/model.safetensors": b"head",
    }
    asked = fake_hub(monkeypatch, files)
    out = hub.fetch_model("org/model", tmp_path / "model")
    assert "pytorch_model.bin" in asked["patterns"]
    assert torch.equal(load_file(str(out / "model.safetensors"))["w"], tensors["w"])


def test_an_unresolved_revision_is_not_fetched_unpinned(tmp_path, monkeypatch):
    fake_hub(monkeypatch, {"model.safetensors": b"w"}, commit=None)
    with pytest.raises(RuntimeError, match="no commit"):
        hub.fetch_model("org/model", tmp_path / "model", revision="v9")
    assert not (tmp_path / "model").exists()


def test_offline_the_error_names_the_config_key_and_the_way_out(tmp_path, monkeypatch):
    # The real client, offline: the first call to the hub fails, and the error says which model and
    # what to do instead of ending a long traceback in a DNS error.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError) as caught:
        hub.fetch_model("microsoft/deberta-v3-large", tmp_path / "model")
    message = str(caught.value)
    assert "'model.name' = 'microsoft/deberta-v3-large' (revision main)" in message
    assert f"snakemake {tmp_path / 'model'} --cores 1" in message and "local model folder" in message
    assert "Offline" in message  # the hub client's own reason is kept
    assert not list(tmp_path.iterdir())


def test_a_download_that_fails_midway_leaves_nothing_and_names_the_model(tmp_path, monkeypatch):
    import huggingface_hub

    fake_hub(monkeypatch, {"model.safetensors": b"w", "config.json": b"{}"})

    def cut(repo_id, revision=None, local_dir=None, allow_patterns=None):
        (local_dir / "config.json").parent.mkdir(parents=True, exist_ok=True)
        (local_dir / "config.json").write_text("{}")
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cut)
    with pytest.raises(HubError, match="download failed: ConnectionError: connection reset by peer"):
        hub.fetch_model("org/model", tmp_path / "model", revision="v1")
    assert not list(tmp_path.iterdir())
