"""Fetch a pretrained model from the Hugging Face hub once, on a node with internet.

Training jobs then load it from `results/model/` with no network, as compute nodes often have none.
Only safetensors weights are taken: pickle checkpoints can run code when loaded.
"""

from __future__ import annotations

from pathlib import Path

WANTED = ["*.json", "*.safetensors", "*.model", "*.txt", "tokenizer*", "spm*"]


def fetch_model(repo_id: str, out_dir: str | Path, revision: str | None = None) -> Path:
    from huggingface_hub import snapshot_download

    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    snapshot_download(repo_id, revision=revision, local_dir=partial, allow_patterns=WANTED)
    if not any(partial.glob("*.safetensors")):
        raise FileNotFoundError(
            f"{repo_id}: no safetensors weights on the hub; refusing to load pickle weights. "
            "Convert them, or point model.name at a local directory with model.safetensors."
        )
    partial.rename(out_dir)
    return out_dir
