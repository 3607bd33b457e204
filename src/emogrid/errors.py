"""Errors that name what went wrong and where, so a user can fix the input."""

from __future__ import annotations

from pathlib import Path


class EmogridError(Exception):
    """Base class for every error emogrid raises on purpose."""


class DatasetFormatError(EmogridError):
    """A dataset file does not have the format its reader expects."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ChecksumError(EmogridError):
    """A file's md5 differs from the one in the config."""

    def __init__(self, path: str | Path, expected: str, actual: str):
        self.path, self.expected, self.actual = str(path), expected, actual
        super().__init__(f"{path}: md5 mismatch: expected {expected}, got {actual}")


class ConfigError(EmogridError):
    """A config value is invalid; `key` is its dotted path."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"config key '{key}': {problem}")


class ConfigFileError(EmogridError):
    """A config file cannot be read as a config: `path:line:column: problem`."""

    def __init__(self, path: str, problem: str, line: int | None = None, column: int | None = None):
        self.path, self.problem, self.line, self.column = path, problem, line, column
        where = ":".join(str(part) for part in (path, line, column) if part is not None)
        super().__init__(f"{where}: {problem}")


class HubError(EmogridError):
    """The model named in the config could not be fetched from the Hugging Face hub."""

    def __init__(self, repo_id: str, revision: str | None, out_dir: str | Path, problem: str):
        self.repo_id, self.revision, self.problem = repo_id, revision, problem
        super().__init__(
            f"config key 'model.name' = {repo_id!r} (revision {revision or 'main'}): {problem}. Without"
            f" internet here (or with HF_HUB_OFFLINE=1), fetch it where there is: `snakemake {out_dir}"
            " --cores 1 --configfile ...` (the target before --configfile), then copy that folder to the"
            " same place here; or set model.name to a local model folder."
        )


class NonFiniteTrainingError(EmogridError):
    """Training produced a NaN or infinite loss or gradient norm; the cell stops, and no checkpoint is
    written after the fault.

    The check runs where the Trainer reads the gradient norm: before the optimizer step, except under
    DeepSpeed, whose engine steps inside the backward pass (`stepped=True` says so).
    """

    def __init__(
        self,
        cell: str,
        step: int,
        what: str,
        value: float,
        last_finite: tuple[float, int] | None,
        stepped: bool = False,
    ):
        self.cell, self.step, self.what, self.value, self.last_finite = cell, step, what, value, last_finite
        last = (
            f"last finite loss {last_finite[0]:.6g} at step {last_finite[1]}"
            if last_finite
            else "no finite step before it"
        )
        when = (
            "stopped after DeepSpeed's optimizer step (it steps inside the backward pass)"
            if stepped
            else "stopped before the optimizer step"
        )
        super().__init__(
            f"cell {cell}: {what} is {value} at step {step} ({last}); {when}, "
            "no checkpoint written after the fault"
        )
