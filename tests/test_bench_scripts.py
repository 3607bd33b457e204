"""The benchmark scripts still run against the library (they are not timed here: bench/ measures).

A change to a library signature once broke bench/train_throughput.py without any test noticing; these
run each CPU benchmark for one short repeat on the synthetic corpus and check what it writes.
"""

import json
import os
import subprocess
import sys

import yaml

import data_fixtures
from conftest import REPO_ROOT

config, synthetic_dir = data_fixtures.config, data_fixtures.synthetic_dir

BENCH = REPO_ROOT / "bench"


def run_bench(script: str, *args: str, cwd) -> dict:
    out = cwd / f"{script}.json"
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_preprocess_benchmark_reads_every_dataset(synthetic_dir, tiny_corpus, tmp_path):
    result = run_bench(
        "preprocess_throughput.py",
        str(synthetic_dir),
        "--model",
        str(tiny_corpus["model_dir"]),
        "--repeats",
        "1",
        cwd=tmp_path,
    )
    # Every dataset read whole: its row count is the rows the readers keep from the same files.
    from emogrid.readers import read_dataset

    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    kept = {}
    for dataset in ("goemotions", "semeval2018_ec", "isear", "meld"):
        _, summary = read_dataset(
            dataset, synthetic_dir / dataset, config["datasets"][dataset], config["labels"]
        )
        kept[dataset] = sum(split["kept"] for split in summary["splits"].values())
        assert result["datasets"][dataset]["rows"] == kept[dataset] > 0, dataset
    assert result["all"]["rows"] == sum(kept.values())


def test_compile_benchmark_runs_each_variant_in_its_own_process(synthetic_dir, tmp_path):
    """The script's machinery (one process per run, paired ratios), on its uncompiled variant only: an
    Inductor compile takes over a minute on CPU."""
    result = run_bench(
        "compile_throughput.py",
        str(synthetic_dir),
        *("--model", "tiny", "--rows", "96", "--repeats", "2", "--warmup", "1", "--steps", "2"),
        *("--threads", "1", "--variants", "eager"),
        cwd=tmp_path,
    )
    runs = result["runs"]["eager"]
    assert [run["repeat"] for run in runs] == [0, 1] and all(run["examples_per_s"] > 0 for run in runs)
    assert all(run["compiled_graphs"] == 0 for run in runs)
    # The same seed and batches in two fresh processes: the same loss.
    assert runs[0]["train_loss"] == runs[1]["train_loss"]
    assert result["summary"]["eager"]["examples_per_s"]["n"] == 2


def test_training_benchmark_runs_all_three_contenders(synthetic_dir, tmp_path):
    result = run_bench(
        "train_throughput.py",
        str(synthetic_dir),
        "--model",
        "tiny",
        "--rows",
        "96",
        "--repeats",
        "1",
        "--warmup",
        "1",
        "--steps",
        "2",
        "--baseline-steps",
        "1",
        "--threads",
        "1",
        cwd=tmp_path,
    )
    for contender in ("emogrid", "raw_loop", "seed_style"):
        (run,) = result["runs"][contender]
        assert run["examples_per_s"] > 0 and run["tokens_per_s"] > 0
    # Length-grouped, dynamically padded batches carry less padding than padding every text to 256.
    assert result["summary"]["padding_share_emogrid"]["median"] < 0.5


