"""Training: the gradient-accumulation guard, the mixture sampler, batching and a whole cell."""

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import TrainerCallback

from emogrid.batching import MixtureLengthSampler, MultiLabelCollator, epoch_counts, mixture_weights
from emogrid.io import read_json
from emogrid.train import (
    GradientHealthCallback,
    build_trainer,
    collapse_warnings,
    masked_macro_f1,
    predict_split,
    resolve_precision,
    run_cell,
    scrub,
    threads_per_process,
    training_arguments,
)


class GradientCapture(TrainerCallback):
    """Keep the accumulated gradients just before the first optimizer step."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.grads is None:
            model = kwargs["model"]
            self.grads = {
                n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
            }
            self.attention = {
                type(m).__name__ for m in model.modules() if "SelfAttention" in type(m).__name__
            }


def first_step(
    make_cell, batch, accumulation, guarded=True, train_files=None, attention=None, seen=None, **training
):
    """Gradients and logged loss of one optimizer step over the same 8 examples. `seen`: a set that gets
    the class names of the attention modules that took the step."""
    cell = make_cell(
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        group_by_length=False,
        max_grad_norm=1e9,
        save_steps=1000,
        **training,
    )
    if attention is not None:
        cell["model"]["attention"] = attention
    if train_files is not None:
        cell["train_files"] = [str(path) for path in train_files.values()]
        cell["mix"] = {name: 1.0 / len(train_files) for name in train_files}
    capture = GradientCapture()
    trainer, _ = build_trainer(cell, callbacks=[capture])
    if not guarded:
        # What Trainer does without the guard for models whose forward takes **kwargs (transformers#47688).
        trainer.model_accepts_loss_kwargs = True
        trainer.loss_is_scaled_for_ga = None
    trainer.train()
    if seen is not None:
        seen |= capture.attention
    loss = next(e["loss"] for e in trainer.state.log_history if "loss" in e)
    return capture.grads, loss


def test_accumulation_guard_matches_unaccumulated_step(make_cell):
    grads_1, loss_1 = first_step(make_cell, batch=8, accumulation=1)
    grads_4, loss_4 = first_step(make_cell, batch=2, accumulation=4)
    assert loss_4 == pytest.approx(loss_1, rel=1e-4)
    for name, grad in grads_1.items():
        torch.testing.assert_close(grads_4[name], grad, rtol=1e-3, atol=1e-6)


def test_fused_attention_takes_transformers_first_step_with_and_without_checkpointing(make_cell):
    """model.attention: fused through the real Trainer: the same loss and gradients as DeBERTa's own
    attention (the tiny model has no dropout), also when activations are recomputed."""
    reference = set()
    grads_ref, loss_ref = first_step(make_cell, batch=8, accumulation=1, seen=reference)
    assert reference == {"DisentangledSelfAttention"}
    for checkpointing in (False, True):
        fused = set()
        grads, loss = first_step(
            make_cell, 8, 1, attention="fused", seen=fused, gradient_checkpointing=checkpointing
        )
        assert fused == {"SdpaDisentangledSelfAttention"}
        assert loss == pytest.approx(loss_ref, rel=1e-5)
        assert set(grads) == set(grads_ref)
        for name, grad in grads_ref.items():
            torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6)


def test_torch_compile_reaches_the_trainer_and_takes_the_eager_first_step(make_cell, monkeypatch):
    """training.torch_compile: Trainer compiles the model and the first step (loss, gradients through the
    guard) is the eager one. The test compiles with torch's aot_eager backend (the same graph capture
    and autograd tracing, without Inductor's minutes of code generation on CPU)."""
    import torch._dynamo

    from emogrid import train

    made = []

    def arguments(cell, output_dir):
        args = training_arguments(cell, output_dir)
        made.append((args.torch_compile, args.torch_compile_mode, args.tf32))
        if args.torch_compile:
            args.torch_compile_backend = "aot_eager"
        return args

    monkeypatch.setattr(train, "training_arguments", arguments)
    grads_ref, loss_ref = first_step(make_cell, batch=4, accumulation=2)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    try:
        grads, loss = first_step(make_cell, batch=4, accumulation=2, torch_compile="max-autotune")
    finally:
        torch._dynamo.reset()  # no compiled code left behind for the tests after this one
    assert made == [(False, None, None), (True, "max-autotune", False)]  # compiling keeps TF32 off
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # the model ran compiled
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    for name, grad in grads_ref.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6)


