"""Train one grid cell: `python -m emogrid.train results/runs/<mix>/<loss>/seed<k>/cell.json`.

Reads the tokenized splits named in the cell config, fine-tunes the model with the HF Trainer and
the configured loss, then writes predictions for the validation and test splits of every evaluation
dataset, the training log and run_info.json into the cell's directory. Thresholds and metrics are
computed later, by `emogrid.evaluate`, from the predictions: nothing here looks at test labels.

Under torchrun (one process per GPU) only the main process writes outputs.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import (
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint

from emogrid.batching import EncodedExamples, MixtureLengthSampler, MultiLabelCollator, mixture_weights
from emogrid.evaluate import score
from emogrid.io import read_json, write_json, write_parquet
from emogrid.losses import build_loss
from emogrid.modeling import load_classifier
from emogrid.provenance import image_info, package_versions
from emogrid.tokenize import load_tokenizer

SECRET_MARKERS = ("TOKEN", "KEY", "SECRET", "PASSWORD")


class EmotionTrainer(Trainer):
    """HF Trainer with a masked multi-label loss and a weighted, length-grouped mixture sampler.

    Guard for transformers#47688: for models whose forward takes **kwargs, Trainer assumes the loss
    was normalised by `num_items_in_batch`, so it skips the division by the gradient-accumulation
    steps and multiplies by the world size. Our loss is a per-micro-batch mean, so we declare that
    explicitly and Trainer divides by the accumulation steps as it must.
    """

    def __init__(self, *args, loss_fn, train_sampler: MixtureLengthSampler | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.train_sampler = train_sampler
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        mask = inputs.pop("label_mask")
        inputs.pop("dataset_index", None)
        outputs = model(**inputs)
        loss = self.loss_fn(outputs.logits, labels, mask)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        return (
            self.train_sampler
            if self.train_sampler is not None
            else super()._get_train_sampler(train_dataset)
        )


class GradientHealthCallback(TrainerCallback):
    """Warn when the logged gradient norm (Trainer logs it after unscaling) stays tiny."""

    def __init__(self, threshold: float, patience: int):
        self.threshold, self.patience = threshold, patience
        self.tiny_streak = 0
        self.warnings: list[str] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        norm = (logs or {}).get("grad_norm")
        if norm is None:
            return
        self.tiny_streak = self.tiny_streak + 1 if norm < self.threshold else 0
        if self.tiny_streak == self.patience:
            message = (
                f"gradient norm stayed below {self.threshold:g} for {self.patience} logs "
                f"(last {norm:.3g} at step {state.global_step}): the model may not be learning"
            )
            warnings.warn(message, stacklevel=1)
            self.warnings.append(message)


class WithDatasetIndex(torch.utils.data.Dataset):
    """Validation rows that also carry which dataset they came from, for per-dataset macro-F1."""

    def __init__(self, examples: EncodedExamples, names: list[str]):
        self.examples = examples
        self.index = np.array([names.index(d) for d in examples.dataset_names], dtype=np.int64)

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return {**self.examples[i], "dataset_index": self.index[i]}


class CollatorWithDatasetIndex(MultiLabelCollator):
    def __call__(self, features):
        batch = super().__call__(features)
        if "dataset_index" in features[0]:
            batch["dataset_index"] = torch.tensor([f["dataset_index"] for f in features])
        return batch


def masked_macro_f1(logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, index: np.ndarray) -> float:
    """Mean over datasets of macro-F1 at 0.5 over each dataset's covered labels (validation only)."""
    scores = []
    for d in np.unique(index):
        rows = index == d
        covered = np.flatnonzero(mask[rows].max(axis=0) > 0)
        # prob >= 0.5 <=> logit >= 0, the same rule emogrid.evaluate applies.
        predicted = logits[rows] >= 0
        names = [str(i) for i in range(labels.shape[1])]
        scores.append(score(labels[rows], predicted, covered, names)["f1_macro"])
    return float(np.mean(scores))


def compute_validation_metrics(eval_pred) -> dict:
    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    labels, mask, index = eval_pred.label_ids
    return {"f1_macro": masked_macro_f1(logits, labels, mask, index)}


