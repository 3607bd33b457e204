"""Which GPUs a local training job may use.

Run outside a scheduler, Snakemake counts GPUs (`--resources gpu=N`) but never says *which* ones a
job got (snakemake/snakemake#281): every cell would open GPU 0, and on a 4-GPU workstation four cells
would share one device and run out of its memory. This wrapper takes, for the duration of one job, an
exclusive lock per GPU on a lock file in a directory every job on the machine shares, sets
`CUDA_VISIBLE_DEVICES` to the GPUs it locked and replaces itself with the job's command
(`os.execvp`); the locks stay held by that process and go away when it exits, however it exits.

    python -m emogrid.gpulease GPUS -- COMMAND [ARGS...]

Nothing is leased, and the command runs as given, when someone else already chose the devices
(`CUDA_VISIBLE_DEVICES` is set, as SLURM does for a GPU job), inside a SLURM job, when the job asks for
no GPU, or on a machine without NVIDIA GPUs (training then reports its CPU fallback). A job that asks
for more GPUs than the machine has is an error; one that finds too few free waits for them.

Standard library only: this runs before every GPU job and must not pay for importing torch.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

LOCK_DIR_VARIABLE = "EMOGRID_GPU_LOCK_DIR"
NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def default_lock_dir() -> Path:
    """Shared by every emogrid job on the machine, whatever its results directory (and, with
    Apptainer, its container: /tmp is bound into it)."""
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir()) / "emogrid-gpu-locks")


def count_gpus(proc_dir: Path = NVIDIA_PROC) -> int:
    """NVIDIA GPUs on this machine: the driver's /proc entries (one per GPU), else `nvidia-smi -L`."""
    if proc_dir.is_dir():
        return sum(1 for _ in proc_dir.iterdir())
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def why_not_lease(gpus: int, env: Mapping[str, str]) -> str | None:
    """The reason to run the command as it is, or None when this job should lease its GPUs."""
    if gpus <= 0:
        return "the job asks for no GPU"
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        return f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']} is already set"
    if env.get("SLURM_JOB_ID"):
        return f"SLURM job {env['SLURM_JOB_ID']} binds its own GPUs"
    return None


def _open_lock_dir(lock_dir: Path) -> None:
    if not lock_dir.is_dir():
        lock_dir.mkdir(parents=True, exist_ok=True)
        # Other users' jobs on the same machine lock the same files (sticky, like /tmp).
        with contextlib.suppress(PermissionError):
            lock_dir.chmod(0o1777)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, 0o666)
    return fd


def lease(gpus: int, total: int, lock_dir: Path, poll_seconds: float = 2.0, log=sys.stderr) -> dict[int, int]:
    """Lock `gpus` of the machine's `total` GPUs, waiting while fewer are free: {gpu index: lock fd}.
    All or nothing: a job never holds part of its GPUs while it waits, so two waiting jobs cannot
    block each other."""
    if gpus > total:
        raise SystemExit(f"emogrid.gpulease: the job asks for {gpus} GPUs, this machine has {total}")
    _open_lock_dir(lock_dir)
    announced = False
    while True:
        held: dict[int, int] = {}
        for index in range(total):
            fd = _try_lock(lock_dir / f"gpu{index}.lock")
            if fd is not None:
                held[index] = fd
                if len(held) == gpus:
                    return held
        for fd in held.values():
            os.close(fd)
        if not announced:
            announced = True
            print(
                f"emogrid.gpulease: {gpus} of {total} GPUs wanted, {len(held)} free; waiting"
                f" (locks in {lock_dir}; give snakemake --resources gpu={total} to queue jobs instead)",
                file=log,
                flush=True,
            )
        time.sleep(poll_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emogrid.gpulease", description=__doc__.split("\n\n")[0])
    parser.add_argument("gpus", type=int, help="GPUs the job asked for")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the job's command and arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    reason = why_not_lease(args.gpus, os.environ)
    total = 0 if reason else count_gpus()
    if reason is None and total == 0:
        reason = "no NVIDIA GPU on this machine"
    if reason is None:
        started = time.monotonic()
        held = lease(args.gpus, total, default_lock_dir())
        for fd in held.values():
            os.set_inheritable(fd, True)  # the locks live as long as the command
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # the numbering nvidia-smi shows
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(index) for index in held)
        print(
            f"emogrid.gpulease: GPU {os.environ['CUDA_VISIBLE_DEVICES']} of {total}"
            f" (waited {time.monotonic() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"emogrid.gpulease: no lease, {reason}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
