"""What a run ran with: package versions, and the container image when it ran in one.

The image build runs `python -m emogrid.provenance --image NAME --output /opt/emogrid/image.json`
and sets EMOGRID_IMAGE_INFO to that file, so every training cell run inside the image records the
image it came from next to the versions it actually imported (run_info.json, the report's run table).
Without --output the command prints what it would record (the image's default command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from emogrid.errors import EmogridError

IMAGE_INFO_ENV = "EMOGRID_IMAGE_INFO"
SECRET_MARKERS = ("TOKEN", "KEY", "SECRET", "PASSWORD")

# The stack whose versions decide a result; None marks a package that is not installed.
PACKAGES = [
    "emogrid",
    "torch",
    "transformers",
    "accelerate",
    "datasets",
    "deepspeed",
    "scikit-learn",
    "numpy",
    "pandas",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "sentencepiece",
    "protobuf",
    "scipy",
    "statsmodels",
    "pyarrow",
    "matplotlib",
    "snakemake",
]
GIT_COMMIT_ENV = "EMOGRID_GIT_COMMIT"


def looks_secret(name: str) -> bool:
    """Whether a key or variable name reads as a credential: one of its words (split at anything not
    a letter or digit) ends with TOKEN, KEY, SECRET or PASSWORD (HF_TOKEN, WANDB_API_KEY, hftoken,
    client_secret), in the plural too. Whole words, so `tokenizers` (a package version) or
    `tokenizer.json` (a model file) keep their values."""
    words = [w.rstrip("S") for w in re.split(r"[^A-Z0-9]+", str(name).upper()) if w]
    return any(word.endswith(marker) for word in words for marker in SECRET_MARKERS)


def secret_values(environ=None) -> list[str]:
    """Values of credential-like environment variables (HF_TOKEN, WANDB_API_KEY, ...), longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if looks_secret(k) and len(v.strip()) >= 6}
    return sorted(values, key=len, reverse=True)


def scrub(value, secrets: list[str] | None = None):
    """Drop anything that looks like a credential before it reaches a file.

    Keys named like credentials lose their values, and the value of any credential-like environment
    variable is cut out of every string (a token pasted into a URL or a path, say).
    """
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, dict):
        return {k: ("<scrubbed>" if looks_secret(k) else scrub(v, secrets)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "<scrubbed>")
    return value


def package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    found["python"] = platform.python_version()
    return found


# What a user edits in the checkout to run it: the science config (recorded apart, in
# config.resolved.yaml and every cell.json) and the machine profiles. Editing them, as the README says
# to, does not make the code that ran differ from its commit. Nor do the docs, the tests and the
# benchmarks, which no job runs.
NOT_CODE = ("config", "profiles", "docs", "tests", "bench", "*.md")


def git_state(folder: str | Path, exclude: tuple[str, ...] = ()) -> tuple[str, bool | None]:
    """(commit, has uncommitted changes to tracked files under `folder`, outside the `exclude` paths
    relative to it) of the git checkout holding `folder`; ("unknown", None) outside one or without git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout

    try:
        if not git("ls-files", "--", ".").strip():
            # Inside a checkout but not part of it: a copy installed into an ignored folder (pip install .
            # into the checkout's .venv). The checkout's commit and status would describe other files.
            return "unknown", None
        pathspec = [".", *(f":(exclude){path}" for path in exclude)]
        return git("rev-parse", "HEAD").strip(), bool(
            git("status", "--porcelain", "--untracked-files=no", "--", *pathspec).strip()
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def source_state(package_dir: str | Path | None = None, workflow_dir: str | Path = ".") -> dict:
    """Which code ran. `git_commit`/`git_dirty`: the checkout holding the emogrid package that was
    imported, dirty when the package's own files differ from that commit (git runs in the package's
    folder: the working directory may be another checkout, and inside an image, whose copy of the
    package has no .git, the build may record the commit in EMOGRID_GIT_COMMIT). `workflow_git_*`: the
    checkout Snakemake ran in (Snakefile, rules, scripts), dirty outside config/, profiles/ and the docs,
    tests and benchmarks (NOT_CODE).
    With an editable install both are the same checkout."""
    package_dir = Path(package_dir or Path(__file__).resolve().parent)
    commit, dirty = git_state(package_dir)
    state: dict = {"package_dir": str(package_dir), "git_commit": commit, "git_dirty": dirty}
    # An image built without the commit says "unknown" (the def file's default) or nothing (Docker's).
    if commit == "unknown" and os.environ.get(GIT_COMMIT_ENV, "unknown") not in ("", "unknown"):
        state |= {"git_commit": os.environ[GIT_COMMIT_ENV], "git_commit_from": GIT_COMMIT_ENV}
    state["workflow_git_commit"], state["workflow_git_dirty"] = git_state(workflow_dir, NOT_CODE)
    return state


def code_mismatch_message(state: dict, in_image: bool) -> str | None:
    """A warning when the emogrid a job imported may not be the workflow checkout's (`source_state`):
    its commit is known and differs, or it is an image's copy that records no commit. Under
    `--sdm apptainer` jobs import the image's copy, whatever the checkout holds; None when they agree,
    or when neither side's commit is known outside an image (nothing to compare)."""
    package, workflow = state.get("git_commit", "unknown"), state.get("workflow_git_commit", "unknown")
    if package != "unknown" and workflow != "unknown" and package != workflow:
        return (
            f"emogrid: this job imported emogrid from commit {package[:12]} ({state.get('package_dir')}), "
            f"but the workflow runs from commit {workflow[:12]}: the job ran other code than the checkout's "
            "(an image built from another commit? rebuild it with "
            "--build-arg GIT_COMMIT=$(git rev-parse HEAD))"
        )
    if package == "unknown" and in_image:
        return (
            "emogrid: this job imported the image's copy of emogrid, which records no commit (built without "
            "--build-arg GIT_COMMIT=...): whether it matches the workflow checkout "
            f"({workflow[:12]}) cannot be told"
        )
    return None


def describe_image(name: str) -> dict:
    """What an image records about itself when it is built."""
    return {
        "image": name,
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }


def image_info() -> dict | None:
    """The running image's record, or None outside an image (EMOGRID_IMAGE_INFO unset)."""
    path = os.environ.get(IMAGE_INFO_ENV)
    if not path:
        return None
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise EmogridError(f"{IMAGE_INFO_ENV}={path}: cannot read the image's record: {err}") from err
    if not isinstance(info, dict) or not {"image", "versions"} <= info.keys():
        raise EmogridError(f"{IMAGE_INFO_ENV}={path}: expected a JSON object with 'image' and 'versions'")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Record or show the packages an image carries.")
    parser.add_argument("--image", help="the image's name; default: the running image's record")
    parser.add_argument("--output", help="write the record here instead of printing it")
    args = parser.parse_args(argv)
    if args.image:
        info = describe_image(args.image)
    else:
        info = image_info() or {"image": None, "versions": package_versions()}
    text = json.dumps(info, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