def resolve_precision(choice: str) -> dict:
    """bf16 where the GPU supports it, else fp16 on CUDA, else full precision."""
    if choice == "auto":
        if torch.cuda.is_available():
            choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            choice = "fp32"
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def load_frames(paths: list[str]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def deepspeed_env() -> None:
    """Environment DeepSpeed needs that a plain `python -m emogrid.train` may not have.

    - A process group even on one GPU: outside torchrun, a one-process one.
    - DeepSpeed 0.19's op builder cannot parse arch-specific targets such as "9.0a" in
      TORCH_CUDA_ARCH_LIST (seen on an H100 image that sets it): its JIT build of FusedAdam dies with
      "invalid literal for int() ... '0a'". The plain target ("9.0") builds kernels that run there.
    """
    single_process = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511", "RANK": "0", "LOCAL_RANK": "0"}
    for key, value in (single_process | {"WORLD_SIZE": "1"}).items():
        os.environ.setdefault(key, value)
    if "TORCH_CUDA_ARCH_LIST" in os.environ:
        os.environ["TORCH_CUDA_ARCH_LIST"] = plain_cuda_arch_list(os.environ["TORCH_CUDA_ARCH_LIST"])


def plain_cuda_arch_list(value: str) -> str:
    """'8.0;9.0a+PTX' -> '8.0;9.0+PTX': drop the arch-specific suffixes DeepSpeed cannot parse."""
    return re.sub(r"(\d+\.\d+)[a-z]", r"\1", value)


def training_arguments(cell: dict, output_dir: Path) -> TrainingArguments:
    t = cell["training"]
    if t.get("deepspeed"):
        deepspeed_env()
    evaluate_during = t["eval_steps"] > 0
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=t["per_device_train_batch_size"],
        per_device_eval_batch_size=t["per_device_eval_batch_size"],
        gradient_accumulation_steps=t["gradient_accumulation_steps"],
        learning_rate=t["learning_rate"],
        weight_decay=t["weight_decay"],
        warmup_steps=t["warmup_ratio"],
        num_train_epochs=t["num_train_epochs"],
        max_steps=t.get("max_steps", -1),
        max_grad_norm=t["max_grad_norm"],
        logging_steps=t["logging_steps"],
        logging_first_step=True,
        eval_strategy="steps" if evaluate_during else "no",
        eval_steps=t["eval_steps"] if evaluate_during else None,
        save_strategy="steps",
        save_steps=t["save_steps"],
        save_total_limit=t["save_total_limit"],
        seed=cell["cell"]["seed"],
        activation_checkpointing=t["gradient_checkpointing"] and torch.cuda.is_available(),
        deepspeed=t.get("deepspeed"),
        remove_unused_columns=False,
        # Every parameter takes part in every step; DDP need not search for unused ones.
        ddp_find_unused_parameters=False,
        label_names=["labels", "label_mask", "dataset_index"],
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        **resolve_precision(t["precision"]),
    )


