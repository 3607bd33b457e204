"""Which GPUs a local training job may use.

Run outside a scheduler, Snakemake counts GPUs (`--resources gpu=N`) but never says *which* ones a
job got (snakemake/snakemake#281): every cell would open GPU 0, and on a 4-GPU workstation four cells
would share one device and run out of its memory. This wrapper takes, for the duration of one job, an
exclusive lock per GPU on a lock file in a directory every job on the machine shares, sets
`CUDA_VISIBLE_DEVICES` to the GPUs it locked and replaces itself with the job's command
(`os.execvp`); the locks stay held by that process and go away when it exits, however it exits.
Under torchrun that process is torchrun's agent: its workers run in sessions of their own, so if the
agent alone is SIGKILLed, workers it leaves behind may hold GPU memory after the lease is gone.

    python -m emogrid.gpulease GPUS -- COMMAND [ARGS...]

Nothing is leased, and the command runs as given, when someone else already chose the devices
(`CUDA_VISIBLE_DEVICES` names no more than the job asks for, as SLURM sets it for a GPU job), inside a
SLURM job without GPUs, when the job asks for no GPU, or on a machine without NVIDIA GPUs (training
then reports its CPU fallback). When `CUDA_VISIBLE_DEVICES` names more devices than the job asks for
(snakemake run inside a multi-GPU allocation), the job leases among those. A job that asks for more
GPUs than there are is an error; one that finds too few free waits for them.

Standard library only: this runs before every GPU job and must not pay for importing torch.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

LOCK_DIR_VARIABLE = "EMOGRID_GPU_LOCK_DIR"
NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def default_lock_dir() -> Path:
    """Shared by every emogrid job on the machine, whatever its results directory (and, with
    Apptainer, its container: /tmp is bound into it unless --contain). Not $TMPDIR: Snakemake sets
    that per job from its tmpdir resource, and jobs with different ones must still exclude each other."""
    return Path(os.environ.get(LOCK_DIR_VARIABLE) or "/tmp/emogrid-gpu-locks")


def count_gpus(proc_dir: Path = NVIDIA_PROC) -> int:
    """NVIDIA GPUs on this machine: the driver's /proc entries (one per GPU), else `nvidia-smi -L`."""
    if proc_dir.is_dir():
        return sum(1 for _ in proc_dir.iterdir())
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def plan(gpus: int, env: Mapping[str, str], count=count_gpus) -> tuple[list[str] | None, str]:
    """The devices to lease `gpus` of, or None and the reason to run the command as it is.

    - CUDA_VISIBLE_DEVICES naming at most `gpus` devices: someone chose them (SLURM does for a GPU job).
    - CUDA_VISIBLE_DEVICES naming more (a local run inside a multi-GPU allocation, or a user's export):
      lease among those.
    - Inside a SLURM job without CUDA_VISIBLE_DEVICES: the job has no GPU of its own to share out.
    - Otherwise every GPU of the machine, numbered as nvidia-smi numbers them (PCI bus order).
    """
    if gpus <= 0:
        return None, "the job asks for no GPU"
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        listed = [entry.strip() for entry in visible.split(",") if entry.strip()]
        if len(listed) <= gpus:
            return None, f"CUDA_VISIBLE_DEVICES={visible} is already set"
        return listed, f"{gpus} of CUDA_VISIBLE_DEVICES={visible}"
    if env.get("SLURM_JOB_ID"):
        return None, f"SLURM job {env['SLURM_JOB_ID']} binds its own GPUs"
    total = count()
    if total == 0:
        return None, "no NVIDIA GPU on this machine"
    return [str(index) for index in range(total)], f"{gpus} of the machine's {total} GPUs"


def _prepare_lock_dir(lock_dir: Path) -> None:
    """The shared lock folder: created sticky and world-writable like /tmp (other users' jobs add their
    own lock files), and never a symlink or anything but a folder."""
    try:
        lock_dir.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(lock_dir, 0o755)
        os.chmod(lock_dir, 0o1777)
    except FileExistsError:
        pass
    except PermissionError as error:
        raise SystemExit(
            f"emogrid.gpulease: cannot create {lock_dir} ({error}); set {LOCK_DIR_VARIABLE}"
        ) from None
    info = os.lstat(lock_dir)
    if not stat.S_ISDIR(info.st_mode):
        raise SystemExit(
            f"emogrid.gpulease: {lock_dir} is not a folder (a symlink?); set {LOCK_DIR_VARIABLE}"
        )


def _open_lock(path: Path) -> int:
    """A read-only descriptor of the lock file (flock needs no more), created if missing. Symlinks are
    refused (O_NOFOLLOW) and only a file this job creates is ever chmod-ed: another user of a shared
    folder cannot point a lock at someone's file."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            try:
                fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
                os.fchmod(fd, 0o644)  # our own new file: other users' jobs only need to read it
            except FileExistsError:
                fd = os.open(path, flags)
    except OSError as error:  # ELOOP for a symlink, EACCES for a file others cannot read
        raise SystemExit(f"emogrid.gpulease: cannot use the lock file {path}: {error}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SystemExit(f"emogrid.gpulease: the lock file {path} is not a regular file")
    return fd


def _lock_name(device: str) -> str:
    return "gpu-" + re.sub(r"[^A-Za-z0-9._-]", "_", device) + ".lock"


def _try_lock(path: Path) -> int | None:
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lease(
    gpus: int, devices: list[str], lock_dir: Path, poll_seconds: float = 2.0, log=sys.stderr
) -> dict[str, int]:
    """Lock `gpus` of `devices`, waiting while fewer are free: {device: lock fd}. All or nothing: a job
    never holds part of its GPUs while it waits, so two waiting jobs cannot block each other."""
    if gpus > len(devices):
        raise SystemExit(f"emogrid.gpulease: the job asks for {gpus} GPUs, there are {len(devices)}")
    _prepare_lock_dir(lock_dir)
    announced = False
    while True:
        held: dict[str, int] = {}
        for device in devices:
            fd = _try_lock(lock_dir / _lock_name(device))
            if fd is not None:
                held[device] = fd
                if len(held) == gpus:
                    return held
        for fd in held.values():
            os.close(fd)
        if not announced:
            announced = True
            print(
                f"emogrid.gpulease: {gpus} of {len(devices)} GPUs wanted, {len(held)} free; waiting"
                f" (locks in {lock_dir}; snakemake --resources gpu={len(devices)} queues jobs instead)",
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
    devices, reason = plan(args.gpus, os.environ)
    if devices is not None:
        started = time.monotonic()
        held = lease(args.gpus, devices, default_lock_dir())
        for fd in held.values():
            os.set_inheritable(fd, True)  # the locks live as long as the command
        if "CUDA_VISIBLE_DEVICES" not in os.environ:
            # Indices as nvidia-smi and the lock files number them, whatever order was inherited.
            os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(held)
        print(
            f"emogrid.gpulease: GPU {os.environ['CUDA_VISIBLE_DEVICES']} ({reason};"
            f" waited {time.monotonic() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"emogrid.gpulease: no lease, {reason}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
