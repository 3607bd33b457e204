"""The image's record of itself (emogrid.provenance) and where it shows: run_info.json, the run table."""

import json

import pytest

from emogrid.errors import EmogridError
from emogrid.provenance import (
    code_mismatch_message,
    describe_image,
    image_info,
    main,
    package_versions,
    source_state,
)
from emogrid.runs import code_warning, runs_table


def test_package_versions_name_the_installed_stack():
    versions = package_versions()
    assert versions["transformers"].startswith("5.")
    assert versions["torch"] and versions["python"].count(".") == 2
    assert "deepspeed" in versions  # None where it is not installed, never missing


def test_outside_an_image_there_is_no_image_record(monkeypatch):
    monkeypatch.delenv("EMOGRID_IMAGE_INFO", raising=False)
    assert image_info() is None


def test_image_build_writes_the_record_that_runs_read_back(tmp_path, monkeypatch):
    record = tmp_path / "image.json"
    main(["--image", "registry.example/emogrid:1.2", "--output", str(record)])
    written = json.loads(record.read_text())
    assert written["image"] == "registry.example/emogrid:1.2"
    assert written["versions"] == package_versions()
    monkeypatch.setenv("EMOGRID_IMAGE_INFO", str(record))
    assert image_info() == written


def test_cli_without_output_prints_the_running_images_record(tmp_path, monkeypatch, capsys):
    (tmp_path / "image.json").write_text(json.dumps(describe_image("img:tag")))
    monkeypatch.setenv("EMOGRID_IMAGE_INFO", str(tmp_path / "image.json"))
    main([])
    assert json.loads(capsys.readouterr().out)["image"] == "img:tag"


@pytest.mark.parametrize("content", [None, "{not json", '{"image": "x"}'])
def test_a_broken_image_record_is_an_error_naming_the_file(tmp_path, monkeypatch, content):
    path = tmp_path / "image.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("EMOGRID_IMAGE_INFO", str(path))
    with pytest.raises(EmogridError, match="EMOGRID_IMAGE_INFO=.*image.json"):
        image_info()


def test_run_table_shows_the_image_and_python_of_each_run():
    base = {
        "config": {"name": "all4/bce/seed1"},
        "device": {"names": ["cpu"]},
        "precision": {"bf16": False, "fp16": False},
        "versions": {"python": "3.11.2", "torch": "2.13.0+cpu", "transformers": "5.24.0"},
        "git_commit": "abc",
    }
    in_image = base | {"image": {"image": "emogrid-ci:cpu", "versions": {}}}
    on_host = base | {"image": None}
    log = {"log_history": [{"loss": 0.5}], "global_step": 3}
    table = runs_table([in_image, on_host, base], [log, log, log])
    assert list(table["image"]) == ["emogrid-ci:cpu", "none (host environment)", "none (host environment)"]
    assert set(table["python"]) == {"3.11.2"}


def test_run_table_shows_each_cells_warnings(tmp_path):
    from emogrid.io import write_json
    from emogrid.runs import write_runs_overview

    info = {
        "config": {"name": "all4/bce/seed1"},
        "device": {"names": ["cpu"]},
        "precision": {"bf16": False, "fp16": False},
        "versions": {},
        "git_commit": "abc",
    }
    tiny = (
        "gradient norm stayed below 1e-06 for 5 logs (last 3e-07 at step 40): the model may not be learning"
    )
    logs = [
        {"log_history": [{"loss": 0.5}], "global_step": 40, "warnings": [tiny, "fell back to the CPU"]},
        {"log_history": [{"loss": 0.4}], "global_step": 40, "warnings": []},
    ]
    table = runs_table([info, info], logs)
    assert table["warnings"].tolist() == [f"{tiny}; fell back to the CPU", ""]
    paths = []
    for i, (record, log) in enumerate(zip([info, info], logs, strict=True)):
        paths.append((tmp_path / f"run_info{i}.json", tmp_path / f"train_log{i}.json"))
        write_json(paths[-1][0], record)
        write_json(paths[-1][1], log)
    out = tmp_path / "runs.html"
    write_runs_overview([p for p, _ in paths], [q for _, q in paths], out)
    assert "the model may not be learning" in out.read_text() and "SYNTHETIC" not in out.read_text()
    # Validation scores measured on the demo corpus say so.
    write_runs_overview([p for p, _ in paths], [q for _, q in paths], out, synthetic=["goemotions"])
    assert "SYNTHETIC DATA: goemotions is the generated demo corpus" in out.read_text()