@pytest.fixture
def mixed_coverage(tiny_corpus, tmp_path):
    """alpha's training rows (6 labels covered) and "gamma": beta's with only labels 3 and 4 covered, as
    GoEmotions and ISEAR rows differ in a mix."""
    frame = pd.read_parquet(tiny_corpus["files"][("beta", "train")])
    mask = np.zeros(len(tiny_corpus["labels"]), dtype=np.int8)
    mask[[3, 4]] = 1
    frame["dataset"] = "gamma"
    frame["labels"] = [np.asarray(y, dtype=np.int8) * mask for y in frame["labels"]]
    frame["label_mask"] = [mask] * len(frame)
    frame.to_parquet(tmp_path / "gamma_train.parquet", index=False)
    return {"alpha": tiny_corpus["files"][("alpha", "train")], "gamma": tmp_path / "gamma_train.parquet"}


def test_rows_covering_different_labels_get_the_same_gradient_however_the_batch_is_split(
    make_cell, mixed_coverage
):
    # The loss is the mean over the covered entries of the whole optimizer batch: a per-micro-batch
    # mean would weigh a 2-label row against the rows beside it, and the gradient would change here.
    grads_1, loss_1 = first_step(make_cell, batch=8, accumulation=1, train_files=mixed_coverage)
    for batch, accumulation in [(4, 2), (2, 4)]:
        grads, loss = first_step(make_cell, batch, accumulation, train_files=mixed_coverage)
        assert loss == pytest.approx(loss_1, rel=1e-4)
        for name, grad in grads_1.items():
            torch.testing.assert_close(grads[name], grad, rtol=1e-3, atol=1e-6)


def test_without_guard_trainer_scales_loss_by_accumulation_steps(make_cell):
    """The bug the guard exists for is real in this transformers version: gradients come out 4x."""
    grads_1, _ = first_step(make_cell, batch=8, accumulation=1)
    grads_4, _ = first_step(make_cell, batch=2, accumulation=4, guarded=False)
    name = "classifier.weight"
    ratio = grads_4[name].norm() / grads_1[name].norm()
    assert ratio == pytest.approx(4.0, rel=1e-3)


def test_mixture_weights_give_each_dataset_its_share():
    names = np.array(["a"] * 900 + ["b"] * 100)
    weights = mixture_weights(names, {"a": 0.5, "b": 0.5})
    sampler = MixtureLengthSampler(np.ones(1000, dtype=int), weights, batch_size=10, seed=0)
    drawn = names[list(iter(sampler))]
    assert abs((drawn == "b").mean() - 0.5) < 0.05


def test_a_single_dataset_epoch_draws_every_row_once():
    # An ordinary epoch: independent draws with replacement would leave about 37% of the rows out.
    lengths = np.random.default_rng(4).integers(3, 60, size=997)
    sampler = MixtureLengthSampler(lengths, np.full(997, 1 / 997), batch_size=32, seed=1)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
        assert sorted(orders[-1]) == list(range(997))
    assert orders[0] != orders[1]


def test_a_mix_gives_each_row_and_each_dataset_its_expected_draws():
    names = np.array(["a"] * 700 + ["b"] * 90 + ["c"] * 210, dtype=object)
    weights = mixture_weights(names, {"a": 0.5, "b": 0.3, "c": 0.2})
    # Oversampling makes weights differ within a dataset too.
    weights[:100] *= 3
    weights /= weights.sum()
    expected = 1000 * weights
    rng = np.random.default_rng(0)
    epochs = np.stack([epoch_counts(weights, 1000, rng, names) for _ in range(400)])
    assert (epochs.sum(axis=1) == 1000).all()
    assert ((epochs == np.floor(expected)) | (epochs == np.ceil(expected))).all()
    for name in "abc":
        per_dataset = epochs[:, names == name].sum(axis=1)
        total = expected[names == name].sum()
        assert set(per_dataset) <= {np.floor(total), np.ceil(total)}, name
    # Unbiased: over many epochs each row is drawn as often as its weight says.
    np.testing.assert_allclose(epochs.mean(axis=0), expected, atol=0.2)


