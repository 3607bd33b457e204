"""What each step outside training pays before it does anything: a fresh interpreter and its imports.

    python bench/import_floor.py [--repeats 5] [--out bench/out/import_floor.json]

Every job of the workflow is its own Python process (a `script:` rule), so these costs recur in every
job. Each probe runs `python -c "<imports>"` in a fresh process and takes its wall time; the probes are
interleaved, their order rotated from repeat to repeat, and each figure is the median (min–max) over
repeats. `interpreter` (an empty program) is in each probe's time; the rest is the probe's own imports.
Run it on an idle machine: it measures wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, machine, save, spread

# Probe name -> the code a step on the critical path runs first (docs/BENCHMARKS.md section 4).
PROBES = {
    "interpreter": "pass",
    "synthetic corpus (emogrid.synthetic)": "import emogrid.synthetic",
    "fetch (emogrid.fetch)": "import emogrid.fetch",
    "preprocess (emogrid.preprocess)": "import emogrid.preprocess",
    "torch": "import torch",
    "transformers": "import transformers",
    "tiny weights (torch, transformers, the DeBERTa-v2 modelling module)": (
        "import transformers.models.deberta_v2.modeling_deberta_v2"
    ),
    "tokenize (emogrid.tokenize)": "import emogrid.tokenize",
    "cell config (emogrid.io)": "import emogrid.io",
    "evaluate (emogrid.evaluate, scikit-learn's metrics)": "import emogrid.evaluate, sklearn.metrics",
    "bootstrap (emogrid.significance)": "import emogrid.significance",
    "tables (emogrid.report)": "import emogrid.report",
}


def run_probe(code: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/import_floor.json")
    args = parser.parse_args()
    env = os.environ | {"PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    names = list(PROBES)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(run_probe(PROBES[name], env))
    result = {
        "machine": machine(),
        "repeats": args.repeats,
        "probes": {name: {"code": PROBES[name], "wall_s": spread(seconds[name])} for name in names},
        "runs": seconds,
    }
    save(args.out, result)
    print(json.dumps(result["probes"], indent=1))


if __name__ == "__main__":
    main()
