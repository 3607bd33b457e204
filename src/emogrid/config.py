"""Config checks the JSON Schema cannot express, and the grid derived from the config."""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping, Sequence
from itertools import product

from emogrid.errors import ConfigError, ConfigFileError
from emogrid.hub import check_model_folder
from emogrid.io import read_json
from emogrid.settings import (
    LOSS_KEYS,
    NAMED_WHEN_NOT_DEFAULT,
    SCHEDULER_ONLY,
    SYNTHETIC_MARKER,
    loss_settings,
)
from emogrid.splits import FRACTION_TOLERANCE, achieved_fractions

SPLITS = ("train", "validation", "test")


# The Snakefile's `configfile:`, relative to the working directory: Snakemake merges it first (and
# lists it after the --configfile files in workflow.configfiles).
BASE_CONFIG = "config/config.yaml"

_YAML_FLOAT_AS_STRING = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


# Said of a value that Snakemake's --config passed on as text: it reads only top-level values as
# numbers, booleans or null (`--config training='{learning_rate: 0}'` gives the string '0').
_AS_TEXT = (
    " (Snakemake passes --config values below the top level on as text, null included: give them in a "
    "YAML overlay file)"
)
# Where a value Snakemake's config_settings.config holds came from (a profile's `config:` lands there too).
_COMMAND_LINE = " [given with --config or a profile's config:]"


def config_problem(
    error: Exception,
    configfiles: Sequence[str] = (),
    overrides: Mapping | None = None,
    base: str = BASE_CONFIG,
) -> ConfigError:
    """One readable line for a config that failed `snakemake.utils.validate` or `check_config`: the
    dotted key, the reason, a hint where one helps, and where the value may come from: the config files
    (in merge order, `base` first), or the command line when `overrides` (Snakemake's --config values)
    gives the key. (Snakemake's own message for a schema failure prints the whole schema and the whole
    config: 1,700 lines for a misspelled key.)"""
    if isinstance(error, ConfigError):
        if _given_in(overrides, error.key):
            return ConfigError(
                error.key, error.problem + ("" if "--config" in error.problem else _COMMAND_LINE)
            )
        return ConfigError(error.key, error.problem + _files_note(configfiles, overrides, base))
    # Snakemake raises its WorkflowError while handling jsonschema's ValidationError (and flattens its
    # arguments into one string): the validation error is the context.
    candidates = [error.__cause__, error.__context__]
    found = next((c for c in candidates if hasattr(c, "absolute_path") and hasattr(c, "message")), None)
    if found is None:
        return ConfigError("(config)", str(error) + _files_note(configfiles, overrides, base))
    parts = list(found.absolute_path)
    problem = found.message
    if found.validator == "additionalProperties" and isinstance(found.instance, dict):
        allowed = list(found.schema.get("properties", {}))
        unexpected = [key for key in found.instance if key not in allowed]
        if unexpected:
            parts.append(unexpected[0])
            problem = "not a known key"
            close = difflib.get_close_matches(str(unexpected[0]), allowed, n=1)
            nested = _nested_key(found.schema, str(unexpected[0]))
            if close:
                problem += f"; did you mean {close[0]!r}?"
            elif nested:
                problem += f"; it is a key of {nested}"
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".")
    key = key or "(top level)"
    text_value = found.validator == "type" and isinstance(found.instance, str)
    if _given_in(overrides, parts):
        return ConfigError(key, problem + (_AS_TEXT if text_value and len(parts) > 1 else "") + _COMMAND_LINE)
    if text_value and _YAML_FLOAT_AS_STRING.fullmatch(found.instance):
        # YAML 1.1 (PyYAML) reads a float only with a dot in the mantissa and a sign in the exponent.
        mantissa, exponent = re.split("[eE]", found.instance)
        written = (
            (mantissa if "." in mantissa else f"{mantissa}.0")
            + "e"
            + (exponent if exponent[0] in "+-" else f"+{exponent}")
        )
        problem += f" (YAML reads {found.instance} as a string: write {written})"
    return ConfigError(key, problem + _files_note(configfiles, overrides, base))


def _nested_key(schema: Mapping, name: str, prefix: str = "") -> str | None:
    """The first mapping below `schema` whose properties name `name`, dotted ("training"): for a
    setting given at the wrong level (`learning_rate` at the top)."""
    below = dict(schema.get("properties") or {})
    if isinstance(schema.get("additionalProperties"), Mapping):
        below["<name>"] = schema["additionalProperties"]  # losses.<name>, mixes.<name>, ...
    for key, sub in below.items():
        if not isinstance(sub, Mapping):
            continue
        dotted = f"{prefix}.{key}" if prefix else key
        if name in (sub.get("properties") or {}):
            return dotted
        found = _nested_key(sub, name, dotted)
        if found:
            return found
    return None


