"""The benchmark scripts still run against the library (they are not timed here: bench/ measures).

A change to a library signature once broke bench/train_throughput.py without any test noticing; these
run each CPU benchmark for one short repeat on the synthetic corpus and check what it writes.
"""

import json
import os
import subprocess
import sys

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
    text = json.dumps(result)
    for dataset in ("goemotions", "semeval2018_ec", "isear", "meld"):
        assert dataset in text


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