def test_the_trainer_gives_each_dataset_of_its_mix_its_share_of_an_epoch(make_cell):
    trainer, _ = build_trainer(make_cell(mix={"alpha": 3.0, "beta": 1.0}))
    names = trainer.train_dataset.dataset_names
    for epoch in range(3):
        drawn = names[trainer.train_sampler.epoch_indices(epoch)]
        assert len(drawn) == len(names)
        # The sampler knows the datasets: each gets 3/4 or 1/4 of the draws to within one row.
        assert abs((drawn == "alpha").sum() - 0.75 * len(names)) < 1


def test_mixture_rejects_dataset_without_rows():
    with pytest.raises(ValueError, match="no training rows"):
        mixture_weights(np.array(["a", "a"]), {"a": 1.0, "b": 1.0})


def test_sampler_order_depends_only_on_seed_and_epoch():
    lengths = np.random.default_rng(0).integers(3, 60, size=500)
    weights = np.full(500, 1 / 500)
    a = MixtureLengthSampler(lengths, weights, batch_size=16, seed=7)
    b = MixtureLengthSampler(lengths, weights, batch_size=16, seed=7)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    # Another seed, the same epoch: another order (seeds of a cell must not share their data order).
    assert list(MixtureLengthSampler(lengths, weights, batch_size=16, seed=8)) != list(a)


def test_length_grouping_cuts_padding():
    lengths = np.random.default_rng(1).integers(3, 120, size=2000)
    weights = np.full(2000, 1 / 2000)

    def padded_tokens(group):
        order = np.array(list(MixtureLengthSampler(lengths, weights, 32, seed=3, group_by_length=group)))
        return sum(
            lengths[order[i : i + 32]].max() * len(order[i : i + 32]) for i in range(0, len(order), 32)
        )

    assert padded_tokens(True) < 0.7 * padded_tokens(False)


def test_the_dataloaders_batches_are_the_samplers_length_groups():
    # 1,000 rows in batches of 32 leave a short batch of 8. The DataLoader re-cuts the sampler's flat
    # stream every 32 rows, so each cut must be one length-sorted group; a short batch in the middle
    # would shift every later cut across two groups.
    lengths = np.random.default_rng(2).permutation(1000) + 1
    sampler = MixtureLengthSampler(lengths, np.full(1000, 1 / 1000), 32, seed=5)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(lengths, batch_size=32, sampler=sampler)
        batches = [batch.numpy() for batch in loader]
        assert [len(b) for b in batches] == [32] * 31 + [8]
        assert all((np.diff(b) <= 0).all() for b in batches), "a batch straddles two length groups"
        assert batches[0].max() == max(b.max() for b in batches[:-1])


def test_collator_pads_to_longest_in_batch():
    collate = MultiLabelCollator(pad_token_id=0)
    features = [
        {
            "input_ids": np.array([1, 5, 2]),
            "labels": np.ones(3, np.float32),
            "label_mask": np.ones(3, np.float32),
        },
        {
            "input_ids": np.array([1, 2]),
            "labels": np.zeros(3, np.float32),
            "label_mask": np.ones(3, np.float32),
        },
    ]
    batch = collate(features)
    assert batch["input_ids"].shape == (2, 3)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["input_ids"][1, 2] == 0


def test_collator_pads_to_a_multiple_but_never_past_max_length():
    def rows(*lengths):
        return [
            {
                "input_ids": np.arange(1, n + 1),
                "labels": np.zeros(3, np.float32),
                "label_mask": np.ones(3, np.float32),
            }
            for n in lengths
        ]

    collate = MultiLabelCollator(pad_token_id=0, pad_to_multiple_of=16, max_length=40)
    assert collate(rows(3, 17))["input_ids"].shape == (2, 32)
    assert collate(rows(16))["input_ids"].shape == (1, 16)
    batch = collate(rows(33, 5))  # 48 would pass max_length 40
    assert batch["input_ids"].shape == (2, 40)
    assert batch["attention_mask"].sum(dim=1).tolist() == [33, 5]
    shapes = {collate(rows(n))["input_ids"].shape[1] for n in range(1, 41)}
    assert shapes == {16, 32, 40}


