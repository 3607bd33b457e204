"""The image definitions, the pinned stack and the conda envs agree with each other and the workflow.

The image itself is built and run by `make test-container` (tests/container/); these checks are
static and need no Docker.
"""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO_ROOT, load_config

CONTAINERS = REPO_ROOT / "containers"


def dockerfile_args() -> dict[str, str]:
    text = (CONTAINERS / "Dockerfile").read_text()
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))


def def_arguments() -> dict[str, str]:
    text = (CONTAINERS / "emogrid.def").read_text()
    block = re.search(r"^%arguments\n((?:[ \t]+.*\n)+)", text, flags=re.M).group(1)
    return dict(line.strip().split("=", 1) for line in block.splitlines() if line.strip())


def pins(lines) -> dict[str, str]:
    """name -> version of `name==version` requirement lines (comments and blanks skipped)."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: not pinned with =="
            found[canonicalize_name(req.name)] = spec.version
    return found


def image_pins() -> dict[str, str]:
    args = dockerfile_args()
    return pins((CONTAINERS / "requirements.txt").read_text().splitlines()) | pins(
        [args["TORCH"], args["DEEPSPEED"]]
    )


def test_dockerfile_and_def_file_make_the_same_choices():
    docker, apptainer = dockerfile_args(), def_arguments()
    for key in ["BASE_IMAGE", "TORCH", "DEEPSPEED", "IMAGE_NAME"]:
        assert docker[key] == apptainer[key], key
    assert apptainer["BOOTSTRAP"] == "docker"
    # No CUDA or cuDNN from the base: torch's wheel brings its own (a second one could shadow it).
    assert re.fullmatch(r"ubuntu:\d+\.\d+", docker["BASE_IMAGE"]), docker["BASE_IMAGE"]
    definition = (CONTAINERS / "emogrid.def").read_text()
    assert "Bootstrap: {{ BOOTSTRAP }}" in definition and "From: {{ BASE_IMAGE }}" in definition
    # Both record the commit their copy of emogrid comes from, when the build is given it.
    assert "GIT_COMMIT" in docker and "GIT_COMMIT" in apptainer
    assert "EMOGRID_GIT_COMMIT=${GIT_COMMIT}" in (CONTAINERS / "Dockerfile").read_text()
    assert "export EMOGRID_GIT_COMMIT={{ GIT_COMMIT }}" in definition


def test_the_workflow_defaults_to_the_published_image():
    image = "docker://" + dockerfile_args()["IMAGE_NAME"]
    assert load_config()["container"] == image
    schema = yaml.safe_load((REPO_ROOT / "schemas/config.schema.yaml").read_text())
    assert schema["properties"]["container"]["default"] == image


def test_the_image_pins_every_dependency_of_the_package_within_its_range():
    pinned = image_pins()
    project = (REPO_ROOT / "pyproject.toml").read_text()
    import tomllib

    meta = tomllib.loads(project)["project"]
    wanted = [Requirement(r) for r in meta["dependencies"] + meta["optional-dependencies"]["gpu"]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is a dependency of emogrid but not pinned for the image"
        # A local version (torch 2.13.0+cpu) still satisfies the public one's range.
        assert req.specifier.contains(pinned[name].split("+")[0]), f"{req.name}=={pinned[name]} vs {req}"


ENVS = sorted((REPO_ROOT / "envs").glob("*.yaml"))


@pytest.mark.parametrize("env_file", ENVS, ids=[p.stem for p in ENVS])
def test_conda_envs_pin_the_image_versions(env_file):
    env = yaml.safe_load(env_file.read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = pins(pip_section)
    image = image_pins()
    for name, version in env_pins.items():
        assert image.get(name) == version, f"{env_file.name}: {name}=={version}, image has {image.get(name)}"
    assert (REPO_ROOT / "envs" / f"{env_file.stem}.post-deploy.sh").resolve().is_file()


def run_post_deploy(tmp_path, cwd, env=None):
    """Run the post-deploy script as Snakemake does: a copy next to the env (here under
    tmp/.snakemake/conda/), with a stand-in `python` that prints what pip would install."""
    import os
    import shutil
    import subprocess

    copy = tmp_path / ".snakemake" / "conda" / "abc123_.post-deploy.sh"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "envs" / "train.post-deploy.sh", copy)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "python").write_text('#!/bin/sh\necho "python $*"\n')
    (fake_bin / "python").chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != "EMOGRID_REPO"}
    environ |= {"PATH": f"{fake_bin}:{os.environ['PATH']}", **(env or {})}
    return subprocess.run(["bash", str(copy)], cwd=cwd, env=environ, capture_output=True, text=True)


def test_the_post_deploy_copy_installs_this_checkout(tmp_path):
    install = f"python -m pip install --no-deps -e {REPO_ROOT}"
    done = run_post_deploy(tmp_path, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == install
    # Started elsewhere, it needs EMOGRID_REPO, and says so instead of installing something else.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    failed = run_post_deploy(tmp_path, cwd=elsewhere)
    assert failed.returncode == 1 and "EMOGRID_REPO" in failed.stderr and not failed.stdout
    pointed = run_post_deploy(tmp_path, cwd=elsewhere, env={"EMOGRID_REPO": str(REPO_ROOT)})
    assert pointed.returncode == 0 and pointed.stdout.strip() == install


def rules_with_their_code() -> dict[str, tuple[str | None, Path]]:
    """rule -> (its conda env file, the Python file it runs), read from rules/*.smk."""
    found = {}
    for smk in sorted((REPO_ROOT / "rules").glob("*.smk")):
        for block in re.split(r"^\s*rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            conda = re.search(r"conda:\s*\"([^\"]+)\"", block)
            script = re.search(r"script:\s*\"([^\"]+)\"", block)
            module = re.search(r"-m (emogrid\.\w+)", block)
            code = (
                (smk.parent / script.group(1)).resolve()
                if script
                else REPO_ROOT / "src" / (module.group(1).replace(".", "/") + ".py")
            )
            found[name] = (conda and (smk.parent / conda.group(1)).resolve(), code)
    return found


def third_party_imports(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Top-level modules outside the standard library that `path` imports, through emogrid's modules."""
    seen = set() if seen is None else seen
    seen.add(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "emogrid":
                for candidate in (name.replace(".", "/") + ".py", name.replace(".", "/") + "/__init__.py"):
                    module = REPO_ROOT / "src" / candidate
                    if module.is_file() and module not in seen:
                        found |= third_party_imports(module, seen)
            elif top not in sys.stdlib_module_names and top not in {"__future__", "snakemake"}:
                found.add(top)
    return found


def test_every_rule_has_a_conda_env_with_the_packages_its_code_imports():
    distributions = packages_distributions()
    rules = rules_with_their_code()
    assert {"preprocess", "train", "plots", "evaluate"} <= rules.keys()
    for rule, (env_file, code) in rules.items():
        assert env_file is not None and env_file.is_file(), f"rule {rule} has no conda env file"
        env = yaml.safe_load(env_file.read_text())
        pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        provided = set(pins(pip_section))
        for module in third_party_imports(code):
            dists = {canonicalize_name(d) for d in distributions.get(module, [module])}
            assert dists & provided, f"rule {rule} ({code.name}) imports {module}; {env_file.name} lacks it"


def test_the_workflow_parses_with_emogrid_alone_beside_snakemake():
    """With --sdm apptainer or conda the jobs bring their own stack; the host only parses the workflow,
    and what rules/common.smk imports from emogrid needs nothing outside the standard library."""
    import subprocess

    common = (REPO_ROOT / "rules" / "common.smk").read_text()
    imports = set(re.findall(r"^(?:from|import) (emogrid[\w.]*)", common, flags=re.M))
    assert "emogrid.config" in imports
    code = (
        "import sys; before = set(sys.modules)\n"
        + "".join(f"import {module}\n" for module in sorted(imports))
        + "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO_ROOT / "src")},
    ).stdout.split()
    assert [name for name in loaded if name not in sys.stdlib_module_names] == ["emogrid"]