def test_pipeline_overhead_reads_the_log_that_ran_training_not_a_later_report(tmp_path):
    # A finished run: two training jobs (benchmark files and the log that ran them), then a later
    # `--report` call whose log has no jobs.
    for name, seconds in (("a", 10.0), ("b", 4.0)):
        tsv = tmp_path / "results" / "benchmarks" / "train" / f"{name}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"s\th:m:s\n{seconds}\t0:00:{int(seconds):02d}\n")
    logs = tmp_path / ".snakemake" / "log"
    logs.mkdir(parents=True)
    ran = [
        "[Wed Nov 25 03:00:00 2026]", "localrule tokenize:", "    jobid: 3",
        "[Wed Nov 25 03:00:02 2026]", "Finished jobid: 3 (Rule: tokenize)",
        "[Wed Nov 25 03:00:02 2026]", "localrule train:", "    jobid: 1",
        "[Wed Nov 25 03:00:12 2026]", "Finished jobid: 1 (Rule: train)",
        "[Wed Nov 25 03:00:12 2026]", "localrule evaluate:", "    jobid: 2",
        "[Wed Nov 25 03:00:15 2026]", "Finished jobid: 2 (Rule: evaluate)",
    ]  # fmt: skip
    (logs / "2026-11-25T030000.000000.snakemake.log").write_text("\n".join(ran) + "\n")
    (logs / "2026-11-25T030100.000000.snakemake.log").write_text("Building DAG of jobs...\n")
    out = tmp_path / "overhead.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "pipeline_overhead.py"), "--existing", str(tmp_path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    line = result["timeline"]
    assert line["log_span_s"] == 15 and result["wall_s"] == 15
    assert line["before_first_train_s"] == 2 and line["after_last_train_s"] == 3
    assert line["jobs_before_first_train_s"] == {"tokenize": 2}
    assert line["jobs_after_last_train_s"] == {"evaluate": 3}
    assert result["train_jobs"] == 2 and result["train_sum_s"] == 14.0


def test_pipeline_overhead_takes_each_job_from_its_metadata_records(tmp_path, monkeypatch):
    """Snakemake writes one metadata record per output file; the records of one job (same job_hash)
    make one job, from the earliest start to the latest end, whatever order the files are read in."""
    monkeypatch.syspath_prepend(str(BENCH))
    import pipeline_overhead

    records = [
        ("a", {"rule": "tokenize", "job_hash": 7, "starttime": 10.02, "endtime": 11.5}),
        ("b", {"rule": "train", "job_hash": 8, "starttime": 11.6, "endtime": 30.0}),
        ("c", {"rule": "tokenize", "job_hash": 7, "starttime": 10.0, "endtime": 11.4}),
        ("d", {"rule": "evaluate", "job_hash": 9, "starttime": 30.1, "endtime": 31.25}),
        ("e", {"rule": "evaluate", "job_hash": 10, "starttime": None, "endtime": None}),
    ]
    folder = tmp_path / ".snakemake" / "metadata"
    folder.mkdir(parents=True)
    for name, record in records:
        (folder / name).write_text(json.dumps(record))
    (folder / "@long").mkdir()  # where Snakemake puts the records of long output paths
    (folder / "@long" / "f").write_text(json.dumps(records[1][1] | {"starttime": 11.55}))
    jobs = pipeline_overhead.metadata_jobs(tmp_path)
    assert jobs == [
        {"rule": "tokenize", "start": 10.0, "end": 11.5},
        {"rule": "train", "start": 11.55, "end": 30.0},
        {"rule": "evaluate", "start": 30.1, "end": 31.25},
    ]
    line = pipeline_overhead.timeline(jobs)
    assert round(line["before_first_train_s"], 2) == 1.55 and round(line["after_last_train_s"], 2) == 1.25


def test_bootstrap_timing_runs_on_a_small_problem():
    # It prints its JSON (no --out); the real-sized --grid variant takes minutes and is left out.
    done = subprocess.run(
        [sys.executable, str(BENCH / "bootstrap_timing.py"), "--examples", "300", "--labels", "6"]
        + ["--resamples", "20", "--repeats", "1"],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT / "src")},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert result["shape"] == [300, 6] and result["resamples"] == 20
    assert result["interval_seconds"] > 0 and result["real_sized_grid"] is None


def test_epoch_padding_counts_a_whole_epoch(synthetic_dir, tiny_corpus, tmp_path):
    result = run_bench(
        "epoch_padding.py",
        str(synthetic_dir),
        "--model",
        str(tiny_corpus["model_dir"]),
        "--batch",
        "8",
        "--placements",
        "3",
        cwd=tmp_path,
    )
    shares = result["padding_share"]
    assert 0 <= shares["grouped"] < shares["random"] < 1
    assert shares["grouped_short_batch_inside"]["n"] == 3


