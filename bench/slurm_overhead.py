"""Scheduling overhead of a workflow run through SLURM, from its own logs.

    python bench/slurm_overhead.py WORKDIR

For each submitted job: submit -> start (sbatch until the job's first log line: queueing and
start-up; includes waiting for a free CPU when the node is full) and end -> noticed (the job's last
log line until snakemake reports it finished: the status polling). Timestamps have 1 s resolution.
Needs the jobs' SLURM logs kept (`slurm-keep-successful-logs: true`, as in tests/slurm/profile).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")


def stamp(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def main_log_events(path: Path) -> tuple[dict, dict]:
    submitted, finished, now = {}, {}, None
    for line in path.read_text().splitlines():
        if m := STAMP.match(line.strip()):
            now = stamp(m.group(1))
        elif m := SUBMITTED.search(line):
            submitted[m.group(1)] = {"slurm_id": m.group(2), "log": m.group(3), "at": now}
        elif (m := FINISHED.match(line.strip())) and now is not None:
            finished[m.group(1)] = {"rule": m.group(2), "at": now}
    return submitted, finished


def job_span(slurm_log: Path) -> tuple[datetime, datetime] | None:
    stamps = [
        stamp(m.group(1)) for line in slurm_log.read_text().splitlines() if (m := STAMP.match(line.strip()))
    ]
    return (stamps[0], stamps[-1]) if stamps else None


def overhead(workdir: Path) -> dict:
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"{workdir}: no .snakemake/log/*.snakemake.log")
    submitted, finished = main_log_events(logs[-1])
    jobs = []
    for job, info in submitted.items():
        log = Path(info["log"])
        span = job_span(log) if log.exists() else None
        if span is None or job not in finished:
            continue
        jobs.append(
            {
                "rule": finished[job]["rule"],
                "slurm_id": info["slurm_id"],
                "submit_to_start_s": (span[0] - info["at"]).total_seconds(),
                "end_to_noticed_s": (finished[job]["at"] - span[1]).total_seconds(),
                "run_s": (span[1] - span[0]).total_seconds(),
            }
        )

    def summary(key):
        values = [j[key] for j in jobs]
        return (
            {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None
        )

    return {
        "jobs": len(jobs),
        "submit_to_start_s": summary("submit_to_start_s"),
        "end_to_noticed_s": summary("end_to_noticed_s"),
        "per_job": jobs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args()
    result = overhead(args.workdir)
    print(json.dumps({k: v for k, v in result.items() if k != "per_job"}, indent=2, default=str))
    for job in result["per_job"]:
        print(
            f"{job['rule']:12s} slurm {job['slurm_id']:>4s}  "
            f"submit->start {job['submit_to_start_s']:5.0f} s  run {job['run_s']:5.0f} s  "
            f"end->noticed {job['end_to_noticed_s']:5.0f} s"
        )


if __name__ == "__main__":
    main()