def test_gradient_health_warns_when_norm_stays_tiny():
    callback = GradientHealthCallback(threshold=1e-3, patience=3)

    class State:
        global_step = 10

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for norm in [1e-2, 1e-5, 1e-5, 1e-5]:
            callback.on_log(None, State(), None, logs={"grad_norm": norm})
    assert len(callback.warnings) == 1
    assert any("gradient norm" in str(w.message) for w in caught)
    # A non-finite norm (an fp16 overflow; DeepSpeed's -1 arrives as NaN) is no tiny norm: it neither
    # counts nor breaks a streak.
    quiet = GradientHealthCallback(threshold=1e-3, patience=3)
    for norm in [math.nan, math.inf, math.nan, 1e-5, math.nan, 1e-5]:
        quiet.on_log(None, State(), None, logs={"grad_norm": norm})
    assert quiet.warnings == [] and quiet.tiny_streak == 2


def test_gradient_health_carries_an_earlier_attempts_streak_and_warning_into_a_resumed_run():
    class Resumed:
        global_step = 4
        log_history = [{"step": s, "grad_norm": n} for s, n in [(1, 1e-2), (2, 1e-5), (3, 1e-5), (4, 1e-5)]]

    callback = GradientHealthCallback(threshold=1e-3, patience=3)
    callback.on_train_begin(None, Resumed(), None)
    assert len(callback.warnings) == 1 and "at step 4" in callback.warnings[0]
    # A streak cut short by the preemption continues: two more tiny logs after resuming make 3.
    short = GradientHealthCallback(threshold=1e-3, patience=3)
    Resumed.log_history = Resumed.log_history[:3]
    short.on_train_begin(None, Resumed(), None)
    assert short.warnings == [] and short.tiny_streak == 2
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        short.on_log(None, Resumed(), None, logs={"grad_norm": 1e-5})
    assert len(short.warnings) == 1


def test_scrub_removes_credentials():
    cleaned = scrub({"env": {"HF_TOKEN": "hf_secret", "WANDB_API_KEY": "k", "SEED": 1}})
    assert cleaned["env"] == {"HF_TOKEN": "<scrubbed>", "WANDB_API_KEY": "<scrubbed>", "SEED": 1}
    credentials = ["hftoken", "client_secret", "db-password", "API_KEYS", "access_tokens"]
    assert all(v == "<scrubbed>" for v in scrub(dict.fromkeys(credentials, "value1")).values())
    # Whole words: a package called tokenizers and a file called tokenizer.json keep their values (the
    # run records of the image build lost tokenizers' version to this).
    kept = {"tokenizers": "0.23.3", "tokenizer.json": "ab" * 32, "keyword_rows": 3}
    assert scrub(kept) == kept