def _given_in(overrides: Mapping | None, key: str | Sequence[str | int]) -> bool:
    """Whether Snakemake's --config values (`overrides`) give `key`: a path of keys and list indices,
    or dotted ("training.lr", "seeds[0]"; a dotted key's parts may themselves hold dots, as file names
    do: "datasets.isear.files.isear.csv.md5")."""
    if not overrides:
        return False
    if not isinstance(key, str):
        node = overrides
        for part in key:
            if isinstance(part, int) and isinstance(node, list) and part < len(node):
                node = node[part]
            elif isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                return False
        return True
    return _dotted_in(overrides, re.findall(r"[^.\[\]]+|\[\d+\]", key))


def _dotted_in(node, tokens: list[str]) -> bool:
    if not tokens:
        return True
    first = tokens[0]
    if first.startswith("["):
        index = int(first[1:-1])
        return isinstance(node, list) and index < len(node) and _dotted_in(node[index], tokens[1:])
    if not isinstance(node, Mapping):
        return False
    # A key may hold dots: try "isear", then "isear.csv", ... as one key.
    for end in range(1, len(tokens) + 1):
        if any(token.startswith("[") for token in tokens[1:end]):
            break
        name = ".".join(tokens[:end])
        if name in node and _dotted_in(node[name], tokens[end:]):
            return True
    return False


def _files_note(configfiles: Sequence[str], overrides: Mapping | None = None, base: str = BASE_CONFIG) -> str:
    if not configfiles and not overrides:
        return ""
    # In merge order; the Snakefile's own configfile: and the same file given on the command line: once.
    files = _ordered_files(configfiles, base)
    command_line = f"; --config {', '.join(map(str, overrides))}" if overrides else ""
    return f" [config files: {', '.join(files.values())}{command_line}]"


def _check_fusable(folder: str) -> None:
    """model.attention: fused needs DeBERTa-v2/v3 (model_type deberta-v2): said before any job starts,
    not by every training job (and its retries). A hub model is checked when the cell loads it."""
    path = os.path.join(folder, "config.json")
    try:
        model_type = read_json(path).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise ConfigError(
            "model.attention", f"fused: cannot read the model type from {path} ({error})"
        ) from error
    if model_type != "deberta-v2":
        raise ConfigError(
            "model.attention",
            f"fused works on DeBERTa-v2/v3 (model_type deberta-v2); {path} says {model_type!r}: "
            "use model.attention: transformers",
        )


def _check_finite(value, key: str = "") -> None:
    """NaN and infinity pass JSON Schema's bounds (`exclusiveMinimum: 0` lets .inf and .nan through);
    no setting means either, so any non-finite number names its key."""
    if isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{key}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key or "(top level)", f"must be a finite number, got {value}")


def check_workflow_config(
    config: dict,
    configfiles: Sequence[str],
    schema_file: str,
    base: str = BASE_CONFIG,
    overrides: Mapping | None = None,
    workflow_base: str | None = None,
) -> None:
    """Every check the workflow makes on its merged config before any job, in order, with the schema's
    defaults filled in and `resolve_config` applied (in place). Any failure is one `ConfigError` naming
    the key and where it came from: the config files, or `overrides` (the --config values, merged
    last). The workflow (rules/common.smk) and `python -m emogrid.config` both run this; `base` is the
    file merged first (the Snakefile's `configfile:`), and `configfiles` lists it last, as Snakemake's
    workflow.configfiles does; `workflow_base` is the workflow's own config/config.yaml, which under
    `snakemake -d elsewhere` may be given as a --configfile though `base` is not there."""
    # Imported here: what the workflow imports from emogrid when it parses stays standard-library only.
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        check_base_first(configfiles, base, workflow_base)
        check_config_files(configfiles)
        files = {name: load_config_file(path) for path, name in _ordered_files(configfiles, base).items()}
        if overrides:
            files["--config"] = dict(overrides)
        check_whole_mappings(config, files)
        check_loss_keys(config, files)
        validate(config, schema=schema_file)
        check_whole_numbers(config, schema_file)
        resolve_config(config)
        check_config(config)
    except (WorkflowError, ConfigError) as error:
        problem = config_problem(error, configfiles, overrides, base)
        missing_base = not any(_same_file(name, base) for name in configfiles)
        if missing_base and problem.key == "(top level)" and "required property" in problem.problem:
            problem = ConfigError(
                problem.key,
                f"{problem.problem}; note: {base} is not in the working directory ({os.getcwd()}), so "
                "nothing was merged under the given files: run from the workflow's folder, or give its "
                "config/config.yaml as the first --configfile",
            )
        raise problem from None


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def check_base_first(
    configfiles: Sequence[str], base: str = BASE_CONFIG, workflow_base: str | None = None
) -> None:
    """`--configfile my.yaml config/config.yaml` merges config/config.yaml (the Snakefile's configfile:)
    first, then my.yaml, then config/config.yaml again: its values win over everything my.yaml sets,
    and the run silently ignores it. `configfiles` in workflow.configfiles' order: the --configfile
    files as given, then the Snakefile's. `workflow_base` (the workflow's own config/config.yaml) counts
    as config/config.yaml too: under `snakemake -d elsewhere` it is merged only where it is given, but
    given after an overlay it still overrides it."""
    given = list(configfiles)
    if given and _same_file(given[-1], base):
        given.pop()  # the Snakefile's configfile:, merged first
    bases = [base, *([workflow_base] if workflow_base else [])]
    first_other = None
    for name in given:
        if not any(_same_file(name, known) for known in bases):
            first_other = first_other or name
        elif first_other is not None:
            raise ConfigError(
                "(config files)",
                f"{name} is given after {first_other}: the workflow merges {BASE_CONFIG} first, and a "
                f"config file given after another is merged over it, so {first_other}'s settings would be "
                f"lost. Leave {BASE_CONFIG} out of --configfile, or give it first",
            )


