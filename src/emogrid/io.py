"""Atomic writes (a later rule never sees a file that looks complete but is not), and file digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask, read without changing it (os.umask can only set it) where Linux shows it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_file_beside(path: Path) -> Path:
    """An empty temporary file in `path`'s directory, to be renamed onto `path` once written. Its mode
    is what a plain open() would give (0o666 less the umask): mkstemp's private 0600 would otherwise
    survive the rename, and a shared project directory's group could not read the results."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(name)


def readable_as_umask_allows(folder: str | Path) -> None:
    """Give every file under `folder` the permissions a plain open() would have (0o666 less the umask)
    on top of its own. Libraries that write atomically through a private temp file (safetensors' save,
    hence every model.safetensors and checkpoint) leave 0600 files a project group cannot read."""
    bits = 0o666 & ~_umask()
    for path in Path(folder).rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                path.chmod(path.stat().st_mode | bits)
        except (FileNotFoundError, PermissionError):
            pass  # another process's file, or one removed meanwhile (an old checkpoint rotated out)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temp_file_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_parquet(path: str | Path, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def parquet_attrs(path: str | Path) -> dict:
    """The pandas `attrs` a parquet file was written with, read from its metadata (not its rows)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    # pyarrow keeps a frame's attrs under PANDAS_ATTRS; older writers put them in the pandas metadata.
    attrs = json.loads(metadata.get(b"PANDAS_ATTRS", b"{}"))
    return attrs or json.loads(metadata.get(b"pandas", b"{}")).get("attrs", {})


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def file_hash(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes, read in chunks (large model weights never sit in memory whole)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