def test_attention_benchmark_times_both_implementations_on_the_same_outputs(tmp_path):
    result = run_bench(
        "deberta_attention.py",
        *("--layers", "1", "--batch", "2", "--length", "24", "--repeats", "2", "--steps", "1"),
        cwd=tmp_path,
    )
    assert result["max_abs_difference_eval"] < 1e-4
    assert set(result["step_s"]) == {"eager", "sdpa"}
    assert all(len(values) == 2 for values in result["per_repeat_s"].values())


def test_statistics_rerun_recomputes_a_finished_grid_in_clusters_and_by_rows(tmp_path):
    """A two-cell results directory with a single-label dataset whose rows come in groups of 5 that
    agree: the rerun writes the interval table (argmax rows included, wider in clusters), the row
    resampled paired table and the single-label table with intervals; the results dir is untouched."""
    import numpy as np
    import pandas as pd

    from emogrid import io
    from emogrid.evaluate import evaluate_file

    labels = ["anger", "joy", "neutral"]
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    classes = {split: np.repeat(rng.integers(0, 3, 40), 5) for split in ("validation", "test")}
    for loss, quality in (("good", 0.5), ("poor", 0.1)):
        frames = []
        for split, cls in classes.items():
            truth = np.eye(3, dtype=np.int8)[cls]
            noise = np.repeat(rng.normal(0.3, 0.2, (40, 3)), 5, axis=0)
            frames.append(
                pd.DataFrame(
                    {
                        "dataset": "single",
                        "split": split,
                        "id": [f"{split}-r{k}-{j}" for k in range(40) for j in range(5)],
                        "probs": list(np.clip(quality * truth + noise, 0, 1).astype(np.float32)),
                        "labels": list(truth),
                        "label_mask": [np.ones(3, np.int8)] * len(cls),
                    }
                )
            )
        folder = results / "runs" / "m1" / loss / "none" / "seed1"
        io.write_parquet(folder / "predictions.parquet", pd.concat(frames, ignore_index=True))
        cell = {"mix": "m1", "loss": loss, "imbalance": "none", "seed": 1}
        grid = {"start": 0.05, "stop": 0.95, "step": 0.05}
        evaluate_file(folder / "predictions.parquet", folder / "eval_report.json", labels, grid, cell)
    statistics = {"resamples": 200, "seed": 0, "confidence": 0.95, "p_value": "normal", "alpha": 0.05}
    statistics["clusters"] = {"single": r"test-(r\d+)-\d"}
    config = {"labels": labels, "label_groups": {}, "evaluation": {"statistics": statistics}}
    (results / "config.resolved.yaml").write_text(yaml.safe_dump(config))
    before = sorted(path.name for path in results.rglob("*"))
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "statistics_rerun.py"),
            str(results),
            "--out-prefix",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT / "src")},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "single: 1 of 1 significant in clusters, 1 by rows, 0 differ" in done.stdout
    assert sorted(path.name for path in results.rglob("*")) == before
    intervals = pd.read_csv(tmp_path / "r_intervals.csv")
    assert set(intervals["metric"]) == {"f1_macro@tuned", "f1_macro@0.5"} | {
        f"{m}@argmax" for m in ("f1_weighted", "accuracy", "f1_macro")
    }
    # Five identical rows per cluster: resampling rows alone understates the spread (about sqrt 5).
    assert (intervals["width_vs_rows"] > 1.5).all() and (intervals["n_clusters"] == 40).all()
    assert len(pd.read_csv(tmp_path / "r_paired_rows.csv")) == 1
    table = (tmp_path / "r_single_label.md").read_text()
    assert "In brackets: 95% bootstrap interval" in table and "single in whole clusters of rows" in table


def test_import_floor_times_every_probe_in_fresh_processes(tmp_path):
    out = tmp_path / "floor.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "import_floor.py"), "--repeats", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT / "src")},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    probes = result["probes"]
    assert "interpreter" in probes and "tables (emogrid.report)" in probes
    assert all(len(runs) == 2 and min(runs) > 0 for runs in result["runs"].values())
    # torch alone is a subset of the tiny-weights probe's imports; both exceed an empty interpreter.
    assert probes["torch"]["wall_s"]["median"] > probes["interpreter"]["wall_s"]["median"]
