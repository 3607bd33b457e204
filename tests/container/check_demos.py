"""Assertions on the two demo runs of tests/container/run_demos.sh (run by `make test-container`).

`pytest tests/container/check_demos.py` with EMOGRID_CONTAINER_CACHE naming the folder the runs
wrote (default: .container-ci). Not collected by `make test`: the file name has no test_ prefix.
"""

import json
import os
import platform
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EMOGRID_CONTAINER_CACHE", REPO / ".container-ci"))
HOST = CACHE / "demo-host/results/demo"
CONTAINER = CACHE / "demo-container/results/demo"
CI_IMAGE = "emogrid-ci:cpu"
# Same torch build, same data and seeds, one CPU: the runs should agree to rounding. The tolerance
# leaves room for a BLAS or thread-count difference, not for a different result.
F1_TOLERANCE = 0.02

FINAL_OUTPUTS = [
    "tables/f1_macro.csv",
    "tables/data_summary.html",
    "tables/runs.html",
    "plots/f1_macro_bars.png",
    "plots/per_class_f1.png",
    "plots/training_curves.png",
    "report.html",
]


def run_infos(results: Path) -> list[dict]:
    paths = sorted(results.glob("runs/*/*/*/seed*/run_info.json"))
    assert len(paths) == 6, f"expected 6 cells' run_info.json under {results}, found {len(paths)}"
    return [json.loads(p.read_text()) for p in paths]


@pytest.fixture(scope="module")
def image_record() -> dict:
    """What the SIF says about itself (read out of it with `apptainer exec`, not from any run)."""
    return json.loads((CACHE / "image.json").read_text())


@pytest.mark.parametrize("results", [HOST, CONTAINER], ids=["host", "container"])
@pytest.mark.parametrize("name", FINAL_OUTPUTS)
def test_both_runs_write_the_final_outputs(results, name):
    path = results / name
    assert path.is_file() and path.stat().st_size > 0, path


def test_container_run_matches_the_host_run_within_tolerance():
    # One row per cell (loss, mix, imbalance), evaluation dataset and label level (labels/Ekman/sentiment).
    key = ["loss", "mix", "imbalance", "dataset", "level"]
    host = pd.read_csv(HOST / "tables/f1_macro.csv").set_index(key)["mean"]
    container = pd.read_csv(CONTAINER / "tables/f1_macro.csv").set_index(key)["mean"]
    assert len(host) == 6 * 4 * 3 and set(host.index) == set(container.index)
    difference = (host - container.reindex(host.index)).abs()
    assert difference.max() <= F1_TOLERANCE, difference.sort_values().tail()
    # The demo learns its keywords in both (a container run of zeros would match nothing above).
    assert container.xs("goemotions", level="dataset").min() > 0.3


def test_the_image_records_the_ci_variant(image_record):
    assert image_record["image"] == CI_IMAGE
    versions = image_record["versions"]
    assert versions["torch"] == "2.13.0+cpu"
    assert versions["emogrid"] and versions["snakemake"] and versions["deepspeed"]


def test_container_runs_record_the_image_and_its_versions(image_record):
    for info in run_infos(CONTAINER):
        assert info["image"] == image_record
        # What training actually imported is what the image was built with: nothing leaked in
        # from the host's .venv (Snakemake appends the host's sys.path inside the container).
        assert info["versions"] == image_record["versions"]


def test_container_runs_imported_the_image_copy_of_this_commit():
    # The image was built from this checkout's HEAD (build_image.sh passes GIT_COMMIT): the cells
    # record that commit for the code they imported, and the host run, importing the checkout's src/,
    # the same one. The demos run in a folder git ignores, so the workflow's own commit is "unknown"
    # there, and no "other code" warning is due.
    host_commits = {info["git_commit"] for info in run_infos(HOST)}
    for info in run_infos(CONTAINER):
        assert info["git_commit_from"] == "EMOGRID_GIT_COMMIT"
        assert {info["git_commit"]} == host_commits and info["git_commit"] != "unknown"
        assert info["workflow_git_commit"] in (info["git_commit"], "unknown")
    for log in sorted(CONTAINER.glob("runs/*/*/*/seed*/train_log.json")):
        assert not [w for w in json.loads(log.read_text())["warnings"] if "emogrid from commit" in w], log


def test_host_runs_record_no_image_and_the_host_python():
    for info in run_infos(HOST):
        assert info["image"] is None
        assert info["versions"]["python"] == platform.python_version()


def test_the_run_table_names_the_image():
    assert CI_IMAGE in (CONTAINER / "tables/runs.html").read_text()
    assert CI_IMAGE not in (HOST / "tables/runs.html").read_text()
