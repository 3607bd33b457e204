"""Faults during training: SIGKILL and resume, half-written checkpoints, NaN/inf losses and gradients."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import Trainer

from emogrid.checkpoints import last_complete_checkpoint
from emogrid.errors import NonFiniteTrainingError
from emogrid.io import read_json, write_json
from emogrid.train import build_trainer, main, run_cell


def step_losses(log_history):
    return {e["step"]: e["loss"] for e in log_history if "loss" in e}


def complete_checkpoints(root):
    return sorted(
        int(p.name.split("-")[1]) for p in root.glob("checkpoint-*") if (p / "trainer_state.json").exists()
    )


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(make_cell, tmp_path):
    # Enough steps that the kill lands mid-run on a fast machine too: with 60, an idle 2-core Intel Xeon
    # finished the whole run before the kill below and the test failed.
    steps = 400
    settings = dict(max_steps=steps, save_steps=10, save_total_limit=3, logging_steps=1, eval_steps=0)
    reference = run_cell(make_cell(output_dir=tmp_path / "reference", **settings))
    killed_cell = make_cell(output_dir=tmp_path / "killed", **settings)
    write_json(tmp_path / "cell.json", killed_cell)
    log_path = tmp_path / "killed.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "emogrid.train", str(tmp_path / "cell.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            # The same thread count as this process: CPU float sums then come out bit for bit the same.
            env=os.environ | {"OMP_NUM_THREADS": str(torch.get_num_threads())},
        )
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 300
    # Mid-run, after at least one checkpoint: past step 10, before the end.
    while not [s for s in complete_checkpoints(checkpoints) if s >= 10]:
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    last_saved = max(complete_checkpoints(checkpoints))
    assert last_saved < steps

    resumed = run_cell(killed_cell)
    ref_log = read_json(reference / "train_log.json")
    new_log = read_json(resumed / "train_log.json")
    assert new_log["start_step"] == last_saved, "resumed from the last checkpoint, not from step 0"
    assert new_log["global_step"] == ref_log["global_step"] == steps
    ref_losses, new_losses = step_losses(ref_log["log_history"]), step_losses(new_log["log_history"])
    # The resumed log carries the steps before the checkpoint (from its trainer state) and the rest.
    assert sorted(new_losses) == sorted(ref_losses) == list(range(1, steps + 1)), "no step lost or repeated"
    for step, loss in new_losses.items():
        assert abs(loss - ref_losses[step]) <= 1e-6, (step, loss, ref_losses[step])
    ref_pred = pd.read_parquet(reference / "predictions.parquet")
    new_pred = pd.read_parquet(resumed / "predictions.parquet")
    assert ref_pred["id"].tolist() == new_pred["id"].tolist()
    np.testing.assert_array_equal(np.stack(ref_pred["probs"]), np.stack(new_pred["probs"]))


@pytest.mark.slow
def test_two_processes_resumed_in_the_second_epoch_see_that_epochs_data(make_cell, tmp_path):
    """Under torchrun, a resume mid-epoch wraps the sampler three deep; it must still get the epoch,
    or the rest of epoch 1 replays epoch 0's draws. 192 rows, 2 x 8 per step: 12 steps an epoch."""
    # keep_checkpoints all: the finished run's checkpoints stand in for those a killed run leaves.
    cell = make_cell(
        num_train_epochs=2,
        save_steps=4,
        save_total_limit=10,
        logging_steps=1,
        keep_checkpoints="all",
        output_dir=tmp_path / "ddp",
    )
    write_json(tmp_path / "cell.json", cell)
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2"]
    command = [*torchrun, "-m", "emogrid.train", "--threads", "2", str(tmp_path / "cell.json")]

    def train():
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"}
        )
        assert done.returncode == 0, done.stderr[-4000:]
        return read_json(tmp_path / "ddp" / "train_log.json")

    reference = step_losses(train()["log_history"])
    assert max(reference) == 24
    # As if killed at step 17: the checkpoints after 16 and the predictions never got written.
    checkpoints = tmp_path / "ddp" / "checkpoints"
    for step in complete_checkpoints(checkpoints):
        if step > 16:
            shutil.rmtree(checkpoints / f"checkpoint-{step}")
    (tmp_path / "ddp" / "predictions.parquet").unlink()
    resumed = train()
    assert resumed["start_step"] == 16
    losses = step_losses(resumed["log_history"])
    for step in range(17, 25):
        assert losses[step] == pytest.approx(reference[step], abs=1e-5), step


