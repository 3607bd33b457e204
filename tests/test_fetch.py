"""Fetching dataset files: local copies, file:// downloads, md5 checks, and failures that say why."""

import hashlib
import json
import urllib.error
import urllib.request

import pytest

from emogrid.errors import ChecksumError
from emogrid.fetch import FetchError, fetch_dataset, file_url, md5sum

CONTENT = {"a.txt": b"alpha\n", "b.txt": "beta ’\n".encode()}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    folder.mkdir()
    for name, data in CONTENT.items():
        (folder / name).write_bytes(data)
    return folder


def ds_cfg(**overrides) -> dict:
    cfg = {
        "source_dir": None,
        "base_url": None,
        "files": {name: {"md5": md5(data)} for name, data in CONTENT.items()},
    }
    cfg.update(overrides)
    return cfg


def test_md5sum(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"emogrid" * 100_000)
    assert md5sum(path) == md5(b"emogrid" * 100_000)


def test_local_copy_writes_files_and_manifest(source, tmp_path):
    dest = tmp_path / "raw"
    manifest = fetch_dataset("toy", ds_cfg(source_dir=str(source)), dest)
    for name, data in CONTENT.items():
        assert (dest / name).read_bytes() == data
        assert manifest[name] == {"md5": md5(data), "source": str(source / name), "verified": True}
    assert json.loads((dest / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "b.txt", "manifest.json"], "temp files left"


def test_md5_mismatch_names_file_and_both_sums(source, tmp_path):
    cfg = ds_cfg(source_dir=str(source))
    cfg["files"]["b.txt"]["md5"] = "0" * 32
    dest = tmp_path / "raw"
    with pytest.raises(ChecksumError) as error:
        fetch_dataset("toy", cfg, dest)
    message = str(error.value)
    assert "b.txt" in message and "0" * 32 in message and md5(CONTENT["b.txt"]) in message
    assert not (dest / "b.txt").exists() and not (dest / "manifest.json").exists()
    assert not list(dest.glob(".*.tmp"))


def test_md5_not_checked_when_verification_is_off_or_md5_missing(source, tmp_path):
    cfg = ds_cfg(source_dir=str(source))
    cfg["files"]["a.txt"]["md5"] = "0" * 32
    cfg["files"]["b.txt"]["md5"] = None
    manifest = fetch_dataset("toy", cfg, tmp_path / "raw", verify_md5=False)
    assert not any(entry["verified"] for entry in manifest.values())
    manifest = fetch_dataset("toy", {**cfg, "files": {"b.txt": {"md5": None}}}, tmp_path / "raw2")
    assert manifest["b.txt"] == {
        "md5": md5(CONTENT["b.txt"]),
        "source": str(source / "b.txt"),
        "verified": False,
    }


def test_missing_local_file_names_the_path(source, tmp_path):
    (source / "b.txt").unlink()
    with pytest.raises(FetchError, match="missing file") as error:
        fetch_dataset("toy", ds_cfg(source_dir=str(source)), tmp_path / "raw")
    assert str(source / "b.txt") in str(error.value)
    assert not (tmp_path / "raw" / "manifest.json").exists()


def test_download_from_base_url_with_remote_name_and_file_url(source, tmp_path):
    (source / "remote-b.txt").write_bytes(CONTENT["b.txt"])
    cfg = ds_cfg(base_url=source.as_uri() + "/")
    cfg["files"]["a.txt"]["url"] = (source / "a.txt").as_uri()
    cfg["files"]["b.txt"]["remote_name"] = "remote-b.txt"
    assert file_url(cfg, "b.txt") == source.as_uri() + "/remote-b.txt"
    manifest = fetch_dataset("toy", cfg, tmp_path / "raw")
    assert manifest["b.txt"]["source"].endswith("/remote-b.txt") and manifest["b.txt"]["verified"]
    assert (tmp_path / "raw" / "b.txt").read_bytes() == CONTENT["b.txt"]


def test_download_failure_names_url_and_cause(source, tmp_path):
    cfg = ds_cfg(base_url=(source / "nowhere").as_uri())
    with pytest.raises(FetchError, match="download failed") as error:
        fetch_dataset("toy", cfg, tmp_path / "raw")
    assert (source / "nowhere" / "a.txt").as_uri() in str(error.value)
    assert not (tmp_path / "raw" / "a.txt").exists() and not (tmp_path / "raw" / "manifest.json").exists()


def test_network_error_is_reported_not_replaced(monkeypatch, tmp_path):
    def refuse(url, timeout):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    cfg = ds_cfg(base_url="https://example.invalid/data")
    with pytest.raises(FetchError, match="https://example.invalid/data/a.txt: download failed.*refused"):
        fetch_dataset("toy", cfg, tmp_path / "raw")
    assert not list((tmp_path / "raw").iterdir())


def test_no_source_at_all_is_an_error(tmp_path):
    with pytest.raises(FetchError, match="no source_dir, no url and no base_url"):
        fetch_dataset("toy", ds_cfg(), tmp_path / "raw")


def test_a_download_cut_short_is_an_error_even_without_an_md5(tmp_path):
    """The server announces 100 bytes and sends 50: Python's HTTP client ends the read quietly, and with
    no md5 in the config the half file would have passed as the dataset."""
    import http.server
    import threading

    class HalfBody(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 50)
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), HalfBody)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = {
            "source_dir": None,
            "base_url": f"http://127.0.0.1:{server.server_port}",
            "files": {"a.txt": {"md5": None}},
        }
        with pytest.raises(FetchError, match=r"a\.txt: download (cut short: 50 of 100 bytes|failed)"):
            fetch_dataset("toy", cfg, tmp_path / "raw", verify_md5=False)
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "raw" / "a.txt").exists() and not (tmp_path / "raw" / "manifest.json").exists()


def test_a_rerun_does_not_download_a_file_already_here_and_verified(source, monkeypatch, tmp_path):
    # The job reruns when any of the dataset's settings change (a label map too): a machine without
    # internet must not fail on a second download of files it has and can verify.
    cfg = ds_cfg(base_url=source.as_uri())
    first = fetch_dataset("toy", cfg, tmp_path / "raw")
    (tmp_path / "raw" / "manifest.json").unlink()  # Snakemake removes the job's output before a rerun

    def offline(url, timeout):
        raise urllib.error.URLError(OSError("network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert fetch_dataset("toy", cfg, tmp_path / "raw") == first
    # A file that no longer matches its md5, or one without an md5, is downloaded again.
    (tmp_path / "raw" / "a.txt").write_bytes(b"changed\n")
    with pytest.raises(FetchError, match="a.txt: download failed"):
        fetch_dataset("toy", cfg, tmp_path / "raw")
    cfg["files"]["a.txt"]["md5"] = None
    with pytest.raises(FetchError, match="a.txt: download failed"):
        fetch_dataset("toy", cfg, tmp_path / "raw")