def load_config_file(path: str) -> dict:
    """One config file, read as Snakemake reads it (JSON, else YAML), but a syntax error names the file,
    line and column: Snakemake 9's message for it is "Config file is not valid JSON or YAML" with no
    file named, and an empty or non-mapping file gets no name either."""
    import json

    import yaml  # Here, not at the top: see check_config_files.

    with open(path, encoding="utf-8") as file:
        text = file.read()
    try:
        loaded = json.loads(text)
    except ValueError:
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
            if context and start is not None and (mark is None or start.line != mark.line):
                context += f" (from line {start.line + 1})"
            parts = (context, getattr(error, "problem", None))
            what = ": ".join(str(part) for part in parts if part) or str(error)
            raise ConfigFileError(
                path,
                f"not valid YAML: {what}",
                None if mark is None else mark.line + 1,
                None if mark is None else mark.column + 1,
            ) from None
    if not isinstance(loaded, dict):
        raise ConfigFileError(path, f"needs keys at its top level, not {type(loaded).__name__}")
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m emogrid.config OVERLAY.yaml ...`: check config files as `snakemake --configfile
    config/config.yaml OVERLAY.yaml ...` would, from the workflow's folder, without building the DAG.
    Run it when Snakemake says only "Config file is not valid JSON or YAML"."""
    import argparse
    import sys

    from snakemake.utils import update_config

    parser = argparse.ArgumentParser(
        prog="python -m emogrid.config", description="Check config files as the workflow would."
    )
    parser.add_argument("configfiles", nargs="*", help="overlays, merged in order over config/config.yaml")
    parser.add_argument("--workflow", default=".", help="the workflow's folder (default: the current one)")
    args = parser.parse_args(argv)
    base = os.path.normpath(os.path.join(args.workflow, "config", "config.yaml"))
    files = [base, *args.configfiles]
    config: dict = {}
    try:
        for path in files:
            update_config(config, load_config_file(path))
        schema = os.path.join(args.workflow, "schemas", "config.schema.yaml")
        # In workflow.configfiles' order: the --configfile files, then the Snakefile's configfile:.
        check_workflow_config(config, [*args.configfiles, base], schema, base)
    except (OSError, ConfigError, ConfigFileError) as error:
        print(f"emogrid.config: {error}", file=sys.stderr)
        return 1
    cells = len(grid_cells(config))
    grid = f"{cells} cell{'s' * (cells != 1)} in the grid"
    print(f"{', '.join(files)}: valid; {grid}, results in {config['results']}")
    return 0


def check_config_files(configfiles: Sequence[str]) -> None:
    """A key given twice in one mapping of a config file: YAML keeps the last one (Snakemake's loader
    too), so two `training:` blocks in one overlay would silently lose the first block's settings."""
    # Imported here, not at the top: what the workflow imports from emogrid when it parses stays
    # standard-library only. PyYAML comes with Snakemake, and every rule's environment has it.
    import yaml

    files: dict[str, str] = {}
    for name in configfiles:
        files.setdefault(os.path.realpath(name), str(name))
    for path, name in files.items():
        with open(path, encoding="utf-8") as file:
            try:
                root = yaml.compose(file, Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                continue  # Snakemake read it, as JSON (which YAML 1.1 need not parse): nothing to add.
        _check_unique_keys(root, "", name)


def _ordered_files(configfiles: Sequence[str], base: str | None) -> dict[str, str]:
    """realpath -> name of each config file once, in the order Snakemake merges them: the workflow's
    config/config.yaml (its `configfile:`, listed after the --configfile ones in workflow.configfiles)
    first, then the others as given."""
    files: dict[str, str] = {}
    for name in configfiles:
        files.setdefault(os.path.realpath(name), str(name))
    first = os.path.realpath(base) if base else None
    if first in files:
        files = {first: files[first]} | {path: name for path, name in files.items() if path != first}
    return files


def _lookup(value, path: Sequence[str]):
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _mapping_paths(value, path: tuple[str, ...] = ()):
    """(path, mapping) of every mapping in one config file, below the top level."""
    if isinstance(value, dict):
        if path:
            yield path, value
        for name, item in value.items():
            yield from _mapping_paths(item, (*path, str(name)))


def check_loss_keys(config: dict, files: Mapping[str, dict]) -> None:
    """A loss key its type does not read (`gamma_neg` on a bce loss) would be ignored, yet rerun the
    loss's cells when changed. Run before the schema fills its defaults in, on the keys the config
    `files` (name -> its contents) give; the error names the files that give the key (an overlay that
    changes a loss's type keeps an earlier file's keys)."""
    for name, loss in (config.get("losses") or {}).items():
        if not isinstance(loss, dict) or loss.get("type") not in LOSS_KEYS:
            continue  # the schema names the problem
        used = LOSS_KEYS[loss["type"]]
        for key in loss:
            if key not in used:
                givers = [
                    file for file, values in files.items() if key in (_lookup(values, ("losses", name)) or {})
                ]
                raise ConfigError(
                    f"losses.{name}.{key}",
                    f"a loss of type {loss['type']} does not use it (its keys: {', '.join(used)})"
                    + (f"; given in {', '.join(givers)}" if givers else ""),
                )


def check_whole_mappings(config: dict, files: Mapping[str, dict]) -> None:
    """Config files merge key by key, in order, so a later file can neither drop part of a mapping an
    earlier file gives nor empty it: the run would silently keep the rest. The last file that gives a
    mix must give all of its datasets (an overlay's `mixes: {all4: {goemotions: 0.7, meld: 0.3}}` over
    the shipped all4 ran all four, at weights summing to 1.25), and the last file that gives a mapping
    may give it empty (`label_groups: {}`) only where no earlier file gives keys; refused otherwise,
    naming the file and what it leaves out. `files`: name -> contents, in merge order (_ordered_files)."""
    last: dict[tuple[str, ...], tuple[str, dict]] = {}
    for name, contents in files.items():
        for keys, mapping in _mapping_paths(contents):
            last[keys] = (name, mapping)
    for keys, (name, given) in last.items():
        merged = _lookup(config, keys)
        if not isinstance(merged, dict):
            continue
        dotted = ".".join(keys)
        if len(keys) == 2 and keys[0] == "mixes":
            left_out = [dataset for dataset in merged if dataset not in given]
            if left_out:
                raise ConfigError(
                    dotted,
                    f"{name} gives it without {', '.join(map(str, left_out))}, which an earlier config "
                    "file gives; config files merge key by key, so the run would keep them: give the "
                    "whole mix in the last file that gives it, or give it a new name and list that in "
                    "grid.mixes",
                )
        elif not given and merged:
            raise ConfigError(
                dotted,
                f"{name} gives it empty ({{}}), but an earlier config file gives "
                f"{', '.join(map(str, merged))} and config files merge key by key, so the run would "
                "keep them: remove them in the file that gives them, or choose what runs with grid, "
                "seeds, imbalance and evaluation.datasets",
            )


# YAML's tags for a plain key that is not text (`2018:`, `yes:`, `null:`), and the merge key `<<:`.
_YAML_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _YAML_TAG + "merge"
_KEY_KINDS = {
    "int": "a number",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "timestamp": "a date",
}


def _check_unique_keys(node, key: str, filename: str) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for name, value in node.value:
            dotted = f"{key}.{name.value}" if key else str(name.value)
            if isinstance(name, yaml.ScalarNode):
                line = name.start_mark.line + 1
                if name.tag not in (_YAML_TAG + "str", _MERGE_TAG):
                    kind = _KEY_KINDS.get(name.tag.removeprefix(_YAML_TAG), name.tag)
                    raise ConfigError(
                        dotted,
                        f"{filename} line {line}: YAML reads the key {name.value} as {kind}, not as a "
                        f'name: quote it ("{name.value}")',
                    )
                if (name.tag, name.value) in lines:
                    raise ConfigError(
                        dotted,
                        f"given twice in {filename} (lines {lines[name.tag, name.value]} and {line}): "
                        "YAML would keep only the last one: merge them",
                    )
                lines[name.tag, name.value] = line
            _check_unique_keys(value, dotted, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_unique_keys(item, f"{key}[{index}]", filename)


def check_whole_numbers(config: dict, schema_file: str) -> None:
    """JSON Schema counts 1.0 as an integer, so `seeds: [1.0]` or `per_device_train_batch_size: 16.0`
    passes `type: integer` and fails later (building the DAG, or inside a training job). Run after
    `snakemake.utils.validate` (which already refuses a boolean there): a float where the schema
    allows integers only names its key."""
    import yaml  # Here, not at the top: see check_config_files.

    with open(schema_file, encoding="utf-8") as file:
        _check_whole_numbers(config, yaml.safe_load(file), "")


def _check_whole_numbers(value, schema: dict, key: str) -> None:
    types = _schema_types(schema)
    if isinstance(value, float) and "integer" in types and "number" not in types:
        raise ConfigError(
            key or "(top level)",
            f"must be a whole number written without a decimal point: write {int(value)}, not {value}",
        )
    if isinstance(value, dict):
        for name, item in value.items():
            sub = schema.get("properties", {}).get(name, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                _check_whole_numbers(item, sub, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _check_whole_numbers(item, schema["items"], f"{key}[{index}]")
    # The value passed validation, so it fits one of these alternatives: it is fine when one of those
    # whose type admits it takes it (a float is fine where another alternative allows numbers).
    branches = [b for b in schema.get("oneOf", []) + schema.get("anyOf", []) if _admits(b, value)]
    problems = []
    for branch in branches:
        try:
            _check_whole_numbers(value, branch, key)
        except ConfigError as problem:
            problems.append(problem)
        else:
            return
    if problems:
        raise problems[0]


def _schema_types(schema: dict) -> set[str]:
    types = schema.get("type", [])
    return {types} if isinstance(types, str) else set(types)


def _admits(schema: dict, value) -> bool:
    """Whether the schema's `type`, if it has one, admits the value as JSON Schema reads types."""
    if isinstance(value, bool):
        kinds = {"boolean"}
    elif isinstance(value, int) or isinstance(value, float) and value.is_integer():
        kinds = {"number", "integer"}
    elif isinstance(value, float):
        kinds = {"number"}
    elif isinstance(value, dict):
        kinds = {"object"}
    elif isinstance(value, list):
        kinds = {"array"}
    else:
        kinds = {"string"} if isinstance(value, str) else {"null"}
    return not _schema_types(schema) or bool(kinds & _schema_types(schema))


def check_config(config: dict) -> None:
    """Cross-field checks; each error names the key path. Run after `snakemake.utils.validate`."""
    _check_finite(config)
    model = config["model"]
    if not model.get("build_tiny") and os.path.isdir(model["name"]):
        check_model_folder(model["name"], model.get("allow_pickle_weights", False))
        if model.get("attention") == "fused":
            _check_fusable(model["name"])
    labels = config["labels"]
    datasets = config["datasets"]
    generated = synthetic_datasets(config)
    for name, ds in datasets.items():
        if name not in generated and ds.get("source_dir"):
            if os.path.isfile(os.path.join(ds["source_dir"], SYNTHETIC_MARKER)):
                raise ConfigError(
                    f"datasets.{name}.source_dir",
                    f"{ds['source_dir']} holds a generated demo corpus ({SYNTHETIC_MARKER}), not the "
                    f"published files, outside this run's {config['results']}/synthetic/: the tables would "
                    f'not say the scores are synthetic. Use "{{results}}/synthetic/{name}" (the run '
                    "generates it) or the published files",
                )
        splits = set(ds["splits"])
        if splits not in ({"all"}, set(SPLITS)):
            raise ConfigError(
                f"datasets.{name}.splits", f"needs train, validation and test (or all), got {sorted(splits)}"
            )
        if "all" in splits and "split" not in ds:
            raise ConfigError(
                f"datasets.{name}.split", "an unsplit dataset (splits: {all: ...}) needs a split: block"
            )
        split_of: dict[str, str] = {}
        for split, filename in ds["splits"].items():
            if filename not in ds["files"]:
                raise ConfigError(
                    f"datasets.{name}.splits.{split}", f"{filename!r} is not listed under files"
                )
            if filename in split_of:
                raise ConfigError(
                    f"datasets.{name}.splits.{split}",
                    f"{filename!r} is also the {split_of[filename]} split: each split needs its own file",
                )
            split_of[filename] = split
        file_of: dict[str, str] = {}
        for filename, spec in ds["files"].items():
            md5 = spec.get("md5")
            if md5 and md5 in file_of:
                raise ConfigError(
                    f"datasets.{name}.files.{filename}.md5",
                    f"same md5 as {file_of[md5]!r}: one file under two names",
                )
            file_of[md5] = filename
        reader = ds.get("reader", name)
        if ds["label_map"] == "identity" and reader != "goemotions":
            # Its labels would be read as the 28, and the dataset would count as annotating all of them.
            raise ConfigError(
                f"datasets.{name}.label_map",
                f"identity means the source's labels are the {len(labels)} labels, which only the"
                f" goemotions reader reads; the {reader} reader needs a map of its own labels",
            )
        targets = (
            [] if ds["label_map"] == "identity" else [t for t in ds["label_map"].values() if t is not None]
        )
        if ds["label_map"] != "identity" and not targets:
            # Else the dataset trains on no label and its evaluation fails, after training.
            raise ConfigError(
                f"datasets.{name}.label_map",
                "maps no source label to a label: give one a target (null = unmapped)",
            )
        for target in targets + ([ds["empty_label"]] if ds.get("empty_label") else []):
            if target not in labels:
                raise ConfigError(f"datasets.{name}.label_map", f"{target!r} is not one of the labels")
        if "split" in ds:
            total = sum(ds["split"]["fractions"].values())
            if abs(total - 1.0) > 1e-6:
                raise ConfigError(f"datasets.{name}.split.fractions", f"must sum to 1, got {total:g}")
            _check_achievable_fractions(name, ds["split"]["fractions"])
        if ds.get("source_dir") is None and not ds.get("base_url"):
            missing_url = [f for f, spec in ds["files"].items() if "url" not in spec]
            if missing_url:
                raise ConfigError(
                    f"datasets.{name}", f"no source_dir and no base_url to download {missing_url} from"
                )
    for mix, weights in config["mixes"].items():
        total = sum(weights.values())
        for name, weight in weights.items():
            if name not in datasets:
                raise ConfigError(f"mixes.{mix}.{name}", f"unknown dataset; configured: {sorted(datasets)}")
            # Finite weights can still overflow their sum or leave a share too small to represent.
            if not weight / total > 0:
                raise ConfigError(
                    f"mixes.{mix}.{name}",
                    f"weight {weight:g} of {total:g} in all gives a sampling share of 0: "
                    "use weights of comparable size",
                )
    for dimension in ("losses", "mixes"):
        for name in (config.get("grid") or {}).get(dimension) or []:
            if name not in config[dimension]:
                raise ConfigError(
                    f"grid.{dimension}", f"unknown name {name!r}; configured: {sorted(config[dimension])}"
                )
    for name in config["evaluation"].get("datasets", []):
        if name not in datasets:
            raise ConfigError(
                "evaluation.datasets", f"unknown dataset {name!r}; configured: {sorted(datasets)}"
            )
    check_label_groups(config)
    for name, pattern in config["evaluation"]["statistics"].get("clusters", {}).items():
        key = f"evaluation.statistics.clusters.{name}"
        if name not in datasets:
            raise ConfigError(key, f"unknown dataset; configured: {sorted(datasets)}")
        if pattern is None:
            continue
        try:
            groups = re.compile(pattern).groups
        except re.error as error:
            raise ConfigError(key, f"{pattern!r} is not a regular expression: {error}") from None
        if groups < 1:
            raise ConfigError(key, f"{pattern!r} has no group: its first group names a row's cluster")
    grid = config["evaluation"]["threshold_grid"]
    if grid["start"] > grid["stop"]:
        raise ConfigError("evaluation.threshold_grid", "start must not exceed stop")
    deepspeed = config["training"].get("deepspeed")
    if deepspeed is not None and not str(deepspeed).endswith(".json"):
        raise ConfigError("training.deepspeed", "must be the path of a DeepSpeed JSON file or null")
    if deepspeed is not None and not os.path.isfile(deepspeed):
        # Said now, not by every training job after its wait in the queue.
        raise ConfigError(
            "training.deepspeed", f"{deepspeed}: no such file (relative paths start at {os.getcwd()})"
        )
    if config["training"].get("max_steps") == 0:
        raise ConfigError(
            "training.max_steps", "0 trains no step: give a positive count, or -1 to use epochs"
        )


def _check_achievable_fractions(name: str, fractions: dict) -> None:
    achieved = achieved_fractions(fractions)
    if all(abs(achieved[split] - fractions[split]) <= FRACTION_TOLERANCE for split in SPLITS):
        return
    shown = ", ".join(f"{split} {achieved[split]:.3f}" for split in SPLITS)
    raise ConfigError(
        f"datasets.{name}.split.fractions",
        f"respondents are split in whole folds (test: 1 of k folds, validation: 1 of m folds of the rest),"
        f" and these fractions would give {shown}: choose test = 1/k and validation = (1 - test)/m,"
        " e.g. 0.8/0.1/0.1 or 0.6/0.2/0.2",
    )


def check_label_groups(config: dict) -> None:
    """Each label_groups level puts every configured label in exactly one group."""
    labels = config["labels"]
    for level, groups in config.get("label_groups", {}).items():
        seen: dict[str, str] = {}
        for group, members in groups.items():
            for member in members:
                key = f"label_groups.{level}.{group}"
                if member not in labels:
                    raise ConfigError(key, f"{member!r} is not one of the labels")
                if member in seen:
                    raise ConfigError(key, f"{member!r} is already in group {seen[member]!r}")
                seen[member] = group
        missing = [label for label in labels if label not in seen]
        if missing:
            raise ConfigError(f"label_groups.{level}", f"labels in no group: {missing}")


def evaluation_datasets(config: dict) -> list[str]:
    return list(config["evaluation"].get("datasets") or config["datasets"])


RESULTS_PLACEHOLDER = "{results}"


def resolve_config(config: dict) -> dict:
    """Fill in what the schema's defaults cannot, in place, after validation: the losses' defaults that
    depend on their type (`loss_settings`), and "{results}" in the datasets' source_dir, replaced by
    the config's `results`. The demo's corpus lives under its own results directory, so a copy of
    config/demo.yaml with another `results` (or `--config results=...`) generates and reads its own
    corpus, not the demo's."""
    for name, loss in config["losses"].items():
        config["losses"][name] = loss_settings(loss)
    for ds in config["datasets"].values():
        if isinstance(ds.get("source_dir"), str):
            ds["source_dir"] = ds["source_dir"].replace(RESULTS_PLACEHOLDER, str(config["results"]))
    return config


def recorded_config(config: dict) -> dict:
    """The config as {results}/config.resolved.yaml records it: all of it but the scheduler-only
    training settings (SCHEDULER_ONLY), which change where and how fast a cell runs, not its settings,
    and like the cells should rewrite nothing when raised; and the NAMED_WHEN_NOT_DEFAULT training
    settings left at their defaults. Each loss keeps the keys its type reads (LOSS_KEYS): the schema
    fills every loss key's default into every loss, and a bce loss recorded with gamma_neg would both
    mislead a reader and be refused when the file is given back as a config."""
    losses = {
        name: {key: value for key, value in loss.items() if key in LOSS_KEYS[loss["type"]]}
        for name, loss in config["losses"].items()
    }
    return {**config, "losses": losses, "training": training_settings(config)}


def training_settings(config: dict) -> dict:
    """`training` as a cell sees it: no scheduler-only key (SCHEDULER_ONLY), and the
    NAMED_WHEN_NOT_DEFAULT keys only when they differ from their defaults."""
    return {
        k: v
        for k, v in config["training"].items()
        if k not in SCHEDULER_ONLY and not (k in NAMED_WHEN_NOT_DEFAULT and v == NAMED_WHEN_NOT_DEFAULT[k])
    }


# What the generator reads of a dataset's config: a change elsewhere (md5s, row counts, split seeds)
# must not rewrite the corpus, and so rerun every job downstream.
GENERATOR_KEYS = ("reader", "splits", "label_map", "empty_label", "non_answers")


def synthetic_datasets(config: dict) -> list[str]:
    """The datasets read from the generated demo corpus (source_dir under {results}/synthetic/), not
    from published files: their scores say nothing about the published datasets. A corpus elsewhere
    (another run's) is refused by check_config, so this list is the whole truth."""
    prefix = f"{config['results']}/synthetic/"
    return [
        name for name, ds in config["datasets"].items() if str(ds.get("source_dir") or "").startswith(prefix)
    ]


def generator_config(config: dict) -> dict:
    """What the synthetic_corpus job reads: the generated datasets' GENERATOR_KEYS and file names."""
    return {
        name: {key: ds[key] for key in GENERATOR_KEYS if key in ds} | {"files": list(ds["files"])}
        for name in synthetic_datasets(config)
        for ds in [config["datasets"][name]]
    }


def grid_names(config: dict, dimension: str) -> list[str]:
    """The losses or mixes in the grid: `grid.<dimension>` when set, else every named one."""
    chosen = (config.get("grid") or {}).get(dimension)
    return list(chosen) if chosen else list(config[dimension])


def grid_cells(config: dict) -> list[dict]:
    """Every (mix, loss, imbalance, seed) cell of the grid."""
    return [
        {"mix": mix, "loss": loss, "imbalance": imbalance, "seed": seed}
        for mix, loss, imbalance, seed in product(
            grid_names(config, "mixes"), grid_names(config, "losses"), config["imbalance"], config["seeds"]
        )
    ]


def cell_dir(results: str, mix: str, loss: str, imbalance: str, seed: int | str) -> str:
    return f"{results}/runs/{mix}/{loss}/{imbalance}/seed{seed}"


def imbalance_config(config: dict, imbalance: str) -> dict:
    """One strategy with its own settings only, so changing another strategy's cap reruns nothing here."""
    return {"strategy": imbalance, **config.get("imbalance_settings", {}).get(imbalance, {})}


def token_file(results: str, dataset: str, split: str) -> str:
    return f"{results}/tokens/{dataset}/{split}.parquet"


def cell_config(
    config: dict, mix: str, loss: str, imbalance: str, seed: int, results: str, model_path: str
) -> dict:
    """The resolved training arguments of one cell: everything `emogrid.train` needs, nothing else."""
    eval_sets = evaluation_datasets(config)
    return {
        "name": f"{mix}/{loss}/{imbalance}/seed{seed}",
        "cell": {"mix": mix, "loss": loss, "imbalance": imbalance, "seed": int(seed)},
        "labels": list(config["labels"]),
        "model": {
            "name": config["model"]["name"],
            "path": model_path,
            "max_length": config["model"]["max_length"],
            "pooling": config["model"]["pooling"],
            "allow_pickle_weights": config["model"].get("allow_pickle_weights", False),
        }
        # Named only when fused: a cell config without it means transformers' attention, so results made
        # before the key existed keep their cell configs and are not retrained.
        | ({"attention": "fused"} if config["model"].get("attention") == "fused" else {}),
        "loss": loss_settings(config["losses"][loss]),
        # Off: the loss treats a label a dataset does not cover as a negative. Evaluation is unaffected.
        "coverage_masking": bool(config["data"]["coverage_masking"]),
        "mix": dict(config["mixes"][mix]),
        "imbalance": imbalance_config(config, imbalance),
        "train_files": [token_file(results, d, "train") for d in config["mixes"][mix]],
        "validation_files": [token_file(results, d, "validation") for d in config["mixes"][mix]],
        "eval_files": [token_file(results, d, s) for d in eval_sets for s in ("validation", "test")],
        "training": training_settings(config),
        # No threshold grid: the cell config is the train job's input, and a grid changed for evaluation
        # must not retrain every cell. The validation F1 logged during training tunes on emogrid's
        # default grid (evaluate.DEFAULT_THRESHOLD_GRID); the reported thresholds come from `evaluate`.
        "output_dir": cell_dir(results, mix, loss, imbalance, seed),
    }


def train_launcher(gpus: int) -> str:
    """The command that starts a training job with `gpus` GPUs (its arguments follow): one process
    per GPU, through torchrun above one, and behind `emogrid.gpulease`, which picks free GPUs for it
    when no scheduler did."""
    if gpus <= 0:
        return "python"
    if gpus == 1:
        return "python -m emogrid.gpulease 1 -- python"
    # On SIGTERM torchrun gives its workers 30 s before SIGKILL; the SLURM profile warns 120 s ahead
    # so a cell can save a large checkpoint: give the workers 110 of them.
    return (
        f"TORCH_ELASTIC_SHUTDOWN_TIMEOUT=110 python -m emogrid.gpulease {gpus} --"
        f" torchrun --standalone --nproc_per_node={gpus}"
    )


def requested_gpus(gpu: int | str | None, gres: str | None) -> int:
    """GPUs a job asked the scheduler for: the `gpu` resource, or a GRES such as "gpu:2" or "gpu:a100:2".

    Sites that only accept GRES request GPUs that way; the launcher must still start one process per GPU.
    """
    from_gres = 0
    if gres:
        match = re.fullmatch(r"gpu(?::([A-Za-z0-9_.]+))?(?::(\d+))?", str(gres).strip())
        if match is None:
            raise ConfigError("resources.gres", f"{gres!r} is not a GPU GRES such as 'gpu:2' or 'gpu:a100:2'")
        model, count = match.groups()
        if count is None and model is not None and model.isdigit():
            count = model
        from_gres = int(count) if count else 1
    return max(int(gpu or 0), from_gres)


if __name__ == "__main__":
    raise SystemExit(main())
