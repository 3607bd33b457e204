"""Which checkpoint a cell may resume from.

A checkpoint is resumed only if it is complete and was written under the cell's current settings, from
the same data, model files and emogrid code.
The HF Trainer writes a checkpoint's files one after another and `trainer_state.json` last, so a
checkpoint whose state file is missing, unreadable or names another step was cut short (SIGKILL, node
failure, full disk). Such a checkpoint is set aside as `incomplete-checkpoint-<step>`, never loaded, and
the previous complete one is used.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

from emogrid.hub import SOURCE_FILE
from emogrid.io import file_hash, read_json, write_json
from emogrid.provenance import scrub
from emogrid.settings import NAMED_WHEN_NOT_DEFAULT, SCHEDULER_ONLY

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")

# Settings that do not change what training computes: a checkpoint stays valid when only these change
# (a longer time limit for the retry, say).
# The scheduler's settings are already kept out of new cell files; cells written before still carry them.
NOT_TRAINING_IDENTITY = (
    *SCHEDULER_ONLY,
    "save_steps",
    "save_total_limit",
    "logging_steps",
    "tiny_grad_norm",
    "tiny_grad_patience",
    "max_fp16_overflow_steps",
    "keep_checkpoints",
    # Evaluation during training restores the RNG it draws from (EmotionTrainer.evaluate) and selects
    # nothing (no best-model or early stopping), so neither its schedule nor its batch size changes
    # the weights; a changed eval batch size moves predictions by float rounding only.
    "eval_steps",
    "per_device_eval_batch_size",
)
# Cell keys outside `training` that only evaluation reads: which splits are predicted after training,
# and (in cell configs before 2026-12-07) the threshold grid of the validation F1 logged during training.
NOT_TRAINING_CELL_KEYS = ("eval_files", "threshold_grid")


# What only continuing to train reads. A finished cell never continues: any setting that changes what
# training computes discards its checkpoints (discard_stale_checkpoints), and a rerun that finds the
# final checkpoint only predicts from its weights.
TRAINING_STATE_FILES = ("optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt", "rng_state*.pth")
# training.keep_checkpoints when a cell does not name it.
DEFAULT_KEEP = NAMED_WHEN_NOT_DEFAULT["keep_checkpoints"]


def log(message: str) -> None:
    print(f"emogrid: {message}", file=sys.stderr, flush=True)


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be resumed from, or None when it is complete."""
    step = int(CHECKPOINT.match(checkpoint.name).group(1))
    state_path = checkpoint / STATE_FILE
    if not state_path.is_file():
        return f"no {STATE_FILE} (the save was cut short)"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        return f"{STATE_FILE} is unreadable ({error.__class__.__name__}: {error})"
    if state.get("global_step") != step:
        return f"{STATE_FILE} names step {state.get('global_step')}, not {step}"
    has_weights = any(
        (checkpoint / name).is_file() and (checkpoint / name).stat().st_size > 0 for name in WEIGHT_FILES
    )
    has_deepspeed = any(checkpoint.glob("global_step*"))
    if not (has_weights or has_deepspeed):
        return "no model weights"
    return None


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest complete checkpoint; incomplete newer ones are renamed aside and reported."""
    if not checkpoints.is_dir():
        return None
    candidates = sorted(
        (p for p in checkpoints.iterdir() if p.is_dir() and CHECKPOINT.match(p.name)),
        key=lambda p: int(CHECKPOINT.match(p.name).group(1)),
        reverse=True,
    )
    for checkpoint in candidates:
        reason = incomplete_reason(checkpoint)
        if reason is None:
            return str(checkpoint)
        aside = checkpoint.with_name(f"incomplete-{checkpoint.name}")
        if aside.exists():
            shutil.rmtree(aside)
        checkpoint.rename(aside)
        log(f"skipping {checkpoint}: {reason}; moved to {aside.name}, never loaded")
    return None


def input_digests(cell: dict) -> dict:
    """Content digests of what training reads: its token files, the model folder, emogrid's code and
    the DeepSpeed config when there is one.

    A cell's settings name its inputs by path only. After the data, the model or the code changed
    under the same paths (a new label map, a rebuilt tokenizer, a fixed loss and `--forcerun train`),
    resuming the old final checkpoint would train 0 steps and predict with the old model.
    """
    data = {path: file_hash(Path(path)) for path in [*cell["train_files"], *cell["validation_files"]]}
    model_dir = Path(cell["model"]["path"])
    model = {}
    if model_dir.is_dir():
        for path in sorted(model_dir.rglob("*")):
            relative = path.relative_to(model_dir)
            # Hidden entries (the hub's .cache) and emogrid's fetch record are bookkeeping, not the model:
            # pinning model.revision to the recorded commit rewrites the record, not the weights.
            bookkeeping = relative.as_posix() == SOURCE_FILE or any(p.startswith(".") for p in relative.parts)
            if path.is_file() and not bookkeeping:
                model[relative.as_posix()] = file_hash(path)
    digests = {"data": data, "model": model, "code": code_digest()}
    deepspeed = cell["training"].get("deepspeed")
    if deepspeed:
        # Named by path in the settings; its contents (ZeRO stage, offload) shape the optimizer state.
        digests["deepspeed"] = file_hash(Path(deepspeed))
    return digests


def _module_file(package: Path, name: str) -> Path:
    base = package.joinpath(*name.split(".")[1:])
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


# Modules training imports for what it records, never for what it computes: the validation scores it
# logs and the collapse check (evaluate: nothing is selected by them), the device description
# (devices, htmlpage), which code ran (provenance) and exception classes (errors). Left out of the code
# digest with what they alone import, so a new report metric or config check does not make every
# finished cell's checkpoint count as another code's, and a rerun train instead of only predicting.
RECORD_ONLY_MODULES = ("evaluate", "devices", "htmlpage", "provenance", "errors")


def training_sources(entry: str = "train") -> list[Path]:
    """emogrid's source files that `emogrid.<entry>` imports, directly or through each other, except the
    RECORD_ONLY_MODULES.

    Read from the import statements (wherever they stand in a file), not from what a process happens to
    have imported, so every process computes the same list. Modules training never imports (reports,
    plots, readers, the config checks) are not in it: editing them while a grid runs does not make a
    preempted cell start over.
    """
    package = Path(__file__).resolve().parent
    skipped = {package / f"{name}.py" for name in RECORD_ONLY_MODULES}
    # The package's __init__ runs before any of its modules, whoever imports what.
    todo, seen = [package / f"{entry}.py", package / "__init__.py"], set()
    while todo:
        path = todo.pop()
        if path in seen or path in skipped or not path.is_file():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            todo += [_module_file(package, n) for n in names if n == "emogrid" or n.startswith("emogrid.")]
    return sorted(seen)


def code_digest() -> str:
    """sha256 over the training code's sources (`training_sources`)."""
    package = Path(__file__).resolve().parent
    code = hashlib.sha256()
    for path in training_sources():
        code.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return code.hexdigest()