def _git(folder, *args):
    import subprocess

    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, env=env
    )


def test_source_state_names_the_checkout_of_the_imported_code_not_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("EMOGRID_GIT_COMMIT", raising=False)
    code, workflow = tmp_path / "code", tmp_path / "workflow"
    for repo in (code, workflow):
        (repo / "pkg").mkdir(parents=True)
        (repo / "pkg" / "m.py").write_text(f"name = {repo.name!r}\n")
        _git(repo, "init", "-q")
        _git(repo, "add", ".")
        _git(repo, "commit", "-qm", "one")
    head = _git(code, "rev-parse", "HEAD").stdout.strip()
    state = source_state(code / "pkg", workflow_dir=workflow)
    assert state["git_commit"] == head and state["git_dirty"] is False
    assert state["workflow_git_commit"] == _git(workflow, "rev-parse", "HEAD").stdout.strip() != head
    # An edit not committed: the commit alone would name code that did not run.
    (code / "pkg" / "m.py").write_text("x = 2\n")
    assert source_state(code / "pkg", workflow_dir=workflow)["git_dirty"] is True
    # What the README says to edit in the checkout (the config, a profile) is not code: neither the
    # package's flag nor the workflow's turns. An edited rule does turn the workflow's.
    # Nor are the docs, the tests, the benchmarks and the README, which no job runs.
    edited = ("config", "profiles/slurm", "docs", "tests", "bench")
    for folder in (*edited, "rules"):
        (workflow / folder).mkdir(parents=True)
        (workflow / folder / "f.yaml").write_text("a: 1\n")
        (code / folder).mkdir(parents=True)
        (code / folder / "f.yaml").write_text("a: 1\n")
    (workflow / "README.md").write_text("# one\n")
    for repo in (code, workflow):
        _git(repo, "add", ".")
        _git(repo, "commit", "-qm", "two")
    head = _git(code, "rev-parse", "HEAD").stdout.strip()
    for folder in edited:
        (workflow / folder / "f.yaml").write_text("a: 2\n")
        (code / folder / "f.yaml").write_text("a: 2\n")
    (workflow / "README.md").write_text("# two\n")
    state = source_state(code / "pkg", workflow_dir=workflow)
    assert state["git_dirty"] is False and state["workflow_git_dirty"] is False
    (workflow / "rules" / "f.yaml").write_text("a: 2\n")
    (code / "rules" / "f.yaml").write_text("a: 2\n")
    state = source_state(code / "pkg", workflow_dir=workflow)
    assert state["git_dirty"] is False, "the package's own files are unchanged"
    assert state["workflow_git_dirty"] is True
    # A copy installed into an ignored folder of the checkout (pip install . into its .venv) is not the
    # checkout's code: its HEAD and status describe other files (a review helper saw an edited copy
    # recorded as that commit, clean).
    (code / ".gitignore").write_text(".venv/\n")
    installed = code / ".venv" / "lib" / "pkg"
    installed.mkdir(parents=True)
    (installed / "m.py").write_text("x = 3\n")
    state = source_state(installed, workflow_dir=workflow)
    assert (state["git_commit"], state["git_dirty"]) == ("unknown", None)
    # Outside any checkout (an image's copy of the package) the build's record is used, and only then.
    monkeypatch.setenv("EMOGRID_GIT_COMMIT", "feedbeef")
    bare = tmp_path / "site-packages" / "pkg"
    bare.mkdir(parents=True)
    assert source_state(bare, workflow_dir=workflow)["git_commit"] == "feedbeef"
    assert source_state(code / "pkg", workflow_dir=workflow)["git_commit"] == head
    # An image built without the commit: the def file's default, Docker's empty one, or none at all.
    for unset in ("unknown", ""):
        monkeypatch.setenv("EMOGRID_GIT_COMMIT", unset)
        assert "git_commit_from" not in source_state(bare, workflow_dir=tmp_path)
    monkeypatch.delenv("EMOGRID_GIT_COMMIT")
    assert source_state(bare, workflow_dir=tmp_path)["git_commit"] == "unknown"