def test_run_cell_writes_predictions_log_and_run_info(make_cell, tmp_path, monkeypatch):
    # As inside the image: EMOGRID_IMAGE_INFO names the record the image build wrote.
    image_record = {"image": "registry.example/emogrid:test", "versions": {"torch": "0.0-image"}}
    (tmp_path / "image.json").write_text(json.dumps(image_record))
    monkeypatch.setenv("EMOGRID_IMAGE_INFO", str(tmp_path / "image.json"))
    cell = make_cell(
        num_train_epochs=2, eval_steps=6, save_steps=6, save_total_limit=1, output_dir=tmp_path / "c"
    )
    # The checkout's state is read when the cell starts, with the code it imported: a commit made while a
    # long cell trains must not be recorded as the code that trained it.
    from emogrid import train as train_module

    trained, train_method, real_state = [], train_module.EmotionTrainer.train, train_module.source_state
    monkeypatch.setattr(
        train_module.EmotionTrainer, "train", lambda self, **kw: trained.append(1) or train_method(self, **kw)
    )

    def state_now():
        return real_state() | {"git_commit": f"read after {len(trained)} trainings"}

    monkeypatch.setattr(train_module, "source_state", state_now)
    out = run_cell(cell)
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert set(predictions["split"]) == {"validation", "test"}
    assert set(predictions["dataset"]) == {"alpha", "beta"}
    assert len(predictions) == 4 * 32
    probs = np.stack(predictions["probs"])
    assert probs.shape[1] == 28 and np.all((probs >= 0) & (probs <= 1))
    log = read_json(out / "train_log.json")
    losses = [e["loss"] for e in log["log_history"] if "loss" in e]
    assert losses and all(np.isfinite(losses))
    # A model that learned is not taken for a collapsed one; the same rows with one output for all are.
    assert not any("same probabilities" in warning for warning in log["warnings"])
    assert collapse_warnings("c", predictions) == []
    flat = predictions.assign(probs=[probs[0]] * len(predictions))
    flagged = [w.split(": every ")[1].split(" row")[0] for w in collapse_warnings("c", flat)]
    assert flagged == ["alpha validation", "alpha test", "beta validation", "beta test"]
    evaluations = [e for e in log["log_history"] if "eval_f1_macro" in e]
    assert evaluations
    # Thresholds tuned on the same validation rows can only match or beat 0.5 (0.5 is in the grid).
    assert all(e["eval_f1_macro_tuned"] >= e["eval_f1_macro"] - 1e-12 for e in evaluations)
    assert all("grad_norm" in e for e in log["log_history"] if "loss" in e)
    info = read_json(out / "run_info.json")
    assert info["seed"] == 1 and info["device"]["type"] in {"cpu", "cuda"}
    assert info["versions"]["transformers"].startswith("5.")
    assert info["image"] == image_record
    # Which code and which inputs: the digests of the checkpoint stamp, unscrubbed, and the checkout.
    from emogrid.checkpoints import code_digest, input_digests

    assert info["inputs"] == input_digests(cell) and info["inputs"]["code"] == code_digest()
    assert set(info["inputs"]["data"]) == set(cell["train_files"] + cell["validation_files"])
    assert "tokenizer.json" in info["inputs"]["model"] or "spm.model" in info["inputs"]["model"]
    assert {"git_commit", "git_dirty", "package_dir", "workflow_git_commit"} <= info.keys()
    assert info["git_commit"] == "read after 0 trainings"
    assert len(list((out / "checkpoints").glob("checkpoint-*"))) <= 1

    # A rerun of the same cell picks up its last checkpoint instead of starting from step 0.
    (out / "predictions.parquet").unlink()
    rerun = read_json(run_cell(cell) / "train_log.json")
    assert rerun["resumed_from"] and "checkpoint-" in rerun["resumed_from"]
    assert rerun["global_step"] == log["global_step"]


def test_evaluating_during_training_does_not_change_the_trained_model(make_cell, tmp_path):
    """Creating the evaluation DataLoader draws from torch's CPU generator; unless the state is put
    back, every later dropout mask moves and eval_steps acts as a hidden seed (predictions moved by up
    to 0.1 on this corpus)."""
    runs = {}
    for eval_steps in (0, 5):
        cell = make_cell(num_train_epochs=2, eval_steps=eval_steps, output_dir=tmp_path / f"eval{eval_steps}")
        out = run_cell(cell)
        log = read_json(out / "train_log.json")
        assert any("eval_f1_macro" in entry for entry in log["log_history"]) == (eval_steps > 0)
        runs[eval_steps] = np.stack(pd.read_parquet(out / "predictions.parquet")["probs"])
    np.testing.assert_array_equal(runs[0], runs[5])


def test_masking_off_trains_uncovered_labels_as_negatives_and_still_scores_covered_ones(make_cell, tmp_path):
    masked, _ = build_trainer(make_cell(output_dir=tmp_path / "on"))
    unmasked, _ = build_trainer(make_cell(output_dir=tmp_path / "off", coverage_masking=False, eval_steps=5))
    # alpha covers labels 0-5, beta 3-8: with masking on their rows have 6 ones, off all 28.
    assert set(masked.train_dataset.label_mask.sum(axis=1)) == {6}
    assert unmasked.train_dataset.label_mask.min() == 1
    # An uncovered label is then a negative in the loss: its bias prior comes from zero positives (the
    # 1e-3 floor) instead of staying at 0 (no data).
    assert masked.model.classifier.bias[20].item() == 0.0
    assert unmasked.model.classifier.bias[20].item() == pytest.approx(np.log(1e-3 / (1 - 1e-3)), rel=1e-5)
    # What evaluation scores on is untouched: validation keeps the data's coverage mask.
    assert set(unmasked.eval_dataset.examples.label_mask.sum(axis=1)) == {6}


