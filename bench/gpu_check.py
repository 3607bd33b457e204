"""GPU paths of the training CLI, on a real GPU: precision, activation checkpointing, DeepSpeed
ZeRO-2, the torchrun launch, and the throughput of a DeBERTa-v3-large-shaped encoder.

    python bench/gpu_check.py OUT_DIR [NAME ...]   # only these variants: a NAME is a variant's whole
                                                   # name, or else a part of the names it selects

Uses the real pipeline on the synthetic corpus (reader -> unified parquet -> tiny DeBERTa-v3 ->
tokenize -> emogrid.train). Writes OUT_DIR/gpu_check.json. Needs no network.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch
import yaml
from _common import DATASETS, REPO  # bench/, the script's own folder
from train_throughput import StepClock

from emogrid import train
from emogrid.config import cell_config
from emogrid.io import read_json, write_json
from emogrid.preprocess import preprocess_dataset
from emogrid.synthetic import write_corpus
from emogrid.tiny_model import build_tiny_deberta
from emogrid.tokenize import load_tokenizer, tokenize_split
from emogrid.train import run_cell


def merge(base: dict, overlay: dict) -> dict:
    for key, value in overlay.items():
        base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return base


def load_demo_config(root: Path) -> dict:
    """config.yaml with the demo overlay (no snakemake on the GPU machine, so merged here)."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    merge(config, yaml.safe_load((REPO / "config/demo.yaml").read_text()))
    for name in DATASETS:
        config["datasets"][name]["source_dir"] = str(root / "synthetic" / name)
    return config


def prepare(root: Path, config: dict) -> Path:
    write_corpus(root / "synthetic", config, seed=0, scale=2.0)
    for name in DATASETS:
        preprocess_dataset(name, root / "synthetic" / name, config, root / "data" / name)
    texts = [t for name in DATASETS for t in pd.read_parquet(root / "data" / name / "train.parquet")["text"]]
    model = build_tiny_deberta(texts, config["labels"], root / "model")
    tokenizer = load_tokenizer(model)
    for name in DATASETS:
        for split in ("train", "validation", "test"):
            source = root / "data" / name / f"{split}.parquet"
            tokenize_split(source, tokenizer, 64, root / "tokens" / name / f"{split}.parquet")
    return model


def large_shaped_model(root: Path, small_model: Path) -> Path:
    """A randomly initialised encoder with DeBERTa-v3-large's shape (435M parameters)."""
    from transformers import DebertaV2Model

    from emogrid.tiny_model import tiny_config

    config = tiny_config(128100, 28, hidden_size=1024, layers=24, heads=16, dropout=0.1)
    config.intermediate_size = 4096
    out = root / "large"
    DebertaV2Model(config).save_pretrained(out)
    for f in small_model.glob("*token*"):
        (out / f.name).write_bytes(f.read_bytes())
    (out / "spm.model").write_bytes((small_model / "spm.model").read_bytes())
    return out


class ClockedTrainers:
    """While open, the trainer `emogrid.train` builds also gets a StepClock (bench/train_throughput.py):
    the steady rate over the second half of the steps leaves out a compile's first steps."""

    def __init__(self):
        self.clock, self.build = StepClock(), train.build_trainer

        def build_with_clock(cell, callbacks=None):
            return self.build(cell, callbacks=[*(callbacks or []), self.clock])

        train.build_trainer = build_with_clock

    def close(self, examples_per_step: int) -> float | None:
        train.build_trainer = self.build
        ends = self.clock.ends
        half = len(ends) // 2
        if len(ends) - half < 2:
            return None
        return round(examples_per_step * (len(ends) - 1 - half) / (ends[-1] - ends[half]), 2)


def summarize(out_dir: Path, seconds: float) -> dict:
    log = read_json(out_dir / "train_log.json")
    info = read_json(out_dir / "run_info.json")
    history = log["log_history"]
    losses = [e["loss"] for e in history if "loss" in e]
    norms = [e["grad_norm"] for e in history if "grad_norm" in e]
    final = next((e for e in reversed(history) if "train_samples_per_second" in e), {})
    return {
        "seconds": round(seconds, 1),
        "steps": log["global_step"],
        "precision": info["precision"],
        "device": info["device"],
        "world_size": info["world_size"],
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "grad_norms_finite": all(math.isfinite(x) for x in norms),
        "train_samples_per_second": final.get("train_samples_per_second"),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if torch.cuda.is_available()
        else None,
        "warnings": log["warnings"],
    }


def run_variant(
    root: Path, config: dict, model: Path, name: str, training: dict, mix="all4", model_over=None
) -> dict:
    cell = cell_config(config, mix, "combined", "none", 1, str(root), str(model))
    cell["model"].update(model_over or {})
    cell["training"].update(training)
    cell["output_dir"] = str(root / "runs" / name)
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    torch._dynamo.reset()  # each variant compiles (or not) from scratch
    clock = ClockedTrainers()
    start = time.perf_counter()
    try:
        run_cell(cell)
    finally:
        t = cell["training"]
        steady = clock.close(t["per_device_train_batch_size"] * t["gradient_accumulation_steps"])
    result = summarize(Path(cell["output_dir"]), time.perf_counter() - start)
    # Trainer's own rate covers the whole run, a compile included; this one the second half of the steps.
    result["steady_samples_per_second"] = steady
    print(name, json.dumps(result), flush=True)
    return result


