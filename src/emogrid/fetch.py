"""Get a dataset's native files into the raw directory: copied from a local folder or downloaded,
then checked against the md5 sums from the config. There is no fallback: a file that cannot be had
is an error naming where it was looked for and why it failed.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from emogrid.errors import ChecksumError, EmogridError
from emogrid.io import file_hash, temp_file_beside, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DOWNLOAD_TIMEOUT_S = 60
CHUNK = 1 << 20


class FetchError(EmogridError):
    """A dataset file could not be copied or downloaded; names the source and the cause."""

    def __init__(self, source: str, cause: str):
        self.source, self.cause = source, cause
        super().__init__(f"{source}: {cause}")


def md5sum(path: str | Path) -> str:
    return file_hash(path, "md5", CHUNK)


def file_url(ds_cfg: dict, filename: str) -> str:
    """The file's own `url`, else `base_url/` + its `remote_name` (or its name)."""
    spec = ds_cfg["files"][filename] or {}
    if spec.get("url"):
        return spec["url"]
    if not ds_cfg.get("base_url"):
        raise FetchError(filename, "no source_dir, no url and no base_url to get it from")
    return f"{ds_cfg['base_url'].rstrip('/')}/{spec.get('remote_name', filename)}"


def _copy_local(source: Path, target: Path) -> None:
    if not source.is_file():
        raise FetchError(str(source), "missing file (source_dir is set, so the file must be there)")
    shutil.copyfile(source, target)


def _download(url: str, target: Path, timeout: float) -> None:
    """Download `url` to `target`. A body shorter than its Content-Length is an error: Python's HTTP
    client ends such a read quietly, and a file without an md5 in the config would pass as whole."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
            announced = response.headers.get("Content-Length")
            received = out.tell()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        cause = getattr(error, "reason", None) or error
        raise FetchError(url, f"download failed: {cause}") from error
    # Content-Length counts the bytes as sent; with a Content-Encoding they are not the bytes read.
    if announced is not None and not response.headers.get("Content-Encoding") and received != int(announced):
        raise FetchError(url, f"download cut short: {received} of {announced} bytes")


def fetch_file(ds_cfg: dict, filename: str, dest_dir: Path, verify_md5: bool, timeout: float) -> dict:
    """Copy or download one file into dest_dir (via a temp file); its manifest entry."""
    if ds_cfg.get("source_dir"):
        source = str(Path(ds_cfg["source_dir"]) / filename)
    else:
        source = file_url(ds_cfg, filename)
    target = dest_dir / filename
    expected = (ds_cfg["files"][filename] or {}).get("md5")
    if (
        not ds_cfg.get("source_dir")
        and verify_md5
        and expected
        and target.is_file()
        and md5sum(target) == expected
    ):
        # A rerun (a changed label map reruns this job too) needs no second download of a file that is
        # there and verified: without internet it would fail. Without an md5 to check, it downloads.
        log.info("%s: already here with the expected md5, not downloaded again", target)
        return {"md5": expected, "source": source, "verified": True}
    temp = temp_file_beside(target)
    try:
        if ds_cfg.get("source_dir"):
            _copy_local(Path(source), temp)
        else:
            _download(source, temp, timeout)
        actual = md5sum(temp)
        verified = bool(verify_md5 and expected)
        if verified and actual != expected:
            raise ChecksumError(f"{filename} (from {source})", expected, actual)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return {"md5": actual, "source": source, "verified": verified}


def fetch_dataset(
    name: str,
    ds_cfg: dict,
    dest_dir: str | Path,
    verify_md5: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> dict:
    """Fetch every file of `ds_cfg["files"]` into dest_dir and write dest_dir/manifest.json.

    The manifest is written last, so its presence means every file is there (and verified, where
    `verified` is true; files without an md5 in the config, or with verify_md5 off, are not).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / MANIFEST).unlink(missing_ok=True)
    manifest = {}
    for filename in ds_cfg["files"]:
        manifest[filename] = fetch_file(ds_cfg, filename, dest_dir, verify_md5, timeout)
        log.info("%s: %s from %s (md5 %s, verified %s)", name, filename, *manifest[filename].values())
    write_json(dest_dir / MANIFEST, manifest)
    return manifest
