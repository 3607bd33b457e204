"""Helpers for the data tests: the config, a synthetic corpus, and tiny native files written inline."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from emogrid.readers.isear import ISEAR_HEADER
from emogrid.readers.meld import MELD_HEADER

REPO_ROOT = Path(__file__).resolve().parents[1]


def base_config() -> dict:
    """config/config.yaml as a fresh dict (tests may change it)."""
    return yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text(encoding="utf-8"))


def real_data_dir() -> Path:
    return Path(os.environ.get("EMOGRID_REAL_DATA") or REPO_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def config() -> dict:
    return base_config()


@pytest.fixture
def cfg(config) -> dict:
    return copy.deepcopy(config)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory, config) -> Path:
    """A synthetic corpus at scale 0.5, written once per session."""
    from emogrid.synthetic import write_corpus

    root = tmp_path_factory.mktemp("synthetic")
    write_corpus(root, config, seed=0, scale=0.5)
    return root


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_lines(path: Path, lines: list[str], newline: str = "\n", final_newline: bool = True) -> Path:
    text = newline.join(lines) + (newline if final_newline else "")
    return write_bytes(path, text.encode("utf-8"))


def isear_line(respondent: int, code: int, emotion: str, text: str, state: str = "1") -> str:
    """A data line with ISEAR's layout: 40 coded columns, SIT, STATE, then the trailing `|`."""
    coded = [str(respondent)] + ["1"] * 10 + [str(code)] + ["2"] * 24
    return "|".join(coded + [emotion, "3", "3", f"{respondent:06d}{code}", text, state, ""])


ISEAR_HEADER_LINE = "|".join(ISEAR_HEADER)
MELD_HEADER_LINE = ",".join(MELD_HEADER)


def meld_line(sr: int, utterance: str, emotion: str, dialogue: int, utterance_id: int) -> str:
    quoted = '"' + utterance.replace('"', '""') + '"' if any(c in utterance for c in ',"') else utterance
    fields = [str(sr), quoted, "Chandler", emotion, "neutral", str(dialogue), str(utterance_id), "8", "21"]
    return ",".join(fields + ['"00:16:16,059"', '"00:16:21,731"'])
