"""Pipeline overhead of the demo: total wall time against the time spent training, from `benchmark:` files.

    python bench/pipeline_overhead.py [--cores 2] [--workdir DIR] [--out bench/out/pipeline_overhead.json]
    python bench/pipeline_overhead.py --existing WORKDIR [--wall SECONDS]   # a finished run

Runs the offline demo (config/config.yaml + config/demo.yaml) from scratch in a fresh working
directory with `snakemake --directory`, timing the whole command. Snakemake's benchmark files
(results/benchmarks/train/**.tsv) give each training job's wall time `s`; a job ended when its file was
written, so it ran over [mtime - s, mtime]. With --cores 2 two cells can train at once, so the
training time is the union of those intervals, not their sum (both are reported).
Overhead = 1 - training union / total wall: orchestration, data preparation, evaluation and reporting.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import REPO, machine, save

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
STARTED = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def benchmark_rows(results: Path, rule: str) -> list[dict]:
    rows = []
    for path in sorted((results / "benchmarks" / rule).rglob("*.tsv")):
        with path.open() as handle:
            record = next(csv.DictReader(handle, delimiter="\t"))
        end = path.stat().st_mtime
        seconds = float(record["s"])
        rows.append({"job": str(path.relative_to(results)), "s": seconds, "start": end - seconds, "end": end})
    return rows


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(intervals):
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def job_intervals(log_text: str) -> list[dict]:
    """Every job's rule and [start, end] (epoch seconds, 1 s resolution) from a Snakemake log."""
    starts, jobs, stamp, pending_rule = {}, [], None, None
    for line in log_text.splitlines():
        if match := STAMP.match(line):
            stamp = time.mktime(time.strptime(match.group(1), "%a %b %d %H:%M:%S %Y"))
        elif match := STARTED.match(line):
            pending_rule = (match.group(1), stamp)
        elif (match := JOBID.match(line)) and pending_rule:
            starts[match.group(1)] = pending_rule
            pending_rule = None
        elif match := FINISHED.match(line):
            rule, start = starts.pop(match.group(1))
            jobs.append({"rule": rule, "start": start, "end": stamp})
    return jobs


def metadata_jobs(workdir: Path) -> list[dict]:
    """Every job that wrote an output, with its rule and [start, end] in epoch seconds to the
    sub-second, from Snakemake's metadata (`.snakemake/metadata`, one record per output file; the
    records of one job share its `job_hash`: the job is the earliest start to the latest end)."""
    jobs: dict[tuple, dict] = {}
    # Records of long output paths sit in subfolders (names starting with "@").
    for path in (workdir / ".snakemake" / "metadata").rglob("*"):
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        if record.get("starttime") is None or record.get("endtime") is None:
            continue
        job = jobs.setdefault((record["rule"], record["job_hash"]), {"rule": record["rule"]})
        job["start"] = min(job.get("start", record["starttime"]), record["starttime"])
        job["end"] = max(job.get("end", record["endtime"]), record["endtime"])
    return sorted(jobs.values(), key=lambda j: j["start"])


def timeline(jobs: list[dict]) -> dict:
    """Where the time outside training goes: before the first and after the last training job, and
    the gaps between, with the jobs that ran in each (seconds by rule, overlapping jobs counted each)."""
    begin, finish = min(j["start"] for j in jobs), max(j["end"] for j in jobs)
    train = [(j["start"], j["end"]) for j in jobs if j["rule"] == "train"]
    first, last = min(s for s, _ in train), max(e for _, e in train)
    covered = union_seconds(train)

    def busy(lo: float, hi: float) -> dict:
        by_rule: dict[str, float] = {}
        for j in jobs:
            overlap = min(j["end"], hi) - max(j["start"], lo)
            if j["rule"] != "train" and overlap > 0:
                by_rule[j["rule"]] = by_rule.get(j["rule"], 0.0) + overlap
        return dict(sorted(by_rule.items(), key=lambda kv: -kv[1]))

    return {
        "log_span_s": finish - begin,
        "before_first_train_s": first - begin,
        "after_last_train_s": finish - last,
        "gaps_between_trains_s": (last - first) - covered,
        "jobs_before_first_train_s": busy(begin, first),
        "jobs_after_last_train_s": busy(last, finish),
        "jobs_by_rule": dict(sorted(Counter(j["rule"] for j in jobs).items())),
    }


