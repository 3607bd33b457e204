"""The image's record of itself (emogrid.provenance) and where it shows: run_info.json, the run table."""

import json

import pytest

from emogrid.errors import EmogridError
from emogrid.provenance import describe_image, image_info, main, package_versions
from emogrid.runs import runs_table


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
    assert "the model may not be learning" in out.read_text()
