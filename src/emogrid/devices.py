"""What a job actually sees: the GPUs the scheduler gave it, and whether torch can use them.

`python -m emogrid.devices out.json out.html` is the workflow's `check_gpu` job. The same description
goes into every training cell's run_info.json, so the report shows where each cell really ran.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import sys
from pathlib import Path

import pandas as pd
import torch

from emogrid import io
from emogrid.htmlpage import to_html_document

# Scheduler variables worth recording: which job, which node, what it was given.
SCHEDULER_VARIABLES = (
    "SLURM_JOB_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_JOB_NODELIST",
    "SLURM_GPUS",
    "SLURM_GPUS_ON_NODE",
    "SLURM_CPUS_PER_TASK",
    "SLURM_CPUS_PER_GPU",
    "SLURM_RESTART_COUNT",
)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_devices() -> dict:
    """The visible GPUs as torch sees them, next to what the environment promised."""
    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    description = {
        "hostname": socket.gethostname(),
        "CUDA_VISIBLE_DEVICES": visible,
        "cuda_available": cuda,
        "device_count": count,
        "type": "cuda" if cuda else "cpu",
        "count": count,
        "names": [torch.cuda.get_device_name(i) for i in range(count)] if cuda else [cpu_model()],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        # Bit-identical CPU results need the same instruction set (torch picks kernels by it) and threads.
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "scheduler": {k: os.environ[k] for k in SCHEDULER_VARIABLES if k in os.environ},
    }
    fallback = cpu_fallback_message(description)
    if fallback:
        description["fallback"] = fallback
    return description


def cpu_fallback_message(description: dict) -> str | None:
    """A GPU was assigned (CUDA_VISIBLE_DEVICES names one) but torch cannot use it: say so plainly."""
    visible = (description.get("CUDA_VISIBLE_DEVICES") or "").strip()
    if not visible or visible == "-1" or description["cuda_available"]:
        return None
    reason = (
        "this torch build has no CUDA support"
        if description.get("torch_cuda") is None
        else "no usable CUDA device or driver"
    )
    return (
        f"emogrid: CUDA_VISIBLE_DEVICES={visible} was assigned, but torch sees no CUDA device "
        f"({reason}); running on CPU"
    )


def devices_table(description: dict) -> pd.DataFrame:
    rows = [
        ("hostname", description["hostname"]),
        ("CUDA_VISIBLE_DEVICES", description["CUDA_VISIBLE_DEVICES"] or "(not set)"),
        ("torch.cuda.is_available()", description["cuda_available"]),
        ("torch.cuda.device_count()", description["device_count"]),
        ("devices", ", ".join(description["names"])),
        ("torch / CUDA build", f"{description['torch']} / {description['torch_cuda'] or 'none'}"),
        ("CPU (kernel set torch uses)", f"{description.get('cpu')} ({description.get('cpu_capability')})"),
        *[(k, v) for k, v in description["scheduler"].items()],
        ("note", description.get("fallback", "")),
    ]
    return pd.DataFrame(rows, columns=["what", "value"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write what this job sees of its GPUs.")
    parser.add_argument("json_out")
    parser.add_argument("html_out")
    args = parser.parse_args(argv)
    description = describe_devices()
    if "fallback" in description:
        print(description["fallback"], file=sys.stderr)
    io.write_json(args.json_out, description)
    note = (
        "What a job submitted with the training rule's resources saw: the GPUs the scheduler assigned "
        "(CUDA_VISIBLE_DEVICES) against the devices torch can use."
    )
    io.write_text(
        args.html_out, to_html_document("GPU check", [("GPU check", note, devices_table(description))])
    )


if __name__ == "__main__":
    main()
