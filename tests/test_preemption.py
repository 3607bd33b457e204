"""SIGTERM (SLURM's time limit, preemption, scancel) saves a checkpoint; the rerun resumes from it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from emogrid.checkpoints import prune_finished
from emogrid.devices import cpu_fallback_message, describe_devices
from emogrid.io import read_json, write_json
from emogrid.train import run_cell


def start_training(cell_path, log_path):
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "emogrid.train", str(cell_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


def wait_for_step(log_path, process, min_logged_steps=3, timeout=300):
    """Wait until training has logged a few steps (logging_steps=1), so the signal lands mid-run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text() if log_path.exists() else ""
        if text.count("'loss'") >= min_logged_steps:
            return
        if process.poll() is not None:
            raise AssertionError(f"training ended before the signal was sent:\n{text[-3000:]}")
        time.sleep(0.2)
    raise AssertionError("training never started logging steps")


@pytest.mark.slow
def test_sigterm_checkpoints_mid_run_and_the_rerun_resumes_there(make_cell, tmp_path):
    # save_steps beyond max_steps: the only mid-run checkpoint is the one the signal makes.
    cell = make_cell(max_steps=300, save_steps=10_000, save_total_limit=2, output_dir=tmp_path / "cell")
    write_json(tmp_path / "cell.json", cell)
    log_path = tmp_path / "first.log"
    process = start_training(tmp_path / "cell.json", log_path)
    wait_for_step(log_path, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    text = log_path.read_text()
    assert "received SIGTERM" in text and "rerunning the cell resumes from it" in text
    checkpoints = sorted((tmp_path / "cell" / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1, checkpoints
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert 0 < stopped_at < 300
    # Nothing a later rule reads was written: the job counts as failed and will be rerun.
    assert not (tmp_path / "cell" / "predictions.parquet").exists()

    rerun = read_json(run_cell(cell) / "train_log.json")
    assert rerun["start_step"] == stopped_at
    assert rerun["resumed_from"].endswith(f"checkpoint-{stopped_at}")
    assert rerun["global_step"] == 300
    assert "starting at step" in text and "fresh start" in text


@pytest.mark.parametrize("max_steps", [-1, 10])
def test_last_step_is_checkpointed_so_a_rerun_only_predicts(make_cell, tmp_path, max_steps):
    # 24 steps, save_steps 1000: without the final checkpoint nothing would be saved at all. With
    # max_steps 10, inside the epoch: Trainer resumed there used to take an 11th step (and an 12th on the
    # next rerun), overwriting the training's summary with that step's.
    cell = make_cell(num_train_epochs=1, max_steps=max_steps, save_steps=1000, output_dir=tmp_path / "cell")
    first = run_cell(cell)
    log = read_json(first / "train_log.json")
    assert log["global_step"] == (24 if max_steps < 0 else max_steps)
    before = pd.read_parquet(first / "predictions.parquet")
    assert (first / "checkpoints" / f"checkpoint-{log['global_step']}").is_dir()
    # As Snakemake does before it reruns the job: its outputs go first.
    for output in ("predictions.parquet", "train_log.json", "run_info.json"):
        (first / output).unlink()
    again = read_json(run_cell(cell) / "train_log.json")
    assert again["start_step"] == log["global_step"] == again["global_step"]
    assert log["steps_trained"] == log["global_step"] and again["steps_trained"] == 0
    # No summary of the step-less attempt (the Trainer's says train_loss 0.0) passes for the training's;
    # the summary of the attempt that trained is kept.
    summaries = [entry for entry in log["log_history"] if "train_loss" in entry]
    assert len(summaries) == 1 and summaries[0]["train_loss"] > 0
    assert [entry for entry in again["log_history"] if "train_loss" in entry] == summaries
    assert again["log_history"] == log["log_history"]
    # Each attempt keeps what it ran with (run_info.json is rewritten by the last one), and run_info
    # records the files predicted on as well as those trained on.
    info = read_json(first / "run_info.json")
    assert len(again["starts"]) == 2
    for start in again["starts"]:
        assert start["code"] == info["inputs"]["code"] and start["versions"]["torch"] == torch.__version__
        assert "git_commit" in start and start["devices"] == info["device"]["names"]
    assert sorted(info["eval_inputs"]) == sorted(cell["eval_files"])
    assert all(len(digest) == 64 for digest in info["eval_inputs"].values())
    after = pd.read_parquet(first / "predictions.parquet")
    pd.testing.assert_frame_equal(before, after)


def checkpoint_files(checkpoints):
    return {p.relative_to(checkpoints).as_posix() for p in checkpoints.rglob("*") if p.is_file()}


def test_a_finished_cell_keeps_only_its_final_weights_and_a_rerun_still_only_predicts(make_cell, tmp_path):
    # save_steps 5 of 24 steps: the Trainer leaves checkpoint-20 and checkpoint-24, each with AdamW's state.
    cell = make_cell(num_train_epochs=1, save_steps=5, save_total_limit=2, output_dir=tmp_path / "cell")
    first = run_cell(cell)
    log = read_json(first / "train_log.json")
    step = log["global_step"]
    checkpoints = first / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.is_dir()) == [f"checkpoint-{step}"]
    files = checkpoint_files(checkpoints)
    final = f"checkpoint-{step}"
    assert {f"{final}/model.safetensors", f"{final}/trainer_state.json", "training_identity.json"} <= files
    assert not any(name.split("/")[-1].startswith(("optimizer", "scheduler", "rng_state")) for name in files)
    assert log["checkpoints"]["policy"] == "weights" and log["checkpoints"]["kept"].endswith(final)
    # The earlier checkpoint and the optimizer state: more than the final weights themselves.
    assert log["checkpoints"]["freed_bytes"] > (checkpoints / final / "model.safetensors").stat().st_size
    before = pd.read_parquet(first / "predictions.parquet")
    (first / "predictions.parquet").unlink()
    again = read_json(run_cell(cell) / "train_log.json")
    assert again["start_step"] == step and again["steps_trained"] == 0
    pd.testing.assert_frame_equal(before, pd.read_parquet(first / "predictions.parquet"))


def test_keep_checkpoints_all_keeps_them_and_switching_to_weights_prunes_without_retraining(
    make_cell, tmp_path
):
    kept = make_cell(num_train_epochs=1, save_steps=5, save_total_limit=2, output_dir=tmp_path / "cell")
    kept["training"]["keep_checkpoints"] = "all"
    first = run_cell(kept)
    step = read_json(first / "train_log.json")["global_step"]
    files = checkpoint_files(first / "checkpoints")
    assert {
        f"checkpoint-{s}/{name}" for s in (20, step) for name in ("optimizer.pt", "scheduler.pt")
    } <= files
    # The policy is not part of what training computes: a changed one resumes, predicts and prunes.
    pruned = dict(kept, training={k: v for k, v in kept["training"].items() if k != "keep_checkpoints"})
    again = read_json(run_cell(pruned) / "train_log.json")
    assert again["steps_trained"] == 0 and again["checkpoints"]["freed_bytes"] > 0
    assert not any(
        "optimizer" in name or "checkpoint-20" in name for name in checkpoint_files(first / "checkpoints")
    )


def test_keep_checkpoints_none_deletes_them_and_a_rerun_trains_again(make_cell, tmp_path):
    cell = make_cell(num_train_epochs=1, save_steps=5, output_dir=tmp_path / "cell")
    cell["training"]["keep_checkpoints"] = "none"
    first = run_cell(cell)
    log = read_json(first / "train_log.json")
    assert not (first / "checkpoints").exists() and log["checkpoints"]["kept"] is None
    before = pd.read_parquet(first / "predictions.parquet")
    again = read_json(run_cell(cell) / "train_log.json")
    assert again["start_step"] == 0 and again["steps_trained"] == log["global_step"]
    pd.testing.assert_frame_equal(before, pd.read_parquet(first / "predictions.parquet"))


def test_under_deepspeed_the_final_checkpoint_stays_whole(tmp_path):
    """The Trainer resumes a DeepSpeed run only from DeepSpeed's own state (global_step*/)."""
    checkpoints = tmp_path / "checkpoints"
    for step in (5, 10):
        folder = checkpoints / f"checkpoint-{step}"
        (folder / f"global_step{step}").mkdir(parents=True)
        (folder / f"global_step{step}" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"x" * 300)
        for name in ("model.safetensors", "scheduler.pt", "rng_state.pth"):
            (folder / name).write_bytes(b"x" * 100)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    whole = checkpoint_files(checkpoints / "checkpoint-10")
    earlier = sum(p.stat().st_size for p in (checkpoints / "checkpoint-5").rglob("*") if p.is_file())
    kept = prune_finished(checkpoints, "weights", deepspeed=True)
    assert kept["kept"].endswith("checkpoint-10") and kept["freed_bytes"] == earlier > 600
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-10"]
    assert checkpoint_files(checkpoints / "checkpoint-10") == whole
    # Without DeepSpeed the same folder loses its training state and keeps the weights.
    prune_finished(checkpoints, "weights", deepspeed=False)
    assert checkpoint_files(checkpoints / "checkpoint-10") == {
        "global_step10/zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "model.safetensors",
        "trainer_state.json",
    }
    with pytest.raises(ValueError, match="keep_checkpoints"):
        prune_finished(checkpoints, "some", deepspeed=False)
    # none removes the folder also when no checkpoint in it is complete (a half-written one, say).
    (checkpoints / "checkpoint-10" / "trainer_state.json").unlink()
    assert prune_finished(checkpoints, "none", deepspeed=False)["freed_bytes"] > 0
    assert not checkpoints.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA")
def test_assigned_gpu_without_cuda_falls_back_to_cpu_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    seen = describe_devices()
    assert seen["CUDA_VISIBLE_DEVICES"] == "0" and seen["device_count"] == 0
    assert seen["scheduler"]["SLURM_JOB_ID"] == "42"
    # The CPU it ran on, by model and by the kernel set torch chose (its numbers depend on both).
    assert seen["names"] == [seen["cpu"]] and seen["cpu"] not in ("", "x86_64")
    assert seen["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "CUDA_VISIBLE_DEVICES=0 was assigned" in seen["fallback"] and "running on CPU" in seen["fallback"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert cpu_fallback_message(describe_devices()) is None


def test_gpu_check_cli_writes_json_and_html(tmp_path, monkeypatch):
    from emogrid.devices import main

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    main([str(tmp_path / "gpu.json"), str(tmp_path / "gpu.html")])
    seen = read_json(tmp_path / "gpu.json")
    assert seen["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert seen["device_count"] == torch.cuda.device_count()
    assert "torch.cuda.device_count()" in (tmp_path / "gpu.html").read_text()


def test_checkpoints_from_other_settings_are_not_resumed(make_cell, tmp_path, capfd):
    cell = make_cell(num_train_epochs=1, save_steps=1000, output_dir=tmp_path / "cell")
    steps = read_json(run_cell(cell) / "train_log.json")["global_step"]
    # Bookkeeping settings (here a cell file that still carries a time limit, as cell files written
    # before the scheduler settings left them did) change nothing that training computes: resume.
    (tmp_path / "cell" / "predictions.parquet").unlink()
    longer = {**cell, "training": {**cell["training"], "runtime": 600, "save_total_limit": 5}}
    assert read_json(run_cell(longer) / "train_log.json")["start_step"] == steps
    # A new learning rate does: the old checkpoints are deleted and the cell starts from step 0.
    changed = {**cell, "training": {**cell["training"], "learning_rate": 1e-3}}
    capfd.readouterr()
    assert read_json(run_cell(changed) / "train_log.json")["start_step"] == 0
    assert "written with other settings" in capfd.readouterr().err


def test_checkpoints_computed_in_another_precision_are_not_resumed(make_cell, tmp_path, capfd):
    # A cell preempted on a bf16 GPU and restarted where `precision: auto` gives something else (here
    # the CPU's fp32) starts fresh instead of finishing in another precision than it began.
    cell = make_cell(num_train_epochs=1, save_steps=1000, output_dir=tmp_path / "cell")
    first = read_json(run_cell(cell) / "train_log.json")
    assert [start["precision"] for start in first["starts"]] == ["fp32"]
    (tmp_path / "cell" / "predictions.parquet").unlink()
    stamp = tmp_path / "cell" / "checkpoints" / "training_identity.json"
    assert read_json(stamp)["precision_used"] == "fp32"
    write_json(stamp, {**read_json(stamp), "precision_used": "bf16"})
    capfd.readouterr()
    again = read_json(run_cell(cell) / "train_log.json")
    assert again["start_step"] == 0 and again["resumed_from"] is None
    assert "the precision computed in (bf16 -> fp32) changed" in capfd.readouterr().err


def test_start_history_records_each_attempt_and_restarts_with_a_fresh_run(tmp_path):
    from emogrid.train import read_starts, record_start

    history = tmp_path / "starts.jsonl"
    record_start(history, 0, None, "bf16")
    record_start(history, 40, "checkpoint-40", "bf16")
    assert [s["start_step"] for s in read_starts(history)] == [0, 40]
    assert {s["precision"] for s in read_starts(history)} == {"bf16"}
    record_start(history, 0, None, "fp16")
    assert [s["start_step"] for s in read_starts(history)] == [0]


def test_a_torn_start_record_is_kept_and_named_and_later_attempts_still_read(tmp_path):
    # An append cut short (disk full, a kill mid-write) once made every later attempt fail after training.
    from emogrid.train import read_starts, record_start

    history = tmp_path / "starts.jsonl"
    record_start(history, 0, None, "bf16")
    with open(history, "a", encoding="utf-8") as torn:
        torn.write('{"start_step": 40, "resu')
    record_start(history, 80, "checkpoint-80", "bf16")
    with pytest.warns(UserWarning, match=f"{history}:2: not a JSON start record"):
        starts = read_starts(history)
    assert starts[0]["start_step"] == 0 and starts[2]["start_step"] == 80
    assert starts[1] == {"unreadable": '{"start_step": 40, "resu', "line": 2}


def test_checkpoints_from_other_training_data_are_not_resumed(make_cell, tmp_path, capfd):
    # The same paths with new contents (a new label map or non-answer list reruns preprocess and
    # tokenize): resuming the old final checkpoint would train 0 steps and predict with the old model.
    cell = make_cell(num_train_epochs=1, save_steps=1000, output_dir=tmp_path / "cell")
    copies = []
    for path in cell["train_files"]:
        copy = tmp_path / "tokens" / Path(path).parent.name / Path(path).name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, copy)
        copies.append(str(copy))
    cell["train_files"] = copies
    first = read_json(run_cell(cell) / "train_log.json")
    (tmp_path / "cell" / "predictions.parquet").unlink()
    # Unchanged inputs: the rerun resumes at the final step, as after a failure in predict.
    assert read_json(run_cell(cell) / "train_log.json")["start_step"] == first["global_step"]
    (tmp_path / "cell" / "predictions.parquet").unlink()
    frame = pd.read_parquet(copies[0])
    frame.iloc[: len(frame) // 2].to_parquet(copies[0])
    capfd.readouterr()
    again = read_json(run_cell(cell) / "train_log.json")
    assert again["start_step"] == 0 and again["resumed_from"] is None
    assert "the training data changed" in capfd.readouterr().err


def test_training_identity_covers_data_model_and_code_contents(tmp_path):
    from emogrid.checkpoints import identity_changes, training_identity

    model = tmp_path / "model"
    (model / ".cache").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    (model / ".cache" / "download.lock").write_text("hub bookkeeping")
    (model / "emogrid_source.json").write_text('{"revision_requested": null}')
    data = tmp_path / "train.parquet"
    data.write_bytes(b"rows")
    cell = {
        "name": "c",
        "model": {"path": str(model)},
        "train_files": [str(data)],
        "validation_files": [],
        "eval_files": ["not read"],
        "threshold_grid": {"start": 0.05, "stop": 0.95, "step": 0.05},
        "training": {"learning_rate": 1e-3, "save_steps": 10},
    }
    before = training_identity(cell)
    # The processes the job got (a GRES request sets them outside the cell) set the global batch.
    four_gpus = training_identity(cell, world_size=4)
    assert identity_changes(before, four_gpus) == ["the number of training processes (1 -> 4)"]
    # So does the precision the device gave (`precision: auto` is bf16 on one GPU, fp16 on another).
    on_a_v100 = training_identity(cell, precision="fp16")
    assert identity_changes(training_identity(cell, precision="bf16"), on_a_v100) == [
        "the precision computed in (bf16 -> fp16)"
    ]
    # Evaluation during training selects nothing and restores the RNG it draws from: its schedule and
    # batch size leave a checkpoint valid (a rerun resumes and predicts instead of retraining).
    evaluating = {**cell, "training": {**cell["training"], "eval_steps": 7, "per_device_eval_batch_size": 99}}
    assert training_identity(evaluating) == before
    # A stamp written before they joined NOT_TRAINING_IDENTITY still holds them: its checkpoints stay.
    from emogrid.checkpoints import discard_stale_checkpoints

    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "checkpoint-10").mkdir(parents=True)
    old_stamp = json.loads(json.dumps(before))
    old_stamp["training"] |= {"eval_steps": 500, "per_device_eval_batch_size": 64}
    (checkpoints / "training_identity.json").write_text(json.dumps(old_stamp))
    discard_stale_checkpoints(checkpoints, evaluating)
    assert (checkpoints / "checkpoint-10").is_dir()
    old_stamp["training"]["learning_rate"] = 2e-3
    (checkpoints / "training_identity.json").write_text(json.dumps(old_stamp))
    discard_stale_checkpoints(checkpoints, evaluating)
    assert not (checkpoints / "checkpoint-10").exists(), "a setting that trains differently still counts"
    unrecorded = {k: v for k, v in before.items() if k != "precision_used"}
    assert identity_changes(unrecorded, before) == ["the precision computed in (not recorded -> fp32)"]
    assert sorted(before["inputs"]["model"]) == ["config.json", "model.safetensors"]
    # Bookkeeping changes nothing: the hub's cache folder, the fetch record (pinning model.revision to
    # the commit it names rewrites it), the evaluation targets and threshold grid, save_steps.
    (model / ".cache" / "download.lock").write_text("another download")
    (model / "emogrid_source.json").write_text('{"revision_requested": "0123abc"}')
    moved = {
        **cell,
        "eval_files": [],
        "threshold_grid": {"start": 0.01, "stop": 0.99, "step": 0.01},
        "training": {**cell["training"], "save_steps": 99},
    }
    assert training_identity(moved) == before
    (model / "model.safetensors").write_bytes(b"other weights")
    assert identity_changes(before, training_identity(cell)) == ["the model files"]
    data.write_bytes(b"other rows")
    faster = {**cell, "training": {**cell["training"], "learning_rate": 1e-2}}
    assert identity_changes(before, training_identity(faster)) == [
        "the cell's settings",
        "the training data",
        "the model files",
    ]
    # The DeepSpeed config by its contents, not only its path (a new ZeRO stage shards the state anew).
    zero = tmp_path / "zero.json"
    zero.write_text('{"zero_optimization": {"stage": 2}}')
    sharded = {**cell, "training": {**cell["training"], "deepspeed": str(zero)}}
    stage2 = training_identity(sharded)
    zero.write_text('{"zero_optimization": {"stage": 3}}')
    assert identity_changes(stage2, training_identity(sharded)) == ["the DeepSpeed config"]
    assert "deepspeed" not in before["inputs"]
    # emogrid's training code is in the identity; code training never imports is not.
    older_code = {**before, "inputs": {**before["inputs"], "code": "0" * 64}}
    assert identity_changes(older_code, before) == ["emogrid's code"]
    assert len(before["inputs"]["code"]) == 64


def test_the_code_digest_covers_what_training_imports_and_nothing_else():
    from emogrid.checkpoints import training_sources

    names = {path.name for path in training_sources()}
    # train.py and what it imports, directly (losses) or through another module (io via checkpoints).
    assert {"train.py", "losses.py", "modeling.py", "batching.py", "checkpoints.py", "settings.py"} <= names
    assert {"io.py", "imbalance.py", "tokenize.py", "attention.py", "preemption.py"} <= names
    # Reports and readers: editing them while a grid runs must not restart preempted cells. Nor the
    # config checks and the modules training imports only for its records (a review helper saw a new
    # config check and a new report metric discard every checkpoint of the demo).
    assert names.isdisjoint({"report.py", "runs.py", "significance.py", "synthetic.py", "preprocess.py"})
    assert names.isdisjoint({"config.py", "evaluate.py", "devices.py", "htmlpage.py", "provenance.py"})


def test_editing_a_module_training_imports_changes_the_code_digest_and_a_report_module_does_not(tmp_path):
    """On a copy of the package: one byte more in losses.py changes the digest, in report.py it does not."""
    import shutil
    import subprocess
    import sys

    from conftest import REPO_ROOT

    copy = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT / "src" / "emogrid", copy / "emogrid", ignore=shutil.ignore_patterns("__pycache__")
    )

    def digest() -> str:
        code = "from emogrid.checkpoints import code_digest; print(code_digest())"
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(copy)},
            check=True,
        )
        return done.stdout.strip()

    original = digest()
    assert len(original) == 64
    with open(copy / "emogrid" / "report.py", "a") as report:
        report.write("\n# an edit training never imports\n")
    assert digest() == original
    for name in ("evaluate.py", "config.py"):
        with open(copy / "emogrid" / name, "a") as module:
            module.write("\n# a new report metric or config check\n")
        assert digest() == original, name
    with open(copy / "emogrid" / "losses.py", "a") as losses:
        losses.write("\n# an edit to the training code\n")
    assert digest() != original


def test_checkpoints_from_an_emogrid_without_input_digests_are_not_resumed(make_cell, tmp_path, capfd):
    from emogrid.checkpoints import training_identity

    cell = make_cell(num_train_epochs=1, save_steps=1000, output_dir=tmp_path / "cell")
    steps = read_json(run_cell(cell) / "train_log.json")["global_step"]
    assert steps > 0
    (tmp_path / "cell" / "predictions.parquet").unlink()
    # The stamp as the emogrid before input digests wrote it: settings only.
    stamp = tmp_path / "cell" / "checkpoints" / "training_identity.json"
    write_json(stamp, {k: v for k, v in training_identity(cell).items() if k != "inputs"})
    capfd.readouterr()
    assert read_json(run_cell(cell) / "train_log.json")["start_step"] == 0
    assert "no digests of the inputs" in capfd.readouterr().err