def test_single_process_deepspeed_cells_get_a_free_port_each(monkeypatch):
    import socket

    from emogrid.train import deepspeed_env

    # A first cell on this node holds its port (29511 was the fixed one every cell used).
    with socket.socket() as first_cell:
        first_cell.bind(("127.0.0.1", 29511))
        first_cell.listen()
        for key in ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE"):
            # setenv first, so that monkeypatch restores the variable's absence afterwards: what
            # deepspeed_env sets must not leak into later tests' subprocesses (their cells would then
            # start process groups on one port).
            monkeypatch.setenv(key, "unset")
            monkeypatch.delenv(key)
        deepspeed_env()
        port = int(os.environ["MASTER_PORT"])
        with socket.socket() as second_cell:
            second_cell.bind(("127.0.0.1", port))  # free: the second cell's process group can bind it
    assert os.environ["WORLD_SIZE"] == "1" and os.environ["RANK"] == "0"
    # Under torchrun the launcher's port is kept.
    monkeypatch.setenv("MASTER_PORT", "29400")
    deepspeed_env()
    assert os.environ["MASTER_PORT"] == "29400"


def test_the_deepspeed_config_leaves_optimizer_schedule_and_batch_to_trainer():
    """DeepSpeed cells train with the recipe of every other cell: Trainer's AdamW and linear schedule
    (DeepSpeed's own gave a log-shaped warm-up, decay on every parameter, and a FusedAdam compiled just
    in time, which the runtime image cannot), and the batch and precision settings of the cell."""
    from conftest import REPO_ROOT

    ds = json.loads((REPO_ROOT / "config" / "deepspeed_zero2.json").read_text())
    assert "optimizer" not in ds and "scheduler" not in ds
    assert ds["zero_optimization"]["stage"] == 2
    for key in (
        "gradient_accumulation_steps",
        "gradient_clipping",
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
    ):
        assert ds[key] == "auto", key
    assert ds["bf16"]["enabled"] == ds["fp16"]["enabled"] == "auto"


def test_cuda_arch_list_loses_suffixes_deepspeed_cannot_parse():
    from emogrid.train import plain_cuda_arch_list

    assert plain_cuda_arch_list("9.0a") == "9.0"
    assert plain_cuda_arch_list("8.0;8.6;9.0a+PTX") == "8.0;8.6;9.0+PTX"
    assert plain_cuda_arch_list("10.0f 12.0a") == "10.0 12.0"