def test_a_job_that_imported_other_code_than_the_workflow_checkout_is_warned_about(tmp_path, monkeypatch):
    """Under --sdm apptainer a job imports the image's emogrid, whatever the checkout holds."""
    monkeypatch.delenv("EMOGRID_GIT_COMMIT", raising=False)
    workflow = tmp_path / "workflow"
    (workflow / "pkg").mkdir(parents=True)
    (workflow / "pkg" / "m.py").write_text("x = 1\n")
    _git(workflow, "init", "-q")
    _git(workflow, "add", ".")
    _git(workflow, "commit", "-qm", "one")
    head = _git(workflow, "rev-parse", "HEAD").stdout.strip()
    # The checkout's own package (an editable install, or PYTHONPATH=src): nothing to say.
    assert (
        code_mismatch_message(source_state(workflow / "pkg", workflow_dir=workflow), in_image=False) is None
    )
    bare = tmp_path / "image" / "pkg"
    bare.mkdir(parents=True)
    # An image built from another commit: named, with both commits.
    monkeypatch.setenv("EMOGRID_GIT_COMMIT", "feedbeef" * 5)
    message = code_mismatch_message(source_state(bare, workflow_dir=workflow), in_image=True)
    assert "from commit feedbeeffeed" in message and f"from commit {head[:12]}" in message
    # The image built from this very commit: silent.
    monkeypatch.setenv("EMOGRID_GIT_COMMIT", head)
    assert code_mismatch_message(source_state(bare, workflow_dir=workflow), in_image=True) is None
    # An image that records no commit: cannot be told, and says so; outside an image there is nothing
    # to compare (a package installed elsewhere) and nothing is said.
    monkeypatch.setenv("EMOGRID_GIT_COMMIT", "unknown")
    message = code_mismatch_message(source_state(bare, workflow_dir=workflow), in_image=True)
    assert "records no commit" in message and head[:12] in message
    assert code_mismatch_message(source_state(bare, workflow_dir=workflow), in_image=False) is None


def test_the_run_table_warns_when_cells_ran_different_code():
    base = {
        "config": {"name": "all4/bce/seed1"},
        "device": {"names": ["cpu"]},
        "precision": {"bf16": False, "fp16": False},
        "versions": {},
        "git_commit": "abc",
        "git_dirty": False,
        "inputs": {"code": "1" * 64},
    }
    log = {"log_history": [{"loss": 0.5}], "global_step": 3}
    same = runs_table([base, base], [log, log])
    assert same["code"].tolist() == ["1" * 12] * 2 and code_warning(same) == ""
    newer = base | {"inputs": {"code": "2" * 64}, "git_dirty": True}
    mixed = runs_table([base, newer], [log, log])
    assert mixed["git commit"].tolist() == ["abc", "abc +uncommitted"]
    warning = code_warning(mixed)
    assert "2 different versions of emogrid's training code (111111111111, 222222222222)" in warning
    assert "uncommitted changes" in warning
    # A record from before the code digest existed shows an empty cell, not a third version.
    old = {k: v for k, v in base.items() if k not in ("inputs", "git_dirty")}
    assert code_warning(runs_table([base, old], [log, log])) == ""
    # An edited rule or script counts too; an edited config does not reach either flag (source_state).
    edited_workflow = runs_table([base | {"workflow_git_dirty": True}], [log])
    assert edited_workflow["git commit"].tolist() == ["abc +uncommitted"]
