"""Training throughput on real GoEmotions: emogrid's trainer vs a seed-style HF Trainer vs a raw torch loop.

    python bench/train_throughput.py DATA_DIR --model models/all-MiniLM-L6-v2 [--repeats 3]
    python bench/train_throughput.py DATA_DIR --model tiny          # the tiny DeBERTa-v3 of the demo

All three train the same model on the same seeded subset of real GoEmotions training rows, batch 32,
fp32 on CPU, AdamW with a linear schedule and gradient clipping at 1.0:

- emogrid: `emogrid.train.build_trainer` on a resolved cell (the workflow's own code path): the
  tokenized parquet written once, `MixtureLengthSampler` (length-grouped batches), the dynamic-padding
  collator, `EmotionTrainer` with the masked BCE loss.
- seed-style: a plain `transformers.Trainer` on `AutoModelForSequenceClassification`
  (problem_type multi_label_classification), every text padded to max_length=256, random batches, the
  default collator: what the original research code did.
- raw loop: the batches emogrid's sampler and collator produce, collated before the clock starts, fed
  to the same classifier and loss in a plain `for` loop (forward, backward, clip, fused AdamW as the
  Trainer's default, schedule). The
  framework limit.

Each repeat runs the three in rotating order (each one first, second and third in turn); each run
times `--steps` optimizer steps after `--warmup` untimed ones (the seed-style baseline, about 15x
slower, times `--baseline-steps`).
Examples/s counts examples; tokens/s counts real (non-padding) tokens, the same work for all three.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import REPO, load_config, machine, save, spread
from transformers import Trainer, TrainerCallback, TrainingArguments

from emogrid.batching import EncodedExamples, MultiLabelCollator
from emogrid.config import cell_config
from emogrid.io import write_parquet
from emogrid.losses import bce_loss
from emogrid.modeling import load_classifier
from emogrid.preprocess import preprocess_dataset
from emogrid.tokenize import load_tokenizer, tokenize_texts
from emogrid.train import build_trainer

BATCH = 32


class StepClock(TrainerCallback):
    """Wall time at the end of each optimizer step (after the GPU's queued work, on a GPU)."""

    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


def timed_rate(ends: list[float], warmup: int, examples: int, tokens: int) -> dict:
    seconds = ends[-1] - ends[warmup - 1]
    return {"seconds": seconds, "examples_per_s": examples / seconds, "tokens_per_s": tokens / seconds}


def prepare(data_dir: Path, model_arg: str, rows: int, max_length: int, work: Path) -> tuple[dict, Path]:
    config = load_config()
    preprocess_dataset("goemotions", data_dir / "goemotions", config, work / "data" / "goemotions")
    train = pd.read_parquet(work / "data" / "goemotions" / "train.parquet")
    if model_arg == "tiny":
        from emogrid.tiny_model import build_tiny_deberta

        model = build_tiny_deberta(train["text"].tolist(), config["labels"], work / "model")
        config["model"]["pooling"] = "mean"
    else:
        model = Path(model_arg).resolve()
        config["model"]["pooling"] = "mean"
    subset = train.sample(n=min(rows, len(train)), random_state=0).reset_index(drop=True)
    tokenizer = load_tokenizer(model)
    subset["input_ids"] = tokenize_texts(tokenizer, subset["text"].tolist(), max_length)
    path = work / "tokens" / "goemotions" / "train.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(path, subset)
    config["model"]["max_length"] = max_length
    return config, model


def emogrid_cell(config: dict, model: Path, work: Path, steps: int, run: str) -> dict:
    cell = cell_config(config, "goemotions", "bce", "none", 1, str(work), str(model))
    cell["output_dir"] = str(work / "runs" / run)
    cell["training"].update(
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=5e-5,
        max_steps=steps,
        eval_steps=0,
        save_steps=10**9,
        logging_steps=10**9,
        precision="fp32",
        gradient_checkpointing=False,
        group_by_length=True,
        deepspeed=None,
    )
    return cell


def sampler_batches(trainer, count: int) -> list[np.ndarray]:
    """The first `count` batches of the trainer's first epoch, as its sampler draws them."""
    order = trainer.train_sampler.epoch_indices(0)
    return [order[i * BATCH : (i + 1) * BATCH] for i in range(count)]


def emogrid_batches(config, model, work, warmup, steps) -> list[np.ndarray]:
    """The batches every emogrid run draws (the cell's seed fixes them), without training: the raw
    loop replays exactly these, and can therefore run before an emogrid run as well as after one."""
    trainer, _ = build_trainer(emogrid_cell(config, model, work, warmup + steps, "batches"))
    return sampler_batches(trainer, warmup + steps)


def run_emogrid(config, model, work, warmup, steps, run) -> tuple[dict, list[np.ndarray]]:
    cell = emogrid_cell(config, model, work, warmup + steps, run)
    trainer, _ = build_trainer(cell)
    clock = StepClock()
    trainer.add_callback(clock)
    batches = sampler_batches(trainer, warmup + steps)
    seen = []
    collate = trainer.data_collator

    def recording(features):
        batch = collate(features)
        seen.append(batch["input_ids"].shape[1])
        return batch

    trainer.data_collator = recording
    trainer.train()
    lengths = trainer.train_dataset.lengths
    expected = [int(lengths[b].max()) for b in batches]
    if seen[: len(expected)] != expected:
        raise RuntimeError(f"the trainer's batches are not the sampler's: {seen[:5]} vs {expected[:5]}")
    timed = batches[warmup:]
    tokens = int(sum(lengths[b].sum() for b in timed))
    padded = int(sum(len(b) * lengths[b].max() for b in timed))
    result = timed_rate(clock.ends, warmup, BATCH * steps, tokens)
    result["padding_share"] = 1 - tokens / padded
    return result, batches


def run_raw_loop(config, model, work, warmup, steps, batches) -> dict:
    """The same classifier, loss and optimizer settings as emogrid's cell, without any framework."""
    cell = emogrid_cell(config, model, work, warmup + steps, "raw")
    torch.manual_seed(1)
    tokenizer = load_tokenizer(model)
    net = load_classifier(str(model), len(cell["labels"]), cell["model"]["pooling"])
    examples = EncodedExamples(pd.read_parquet(cell["train_files"][0]))
    collate = MultiLabelCollator(tokenizer.pad_token_id)
    ready = [collate([examples[int(i)] for i in b]) for b in batches]
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    # Fused AdamW, as the Trainer's default (optim="adamw_torch_fused" in transformers 5).
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=5e-5,
        fused=True,
    )
    total = warmup + steps
    warm = math.ceil(0.1 * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: s / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )
    net.train()
    ends = []
    for batch in ready:
        logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = bce_loss(logits, batch["labels"], batch["label_mask"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ends.append(time.perf_counter())
    lengths = examples.lengths
    tokens = int(sum(lengths[b].sum() for b in batches[warmup:]))
    return timed_rate(ends, warmup, BATCH * steps, tokens)


class PaddedRows(torch.utils.data.Dataset):
    """The seed-style rows; `fetched` lists the row indices in the order the Trainer read them."""

    def __init__(self, encoded, labels):
        self.encoded, self.labels = encoded, labels
        self.fetched: list[int] = []

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        self.fetched.append(int(i))
        return {
            "input_ids": self.encoded["input_ids"][i],
            "attention_mask": self.encoded["attention_mask"][i],
            "labels": self.labels[i],
        }


def run_seed_style(config, model, work, warmup, steps) -> dict:
    """Plain HF Trainer, everything padded to 256, random batches: the original research code."""
    from transformers import AutoModelForSequenceClassification

    frame = pd.read_parquet(work / "tokens" / "goemotions" / "train.parquet")
    tokenizer = load_tokenizer(model)
    encoded = tokenizer(frame["text"].tolist(), padding="max_length", truncation=True, max_length=256)
    labels = np.stack(frame["labels"].to_numpy()).astype(np.float32)
    torch.manual_seed(1)
    net = AutoModelForSequenceClassification.from_pretrained(
        str(model), num_labels=labels.shape[1], problem_type="multi_label_classification"
    )
    args = TrainingArguments(
        output_dir=str(work / "runs" / "seed_style"),
        per_device_train_batch_size=BATCH,
        learning_rate=5e-5,
        weight_decay=0.01,
        warmup_steps=0.1,
        max_steps=warmup + steps,
        max_grad_norm=1.0,
        save_strategy="no",
        logging_steps=10**9,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=1,
    )
    clock = StepClock()
    rows = PaddedRows(encoded, labels)
    trainer = Trainer(model=net, args=args, train_dataset=rows, callbacks=[clock])
    trainer.train()
    # Real (unpadded) tokens of the rows the timed steps trained on (the loader reads in order, in
    # this process). Before 2026-12-01 they were counted on a separate draw of the sampler.
    real = np.asarray(encoded["attention_mask"]).sum(axis=1)
    timed = rows.fetched[warmup * BATCH : (warmup + steps) * BATCH]
    if len(timed) != BATCH * steps:
        raise RuntimeError(
            f"seed-style run read {len(rows.fetched)} rows, expected {(warmup + steps) * BATCH}"
        )
    tokens = int(real[timed].sum())
    return timed_rate(clock.ends, warmup, BATCH * steps, tokens)


def subset_parser() -> argparse.ArgumentParser:
    """The arguments of every training benchmark on the GoEmotions subset (this one, compile_throughput)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", required=True, help="a local model directory, or 'tiny'")
    parser.add_argument("--rows", type=int, default=2048, help="GoEmotions training rows in the subset")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def run_settings(args) -> dict:
    """The head of a result file: machine, model, subset and step counts."""
    return {
        "machine": machine(),
        "model": args.model,
        "rows": args.rows,
        "batch": BATCH,
        "max_length": args.max_length,
        "warmup": args.warmup,
        "steps": args.steps,
    }


def main() -> None:
    parser = subset_parser()
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--baseline-steps", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 is steadier on a loaded machine)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/train_throughput.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = {"emogrid": [], "raw_loop": [], "seed_style": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config, model = prepare(args.data_dir, args.model, args.rows, args.max_length, work)
        batches = emogrid_batches(config, model, work, args.warmup, args.steps)
        contenders = ["emogrid", "raw_loop", "seed_style"]
        for r in range(args.repeats):
            # Rotate the order, so each contender runs first, second and third in turn.
            order = contenders[r % 3 :] + contenders[: r % 3]
            for name in order:
                if name == "emogrid":
                    result, drawn = run_emogrid(config, model, work, args.warmup, args.steps, f"r{r}")
                    if not all(np.array_equal(a, b) for a, b in zip(drawn, batches, strict=True)):
                        raise RuntimeError("emogrid drew other batches than its sampler's first epoch")
                elif name == "raw_loop":
                    result = run_raw_loop(config, model, work, args.warmup, args.steps, batches)
                else:
                    result = run_seed_style(config, model, work, args.warmup, args.baseline_steps)
                result["repeat"] = r
                runs[name].append(result)
                print(name, json.dumps(result), flush=True)
    summary = {
        name: {
            "examples_per_s": spread([x["examples_per_s"] for x in rs], 2),
            "tokens_per_s": spread([x["tokens_per_s"] for x in rs], 0),
        }
        for name, rs in runs.items()
    }
    # Ratios paired within a repeat (the same minutes of the shared machine).
    e, raw, seed = (runs[k] for k in ("emogrid", "raw_loop", "seed_style"))
    summary["emogrid_vs_seed_style"] = spread(
        [a["examples_per_s"] / b["examples_per_s"] for a, b in zip(e, seed, strict=True)], 2
    )
    summary["emogrid_overhead_vs_raw_loop"] = spread(
        [1 - a["examples_per_s"] / b["examples_per_s"] for a, b in zip(e, raw, strict=True)], 3
    )
    summary["padding_share_emogrid"] = spread([x["padding_share"] for x in e], 3)
    result = run_settings(args) | {
        "baseline_steps": args.baseline_steps,
        "threads": torch.get_num_threads(),
        "summary": summary,
        "runs": runs,
    }
    print(json.dumps(summary, indent=1))
    save(args.out, result)


if __name__ == "__main__":
    main()
