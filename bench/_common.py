"""Shared helpers of the benchmark scripts: config loading, machine description, robust summaries."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DATASETS = ["goemotions", "semeval2018_ec", "isear", "meld"]


def load_config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    import torch

    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def spread(values: list[float], digits: int = 3) -> dict:
    """Median with min and max: the summary every figure in docs/BENCHMARKS.md uses."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def save(out: Path, result: dict) -> None:
    """Write a benchmark's result as indented JSON, creating its folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
