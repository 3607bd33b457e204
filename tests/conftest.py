"""Shared fixtures. Tests are offline: the hub is never contacted."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import subprocess  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from emogrid.config import SCHEDULER_ONLY, resolve_config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIGS = [str(REPO_ROOT / "config/config.yaml"), str(REPO_ROOT / "config/demo.yaml")]


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, overlays=(), timeout: int = 1200
) -> subprocess.CompletedProcess:
    """The demo config (plus overlay files) through the real Snakefile, in `workdir`.

    Wrapped in `timeout -k 10`: a scheduler that never answers fails the test instead of hanging CI.
    """
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT / "src"),
    }
    # The shell rules call `python`: the one running the tests, with emogrid installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        "timeout", "-k", "10", str(timeout),
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", *DEMO_CONFIGS, *[str(o) for o in overlays],
        *args,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir, timeout=timeout + 60)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def load_config(*overlays: str) -> dict:
    """config/config.yaml merged with overlay files, then schema defaults, as Snakemake would."""
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    for overlay in overlays:
        update_config(config, yaml.safe_load((REPO_ROOT / overlay).read_text()))
    validate(config, str(REPO_ROOT / "schemas/config.schema.yaml"))
    return resolve_config(config)


@pytest.fixture(scope="session")
def labels() -> list[str]:
    return load_config()["labels"]


def keyword_rows(
    dataset: str, split: str, n: int, labels: list[str], covered: list[int], seed: int
) -> pd.DataFrame:
    """Rows whose text names their labels' keywords, so a tiny model can learn them."""
    rng = np.random.default_rng(seed)
    fillers = "the a day was very so really today felt and it".split()
    rows = []
    for i in range(n):
        chosen = rng.choice(covered, size=rng.integers(1, 3), replace=False)
        words = [f"{labels[c]}ish" for c in chosen] + list(rng.choice(fillers, size=rng.integers(2, 12)))
        rng.shuffle(words)
        y = np.zeros(len(labels), dtype=np.int8)
        y[chosen] = 1
        mask = np.zeros(len(labels), dtype=np.int8)
        mask[covered] = 1
        rows.append(
            {
                "id": f"{dataset}-{split}-{i}",
                "text": " ".join(words),
                "dataset": dataset,
                "split": split,
                "labels": y,
                "label_mask": mask,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, labels):
    """Two small keyword datasets ("alpha": labels 0-5, "beta": 3-8), tokenized with a tiny DeBERTa-v3."""
    from emogrid.tiny_model import build_tiny_deberta
    from emogrid.tokenize import load_tokenizer, tokenize_split

    root = tmp_path_factory.mktemp("corpus")
    sizes = {"train": 96, "validation": 32, "test": 32}
    covered = {"alpha": list(range(6)), "beta": list(range(3, 9))}
    frames = {
        # A fixed seed per split: str hashes change with every process (PYTHONHASHSEED).
        (d, s): keyword_rows(d, s, n, labels, covered[d], seed=zlib.crc32(f"{d}/{s}".encode()) % 1000)
        for d in covered
        for s, n in sizes.items()
    }
    model_dir = root / "model"
    texts = [t for (d, s), f in frames.items() if s == "train" for t in f["text"]]
    build_tiny_deberta(texts, labels, model_dir, seed=0, dropout=0.0)
    tokenizer = load_tokenizer(model_dir)
    files = {}
    for (d, s), frame in frames.items():
        unified = root / "data" / d / f"{s}.parquet"
        unified.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(unified, index=False)
        files[(d, s)] = root / "tokens" / d / f"{s}.parquet"
        tokenize_split(unified, tokenizer, 32, files[(d, s)])
    return {"root": root, "model_dir": model_dir, "files": files, "labels": labels}


@pytest.fixture
def make_cell(tiny_corpus, tmp_path):
    """A cell config over the tiny corpus; keyword arguments override training settings."""

    def make(mix=None, loss=None, seed=1, output_dir=None, imbalance=None, coverage_masking=True, **training):
        mix = mix or {"alpha": 0.5, "beta": 0.5}
        imbalance = imbalance or {"strategy": "none"}
        files = tiny_corpus["files"]
        config = load_config()
        # As emogrid.config.cell_config writes a cell: without the scheduler's settings.
        scheduled = {k: v for k, v in config["training"].items() if k not in SCHEDULER_ONLY}
        base_training = scheduled | {
            "learning_rate": 5e-3,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1,
            "precision": "fp32",
            "gradient_checkpointing": False,
            "eval_steps": 0,
            "save_steps": 5,
            "logging_steps": 1,
            "save_total_limit": 2,
            "warmup_ratio": 0.0,
        }
        return {
            "name": "test/cell",
            "cell": {"mix": "test", "loss": "bce", "imbalance": imbalance["strategy"], "seed": seed},
            "labels": tiny_corpus["labels"],
            "model": {
                "name": "tiny",
                "path": str(tiny_corpus["model_dir"]),
                "max_length": 32,
                "pooling": "mean",
            },
            "loss": loss or {"type": "bce"},
            "coverage_masking": coverage_masking,
            "mix": mix,
            "imbalance": imbalance,
            "train_files": [str(files[(d, "train")]) for d in mix],
            "validation_files": [str(files[(d, "validation")]) for d in mix],
            "eval_files": [str(files[(d, s)]) for d in ("alpha", "beta") for s in ("validation", "test")],
            "training": base_training | training,
            "output_dir": str(output_dir or tmp_path / "cell"),
        }

    return make