def git_commit() -> str:
    if os.environ.get("EMOGRID_GIT_COMMIT"):
        return os.environ["EMOGRID_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description() -> dict:
    if torch.cuda.is_available():
        return {
            "type": "cuda",
            "count": torch.cuda.device_count(),
            "names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        }
    return {"type": "cpu", "count": 0, "names": [platform.processor() or platform.machine()]}


def scrub(value):
    """Drop anything that looks like a credential before it reaches a file."""
    if isinstance(value, dict):
        return {
            k: ("<scrubbed>" if any(m in k.upper() for m in SECRET_MARKERS) else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def predict_split(trainer: Trainer, frame: pd.DataFrame) -> pd.DataFrame:
    """Sigmoid probabilities for `frame`'s rows, batched shortest-first to keep padding small."""
    order = np.argsort(frame["input_ids"].map(len).to_numpy(), kind="stable")
    ordered = frame.iloc[order].reset_index(drop=True)
    # The dataset index makes Trainer route the batch through compute_loss, which strips the label
    # columns before the forward pass.
    output = trainer.predict(WithDatasetIndex(EncodedExamples(ordered), sorted(set(ordered["dataset"]))))
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    probs = torch.sigmoid(torch.from_numpy(np.asarray(logits, dtype=np.float32))).numpy()
    # Under torchrun the rows come back gathered from every process: check they are still in order.
    gathered_labels = output.label_ids[0] if output.label_ids is not None else None
    expected_labels = np.stack(ordered["labels"].to_numpy())
    if len(probs) != len(ordered) or (
        gathered_labels is not None and not np.array_equal(gathered_labels, expected_labels)
    ):
        raise RuntimeError(
            f"predictions for {len(probs)} rows do not line up with the {len(ordered)} examples"
        )
    return pd.DataFrame(
        {
            "dataset": ordered["dataset"],
            "split": ordered["split"],
            "id": ordered["id"],
            "probs": list(probs),
            "labels": ordered["labels"],
            "label_mask": ordered["label_mask"],
        }
    )


def init_bias_from_prior(classifier: torch.nn.Linear, labels: np.ndarray, mask: np.ndarray) -> None:
    """Start each label's logit at its training prior (as in the focal-loss paper) instead of 0.

    Multi-label targets are mostly negatives; from a zero bias the first steps are spent pushing every
    output down, which can flatten the representation of a freshly initialised encoder. Labels no
    training row covers keep bias 0.
    """
    covered = mask.sum(axis=0)
    prior = np.where(covered > 0, (labels * mask).sum(axis=0) / np.maximum(covered, 1), 0.5)
    prior = np.clip(prior, 1e-3, 0.5)
    with torch.no_grad():
        classifier.bias.copy_(torch.from_numpy(np.log(prior / (1 - prior))).to(classifier.bias.dtype))


def build_trainer(cell: dict, callbacks: list | None = None) -> tuple[EmotionTrainer, GradientHealthCallback]:
    """The Trainer for one cell, ready to train: model, mixture sampler, loss and callbacks."""
    seed = cell["cell"]["seed"]
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(cell["model"]["path"])
    model = load_classifier(cell["model"]["path"], len(cell["labels"]), cell["model"]["pooling"])
    train = EncodedExamples(load_frames(cell["train_files"]))
    if cell["loss"].get("prior_bias_init", True):
        init_bias_from_prior(model.classifier, train.labels, train.label_mask)
    mix_names = list(cell["mix"])
    args = training_arguments(cell, Path(cell["output_dir"]) / "checkpoints")
    sampler = MixtureLengthSampler(
        train.lengths,
        mixture_weights(train.dataset_names, cell["mix"]),
        batch_size=args.per_device_train_batch_size,
        seed=seed,
        group_by_length=cell["training"]["group_by_length"],
    )
    health = GradientHealthCallback(
        cell["training"]["tiny_grad_norm"], cell["training"]["tiny_grad_patience"]
    )
    evaluate_during = args.eval_strategy != "no"
    trainer = EmotionTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=WithDatasetIndex(EncodedExamples(load_frames(cell["validation_files"])), mix_names)
        if evaluate_during
        else None,
        data_collator=CollatorWithDatasetIndex(tokenizer.pad_token_id),
        processing_class=tokenizer,
        compute_metrics=compute_validation_metrics,
        callbacks=[health, *(callbacks or [])],
        loss_fn=build_loss(cell["loss"]),
        train_sampler=sampler,
    )
    return trainer, health


def run_cell(cell: dict) -> Path:
    out_dir = Path(cell["output_dir"])
    checkpoints = out_dir / "checkpoints"
    seed = cell["cell"]["seed"]
    trainer, health = build_trainer(cell)
    args = trainer.args
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last:
        print(f"resuming from {last}", file=sys.stderr)
    result = trainer.train(resume_from_checkpoint=last)
    if not math.isfinite(result.training_loss):
        raise FloatingPointError(f"cell {cell['name']}: training loss is {result.training_loss}")

    # Every process predicts: under torchrun, predict() shards the rows and gathers them back in order.
    eval_frames = load_frames(cell["eval_files"])
    predictions = pd.concat(
        [predict_split(trainer, part) for _, part in eval_frames.groupby(["dataset", "split"], sort=True)],
        ignore_index=True,
    )
    if trainer.is_world_process_zero():
        write_parquet(out_dir / "predictions.parquet", predictions)
        write_json(
            out_dir / "train_log.json",
            {
                "log_history": trainer.state.log_history,
                "warnings": health.warnings,
                "resumed_from": last,
                "global_step": trainer.state.global_step,
            },
        )
        write_json(
            out_dir / "run_info.json",
            scrub(
                {
                    "cell": cell["cell"],
                    "seed": seed,
                    "git_commit": git_commit(),
                    "versions": package_versions(),
                    "image": image_info(),
                    "device": device_description(),
                    "world_size": args.world_size,
                    "precision": resolve_precision(cell["training"]["precision"]),
                    "config": cell,
                }
            ),
        )
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell_config", help="resolved cell JSON written by the workflow")
    args = parser.parse_args(argv)
    try:
        run_cell(read_json(args.cell_config))
    finally:
        # Release the process group torchrun or DeepSpeed set up, so NCCL does not leak it.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