def run_torchrun(root: Path, config: dict, model: Path) -> dict:
    cell = cell_config(config, "goemotions", "bce", "none", 1, str(root), str(model))
    cell["training"].update(precision="auto", num_train_epochs=1)
    cell["output_dir"] = str(root / "runs" / "torchrun")
    path = root / "torchrun_cell.json"
    write_json(path, cell)
    start = time.perf_counter()
    done = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node=1", "-m", "emogrid.train", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {"error": done.stderr[-3000:]}
    result = summarize(Path(cell["output_dir"]), time.perf_counter() - start)
    print("torchrun", json.dumps(result), flush=True)
    return result


def main() -> None:
    out = Path(sys.argv[1])
    root = out / "work"
    config = load_demo_config(root)
    # Paths in cell configs are relative to this root, as results/ is in the workflow.
    config_root = root
    model = prepare(config_root, config)
    results = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    wanted = sys.argv[2:]
    tiny = {"num_train_epochs": 2, "eval_steps": 50, "save_steps": 100, "gradient_checkpointing": True}
    fused = {"attention": "fused"}  # model.attention: fused (emogrid.attention)
    compiled = {"torch_compile": "default", "pad_to_multiple_of": 16}
    large_steps = {
        "max_steps": 60,
        "per_device_train_batch_size": 32,
        "learning_rate": 1e-5,
        "eval_steps": 0,
        "save_steps": 10_000,
        "logging_steps": 10,
    }
    variants = [  # name, model size, training settings, model settings
        ("tiny_auto_checkpointing", "tiny", tiny | {"precision": "auto"}, {}),
        ("tiny_fp16", "tiny", tiny | {"precision": "fp16", "gradient_checkpointing": False}, {}),
        (
            "tiny_bf16_deepspeed_zero2",
            "tiny",
            tiny | {"precision": "bf16", "deepspeed": str(REPO / "config/deepspeed_zero2.json")},
            {},
        ),
        ("tiny_fp16_fused", "tiny", tiny | {"precision": "fp16", "gradient_checkpointing": False}, fused),
        ("torchrun_1proc", "torchrun", {}, {}),
        ("large_bf16_b32", "large", large_steps | {"precision": "bf16", "gradient_checkpointing": False}, {}),
        (
            "large_bf16_b32_checkpointing",
            "large",
            large_steps | {"precision": "bf16", "gradient_checkpointing": True},
            {},
        ),
        (
            "large_bf16_b32_fused",
            "large",
            large_steps | {"precision": "bf16", "gradient_checkpointing": False},
            fused,
        ),
        (
            "large_bf16_b32_checkpointing_fused",
            "large",
            large_steps | {"precision": "bf16", "gradient_checkpointing": True},
            fused,
        ),
        # training.torch_compile through the CLI (not yet run on a GPU): Inductor, then CUDA graphs, on
        # batches padded to multiples of 16 (few shapes), and compiled under DeepSpeed ZeRO-2.
        (
            "large_bf16_b32_compile_pad16",
            "large",
            large_steps | {"precision": "bf16", "gradient_checkpointing": False} | compiled,
            {},
        ),
        (
            "large_bf16_b32_compile_cudagraphs_pad16_fused",
            "large",
            large_steps
            | {"precision": "bf16", "gradient_checkpointing": False}
            | compiled
            | {"torch_compile": "reduce-overhead"},
            fused,
        ),
        (
            "tiny_bf16_zero2_compile",
            "tiny",
            tiny | {"precision": "bf16", "deepspeed": str(REPO / "config/deepspeed_zero2.json")} | compiled,
            {},
        ),
    ]
    large = None
    names = {v[0] for v in variants}
    chosen = {n for w in wanted for n in names if n == w or (w not in names and w in n)}
    for name, size, training, model_over in variants:
        if wanted and name not in chosen:
            continue
        try:
            if size == "torchrun":
                results[name] = run_torchrun(config_root, config, model)
            elif size == "tiny":
                results[name] = run_variant(config_root, config, model, name, training, model_over=model_over)
            else:
                large = large or large_shaped_model(root, model)
                results[name] = run_variant(
                    config_root,
                    config,
                    large,
                    name,
                    training,
                    mix="goemotions",
                    model_over={"pooling": "cls"} | model_over,
                )
        except Exception as error:  # report every variant, even when one fails
            traceback.print_exc()
            results[name] = {"error": repr(error)[-2000:]}
            print(name, "FAILED", repr(error)[-2000:], flush=True)
        write_json(out / "gpu_check.json", results)


if __name__ == "__main__":
    main()
