"""The whole demo workflow through snakemake on CPU, its outputs, and `snakemake --lint`."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_ROOT, run_snakemake
from emogrid.config import grid_cells, recorded_config, synthetic_datasets
from emogrid.labels import covered_labels


def snakemake(workdir: Path, *args: str, check: bool = True, overlay: str | None = None):
    return run_snakemake(workdir, *args, check=check, overlays=[overlay] if overlay else [])


REAL_RUN_FILES = [
    "results/model/model.safetensors",
    "results/runs/goemotions/bce/none/seed1/checkpoints/checkpoint-500/model.safetensors",
    "results/runs/goemotions/bce/none/seed1/predictions.parquet",
    "results/tables/f1_macro.csv",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    (workdir / "config").symlink_to(REPO_ROOT / "config")
    # A real run's outputs in the same checkout (results/, the default): the demo must not touch them.
    for path in REAL_RUN_FILES:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).write_text(f"real run: {path}\n")
    snakemake(workdir, "--cores", "2")
    snakemake(workdir, "--cores", "1", "--report", str(workdir / "results/demo/report.html"))
    return workdir / "results/demo"


@pytest.mark.slow
def test_the_demo_leaves_a_real_run_in_results_untouched(demo_run):
    workdir = demo_run.parents[1]
    for path in REAL_RUN_FILES:
        assert (workdir / path).read_text() == f"real run: {path}\n", path


@pytest.mark.slow
def test_demo_outputs_are_as_readable_as_the_umask_allows(demo_run):
    # Snakemake runs the jobs with this process's umask; none of their files may end up private.
    umask = os.umask(0o022)
    os.umask(umask)
    readable = 0o444 & ~umask
    private = [p for p in demo_run.rglob("*") if p.is_file() and p.stat().st_mode & readable != readable]
    assert not private, private[:5]


@pytest.mark.slow
def test_demo_writes_tables_plots_and_report(demo_run):
    for name in [
        "tables/f1_macro.csv",
        "tables/f1_macro.md",
        "tables/f1_macro.html",
        "tables/f1_macro_at_0.5.md",
        "tables/f1_macro_at_0.5.html",
        "tables/f1_micro.md",
        "tables/f1_micro.html",
        "tables/data_summary.html",
        "tables/runs.html",
        "tables/paired.html",
        "tables/paired.md",
        "plots/paired_differences.png",
        "plots/f1_macro_bars.png",
        "plots/per_class_f1.png",
        "plots/training_curves.png",
        "report.html",
    ]:
        path = demo_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    for png in (demo_run / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_table_covers_the_grid_with_finite_scores(demo_run):
    table = pd.read_csv(demo_run / "tables/f1_macro.csv")
    assert set(zip(table["loss"], table["mix"], table["imbalance"], strict=True)) == {
        (loss, mix, "none") for loss in ("bce", "asl", "combined") for mix in ("goemotions", "all4")
    }
    assert set(table["dataset"]) == {"goemotions", "semeval2018_ec", "isear", "meld"}
    assert set(table["level"]) == {"labels", "ekman", "sentiment"}
    assert np.all(np.isfinite(table["mean"])) and table["mean"].between(0, 1).all()
    assert (table["n"] == 1).all()
    # Every macro-F1 has its bootstrap interval. A percentile interval need not contain the estimate
    # (skewed resampling distributions), but here nearly all do; a perfect score has [1, 1].
    for name in ("f1_macro.csv", "f1_macro_at_0.5.csv"):
        frame = pd.read_csv(demo_run / "tables" / name)
        assert (
            frame[["ci_low", "ci_high"]].notna().all().all() and (frame["ci_low"] <= frame["ci_high"]).all()
        )
        contains = (frame["ci_low"] <= frame["mean"]) & (frame["mean"] <= frame["ci_high"])
        assert contains.mean() >= 0.9 and (frame["ci_high"] > frame["ci_low"]).any()
    # ISEAR and MELD are single-label: their argmax scores have intervals too, for every cell.
    single = pd.read_csv(demo_run / "tables/single_label.csv")
    assert set(single["dataset"]) == {"isear", "meld"} and len(single) == 6 * 2 * 3
    assert single[["ci_low", "ci_high"]].notna().all().all() and (single["ci_low"] <= single["ci_high"]).all()


@pytest.mark.slow
def test_demo_paired_table_is_the_whole_family_with_holm(demo_run):
    paired = pd.read_csv(demo_run / "tables/paired.csv")
    # Per dataset: 3 loss pairs in each of 2 mixes + 1 mix pair for each of 3 losses; one strategy.
    assert len(paired) == 4 * (3 * 2 + 1 * 3)
    assert set(paired["compared"]) == {"loss", "mix"}
    assert (paired["ci_low"] <= paired["ci_high"]).all()
    assert (paired["p_holm"] >= paired["p_value"] - 1e-12).all() and paired["p_value"].between(0, 1).all()
    assert "Holm" in (demo_run / "tables/paired.md").read_text()


@pytest.mark.slow
def test_the_results_directory_keeps_the_config_it_was_made_with(demo_run):
    import yaml

    from conftest import load_config

    written = yaml.safe_load((demo_run / "config.resolved.yaml").read_text())
    # The merged, validated and resolved config: label maps, split seeds, statistics settings and all.
    assert written == recorded_config(load_config("config/demo.yaml"))
    assert "threads" not in written["training"] and "learning_rate" in written["training"]
    assert written["datasets"]["isear"]["split"]["seed"] == 2018
    assert written["losses"]["asl"]["prior_bias_init"] is False


@pytest.mark.slow
def test_every_demo_table_is_marked_synthetic(demo_run):
    # Copied out of the report, a demo number must still say it was measured on generated data.
    for name in (
        "f1_macro",
        "f1_macro_at_0.5",
        "f1_micro",
        "paired",
        "data_summary",
        "data_summary_label_counts",
    ):
        assert pd.read_csv(demo_run / f"tables/{name}.csv")["synthetic_data"].all(), name
    for name in ("f1_macro.md", "f1_macro.html", "paired.md", "data_summary.md", "data_summary.html"):
        assert (
            "SYNTHETIC DATA: goemotions, semeval2018_ec, isear, meld are"
            in (demo_run / "tables" / name).read_text()
        ), name
    # Each table's note says how its scores were thresholded.
    for name, thresholds in [
        ("f1_macro", "thresholds tuned on validation"),
        ("f1_micro", "tuned on validation"),
    ]:
        assert thresholds in (demo_run / f"tables/{name}.md").read_text(), name
    at_half = (demo_run / "tables/f1_macro_at_0.5.md").read_text()
    assert "every threshold fixed at 0.5 (no tuning)" in at_half and "tuned" not in at_half


@pytest.mark.slow
def test_demo_eval_reports_apply_validation_tuned_thresholds_to_test(demo_run):
    from sklearn.metrics import f1_score

    from emogrid.evaluate import tune_thresholds

    reports = sorted((demo_run / "runs").glob("*/*/none/seed1/eval_report.json"))
    assert len(reports) == 6
    for path in reports:
        report = json.loads(path.read_text())
        assert report["threshold_source"] == "validation"
        # Recomputed from the cell's own predictions: thresholds tuned on the validation rows, and the
        # reported test macro-F1 is the test rows scored at exactly those thresholds.
        cell = json.loads((path.parent / "cell.json").read_text())
        predictions = pd.read_parquet(path.parent / "predictions.parquet")
        for dataset, result in report["datasets"].items():
            covered = [cell["labels"].index(name) for name in result["covered_labels"]]

            rows = predictions[predictions["dataset"] == dataset]
            y_val, p_val = (
                np.stack(rows[rows["split"] == "validation"][column])[:, covered]
                for column in ("labels", "probs")
            )
            tuned = tune_thresholds(y_val, p_val, report["threshold_grid"])
            np.testing.assert_allclose([result["thresholds"][n] for n in result["covered_labels"]], tuned)
            y_test, p_test = (
                np.stack(rows[rows["split"] == "test"][column])[:, covered] for column in ("labels", "probs")
            )
            f1 = f1_score(y_test, p_test >= tuned, average="macro", zero_division=0)
            assert result["test"]["f1_macro@tuned"] == pytest.approx(f1, abs=1e-9), (path, dataset)
        for result in report["datasets"].values():
            for split in ("validation", "test"):
                for key in ("f1_macro@0.5", "f1_macro@tuned", "f1_micro@0.5", "f1_micro@tuned"):
                    assert 0.0 <= result[split][key] <= 1.0
                    for level in ("ekman", "sentiment"):
                        assert 0.0 <= result["levels"][level][split][key] <= 1.0


@pytest.mark.slow
def test_demo_learns_something(demo_run):
    """The synthetic text carries its labels' keywords: every cell must learn them, far above chance
    (here: the macro-F1 of predicting every covered label for every test row) on every dataset."""
    from sklearn.metrics import f1_score

    table = pd.read_csv(demo_run / "tables/f1_macro.csv")
    labels = table[table["level"] == "labels"]
    some_cell = pd.read_parquet(next((demo_run / "runs").glob("*/*/*/*/predictions.parquet")))
    test = some_cell[some_cell["split"] == "test"]
    assert set(labels["dataset"]) == set(test["dataset"]) and len(set(labels["dataset"])) == 4
    for dataset, rows in labels.groupby("dataset"):
        part = test[test["dataset"] == dataset]
        truth = np.stack(part["labels"].to_list())[:, np.stack(part["label_mask"].to_list()).all(axis=0)]
        chance = f1_score(truth, np.ones_like(truth), average="macro", zero_division=0)
        assert rows["mean"].min() > chance + 0.2, (dataset, rows["mean"].min(), chance)


@pytest.mark.slow
def test_demo_data_summary_counts_every_row(demo_run):
    summary = pd.read_csv(demo_run / "tables/data_summary.csv")
    assert (summary["read"] == summary["kept"] + summary["dropped"]).all()
    isear = summary[summary["dataset"] == "isear"]
    assert isear["dropped"].sum() > 0  # the synthetic ISEAR has non-answers, which are dropped and counted
    # Overlap with other datasets' train splits is counted for every evaluation split, not for train.
    evaluation = summary["split"] != "train"
    assert summary.loc[evaluation, "text_in_other_train"].notna().all()
    assert summary.loc[~evaluation, "text_in_other_train"].isna().all()
    # Rows cut at model.max_length, read from every token file.
    assert summary["truncated"].notna().all() and (summary["truncated"] <= summary["kept"]).all()


@pytest.mark.slow
def test_rerun_is_a_no_op_and_a_new_seed_runs_only_new_cells(demo_run):
    workdir = demo_run.parents[1]
    assert "Nothing to be done" in snakemake(workdir, "-n", "--cores", "1").stdout
    # A longer time limit, more memory or threads for the cells reruns nothing.
    (workdir / "rescheduled.yaml").write_text("training: {runtime: 999, mem_mb: 9999, threads: 2}\n")
    dry = snakemake(workdir, "-n", "--cores", "2", overlay=str(workdir / "rescheduled.yaml")).stdout
    assert "Nothing to be done" in dry
    # Another GPU count reruns the GPU check (it has no inputs, so only its params can trigger it).
    (workdir / "gpus.yaml").write_text("training: {gpus: 1}\n")
    dry = snakemake(workdir, "-n", "--cores", "1", overlay=str(workdir / "gpus.yaml")).stdout
    assert "rule check_gpu:" in dry
    (workdir / "two_seeds.yaml").write_text("seeds: [1, 2]\n")
    dry = snakemake(workdir, "-n", "--cores", "1", overlay=str(workdir / "two_seeds.yaml")).stdout
    train_outputs = re.findall(r"rule train:\n(?:.*\n)*?\s+output: (.*)", dry)
    assert len(train_outputs) == 6
    assert all("seed2" in out and "seed1" not in out for out in train_outputs)
    # Adding an imbalance strategy runs only its own cells, under their own paths.
    (workdir / "oversample.yaml").write_text("imbalance: [none, oversample]\n")
    dry = snakemake(workdir, "-n", "--cores", "1", overlay=str(workdir / "oversample.yaml")).stdout
    train_outputs = re.findall(r"rule train:\n(?:.*\n)*?\s+output: (.*)", dry)
    assert len(train_outputs) == 6
    assert all("/oversample/seed1/" in out for out in train_outputs)
    # Coverage masking is a training setting: switching it off reruns the cells, not preprocessing.
    (workdir / "unmasked.yaml").write_text("data: {coverage_masking: false}\n")
    dry = snakemake(workdir, "-n", "--cores", "1", overlay=str(workdir / "unmasked.yaml")).stdout
    assert dry.count("rule preprocess:") == 0
    assert dry.count("rule train:") == 6
    # The threshold grid is evaluation's alone: a new one re-evaluates every cell and retrains none.
    (workdir / "grid.yaml").write_text("evaluation: {threshold_grid: {start: 0.1, stop: 0.9, step: 0.1}}\n")
    dry = snakemake(workdir, "-n", "--cores", "1", overlay=str(workdir / "grid.yaml")).stdout
    assert dry.count("rule evaluate:") == 6 and dry.count("rule train:") == 0


def test_workflow_scripts_read_the_config_only_through_params():
    # Snakemake reruns a job when its params change; what a script reads from snakemake.config
    # directly is invisible to it, so a changed setting would leave stale results in place.
    readers = [
        p.name for p in (REPO_ROOT / "workflow_scripts").glob("*.py") if "snakemake.config" in p.read_text()
    ]
    assert readers == []


def test_lint_is_clean(tmp_path):
    (tmp_path / "config").symlink_to(REPO_ROOT / "config")
    result = snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overlay", "key"),
    [
        ("training: {learning_rate: -0.1}", "learning_rate"),
        ("mixes: {bad: {goemotions: 1.0, emobank: 1.0}}", "mixes.bad.emobank"),
        ("losses: {focal: {type: focal}}", "config key 'losses.focal.type': 'focal' is not one of"),
        ("trainig: {epochs: 3}", "config key 'trainig': not a known key; did you mean 'training'?"),
        ("seed: [1, 2]", "config key 'seed': not a known key; did you mean 'seeds'?"),
        ("training: {learning_rat: 1.0e-5}", "did you mean 'learning_rate'?"),
        ("training: {learning_rate: 2e-5}", "(YAML reads 2e-5 as a string: write 2.0e-5)"),
        ("imbalance: [none, smote]", "config key 'imbalance[1]': 'smote' is not one of"),
        ("label_groups: {ekman: {joy: [glee]}}", "label_groups.ekman.joy"),
        ("evaluation: {statistics: {p_value: bayes}}", "p_value"),
        ('container: ""', "container"),
        ("seeds: [1.0, 2]", "config key 'seeds[0]': must be a whole number"),
        ("evaluation: {datasets: [goemotions, goemotions]}", "config key 'evaluation.datasets'"),
        ("training: {learning_rate: 2.0e-5}\nseeds: [1]\ntraining: {num_train_epochs: 5}", "given twice in"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, overlay, key):
    (tmp_path / "config").symlink_to(REPO_ROOT / "config")
    (tmp_path / "bad.yaml").write_text(overlay + "\n")
    result = snakemake(tmp_path, "-n", "--cores", "1", check=False, overlay=str(tmp_path / "bad.yaml"))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert key in output
    # One line that names the key and the files, not the whole schema and config.
    assert "Failed validating" not in output and len(output.splitlines()) < 15, output
    assert f"{tmp_path / 'bad.yaml'}]" in output  # the last of the files named
    assert not (tmp_path / "results").exists()


def test_a_demo_with_another_results_directory_generates_its_own_corpus(tmp_path):
    (tmp_path / "config").symlink_to(REPO_ROOT / "config")
    (tmp_path / "other.yaml").write_text("results: results/other\n")
    dry = snakemake(tmp_path, "-n", "-p", "--cores", "1", overlay=str(tmp_path / "other.yaml")).stdout
    assert "results/other/synthetic/goemotions/train.tsv" in dry
    assert "results/demo" not in dry


def test_train_jobs_with_several_gpus_launch_torchrun(tmp_path):
    (tmp_path / "config").symlink_to(REPO_ROOT / "config")
    dry = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--set-resources", "train:gpu=4").stdout
    assert (
        "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=110 python -m emogrid.gpulease 4 --"
        " torchrun --standalone --nproc_per_node=4 -m emogrid.train" in dry
    )
    single = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--set-resources", "train:gpu=1").stdout
    assert "python -m emogrid.gpulease 1 -- python -m emogrid.train" in single and "torchrun" not in single
    # The demo's CPU cells (gpus: 0) start training directly.
    demo = snakemake(tmp_path, "-n", "-p", "--cores", "1").stdout
    assert "python -m emogrid.train" in demo and "gpulease" not in demo


@pytest.mark.parametrize(
    "overlays",
    [
        (),
        ("config/demo.yaml",),
        ("config/minilm_cpu.yaml",),
        ("config/minilm_cpu.yaml", "config/minilm_cpu_grid.yaml"),
    ],
)
def test_methods_caption_states_the_actual_config(overlays):
    from jinja2 import Environment, StrictUndefined

    from conftest import load_config

    config = load_config(*overlays)
    template = (REPO_ROOT / "report/workflow.rst").read_text()
    # Snakemake renders captions with these Jinja settings.
    env = Environment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    text = env.from_string(template).render(snakemake=type("S", (), {"config": config}))
    assert "shame → embarrassment" in text and "guilt → remorse" in text
    assert f"``{config['model']['name']}``" in text
    assert ("**not** verified" in text) == (not config["data"]["verify_md5"])
    # The demo's corpus is named as synthetic; a run on the published files is not.
    assert ("**Synthetic data.**" in text) == bool(synthetic_datasets(config))
    # Generated files have no md5 to check: the text says they were not checked, not that they were.
    generated_only = len(synthetic_datasets(config)) == len(config["datasets"])
    assert ("generated files have no published md5 sums" in text) == generated_only
    assert ("File checksums were verified" in text) == (not generated_only)
    if synthetic_datasets(config):
        # One real dataset beside the corpus (as fetch_raw then checks it).
        config["datasets"]["meld"]["source_dir"] = "/data/meld"
        mixed = env.from_string(template).render(snakemake=type("S", (), {"config": config}))
        assert "verified against the md5 sums in the config, except for the generated goemotions, " in mixed
    # The grid that runs (grid: selects losses and mixes) and its training length, not every named one.
    cells = grid_cells(config)
    losses, mixes = {c["loss"] for c in cells}, {c["mix"] for c in cells}
    assert text.startswith(f"emogrid: a {len(losses)} loss × {len(mixes)} mix × ")
    assert text.count("\n- **") == len(config["datasets"]) + len(losses)
    assert all(f"**{mix}** = " in text for mix in mixes)
    assert sum(f"**{mix}** = " in text for mix in config["mixes"]) == len(mixes)
    steps = config["training"]["max_steps"]
    assert (f"{steps} optimizer steps per cell" in text) == (steps > 0)
    assert (f"{config['training']['num_train_epochs']} epochs" in text) == (steps <= 0)
    assert ("did **not** train for the same" in text) == (steps <= 0 and len(mixes) > 1)
    t = config["training"]
    rows = t["per_device_train_batch_size"] * t["gradient_accumulation_steps"] * max(t["gpus"], 1)
    assert f"= {rows} rows per optimizer step" in text
    assert (f"× {t['gpus']} GPUs" in text) == (t["gpus"] > 1)
    config["training"]["gpus"] = 4  # the README's gpu4 overlay: four times the rows per step
    text = env.from_string(template).render(snakemake=type("S", (), {"config": config}))
    per_gpu = t["per_device_train_batch_size"] * t["gradient_accumulation_steps"]
    assert f"× 4 GPUs = {4 * per_gpu} rows per optimizer step" in text


@pytest.mark.parametrize("overlays", [(), ("config/demo.yaml",)])
def test_every_caption_renders_and_the_statistics_captions_state_their_methods(overlays):
    from jinja2 import Environment, StrictUndefined

    from conftest import load_config

    config = load_config(*overlays)
    env = Environment(trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
    snakemake_object = type("S", (), {"config": config})
    rendered = {
        path.name: env.from_string(path.read_text()).render(snakemake=snakemake_object)
        for path in sorted((REPO_ROOT / "report").glob("*.rst"))
    }
    assert "**p-values are Holm-corrected**" in rendered["paired.rst"]
    assert "Holm" in rendered["paired_plot.rst"]
    statistics = config["evaluation"]["statistics"]
    assert f"{statistics['resamples']} resamples" in rendered["f1_macro.rst"]
    # The GoEmotions paper's grouped-level scores are quoted beside real data, not beside the demo's.
    quoted = "0.64" in rendered["f1_macro.rst"] and "0.69" in rendered["f1_macro.rst"]
    assert quoted == ("goemotions" not in synthetic_datasets(config)), overlays
    # Which datasets were resampled in whole clusters, in the captions of every interval and test.
    for caption in ("f1_macro.rst", "f1_at_half.rst", "paired.rst", "workflow.rst"):
        assert "isear, meld resampled in whole clusters of rows" in rendered[caption], caption
    assert "**ekman** (7 groups" in rendered["f1_macro.rst"]
    # The caption's count of labels averaged per dataset is the library's coverage of its map, in the
    # tables' (evaluation) order, also for a subset.
    for evaluated in (config["evaluation"]["datasets"], ["meld", "goemotions"]):
        config["evaluation"]["datasets"] = evaluated
        caption = env.from_string((REPO_ROOT / "report/f1_macro.rst").read_text()).render(
            snakemake=snakemake_object
        )
        counts = ", ".join(
            f"{name} {len(covered_labels(config['datasets'][name], config['labels']))}" for name in evaluated
        )
        assert f"covers ({counts})," in caption
    strategies = rendered["workflow.rst"].split("Imbalance strategies:")[1].split("\n")[0]
    assert strategies.count("**") == 2 * len(config["imbalance"])