def training_identity(cell: dict, world_size: int = 1, precision: str = "fp32") -> dict:
    """What a checkpoint depends on: the cell minus evaluation targets and bookkeeping settings, the
    number of training processes, the precision it computes in, and the contents of its inputs.

    The process count is what the job got, not what the config says: a GRES request ("gpu:4") sets it
    outside the cell, and it sets the global batch and the steps per epoch. The precision too is what
    the job's device gave: `precision: auto` means bf16 on an A100 and fp16 on a V100, so a cell
    preempted on one and restarted on the other would otherwise finish in another precision than it
    began, while its record names only the last.

    The settings are scrubbed as run_info.json is (a token in a model name or path never reaches the
    stamp); the input digests are not scrubbed: file names and sha256 digests hold no credential.
    """
    settings = {k: v for k, v in cell.items() if k not in NOT_TRAINING_CELL_KEYS}
    settings["training"] = {k: v for k, v in cell["training"].items() if k not in NOT_TRAINING_IDENTITY}
    settings["world_size"] = int(world_size)
    settings["precision_used"] = precision
    identity = {**scrub(settings), "inputs": input_digests(cell)}
    return json.loads(json.dumps(identity, default=str))


def identity_changes(old: dict, new: dict) -> list[str]:
    """What differs between two identities, in words."""
    inputs_old, inputs_new = old.get("inputs", {}), new.get("inputs", {})
    parts = {
        "data": "the training data",
        "model": "the model files",
        "code": "emogrid's code",
        "deepspeed": "the DeepSpeed config",
    }
    changes = [what for key, what in parts.items() if inputs_old.get(key) != inputs_new.get(key)]
    if old.get("world_size", 1) != new.get("world_size", 1):
        changes.insert(
            0, f"the number of training processes ({old.get('world_size', 1)} -> {new.get('world_size', 1)})"
        )
    if old.get("precision_used") != new.get("precision_used"):
        was = old.get("precision_used", "not recorded")
        changes.insert(0, f"the precision computed in ({was} -> {new.get('precision_used')})")
    own = ("inputs", "world_size", "precision_used")
    settings_old = {k: v for k, v in old.items() if k not in own}
    settings_new = {k: v for k, v in new.items() if k not in own}
    if settings_old != settings_new:
        changes.insert(0, "the cell's settings")
    return changes


