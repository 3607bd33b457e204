"""One table over the grid's runs: where and with what each ran, and what went wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from emogrid import io
from emogrid.htmlpage import synthetic_warning, to_html_document


def _last(log_history: Sequence[Mapping[str, Any]], key: str):
    values = [entry[key] for entry in log_history if key in entry]
    return values[-1] if values else None


def runs_table(
    run_infos: Sequence[Mapping[str, Any]], train_logs: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    rows = []
    for info, log in zip(run_infos, train_logs, strict=True):
        history = log["log_history"]
        versions = info["versions"]
        image = info.get("image") or {}
        rows.append(
            {
                "cell": info["config"]["name"],
                "device": ", ".join(info["device"]["names"]),
                "CUDA_VISIBLE_DEVICES": info["device"].get("CUDA_VISIBLE_DEVICES") or "",
                "SLURM job": info["device"].get("scheduler", {}).get("SLURM_JOB_ID", ""),
                "precision": next((k for k, on in info["precision"].items() if on), "fp32"),
                "world_size": info.get("world_size", 1),
                "steps": log.get("global_step"),
                "last logged train loss": _last(history, "loss"),
                "last validation macro-F1 (at 0.5, mean over the mix's datasets)": _last(
                    history, "eval_f1_macro"
                ),
                "start step": log.get("start_step", 0),
                "resumed from": log.get("resumed_from") or "",
                "warnings": "; ".join(log.get("warnings", [])),
                # run_info.json before the image record existed has no "image" key.
                "image": image.get("image", "none (host environment)"),
                "python": versions.get("python"),
                "torch": versions.get("torch"),
                "transformers": versions.get("transformers"),
                "git commit": str(info.get("git_commit", ""))[:12]
                # The package's files, or the workflow's outside provenance.NOT_CODE (config, profiles, docs).
                + (" +uncommitted" if info.get("git_dirty") or info.get("workflow_git_dirty") else ""),
                # sha256 of the training code that ran (run_info.json before 2026-12-01 has none).
                "code": str((info.get("inputs") or {}).get("code", ""))[:12],
            }
        )
    return pd.DataFrame(rows)


def code_warning(table: pd.DataFrame) -> str:
    """A sentence when the cells were trained by different training code or from a checkout with
    uncommitted changes; "" otherwise. Snakemake reruns a cell when its settings change, not when
    emogrid's code does, so a grid can hold cells of two code versions."""
    parts = []
    versions = sorted({code for code in table["code"] if code})
    if len(versions) > 1:
        parts.append(
            f"WARNING: these cells were trained by {len(versions)} different versions of emogrid's training "
            f"code ({', '.join(versions)}): differences between them may be the code's. Retrain the older "
            "cells (snakemake --forcerun train) to compare like with like."
        )
    if table["git commit"].str.endswith("+uncommitted").any():
        parts.append(
            "WARNING: some cells ran from a checkout with uncommitted changes"
            " (the code column tells their code apart)."
        )
    return " ".join(parts)


def write_runs_overview(
    run_info_paths: Sequence[str],
    train_log_paths: Sequence[str],
    out_path: str,
    synthetic: Sequence[str] = (),
) -> None:
    """The runs table as HTML; its note opens with the code warnings, and names the `synthetic`
    datasets (the generated demo corpus) the validation scores were measured on."""
    table = runs_table([io.read_json(p) for p in run_info_paths], [io.read_json(p) for p in train_log_paths])
    note = (
        "Each training cell: device, precision, steps, last logged loss, warnings (for example a "
        "gradient norm that stayed tiny), the container image it ran in, the package versions it ran "
        "with, the git commit of its code and that code's sha256."
    )
    warning = code_warning(table)
    if warning:
        note = f"{warning} {note}"
    # SYNTHETIC DATA opens every note that has it (README), before any warning.
    note = synthetic_warning(synthetic) + note
    io.write_text(out_path, to_html_document("Runs", [("Runs", note, table)]))