def test_prior_bias_init_sets_logit_of_covered_label_frequency():
    from emogrid.train import init_bias_from_prior

    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    mask = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 0, 0]], dtype=np.float32)
    layer = torch.nn.Linear(4, 3)
    init_bias_from_prior(layer, labels, mask)
    expected = [np.log(0.5 / 0.5), np.log((1 / 3) / (2 / 3)), 0.0]  # label 2: never covered
    np.testing.assert_allclose(layer.bias.detach().numpy(), expected, atol=1e-6)
    # Sampling weights (a mix's shares, oversampling) change the frequency the model sees: with the
    # first two rows drawn 3x as often, label 1 is positive in 3 of 7 covered draws (label 0's 6 of 8
    # is capped at 0.5, a bias of 0).
    init_bias_from_prior(layer, labels, mask, weights=np.array([3, 3, 1, 1]) / 8)
    expected = [0.0, np.log((3 / 7) / (4 / 7)), 0.0]
    np.testing.assert_allclose(layer.bias.detach().numpy(), expected, atol=1e-6)


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_and_writes_every_prediction_once(make_cell, tmp_path):
    """The multi-GPU launch path, on CPU: two processes (gloo), outputs written by rank 0 only."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from emogrid.io import write_json

    cell = make_cell(num_train_epochs=1, eval_steps=4, output_dir=tmp_path / "ddp")
    write_json(tmp_path / "cell.json", cell)
    torchrun = Path(sys.executable).parent / "torchrun"
    done = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "emogrid.train",
            "--threads",
            "4",
            str(tmp_path / "cell.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = tmp_path / "ddp"
    info = read_json(out / "run_info.json")
    assert info["world_size"] == 2
    # The job's 4 cores are shared by the two processes.
    assert info["torch_threads"] == 2
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert len(predictions) == 4 * 32 and predictions["id"].is_unique


@pytest.mark.slow
def test_two_processes_take_the_same_step_as_one(make_cell, mixed_coverage, tmp_path):
    """Two torchrun processes with 4 rows each log the loss and gradient norm of one process with 8
    (the same 8 rows: the sampler's first two batches of 4), with rows covering 6 or 2 labels."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from emogrid.io import write_json

    settings = dict(max_steps=1, group_by_length=False, max_grad_norm=1e9, save_steps=1000)
    # The head's dropout would draw other masks for rows 4-7 on the second process than after rows
    # 0-3 in one process; without it the two runs compute the same numbers.
    script = tmp_path / "train_without_dropout.py"
    script.write_text(
        "import torch\nfrom emogrid.train import main\n\n"
        "torch.nn.Dropout.forward = lambda self, x: x\nmain()\n"
    )
    logged = {}
    for processes, batch in [(1, 8), (2, 4)]:
        cell = make_cell(per_device_train_batch_size=batch, output_dir=tmp_path / f"p{processes}", **settings)
        cell["train_files"] = [str(path) for path in mixed_coverage.values()]
        cell["mix"] = {name: 0.5 for name in mixed_coverage}
        write_json(tmp_path / f"cell{processes}.json", cell)
        launcher = [
            str(Path(sys.executable).parent / "torchrun"),
            "--standalone",
            f"--nproc_per_node={processes}",
        ]
        done = subprocess.run(
            [*launcher, str(script), "--threads", "2", str(tmp_path / f"cell{processes}.json")],
            capture_output=True,
            text=True,
            timeout=600,
            env=os.environ | {"OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr[-4000:]
        log = read_json(tmp_path / f"p{processes}" / "train_log.json")
        logged[processes] = next(e for e in log["log_history"] if "loss" in e)
    assert logged[2]["loss"] == pytest.approx(logged[1]["loss"], rel=1e-4)
    assert logged[2]["grad_norm"] == pytest.approx(logged[1]["grad_norm"], rel=1e-3)


def test_job_threads_are_split_among_torchrun_processes(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads_per_process(3) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert threads_per_process(8) == 2
    # Fewer cores than processes still gives every process one thread.
    assert threads_per_process(2) == 1
    with pytest.raises(ValueError, match="--threads"):
        threads_per_process(0)


def test_validation_f1_with_tuned_thresholds_finds_a_separable_class_below_half():
    # Class 0 is perfectly separable at 0.3 but never predicted at 0.5; class 2 is not covered.
    probs = np.array([[0.35, 0.9, 0.5], [0.32, 0.1, 0.5], [0.1, 0.8, 0.5], [0.05, 0.2, 0.5]])
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    mask = np.array([[1, 1, 0]] * 4)
    logits = np.log(probs / (1 - probs))
    index = np.zeros(4, dtype=int)
    grid = {"start": 0.05, "stop": 0.95, "step": 0.05}
    scores = masked_macro_f1(logits, labels, mask, index, grid)
    assert scores["f1_macro"] == pytest.approx(0.5)
    assert scores["f1_macro_tuned"] == pytest.approx(1.0)
    assert "f1_macro_tuned" not in masked_macro_f1(logits, labels, mask, index)


def test_predicting_test_rows_computes_no_metrics(make_cell, tiny_corpus):
    # compute_metrics tunes thresholds on the rows it scores; on test rows that would be the leak
    # this project exists to avoid, even if the figure were never written anywhere.
    trainer, _ = build_trainer(make_cell(max_steps=1, eval_steps=1))
    calls = []
    trainer.compute_metrics = lambda eval_pred: calls.append(eval_pred) or {}
    test_rows = pd.read_parquet(tiny_corpus["files"][("alpha", "test")])
    predictions = predict_split(trainer, test_rows)
    assert len(predictions) == len(test_rows) and calls == []
    # Validation during training still has its metrics.
    assert trainer.compute_metrics is not None
    trainer.evaluate()
    assert len(calls) == 1


def test_auto_precision_takes_bf16_only_where_the_gpu_has_it_natively(monkeypatch):
    # A V100 or T4: torch.cuda.is_bf16_supported() says True by default, because bf16 can be emulated.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert resolve_precision("auto") == {"bf16": False, "fp16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("auto") == {"bf16": True, "fp16": False}
    assert resolve_precision("fp32") == {"bf16": False, "fp16": False}


def test_a_plain_trainer_around_the_classifier_does_not_scale_its_loss_either(tmp_path):
    # transformers#47688: EmotionTrainer says so itself; the model says it too, for any Trainer.
    from transformers import BertConfig, BertModel, Trainer, TrainingArguments

    from emogrid.modeling import EmotionClassifier

    encoder = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2))
    trainer = Trainer(
        model=EmotionClassifier(encoder, 3), args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    )
    assert trainer.model_accepts_loss_kwargs is False


def test_the_trainer_internals_emotion_trainer_overrides_are_still_there():
    # EmotionTrainer overrides private Trainer methods and sets private flags. A transformers upgrade
    # that renames one would leave the override uncalled and training quietly different (the loss
    # scaling of transformers#47688, the DDP sampler epoch, the non-finite check): fail here instead.
    import inspect

    from transformers import Trainer

    from emogrid.train import EmotionTrainer

    expected = {
        "compute_loss": ["model", "inputs", "return_outputs", "num_items_in_batch"],
        "get_batch_samples": ["epoch_iterator", "num_batches", "device"],
        "_get_grad_norm": ["model", "grad_norm"],
        "_get_train_sampler": ["train_dataset"],
    }
    for name, parameters in expected.items():
        assert name in EmotionTrainer.__dict__, name
        assert list(inspect.signature(getattr(Trainer, name)).parameters)[1:] == parameters, name
    # _run_epoch takes everything by keyword, and the override reads kwargs["epoch"].
    assert "epoch" in inspect.signature(Trainer._run_epoch).parameters
    assert "epoch=" in inspect.getsource(Trainer.train) or "epoch=" in inspect.getsource(
        Trainer._inner_training_loop
    )
    source = inspect.getsource(Trainer)
    for flag in ("model_accepts_loss_kwargs", "loss_is_scaled_for_ga"):
        assert f"self.{flag}" in source, flag


def test_training_selects_no_model_by_its_validation_scores(make_cell, tmp_path):
    """What lets evaluate.py stay out of the code digest and eval settings out of the training identity:
    validation scores are logged, never used to pick a checkpoint or stop early."""
    from emogrid.train import training_arguments

    args = training_arguments(make_cell(eval_steps=5, output_dir=tmp_path / "cell"), tmp_path / "out")
    assert args.eval_strategy == "steps" and args.load_best_model_at_end is False
    assert args.metric_for_best_model is None
    import emogrid.train

    source = Path(emogrid.train.__file__).read_text(encoding="utf-8")
    assert "EarlyStoppingCallback" not in source and "load_best_model_at_end" not in source


def test_a_max_length_past_the_encoders_positions_stops_the_cell_before_training(make_cell, tmp_path):
    """An encoder with absolute positions (BERT, MiniLM) and a model.max_length longer than its position
    table: the cell stops with the key and the limit, instead of an index error inside the forward pass."""
    import shutil

    from transformers import BertConfig, BertModel

    cell = make_cell()
    model_dir = tmp_path / "bert"
    BertModel(
        BertConfig(
            vocab_size=1000,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=cell["model"]["max_length"] - 8,
        ),
        add_pooling_layer=False,
    ).save_pretrained(model_dir)
    tokenizer_dir = Path(cell["model"]["path"])
    for name in tokenizer_dir.iterdir():
        if name.name != "config.json" and not name.name.endswith(".safetensors"):
            shutil.copy(name, model_dir / name.name)
    cell["model"]["path"] = str(model_dir)
    refused = r"model\.max_length: 32 is more tokens than .*bert has positions for \(24"
    with pytest.raises(ValueError, match=refused):
        build_trainer(cell)
    assert not (tmp_path / "cell").exists()
