"""fetch_model: takes safetensors only, and never leaves a half-fetched model folder in place."""

import pytest

from emogrid import hub


def fake_snapshot(files):
    def snapshot_download(repo_id, revision=None, local_dir=None, allow_patterns=None):
        assert "*.bin" not in allow_patterns  # pickle weights are never asked for
        for name in files:
            (local_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (local_dir / name).write_text("x")
        return str(local_dir)

    return snapshot_download


def test_fetch_model_moves_complete_download_into_place(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(
        huggingface_hub, "snapshot_download", fake_snapshot(["model.safetensors", "config.json"])
    )
    out = hub.fetch_model("org/model", tmp_path / "model")
    assert (out / "model.safetensors").is_file()
    assert not (tmp_path / "model.partial").exists()


def test_fetch_model_refuses_pickle_only_models(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot(["config.json"]))
    with pytest.raises(FileNotFoundError, match="safetensors"):
        hub.fetch_model("org/model", tmp_path / "model")
    assert not (tmp_path / "model").exists()