def log_timeline(workdir: Path) -> dict | None:
    """The timeline of the newest Snakemake log in `workdir` that ran training jobs, or None.

    Later runs in the same directory (`--report`, a dry run) leave logs without jobs; they are skipped.
    """
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), reverse=True):
        jobs = job_intervals(log.read_text())
        if any(j["rule"] == "train" for j in jobs):
            return timeline(jobs)
    return None


def run_demo(workdir: Path, cores: int) -> tuple[float, float, float]:
    """Run the demo in `workdir`; returns its wall time and its start and end in epoch seconds."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(cores),
        "--configfile",
        str(REPO / "config/config.yaml"),
        str(REPO / "config/demo.yaml"),
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    start, started = time.perf_counter(), time.time()
    with (workdir / "snakemake.log").open("w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    return time.perf_counter() - start, started, time.time()


def summarize(results: Path, wall: float) -> dict:
    train = benchmark_rows(results, "train")
    if not train:
        raise SystemExit(f"no training benchmark files under {results}/benchmarks/train")
    union = union_seconds([(r["start"], r["end"]) for r in train])
    other = {rule: sum(r["s"] for r in benchmark_rows(results, rule)) for rule in ("preprocess", "tokenize")}
    return {
        "wall_s": round(wall, 1),
        "train_jobs": len(train),
        "train_sum_s": round(sum(r["s"] for r in train), 1),
        "train_union_s": round(union, 1),
        "overhead_share": round(1 - union / wall, 3),
        "preprocess_sum_s": round(other["preprocess"], 1),
        "tokenize_sum_s": round(other["tokenize"], 1),
        "train_jobs_s": {r["job"]: round(r["s"], 1) for r in train},
    }


def rounded(seconds_by_rule: dict) -> dict:
    return {rule: round(seconds, 2) for rule, seconds in seconds_by_rule.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp run dir")
    parser.add_argument("--existing", type=Path, default=None, help="a finished run's directory")
    parser.add_argument(
        "--results",
        default="results",
        help="with --existing: its config's `results` directory (default results)",
    )
    parser.add_argument(
        "--wall", type=float, default=None, help="its total wall time (default: its Snakemake log's span)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench/out/pipeline_overhead.json")
    args = parser.parse_args()
    if args.existing:
        line = log_timeline(args.existing)
        if args.wall is None and line is None:
            parser.error("--existing needs --wall when the run left no Snakemake log")
        # Without --wall: the span of the run's last log, first job start to last job end (1 s resolution).
        summary = summarize(args.existing / args.results, args.wall or line["log_span_s"])
        if line:
            summary["timeline"] = line
    else:
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            workdir = Path(tmp)
            wall, started, ended = run_demo(workdir, args.cores)
            summary = summarize(workdir / "results/demo", wall)  # config/demo.yaml's `results`
            summary["timeline"] = log_timeline(workdir)
            # The same split to the sub-second, from Snakemake's metadata, with the time before the
            # first job (Snakemake's start-up, the DAG) and after the last one (its exit).
            jobs = metadata_jobs(workdir)
            precise = {k: round(v, 2) if isinstance(v, float) else v for k, v in timeline(jobs).items()}
            precise["jobs_before_first_train_s"] = rounded(precise["jobs_before_first_train_s"])
            precise["jobs_after_last_train_s"] = rounded(precise["jobs_after_last_train_s"])
            precise["startup_s"] = round(jobs[0]["start"] - started, 2)
            precise["exit_s"] = round(ended - max(j["end"] for j in jobs), 2)
            # Job-seconds by rule, every job counted whole: the work the jobs outside training add
            # to two cores, wherever it ran (inside the training window it slows the cells).
            by_rule: dict[str, float] = {}
            for j in jobs:
                by_rule[j["rule"]] = by_rule.get(j["rule"], 0.0) + j["end"] - j["start"]
            precise["job_seconds_by_rule"] = rounded(dict(sorted(by_rule.items(), key=lambda kv: -kv[1])))
            precise["other_job_seconds"] = round(sum(s for r, s in by_rule.items() if r != "train"), 2)
            # The Gantt chart: each job's rule and interval, in seconds from the `snakemake` start.
            precise["jobs"] = [
                {"rule": j["rule"], **{key: round(j[key] - started, 2) for key in ("start", "end")}}
                for j in jobs
            ]
            summary["timeline_precise"] = precise
    result = {"machine": machine(), "cores": args.cores, **summary}
    print(json.dumps(result, indent=1))
    save(args.out, result)


if __name__ == "__main__":
    main()