def discard_stale_checkpoints(
    checkpoints: Path, cell: dict, world_size: int = 1, precision: str = "fp32"
) -> dict:
    """Checkpoints written under other settings (a new learning rate, more epochs), other data, another
    model or other code are not resumed.

    Otherwise a changed cell would silently continue an old run. The settings and the inputs' digests
    are stamped next to the checkpoints; on a mismatch they are deleted and the cell starts fresh,
    which the log says. Returns the identity (the run's record keeps its input digests).
    """
    stamp = checkpoints / "training_identity.json"
    identity = training_identity(cell, world_size, precision)
    if any(checkpoints.glob("*checkpoint-*")):
        old = read_json(stamp) if stamp.exists() else {}
        if isinstance(old.get("training"), dict):
            # A stamp written before a key joined NOT_TRAINING_IDENTITY still holds it: not a difference.
            old["training"] = {k: v for k, v in old["training"].items() if k not in NOT_TRAINING_IDENTITY}
        if old == identity:
            return identity
        if not old:
            why = "no record of what wrote them"
        elif "inputs" not in old:
            why = "their record, from an older emogrid, has no digests of the inputs"
        else:
            why = f"{', '.join(identity_changes(old, identity))} changed"
        log(
            f"cell {cell['name']}: the checkpoints in {checkpoints} were written with other settings "
            f"({why}); deleting them and starting fresh"
        )
        shutil.rmtree(checkpoints)
    write_json(stamp, identity)
    return identity


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prune_finished(checkpoints: Path, keep: str, deepspeed: bool) -> dict:
    """Once a cell's predictions are written, keep of its checkpoints only what `keep` asks for.

    weights: the final checkpoint's weights and trainer state, which a rerun (new evaluation datasets,
    a job killed while predicting) resumes from to predict again without training; the earlier
    checkpoints and the optimizer, scheduler and RNG states go (about two thirds of a checkpoint with
    AdamW). Under DeepSpeed the Trainer resumes only from DeepSpeed's own state, so the final checkpoint
    stays whole there. all: keep what the Trainer left. none: delete the checkpoints; a rerun then trains
    the cell again. Returns what was kept and how many bytes were freed.
    """
    if keep not in ("weights", "all", "none"):
        raise ValueError(f"training.keep_checkpoints: {keep!r} is not one of weights, all, none")
    if keep == "none":
        freed = _size(checkpoints) if checkpoints.is_dir() else 0
        shutil.rmtree(checkpoints, ignore_errors=True)
        return {"policy": keep, "kept": None, "freed_bytes": freed}
    final = last_complete_checkpoint(checkpoints)
    if keep == "all" or final is None:
        return {"policy": keep, "kept": final, "freed_bytes": 0}
    final = Path(final)
    doomed = [p for p in checkpoints.iterdir() if p.is_dir() and p != final and "checkpoint-" in p.name]
    if not deepspeed:
        doomed += [p for pattern in TRAINING_STATE_FILES for p in final.glob(pattern)]
    freed = 0
    for path in doomed:
        freed += _size(path)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return {"policy": keep, "kept": str(final), "freed_bytes": freed}
