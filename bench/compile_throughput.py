"""emogrid's trainer eager against `training.torch_compile`, on real GoEmotions (CPU or GPU).

    python bench/compile_throughput.py DATA_DIR --model models/all-MiniLM-L6-v2 [--repeats 3]

The training path and cell of bench/train_throughput.py (batch 32, fp32 on CPU, length-grouped
batches with dynamic padding), with three variants:

- eager: the default (`torch_compile: null`);
- compile: `torch_compile: default` (Inductor; the batch shapes vary, so the model is compiled for the
  first shape, then once more with dynamic shapes);
- compile_pad16: the same with `pad_to_multiple_of: 16` (fewer distinct shapes).

Every run is its own process with an empty Inductor cache (TORCHINDUCTOR_CACHE_DIR), so each compiled
run pays the cold compile a first cell pays; the repeats rotate the order of the variants. A run
trains `--warmup` + `--steps` optimizer steps and reports the time to the end of the warm-up steps
(the compile cost) and the examples/s and tokens/s of the timed steps after them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import REPO, save, spread
from train_throughput import BATCH, StepClock, emogrid_cell, prepare, run_settings, subset_parser, timed_rate

from emogrid.train import build_trainer

VARIANTS = {
    "eager": {},
    "compile": {"torch_compile": "default"},
    "compile_pad16": {"torch_compile": "default", "pad_to_multiple_of": 16},
}


def run_one(setup: dict, variant: str, warmup: int, steps: int) -> dict:
    """One training run of `variant` in this process (a fresh one: nothing compiled yet)."""
    import torch._dynamo.utils

    work = Path(setup["work"])
    cell = emogrid_cell(
        setup["config"], Path(setup["model"]), work, warmup + steps, f"{variant}_{os.getpid()}"
    )
    cell["training"].update(VARIANTS[variant])
    trainer, _ = build_trainer(cell)
    clock = StepClock()
    trainer.add_callback(clock)
    shapes = []
    collate = trainer.data_collator

    def recording(features):
        batch = collate(features)
        shapes.append(int(batch["input_ids"].shape[1]))
        return batch

    trainer.data_collator = recording
    start = time.perf_counter()
    result = trainer.train()
    lengths = trainer.train_dataset.lengths
    batches = trainer.train_sampler.epoch_indices(0)
    timed = [batches[i * BATCH : (i + 1) * BATCH] for i in range(warmup, warmup + steps)]
    tokens = int(sum(lengths[b].sum() for b in timed))
    return timed_rate(clock.ends, warmup, BATCH * steps, tokens) | {
        "variant": variant,
        "warmup_s": clock.ends[warmup - 1] - start,
        "distinct_lengths": len(set(shapes[: warmup + steps])),
        "compiled_graphs": int(torch._dynamo.utils.counters["stats"]["unique_graphs"]),
        "train_loss": result.training_loss,
    }


def main() -> None:
    parser = subset_parser()
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--warmup", type=int, default=8, help="untimed steps (the compiles happen here)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of each run")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/compile_throughput.json")
    parser.add_argument("--run-one", nargs=2, metavar=("SETUP_JSON", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run_one:
        setup = json.loads(Path(args.run_one[0]).read_text())
        print(json.dumps(run_one(setup, args.run_one[1], args.warmup, args.steps)))
        return
    runs = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config, model = prepare(args.data_dir, args.model, args.rows, args.max_length, work)
        setup = work / "setup.json"
        setup.write_text(json.dumps({"config": config, "model": str(model), "work": str(work)}))
        for r in range(args.repeats):
            order = args.variants[r % len(args.variants) :] + args.variants[: r % len(args.variants)]
            for variant in order:
                env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(dir=tmp)}
                command = [sys.executable, __file__, str(args.data_dir), "--model", args.model]
                command += ["--warmup", str(args.warmup), "--steps", str(args.steps)]
                command += ["--threads", str(torch.get_num_threads()), "--run-one", str(setup), variant]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    sys.exit(f"{variant} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1]) | {"repeat": r}
                runs[variant].append(result)
                print(json.dumps(result), flush=True)
    summary = {
        v: {
            "examples_per_s": spread([x["examples_per_s"] for x in rs], 2),
            "tokens_per_s": spread([x["tokens_per_s"] for x in rs], 0),
            "warmup_s": spread([x["warmup_s"] for x in rs], 1),
        }
        for v, rs in runs.items()
    }
    if "eager" in runs:
        for v in runs:
            if v != "eager":
                # Paired within a repeat: the same minutes of a shared machine.
                summary[f"{v}_vs_eager"] = spread(
                    [
                        a["examples_per_s"] / b["examples_per_s"]
                        for a, b in zip(runs[v], runs["eager"], strict=True)
                    ],
                    3,
                )
    result = run_settings(args) | {"summary": summary, "runs": runs}
    print(json.dumps(summary, indent=1))
    save(args.out, result)


if __name__ == "__main__":
    main()
