"""Fetch a pretrained model from the Hugging Face hub once, on a node with internet.

Training jobs then load it from `results/model/` with no network, as compute nodes often have none.
The download is pinned to one commit: the requested revision (a branch, tag or commit; default the
repo's main branch) is resolved first, every file comes from that commit, and `emogrid_source.json`
in the model folder records the repo, the revision asked for, the commit and each file's sha256.

Weights end up as safetensors only. Many models on the hub publish only a pickle `pytorch_model.bin`
on their main branch; the DeBERTa-v3 checkpoints are reported to (keras-team/keras-hub#2125). That
file is then converted here with `torch.load(weights_only=True)`, torch's restricted unpickler, which
admits tensors and plain containers and refuses anything else (it cannot run code from the file), and
the pickle is deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from emogrid.errors import ConfigError, HubError
from emogrid.io import file_hash, readable_as_umask_allows

WANTED = ["*.json", "*.safetensors", "*.model", "*.txt", "tokenizer*", "spm*"]
PICKLE_WEIGHTS = "pytorch_model.bin"
# emogrid's record of the fetch; named so that no file of the repo itself is overwritten.
SOURCE_FILE = "emogrid_source.json"


def check_model_folder(path: str | Path, allow_pickle: bool) -> None:
    """A local model folder whose only weights are pickles (which can run code when loaded) needs
    model.allow_pickle_weights. Checked when the workflow starts and again when a cell loads it."""
    local = Path(path)
    if any(local.glob("*.safetensors")) or allow_pickle:
        return
    pickles = sorted(p.name for p in local.glob("*.bin")) + sorted(p.name for p in local.glob("*.pt"))
    if pickles:
        raise ConfigError(
            "model.allow_pickle_weights",
            f"{path} has only pickle weights ({', '.join(pickles)}), which can run code when loaded; "
            "convert them to safetensors, or set model.allow_pickle_weights: true if you trust the source",
        )


def convert_pickle_weights(folder: Path) -> dict:
    """Replace folder/pytorch_model.bin by model.safetensors with the same tensors; returns a record."""
    import torch
    from safetensors.torch import save_file

    pickle_path = folder / PICKLE_WEIGHTS
    record = {"file": PICKLE_WEIGHTS, "sha256": file_hash(pickle_path)}
    state = torch.load(pickle_path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{pickle_path}: not a state dict of tensors; refusing to convert it")
    # safetensors stores no shared memory: tied weights (an MLM head tied to the embeddings) get copies.
    seen: set[int] = set()
    tensors = {}
    for name, tensor in state.items():
        pointer = tensor.untyped_storage().data_ptr()
        tensors[name] = tensor.clone().contiguous() if pointer in seen else tensor.contiguous()
        seen.add(pointer)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    pickle_path.unlink()
    return record


def fetch_model(repo_id: str, out_dir: str | Path, revision: str | None = None) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    try:
        info = HfApi().model_info(repo_id, revision=revision)
    except Exception as error:  # offline, no route, no such repo or revision, gated, ...
        raise HubError(
            repo_id, revision, out_dir, f"the hub did not answer: {type(error).__name__}: {error}"
        ) from error
    if not info.sha:
        raise RuntimeError(
            f"{repo_id}: the hub named no commit for revision {revision!r}; not fetching unpinned"
        )
    files = {sibling.rfilename for sibling in info.siblings or []}
    # Top-level weights only: a sentence-transformers repo keeps other modules' weights in subfolders.
    has_safetensors = any(name.endswith(".safetensors") and "/" not in name for name in files)
    patterns = WANTED if has_safetensors else [*WANTED, PICKLE_WEIGHTS]
    if not has_safetensors and PICKLE_WEIGHTS not in files:
        raise FileNotFoundError(
            f"{repo_id}@{info.sha}: neither safetensors weights nor a single {PICKLE_WEIGHTS} on the hub "
            f"(files: {', '.join(sorted(files)) or 'none'}). Point model.name at a local directory with "
            "model.safetensors."
        )
    try:
        # The resolved commit, not the branch name: a push during the download cannot mix two versions.
        try:
            snapshot_download(repo_id, revision=info.sha, local_dir=partial, allow_patterns=patterns)
        except Exception as error:
            raise HubError(
                repo_id, revision, out_dir, f"download failed: {type(error).__name__}: {error}"
            ) from error
        converted = None
        if not any(partial.glob("*.safetensors")):
            if not (partial / PICKLE_WEIGHTS).is_file():
                raise FileNotFoundError(f"{repo_id}@{info.sha}: the download has no weights")
            converted = convert_pickle_weights(partial)
        record = {
            "repo_id": repo_id,
            "revision_requested": revision,
            "commit": info.sha,
            "converted_from": converted,
            "files": {
                path.relative_to(partial).as_posix(): file_hash(path)
                for path in sorted(partial.rglob("*"))
                if path.is_file() and not any(p.startswith(".") for p in path.relative_to(partial).parts)
            },
        }
        (partial / SOURCE_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        readable_as_umask_allows(partial)
        partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out_dir
