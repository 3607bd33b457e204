"""emogrid.gpulease: local GPU jobs get GPUs of their own, and hold them exactly as long as they run."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emogrid import gpulease
from emogrid.config import train_launcher

WAIT = 60  # seconds: generous limits for the processes below, never a speed goal


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """An environment in which `nvidia-smi -L` lists two GPUs and nothing has chosen devices yet."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-b)'\n"
    )
    smi.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in {"CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"}}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", gpulease.LOCK_DIR_VARIABLE: str(tmp_path / "locks")}
    return env


def _job(env, gpus: int, out: Path, hold: Path) -> subprocess.Popen:
    """A leased job that writes what it was given to `out`, then runs until `hold` is removed."""
    body = (
        "import os, pathlib, time\n"
        f"pathlib.Path({str(out)!r}).write_text("
        "os.environ.get('CUDA_VISIBLE_DEVICES', '-') + ' ' + os.environ.get('CUDA_DEVICE_ORDER', '-'))\n"
        f"while pathlib.Path({str(hold)!r}).exists(): time.sleep(0.05)\n"
    )
    command = [sys.executable, "-m", "emogrid.gpulease", str(gpus), "--", sys.executable, "-c", body]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path) -> str:
    deadline = time.monotonic() + WAIT
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text()


@pytest.mark.skipif(gpulease.NVIDIA_PROC.is_dir(), reason="a real GPU machine: its driver's count wins")
def test_jobs_get_disjoint_gpus_a_third_waits_and_a_killed_job_frees_its_gpu(machine, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    outs = [tmp_path / f"job{i}" for i in range(3)]
    first, second = _job(machine, 1, outs[0], hold), _job(machine, 1, outs[1], hold)
    got = {_wait_for(outs[0]), _wait_for(outs[1])}
    assert got == {"0 PCI_BUS_ID", "1 PCI_BUS_ID"}
    third = _job(machine, 1, outs[2], hold)
    # Both GPUs are taken: the third job says so and waits instead of piling onto one of them.
    assert "waiting" in third.stderr.readline()
    assert not outs[2].exists() and third.poll() is None
    # A job killed outright releases its GPU: the lock belonged to its process.
    first.send_signal(signal.SIGKILL)
    first.wait(WAIT)
    freed = _wait_for(outs[0]).split()[0]
    assert _wait_for(outs[2]) == f"{freed} PCI_BUS_ID"
    hold.unlink()
    assert second.wait(WAIT) == 0 and third.wait(WAIT) == 0
    for job in (first, second, third):
        job.stderr.close()


@pytest.mark.skipif(gpulease.NVIDIA_PROC.is_dir(), reason="a real GPU machine: its driver's count wins")
def test_a_two_gpu_job_gets_both(machine, tmp_path):
    hold = tmp_path / "hold"
    job = _job(machine, 2, tmp_path / "out", hold)
    assert _wait_for(tmp_path / "out") == "0,1 PCI_BUS_ID"
    assert job.wait(WAIT) == 0
    job.stderr.close()


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"CUDA_VISIBLE_DEVICES": "3"}, "CUDA_VISIBLE_DEVICES=3 is already set"),
        ({"SLURM_JOB_ID": "42"}, "SLURM job 42"),
        ({"CUDA_VISIBLE_DEVICES": ""}, "CUDA_VISIBLE_DEVICES= is already set"),  # "no GPU" is a choice too
    ],
)
def test_devices_someone_else_chose_are_left_alone(machine, tmp_path, env, reason):
    result = subprocess.run(
        [sys.executable, "-m", "emogrid.gpulease", "1", "--", "sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES]"'],
        env=machine | env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    assert result.stdout.strip() == f"[{env.get('CUDA_VISIBLE_DEVICES', '')}]"
    assert f"no lease, {reason}" in result.stderr
    assert not (tmp_path / "locks").exists()


def test_inside_a_multi_gpu_allocation_jobs_share_out_its_gpus(machine, tmp_path):
    # snakemake run locally in an salloc with 4 GPUs: CUDA_VISIBLE_DEVICES lists them all, and each
    # one-GPU cell must get one of those, not all four (and so GPU 2 for every cell).
    env = machine | {
        "CUDA_VISIBLE_DEVICES": "2,5,6,7",
        "SLURM_JOB_ID": "42",
        "CUDA_DEVICE_ORDER": "FASTEST_FIRST",
    }
    hold = tmp_path / "hold"
    hold.touch()
    jobs = [_job(env, 1, tmp_path / f"out{i}", hold) for i in range(2)]
    got = {_wait_for(tmp_path / f"out{i}") for i in range(2)}
    # Two different devices of the four; the order the allocation's numbering means is left as it was.
    assert len(got) == 2 and all(
        g.split()[0] in {"2", "5", "6", "7"} and g.endswith("FASTEST_FIRST") for g in got
    )
    hold.unlink()
    for job in jobs:
        assert job.wait(WAIT) == 0
        job.stderr.close()


def test_a_symlinked_lock_file_is_refused_and_its_target_left_alone(tmp_path):
    # Another user of the shared folder must not be able to point a lock at someone's file.
    locks = tmp_path / "locks"
    locks.mkdir()
    target = tmp_path / "private"
    target.write_text("secret")
    target.chmod(0o600)
    (locks / "gpu-0.lock").symlink_to(target)
    with pytest.raises(SystemExit, match="cannot use the lock file"):
        gpulease.lease(1, ["0"], locks)
    assert oct(target.stat().st_mode & 0o777) == oct(0o600) and target.read_text() == "secret"
    (locks / "gpu-0.lock").unlink()
    (locks / "gpu-0.lock").mkdir()
    with pytest.raises(SystemExit, match="not a regular file"):
        gpulease.lease(1, ["0"], locks)


def test_a_lock_folder_that_is_a_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "locks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SystemExit, match="not a folder"):
        gpulease.lease(1, ["0"], tmp_path / "locks")


def test_a_new_lock_folder_is_shared_like_tmp_and_its_files_are_readable(tmp_path):
    held = gpulease.lease(1, ["0"], tmp_path / "a" / "locks")
    assert oct((tmp_path / "a" / "locks").stat().st_mode & 0o7777) == oct(0o1777)
    assert oct((tmp_path / "a" / "locks" / "gpu-0.lock").stat().st_mode & 0o777) == oct(0o644)
    for fd in held.values():
        os.close(fd)


@pytest.mark.skipif(gpulease.NVIDIA_PROC.is_dir(), reason="a real GPU machine")
def test_a_machine_without_gpus_runs_the_command_as_given(machine):
    if any(Path(d, "nvidia-smi").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("nvidia-smi is installed here")
    env = machine | {"PATH": "/usr/bin:/bin"}  # without the fake nvidia-smi
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "emogrid.gpulease",
            "1",
            "--",
            "sh",
            "-c",
            'echo "[${CUDA_VISIBLE_DEVICES-unset}]"',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    assert result.stdout.strip() == "[unset]" and "no NVIDIA GPU" in result.stderr


def test_count_gpus_reads_the_driver_entries(tmp_path):
    for address in ("0000:19:00.0", "0000:3b:00.0", "0000:4c:00.0"):
        (tmp_path / address).mkdir()
    assert gpulease.count_gpus(tmp_path) == 3


def _hold(locks, device):
    fd = os.open(locks / f"gpu-{device}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_lease_takes_only_free_gpus(tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir()
    taken = _hold(locks, "0")
    held = gpulease.lease(1, ["0", "1", "2"], locks)
    assert list(held) == ["1"]
    more = gpulease.lease(1, ["0", "1", "2"], locks)
    assert list(more) == ["2"]
    for fd in (*held.values(), *more.values(), taken):
        os.close(fd)


def test_a_waiting_job_holds_none_of_its_gpus_until_it_gets_all(tmp_path):
    import threading

    locks = tmp_path / "locks"
    locks.mkdir()
    first, third = _hold(locks, "0"), _hold(locks, "2")
    result = {}
    said_waiting = threading.Event()

    class Log:
        def write(self, text):
            if "waiting" in text:
                said_waiting.set()

        def flush(self):
            pass

    waiting = threading.Thread(
        target=lambda: result.update(gpulease.lease(2, ["0", "1", "2"], locks, poll_seconds=0.01, log=Log()))
    )
    waiting.start()
    # Probe only after the job has tried and announced its wait: otherwise the probe could take GPU 1
    # first and a job that kept part of its GPUs while waiting would pass unseen.
    assert said_waiting.wait(WAIT)
    # Only GPU 1 is free: the two-GPU job waits, and GPU 1 stays available to a one-GPU job meanwhile.
    deadline = time.monotonic() + WAIT
    while True:
        fd = gpulease._try_lock(locks / "gpu-1.lock")
        if fd is not None:
            break
        assert time.monotonic() < deadline, "the waiting job kept GPU 1"
        time.sleep(0.001)
    os.close(first)  # GPU 0 free too, but GPU 1 is now someone else's: still one short
    time.sleep(0.2)
    assert waiting.is_alive() and not result
    os.close(third)
    waiting.join(WAIT)
    assert sorted(result) == ["0", "2"]
    for lock in (*result.values(), fd):
        os.close(lock)


def test_asking_for_more_gpus_than_there_are_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="asks for 4 GPUs, there are 2"):
        gpulease.lease(4, ["0", "1"], tmp_path)


def test_train_launcher_leases_every_gpu_job():
    assert train_launcher(0) == "python"
    assert train_launcher(1) == "python -m emogrid.gpulease 1 -- python"
    four = train_launcher(4)
    assert four.startswith("TORCH_ELASTIC_SHUTDOWN_TIMEOUT=110 python -m emogrid.gpulease 4 -- torchrun")
    assert four.endswith("--nproc_per_node=4")


def test_the_lease_imports_no_torch():
    # It runs before every GPU job: importing torch there would cost seconds per job.
    code = "import sys, emogrid.gpulease; print('torch' in sys.modules)"
    assert subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout == ("False\n")