def test_two_processes_train_a_bert_family_encoder(make_cell, tiny_corpus, tmp_path):
    """DDP runs with find_unused_parameters off: AutoModel's BERT pooler, which the classifier never
    used, left parameters without a gradient and the second step died ("Expected to have finished
    reduction in the prior iteration"). MiniLM is such an encoder; the tiny DeBERTa-v3 has no pooler."""
    from transformers import AutoConfig, BertConfig, BertModel

    folder = tmp_path / "bert"
    shutil.copytree(tiny_corpus["model_dir"], folder)
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    deberta = AutoConfig.from_pretrained(folder)
    bert = BertConfig(
        vocab_size=deberta.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(bert, add_pooling_layer=True).save_pretrained(folder)
    cell = make_cell(max_steps=3, save_steps=1000, output_dir=tmp_path / "ddp")
    cell["model"]["path"] = str(folder)
    write_json(tmp_path / "cell.json", cell)
    torchrun = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*torchrun, "-m", "emogrid.train", "--threads", "2", str(tmp_path / "cell.json")],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert read_json(tmp_path / "ddp" / "train_log.json")["global_step"] == 3


@pytest.mark.parametrize(
    "damage",
    ["truncated_state", "missing_state", "wrong_step", "missing_weights"],
)
def test_half_written_checkpoint_is_skipped_for_the_previous_one(make_cell, tmp_path, damage, capfd):
    # keep_checkpoints all: the finished run's checkpoints stand in for those a killed run leaves.
    cell = make_cell(
        max_steps=10, save_steps=5, save_total_limit=3, keep_checkpoints="all", output_dir=tmp_path / "cell"
    )
    run_cell(cell)
    checkpoints = tmp_path / "cell" / "checkpoints"
    newest = checkpoints / "checkpoint-10"
    state = newest / "trainer_state.json"
    if damage == "truncated_state":
        state.write_text(state.read_text()[: len(state.read_text()) // 2])
    elif damage == "missing_state":
        state.unlink()
    elif damage == "wrong_step":
        state.write_text(json.dumps(json.loads(state.read_text()) | {"global_step": 7}))
    else:
        (newest / "model.safetensors").unlink()
    (tmp_path / "cell" / "predictions.parquet").unlink()
    capfd.readouterr()
    log = read_json(run_cell(cell) / "train_log.json")
    assert log["start_step"] == 5 and log["resumed_from"].endswith("checkpoint-5")
    assert log["global_step"] == 10
    assert "skipping" in capfd.readouterr().err
    assert (checkpoints / "incomplete-checkpoint-10").is_dir(), "set aside for a post-mortem"


def test_no_complete_checkpoint_means_a_fresh_start(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    assert last_complete_checkpoint(tmp_path) is None
    assert last_complete_checkpoint(tmp_path / "missing") is None


class NanGradient(torch.autograd.Function):
    """Zero in the forward pass, NaN in the backward pass: a finite loss with a NaN gradient."""

    @staticmethod
    def forward(ctx, x):
        return torch.zeros_like(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("nan"))


@pytest.mark.parametrize("fault", ["nan_loss", "inf_loss", "nan_grad"])
def test_non_finite_step_stops_the_cell_naming_step_and_last_finite_loss(make_cell, tmp_path, fault):
    cell = make_cell(max_steps=12, save_steps=1, save_total_limit=20, output_dir=tmp_path / "cell")
    trainer, _ = build_trainer(cell)
    healthy = trainer.loss_fn
    bad_step = 6

    def faulty(logits, targets, mask=None, count=None):
        loss = healthy(logits, targets, mask, count)
        if trainer.state.global_step + 1 < bad_step:
            return loss
        if fault == "nan_gradient" or fault == "nan_grad":
            return loss + NanGradient.apply(logits).sum()
        return loss * (float("nan") if fault == "nan_loss" else float("inf"))

    trainer.loss_fn = faulty
    with pytest.raises(NonFiniteTrainingError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "test/cell" in message and f"at step {bad_step}" in message
    assert "last finite loss" in message and f"at step {bad_step - 1}" in message
    assert ("gradient norm" in message) == (fault == "nan_grad")
    assert "stopped before the optimizer step" in message
    saved = complete_checkpoints(tmp_path / "cell" / "checkpoints")
    assert saved and max(saved) == bad_step - 1, "no checkpoint after the fault"


def test_fp16_overflow_steps_are_tolerated_up_to_the_limit(make_cell):
    trainer, _ = build_trainer(make_cell(max_steps=1))
    trainer.args.fp16 = True  # only the guard's policy is exercised; no real loss scaling on CPU
    trainer.max_fp16_overflow_steps = 2
    trainer.check_step_is_finite(float("inf"))
    trainer.check_step_is_finite(float("nan"))
    with pytest.raises(NonFiniteTrainingError, match="gradient norm"):
        trainer.check_step_is_finite(float("inf"))
    # A finite step resets the count: after it, two overflows in a row are tolerated again.
    trainer.fp16_overflows = 1
    trainer.check_step_is_finite(1.0)
    assert trainer.fp16_overflows == 0
    trainer.check_step_is_finite(float("inf"))
    trainer.check_step_is_finite(float("inf"))
    assert trainer.fp16_overflows == 2


def test_deepspeed_minus_one_gradient_norm_is_taken_as_non_finite(make_cell, monkeypatch):
    # DeepSpeed's ZeRO reports a NaN or inf norm as -1: an overflow too, not a tiny norm, and it is
    # logged as NaN. Outside DeepSpeed a norm is returned as computed.
    trainer, _ = build_trainer(make_cell(max_steps=1))
    monkeypatch.setattr(Trainer, "_get_grad_norm", lambda self, model, grad_norm=None: grad_norm)
    trainer.args.fp16 = True
    trainer.max_fp16_overflow_steps = 1
    trainer.is_deepspeed_enabled = True
    assert math.isnan(trainer._get_grad_norm(None, grad_norm=-1.0))
    assert trainer.fp16_overflows == 1
    assert trainer._get_grad_norm(None, grad_norm=0.5) == 0.5 and trainer.fp16_overflows == 0
    trainer.is_deepspeed_enabled = False  # outside DeepSpeed nothing is reinterpreted
    assert trainer._get_grad_norm(None, grad_norm=-1.0) == -1.0
    trainer.is_deepspeed_enabled = True
    trainer.args.fp16 = False
    with pytest.raises(NonFiniteTrainingError, match="gradient norm is nan"):
        trainer._get_grad_norm(None, grad_norm=-1.0)


def test_under_deepspeed_the_fault_message_says_the_step_was_taken(make_cell):
    # DeepSpeed's engine steps inside the backward pass, before the Trainer reads the gradient norm.
    trainer, _ = build_trainer(make_cell(max_steps=1))
    trainer.is_deepspeed_enabled = True
    with pytest.raises(NonFiniteTrainingError, match="after DeepSpeed's optimizer step"):
        trainer.check_step_is_finite(float("nan"))


def test_cli_reports_a_fault_without_a_traceback(monkeypatch, capsys, tmp_path):
    def fail(cell):
        raise NonFiniteTrainingError("m/l/seed1", 7, "the training loss", float("nan"), (0.25, 6))

    monkeypatch.setattr("emogrid.train.run_cell", fail)
    write_json(tmp_path / "cell.json", {"name": "m/l/seed1"})
    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "cell.json")])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "cell m/l/seed1: the training loss is nan at step 7 (last finite loss 0.25 at step 6)" in err
    assert "Traceback" not in err


def test_secrets_never_reach_run_info_or_the_log(make_cell, tmp_path, monkeypatch, capfd):
    token, key = "hf_TopSecretToken123", "wandb0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("WANDB_API_KEY", key)
    # A token pasted into a path or URL of the config, and a credential-named key.
    cell = make_cell(max_steps=2, save_steps=1000, output_dir=tmp_path / "cell")
    cell["model"]["name"] = f"https://user:{token}@example.org/model"
    cell["hub_token"] = key
    out = run_cell(cell)
    # Every JSON the cell wrote, its checkpoints' settings stamp included.
    written = "".join(p.read_text() for p in out.rglob("*.json")) + capfd.readouterr().err
    assert (out / "checkpoints" / "training_identity.json").exists()
    assert token not in written and key not in written
    assert "<scrubbed>" in (out / "run_info.json").read_text()


@pytest.mark.parametrize("writer", ["json", "text", "parquet"])
def test_a_write_that_dies_leaves_no_file_that_looks_complete(tmp_path, writer, monkeypatch):
    from pathlib import Path

    from emogrid import io as eio

    real_write_text = Path.write_text

    def write_half_then_die(self, data, *args, **kwargs):
        real_write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise RuntimeError("killed mid-write")

    if writer in {"json", "text"}:
        monkeypatch.setattr(Path, "write_text", write_half_then_die)

    target = tmp_path / f"out.{writer}"

    class HalfParquet:
        """A frame whose parquet writer puts half of a real file's bytes down, then dies."""

        def to_parquet(self, path, *args, **kwargs):
            pd.DataFrame({"x": range(1000)}).to_parquet(path)
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        {"json": eio.write_json, "text": eio.write_text, "parquet": eio.write_parquet}[writer](
            target, {"json": {"x": "y" * 1000}, "text": "x" * 1000, "parquet": HalfParquet()}[writer]
        )
    assert list(tmp_path.iterdir()) == [], "neither the target nor a temporary file is left"


@pytest.mark.slow
def test_a_second_invocation_on_the_same_results_is_locked_out(tmp_path):
    """Two runs on one results directory: the second stops with Snakemake's lock message."""
    from conftest import DEMO_CONFIGS, REPO_ROOT

    (tmp_path / "config").symlink_to(REPO_ROOT / "config")
    target = "results/demo/tokens/goemotions/train.parquet"  # corpus, preprocessing, model build: tens of s
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT / "src")}
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"), "--cores", "1"]
    command += ["--configfile", *DEMO_CONFIGS, "--", target]
    first = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.monotonic() + 120
    while not (locks.is_dir() and any(locks.iterdir())):
        assert first.poll() is None and time.monotonic() < deadline, "the first run never took its lock"
        time.sleep(0.1)
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    output, _ = first.communicate(timeout=900)
    assert first.returncode == 0, output[-3000:]
    tokens = pd.read_parquet(tmp_path / target)
    assert len(tokens) > 0 and "input_ids" in tokens
