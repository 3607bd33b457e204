"""Train one grid cell: `python -m emogrid.train results/runs/<mix>/<loss>/<imbalance>/seed<k>/cell.json`.

Reads the tokenized splits named in the cell config, fine-tunes the model with the HF Trainer and
the configured loss, then writes predictions for the validation and test splits of every evaluation
dataset, the training log and run_info.json into the cell's directory. Thresholds and metrics are
computed later, by `emogrid.evaluate`, from the predictions: nothing here looks at test labels.

Under torchrun (one process per GPU) only the main process writes outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from transformers import (
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import TrainerState

from emogrid.batching import EncodedExamples, MixtureLengthSampler, MultiLabelCollator
from emogrid.checkpoints import (
    DEFAULT_KEEP,
    STATE_FILE,
    discard_stale_checkpoints,
    last_complete_checkpoint,
    prune_finished,
)
from emogrid.devices import cpu_fallback_message, describe_devices
from emogrid.errors import EmogridError, NonFiniteTrainingError
from emogrid.evaluate import (
    CONSTANT_SPREAD,
    DEFAULT_THRESHOLD_GRID,
    prediction_spread,
    score,
    tune_covered_thresholds,
)
from emogrid.hub import SOURCE_FILE
from emogrid.imbalance import label_frequencies, positive_weights, sampling_weights
from emogrid.io import file_hash, read_json, readable_as_umask_allows, write_json, write_parquet
from emogrid.losses import build_loss
from emogrid.modeling import check_max_length, load_classifier
from emogrid.preemption import Preempted, StopOnSignal
from emogrid.provenance import code_mismatch_message, image_info, package_versions, scrub, source_state
from emogrid.settings import loss_settings
from emogrid.tokenize import check_tokens, load_tokenizer


class EmotionTrainer(Trainer):
    """HF Trainer with a masked multi-label loss and a weighted, length-grouped mixture sampler.

    Guard for transformers#47688: for models whose forward takes **kwargs, Trainer assumes the loss
    was normalised by `num_items_in_batch`, so it skips the division by the gradient-accumulation
    steps and multiplies by the world size. We declare that our loss is not (`model_accepts_loss_kwargs`
    and `loss_is_scaled_for_ga` False), so Trainer divides each micro-batch's loss by the accumulation
    steps and DDP averages over processes, as for any mean loss.

    What the loss is a mean of: the covered (mask 1) label entries of the whole optimizer batch.
    `get_batch_samples` counts them over every micro-batch of the step and every process, and
    `compute_loss` divides a micro-batch's masked sum by that count times (accumulation steps x world
    size), which the division and the averaging above cancel. A per-micro-batch denominator would
    instead weigh a row by the coverage of the rows that happen to share its micro-batch, so a mix's
    gradient would change with the micro-batch size, accumulation steps and GPU count.
    """

    def __init__(
        self,
        *args,
        loss_fn,
        train_sampler: MixtureLengthSampler | None = None,
        cell_name: str = "cell",
        max_fp16_overflow_steps: int = 25,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.train_sampler = train_sampler
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        self.cell_name = cell_name
        self.max_fp16_overflow_steps = max_fp16_overflow_steps
        self.fp16_overflows = 0
        self.last_finite: tuple[float, int] | None = None
        self._step_losses: list[torch.Tensor] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        mask = inputs.pop("label_mask")
        inputs.pop("dataset_index", None)
        outputs = model(**inputs)
        count = None
        if model.training and num_items_in_batch is not None:
            count = num_items_in_batch / (self.current_gradient_accumulation_steps * self.args.world_size)
        loss = self.loss_fn(outputs.logits, labels, mask, count=count)
        if model.training:
            # Checked once per optimizer step, with the gradient norm (no extra device sync).
            self._step_losses.append(loss.detach())
        return (loss, outputs) if return_outputs else loss

    def evaluate(self, *args, **kwargs):
        """Trainer.evaluate with the CPU random state put back afterwards: creating the evaluation
        DataLoader draws a seed from torch's global CPU generator, so evaluating during training would
        otherwise shift every later dropout mask on CPU, and how often a cell is evaluated would change
        the model it trains."""
        with torch.random.fork_rng(devices=[]):
            return super().evaluate(*args, **kwargs)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """The step's micro-batches, and the covered label entries among them on every process."""
        batch_samples, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not batch_samples:
            return batch_samples, None
        covered = sum(batch["label_mask"].sum() for batch in batch_samples).to(
            device=device, dtype=torch.float32
        )
        if self.args.world_size > 1:
            covered = self.accelerator.gather(covered.reshape(1)).sum()
        return batch_samples, covered

    def _get_grad_norm(self, model, grad_norm=None):
        norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        # DeepSpeed's ZeRO optimizer reports a NaN or infinite gradient norm as -1 (a norm is never
        # negative): it is logged and checked as what it stands for, not as a tiny finite norm.
        if self.is_deepspeed_enabled and isinstance(norm, float) and norm < 0:
            norm = math.nan
        self.check_step_is_finite(norm)
        return norm

    def check_step_is_finite(self, grad_norm) -> None:
        """Stop on a NaN/inf loss or gradient norm, before the optimizer step and any later checkpoint
        (under DeepSpeed the engine has already stepped inside the backward pass; the error says so).

        With fp16 loss scaling an overflowing gradient is expected now and then: the scaler skips that
        step and lowers the scale. Only a long run of them (`max_fp16_overflow_steps`) is a fault.
        """
        step = self.state.global_step + 1
        losses, self._step_losses = self._step_losses, []
        loss = float(torch.stack(losses).float().mean()) if losses else None
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteTrainingError(
                self.cell_name, step, "the training loss", loss, self.last_finite, self.is_deepspeed_enabled
            )
        norm = float(grad_norm) if grad_norm is not None else None
        if norm is not None and not math.isfinite(norm):
            if self.args.fp16 and self.fp16_overflows < self.max_fp16_overflow_steps:
                self.fp16_overflows += 1
                return
            raise NonFiniteTrainingError(
                self.cell_name, step, "the gradient norm", norm, self.last_finite, self.is_deepspeed_enabled
            )
        self.fp16_overflows = 0
        if loss is not None:
            self.last_finite = (loss, step)

    def _run_epoch(self, *args, **kwargs):
        # Trainer sets the epoch through the data loader's wrappers. Resuming mid-epoch under DDP they
        # are SkipBatchSampler > BatchSamplerShard > BatchSampler > this sampler, and neither accelerate
        # nor Trainer reaches that deep: the rest of the epoch would replay epoch 0's draws.
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(kwargs["epoch"])
        # Resumed at the checkpoint of the last step (a rerun that only predicts): with max_steps inside
        # an epoch, Trainer takes one more step before it checks the limit, past the configured budget.
        if 0 < self.state.max_steps <= self.state.global_step:
            return None
        return super()._run_epoch(*args, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        return (
            self.train_sampler
            if self.train_sampler is not None
            else super()._get_train_sampler(train_dataset)
        )


class ReadableCheckpoints(TrainerCallback):
    """Checkpoint files get the permissions the umask allows: safetensors writes its files 0600, and a
    collaborator in the project group could neither resume nor inspect a cell."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            readable_as_umask_allows(Path(args.output_dir) / f"checkpoint-{state.global_step}")


class GradientHealthCallback(TrainerCallback):
    """Warn when the logged gradient norm (Trainer logs it after unscaling) stays tiny."""

    def __init__(self, threshold: float, patience: int):
        self.threshold, self.patience = threshold, patience
        self.tiny_streak = 0
        self.warnings: list[str] = []

    def on_train_begin(self, args, state, control, **kwargs):
        # Resuming, the state holds the earlier attempts' logs (up to the checkpoint): their streak and
        # warnings carry over, so a preemption neither hides a warning nor restarts the count.
        self.tiny_streak, self.warnings = 0, []
        for logs in state.log_history:
            self.observe(logs.get("grad_norm"), logs.get("step"), warn=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.observe((logs or {}).get("grad_norm"), state.global_step)

    def observe(self, norm: float | None, step: int | None, warn: bool = True) -> None:
        # None: not logged; NaN or inf: an fp16 overflow (or a fault), the step check's case.
        if norm is None or not math.isfinite(norm):
            return
        self.tiny_streak = self.tiny_streak + 1 if norm < self.threshold else 0
        if self.tiny_streak == self.patience:
            message = (
                f"gradient norm stayed below {self.threshold:g} for {self.patience} logs "
                f"(last {norm:.3g} at step {step}): the model may not be learning"
            )
            if warn:
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


# Beside the checkpoints: the Trainer's end-of-training summary (train_loss, train_runtime) of the run
# that trained them, for the train_log.json of a later evaluation-only rerun.
TRAIN_SUMMARY_FILE = "train_summary.json"


def previous_summary(summary_file: Path, global_step: int) -> list[dict]:
    """[The kept end-of-training summary of the run that reached `global_step`], or []."""
    try:
        summary = read_json(summary_file)
    except (OSError, ValueError):
        return []
    if isinstance(summary, dict) and "train_runtime" in summary and summary.get("step") == global_step:
        return [summary]
    return []


def masked_macro_f1(
    logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, index: np.ndarray, grid=None
) -> dict:
    """Mean over datasets of macro-F1 over each dataset's covered labels (validation only).

    `f1_macro` is at 0.5. With a threshold `grid`, `f1_macro_tuned` uses per-class thresholds tuned on
    these same validation rows, as `emogrid.evaluate` tunes them: an optimistic figure, for choosing
    settings on validation (the reported test F1 applies validation thresholds to test).
    """
    at_half, tuned = [], []
    names = [str(i) for i in range(labels.shape[1])]
    for d in np.unique(index):
        rows = index == d
        covered = np.flatnonzero(mask[rows].max(axis=0) > 0)
        # prob >= 0.5 <=> logit >= 0, the same rule emogrid.evaluate applies.
        at_half.append(score(labels[rows], logits[rows] >= 0, covered, names)["f1_macro"])
        if grid is not None:
            probs = expit(logits[rows].astype(np.float64))
            thresholds = tune_covered_thresholds(labels[rows], probs, covered, grid)
            tuned.append(score(labels[rows], probs >= thresholds, covered, names)["f1_macro"])
    scores = {"f1_macro": float(np.mean(at_half))}
    if tuned:
        scores["f1_macro_tuned"] = float(np.mean(tuned))
    return scores


def compute_validation_metrics(eval_pred, grid=None) -> dict:
    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    labels, mask, index = eval_pred.label_ids
    return masked_macro_f1(logits, labels, mask, index, grid)


def resolve_precision(choice: str) -> dict:
    """bf16 where the GPU supports it natively, else fp16 on CUDA, else full precision."""
    if choice == "auto":
        if torch.cuda.is_available():
            # By default torch also says yes where bf16 is only emulated (V100, T4): slow, and the
            # fp16 path with loss scaling is the one those GPUs are built for.
            choice = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
        else:
            choice = "fp32"
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def load_frames(paths: list[str], tokenizer, max_length: int) -> pd.DataFrame:
    """The token files, each checked against the model's tokenizer (`check_tokens`), as one frame."""
    frames = []
    for path in paths:
        frame = pd.read_parquet(path)
        check_tokens(frame, tokenizer, max_length, path)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deepspeed_env() -> None:
    """Environment DeepSpeed needs that a plain `python -m emogrid.train` may not have.

    - A process group even on one GPU: outside torchrun, a one-process one.
    - DeepSpeed 0.19's op builder cannot parse arch-specific targets such as "9.0a" in
      TORCH_CUDA_ARCH_LIST (seen on an H100 image that sets it): its JIT build of FusedAdam dies with
      "invalid literal for int() ... '0a'". The plain target ("9.0") builds kernels that run there.
    """
    if "MASTER_PORT" not in os.environ:
        # A free port, not a fixed one: two one-GPU cells on one node would otherwise both bind it and
        # the second would die with EADDRINUSE (and again on every retry).
        os.environ["MASTER_PORT"] = str(free_port())
    single_process = {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    for key, value in single_process.items():
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
        **compile_arguments(t.get("torch_compile")),
        **resolve_precision(t["precision"]),
    )


def compile_arguments(mode: str | None) -> dict:
    """TrainingArguments for `training.torch_compile`: Trainer compiles the model (Inductor) in `mode`.

    tf32=False: with torch_compile, transformers would otherwise switch the process's fp32 matmuls to
    TF32 on Ampere and newer GPUs, which changes an fp32 cell's numbers far beyond what compiling does
    and is recorded nowhere. Compiling stays a way to run the same computation, not another precision.
    """
    return {"torch_compile": True, "torch_compile_mode": mode, "tf32": False} if mode else {}


def predict_split(trainer: Trainer, frame: pd.DataFrame) -> pd.DataFrame:
    """Sigmoid probabilities for `frame`'s rows, batched shortest-first to keep padding small."""
    order = np.argsort(frame["input_ids"].map(len).to_numpy(), kind="stable")
    ordered = frame.iloc[order].reset_index(drop=True)
    # The dataset index makes Trainer route the batch through compute_loss, which strips the label
    # columns before the forward pass.
    # No metrics here: compute_metrics tunes thresholds on the rows it scores, and these are test rows.
    # Thresholds come from validation only, in the evaluate rule.
    metrics, trainer.compute_metrics = trainer.compute_metrics, None
    try:
        output = trainer.predict(WithDatasetIndex(EncodedExamples(ordered), sorted(set(ordered["dataset"]))))
    finally:
        trainer.compute_metrics = metrics
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


def init_bias_from_prior(
    classifier: torch.nn.Linear,
    labels: np.ndarray,
    mask: np.ndarray,
    pos_weight: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> None:
    """Start each label's logit at its training prior (as in the focal-loss paper) instead of 0.

    The prior is the frequency the model sees: rows weighted by their sampling probabilities
    (`weights`: the mix's dataset shares and any oversampling), as `pos_weight` is computed.

    Multi-label targets are mostly negatives; from a zero bias the first steps are spent pushing every
    output down, which can flatten the representation of a freshly initialised encoder. Labels no
    training row covers keep bias 0. With positive weights w the best constant of the weighted loss is
    w·p / (w·p + 1 − p), and the bias starts there: from the plain prior the first steps would push
    every output up instead (seen in the demo: BCE with pos_weight never learned).
    """
    covered = mask.sum(axis=0)
    prior = np.where(covered > 0, label_frequencies(labels, mask, weights), 0.5)
    if pos_weight is not None:
        prior = pos_weight * prior / (pos_weight * prior + 1 - prior)
    prior = np.clip(prior, 1e-3, 0.5)
    with torch.no_grad():
        classifier.bias.copy_(torch.from_numpy(np.log(prior / (1 - prior))).to(classifier.bias.dtype))


def training_label_mask(coverage: np.ndarray, coverage_masking: bool) -> np.ndarray:
    """The mask the training loss, the imbalance statistics and the bias prior use.

    With masking on it is the data's coverage mask. Off, every label counts, so a label the dataset does
    not cover is trained as a negative. Validation and test keep the coverage mask either way: a
    dataset is always scored on the labels it covers.
    """
    return coverage if coverage_masking else np.ones_like(coverage)


def build_trainer(cell: dict, callbacks: list | None = None) -> tuple[EmotionTrainer, GradientHealthCallback]:
    """The Trainer for one cell, ready to train: model, mixture sampler, loss and callbacks."""
    seed = cell["cell"]["seed"]
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(cell["model"]["path"])
    model = load_classifier(
        cell["model"]["path"],
        len(cell["labels"]),
        cell["model"]["pooling"],
        allow_pickle=cell["model"].get("allow_pickle_weights", False),
        attention=cell["model"].get("attention", "transformers"),
    )
    max_length = cell["model"]["max_length"]
    check_max_length(model.encoder, max_length, cell["model"]["path"])
    train = EncodedExamples(load_frames(cell["train_files"], tokenizer, max_length))
    train.label_mask = training_label_mask(train.label_mask, cell["coverage_masking"])
    # The imbalance strategy sees the training rows only: validation and test are loaded separately.
    imbalance = cell["imbalance"]
    weights = sampling_weights(train.dataset_names, train.labels, train.label_mask, cell["mix"], imbalance)
    pos_weight = positive_weights(train.labels, train.label_mask, weights, imbalance)
    if loss_settings(cell["loss"])["prior_bias_init"]:
        init_bias_from_prior(model.classifier, train.labels, train.label_mask, pos_weight, weights)
    mix_names = list(cell["mix"])
    args = training_arguments(cell, Path(cell["output_dir"]) / "checkpoints")
    sampler = MixtureLengthSampler(
        train.lengths,
        weights,
        batch_size=args.per_device_train_batch_size,
        seed=seed,
        group_by_length=cell["training"]["group_by_length"],
        groups=train.dataset_names,
    )
    health = GradientHealthCallback(
        cell["training"]["tiny_grad_norm"], cell["training"]["tiny_grad_patience"]
    )
    evaluate_during = args.eval_strategy != "no"
    trainer = EmotionTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=WithDatasetIndex(
            EncodedExamples(load_frames(cell["validation_files"], tokenizer, max_length)), mix_names
        )
        if evaluate_during
        else None,
        data_collator=CollatorWithDatasetIndex(
            tokenizer.pad_token_id, cell["training"].get("pad_to_multiple_of"), max_length
        ),
        processing_class=tokenizer,
        compute_metrics=partial(
            # Cell configs written before 2026-12-07 carry the config's grid; newer ones the default's.
            compute_validation_metrics,
            grid=cell.get("threshold_grid", DEFAULT_THRESHOLD_GRID),
        ),
        callbacks=[health, ReadableCheckpoints(), *(callbacks or [])],
        loss_fn=build_loss(cell["loss"], pos_weight),
        train_sampler=sampler,
        cell_name=cell.get("name", "cell"),
        max_fp16_overflow_steps=cell["training"].get("max_fp16_overflow_steps", 25),
    )
    return trainer, health


def start_step(checkpoint: str | None) -> int:
    """The optimizer step a run resumes at: 0 for a fresh run."""
    if not checkpoint:
        return 0
    return TrainerState.load_from_json(str(Path(checkpoint) / STATE_FILE)).global_step


def record_start(
    path: Path, step: int, checkpoint: str | None, precision: str, ran_with: dict | None = None
) -> None:
    """Append this attempt to the cell's start history; a fresh start begins a new history.

    `ran_with`: the code, packages and machine of this attempt. run_info.json describes the last
    attempt only (an evaluation-only rerun rewrites it), so what trained the weights is kept here."""
    entry = {
        "start_step": step,
        "resumed_from": checkpoint,
        "precision": precision,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_restart_count": os.environ.get("SLURM_RESTART_COUNT"),
        **(ran_with or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # An earlier append cut short (a full disk, a kill mid-write) left a line without its newline:
    # this entry starts on a line of its own, so the torn one stays readable as what it is.
    torn = step != 0 and path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "w" if step == 0 else "a", encoding="utf-8") as history:
        history.write(("\n" if torn else "") + json.dumps(entry) + "\n")


def read_starts(path: Path) -> list[dict]:
    """The start history; a line that is not JSON (a torn append) is kept as {"unreadable": ...} with a
    warning naming the file and line, instead of failing the cell after it trained."""
    if not path.exists():
        return []
    starts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            starts.append(json.loads(line))
        except json.JSONDecodeError as error:
            warnings.warn(
                f"{path}:{number}: not a JSON start record ({error}); kept as unreadable", stacklevel=2
            )
            starts.append({"unreadable": line, "line": number})
    return starts


def from_main_process(trainer: Trainer, value):
    """The main process's `value` on every process (after all of them got here)."""
    trainer.accelerator.wait_for_everyone()
    if (
        trainer.args.world_size > 1
        and torch.distributed.is_available()
        and torch.distributed.is_initialized()
    ):
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]
    return value


def run_cell(cell: dict) -> Path:
    out_dir = Path(cell["output_dir"])
    checkpoints = out_dir / "checkpoints"
    seed = cell["cell"]["seed"]
    devices = describe_devices()
    # Read now, with the code this process imported: a commit made while the cell trains is not its code.
    source = source_state()
    warnings_seen = []
    for warning in (cpu_fallback_message(devices), code_mismatch_message(source, image_info() is not None)):
        if warning:
            print(warning, file=sys.stderr, flush=True)
            warnings_seen.append(warning)
    stop = StopOnSignal().install()
    try:
        trainer, health = build_trainer(cell, callbacks=[stop])
        args = trainer.args
        precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
        # One process decides what to resume from (and sets stale or half-written checkpoints aside).
        if trainer.is_world_process_zero():
            identity = discard_stale_checkpoints(checkpoints, cell, args.world_size, precision)
            last = last_complete_checkpoint(checkpoints)
        else:
            identity, last = {}, None
        last = from_main_process(trainer, last)
        first_step = start_step(last)
        print(
            f"emogrid: cell {cell['name']}: starting at step {first_step}"
            + (f" (resuming from {last})" if last else " (no checkpoint: fresh start)"),
            file=sys.stderr,
            flush=True,
        )
        if trainer.is_world_process_zero():
            ran_with = {
                "git_commit": source.get("git_commit"),
                "git_dirty": source.get("git_dirty"),
                "code": identity["inputs"]["code"],
                "host": devices.get("hostname"),
                "devices": devices.get("names"),
                "versions": package_versions(),
            }
            record_start(out_dir / "starts.jsonl", first_step, last, precision, ran_with)
        result = trainer.train(resume_from_checkpoint=last)
        if stop.stopped_at is not None:
            signum = stop.received or signal.SIGTERM
            raise Preempted(
                f"cell {cell['name']}: stopped by {signal.Signals(signum).name} after saving the "
                f"checkpoint of step {stop.stopped_at} in {checkpoints}; rerunning the cell resumes from it",
                signum,
            )
        if not math.isfinite(result.training_loss):
            raise FloatingPointError(f"cell {cell['name']}: training loss is {result.training_loss}")

        # Every process predicts: under torchrun, predict() shards the rows and gathers them back in order.
        # Datasets stay in the order of eval_files (config order), which the eval report and tables keep.
        eval_frames = load_frames(cell["eval_files"], trainer.processing_class, cell["model"]["max_length"])
        predictions = pd.concat(
            [
                predict_split(trainer, part)
                for _, part in eval_frames.groupby(["dataset", "split"], sort=False)
            ],
            ignore_index=True,
        )
    finally:
        stop.uninstall()
    if trainer.is_world_process_zero():
        write_parquet(out_dir / "predictions.parquet", predictions)
        for warning in collapse_warnings(cell["name"], predictions):
            print(f"emogrid: WARNING: {warning}", file=sys.stderr, flush=True)
            warnings_seen.append(warning)
        kept = prune_finished(
            checkpoints,
            cell["training"].get("keep_checkpoints", DEFAULT_KEEP),
            bool(cell["training"].get("deepspeed")),
        )
        print(
            f"emogrid: training.keep_checkpoints={kept['policy']}: kept {kept['kept'] or 'no checkpoint'}, "
            f"freed {kept['freed_bytes'] / 2**20:.1f} MiB",
            file=sys.stderr,
            flush=True,
        )
        history = trainer.state.log_history
        summary_file = checkpoints / TRAIN_SUMMARY_FILE
        if trainer.state.global_step == first_step and history and "train_runtime" in history[-1]:
            # Resumed at the final checkpoint (an evaluation-only rerun): this attempt trained no step,
            # and the Trainer's summary of it (train_loss 0.0) would pass for the training's. The summary
            # of the run that trained, which the checkpoint predates, was kept beside the checkpoints
            # (Snakemake deletes the old train_log.json before the job runs).
            history = history[:-1] + previous_summary(summary_file, trainer.state.global_step)
        elif history and "train_runtime" in history[-1] and kept["kept"] is not None:
            write_json(summary_file, history[-1])
        write_json(
            out_dir / "train_log.json",
            {
                "log_history": history,
                "steps_trained": trainer.state.global_step - first_step,
                "warnings": warnings_seen + health.warnings,
                "resumed_from": last,
                "start_step": first_step,
                # Every attempt of this cell (killed, preempted, retried), oldest first.
                "starts": read_starts(out_dir / "starts.jsonl"),
                "global_step": trainer.state.global_step,
                # What training.keep_checkpoints left once the predictions were written.
                "checkpoints": kept,
            },
        )
        write_json(
            out_dir / "run_info.json",
            scrub(
                {
                    "cell": cell["cell"],
                    "seed": seed,
                    # git_commit, git_dirty, package_dir: which code this was.
                    **source,
                    "versions": package_versions(),
                    "image": image_info(),
                    "device": devices,
                    "world_size": args.world_size,
                    "torch_threads": torch.get_num_threads(),
                    "precision": resolve_precision(cell["training"]["precision"]),
                    # Which hub commit the weights came from (written by emogrid.hub.fetch_model).
                    "model_source": model_source(cell["model"]["path"]),
                    "config": cell,
                }
            )
            # sha256 of the token files, of every model file and of the training code, as stamped
            # beside the checkpoints (file names and digests hold no credential).
            | {"inputs": identity["inputs"]}
            # ... and of the files predicted on (every evaluation split), which training does not read.
            | {"eval_inputs": {path: file_hash(Path(path)) for path in cell["eval_files"]}},
        )
    return out_dir


def collapse_warnings(cell_name: str, predictions: pd.DataFrame) -> list[str]:
    """A warning per dataset and split whose rows all got the same probabilities (CONSTANT_SPREAD): a
    collapsed model, which no loss curve or gradient norm need show. The F1 tables' notes apply the
    same test to the eval reports."""
    warnings_found = []
    for (dataset, split), part in predictions.groupby(["dataset", "split"], sort=False):
        covered = np.flatnonzero(np.asarray(part["label_mask"].iloc[0]))
        spread = prediction_spread(np.stack(part["probs"].to_numpy()), covered)
        if spread < CONSTANT_SPREAD:
            warnings_found.append(
                f"cell {cell_name}: every {dataset} {split} row got the same probabilities (largest "
                f"difference between rows {spread:.1e}): the model learned nothing from the text"
            )
    return warnings_found


def model_source(path: str) -> dict | None:
    record = Path(path) / SOURCE_FILE
    return read_json(record) if record.is_file() else None


def threads_per_process(job_threads: int) -> int:
    """The job's cores split among the processes torchrun started on this node (at least one each)."""
    if job_threads < 1:
        raise ValueError(f"--threads must be at least 1, got {job_threads}")
    return max(1, job_threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell_config", help="resolved cell JSON written by the workflow")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU cores of the whole job (the rule's threads), shared among torchrun's processes; "
        "default: torch's own choice",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(threads_per_process(args.threads))
    try:
        run_cell(read_json(args.cell_config))
    except Preempted as stopped:
        print(f"emogrid: {stopped}", file=sys.stderr, flush=True)
        sys.exit(stopped.exit_code)
    except EmogridError as error:
        # A fault the message explains (non-finite loss, bad input): no traceback to dig through.
        print(f"emogrid: error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        # Release the process group torchrun or DeepSpeed set up, so NCCL does not leak it.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
