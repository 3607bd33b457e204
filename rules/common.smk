import json
from pathlib import Path

from snakemake import __version__ as SNAKEMAKE_VERSION

from emogrid.config import (
    SYNTHETIC_MARKER,
    cell_config,
    cell_dir,
    check_workflow_config,
    evaluation_datasets,
    generator_config,
    grid_cells,
    recorded_config,
    requested_gpus,
    synthetic_datasets,
    token_file,
    train_launcher,
)

SCHEMA = "../schemas/config.schema.yaml"

check_workflow_config(
    config,
    workflow.configfiles,
    workflow.source_path(SCHEMA),
    overrides=workflow.config_settings.config,
    workflow_base=f"{workflow.basedir}/config/config.yaml",
)

RESULTS = config["results"]
SPLITS = ["train", "validation", "test"]
DATASETS = list(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    mix="|".join(config["mixes"]),
    loss="|".join(config["losses"]),
    imbalance="|".join(config["imbalance"]),
    seed="|".join(str(s) for s in config["seeds"]),
    split="|".join(SPLITS),


def model_dir():
    """The tiny offline model, a local model directory, or the fetched hub model."""
    name = config["model"]["name"]
    if not config["model"]["build_tiny"] and Path(name).is_dir():
        return name
    return f"{RESULTS}/model"


def tokenizer_dir():
    """Where the tokenize jobs find the tokenizer: the tiny model's comes before its weights."""
    return f"{RESULTS}/tokenizer" if config["model"]["build_tiny"] else model_dir()


def get_dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def get_verify_md5(wildcards):
    """md5 checks for every dataset but the generated demo corpus, which has no published sums."""
    generated = synthetic_datasets(config)
    return config["data"]["verify_md5"] and wildcards.dataset not in generated


def get_source_files(wildcards):
    """Local copies of a dataset's files, when the config names a source directory."""
    ds = config["datasets"][wildcards.dataset]
    if ds.get("source_dir") is None:
        return []
    names = list(ds["files"])
    if wildcards.dataset in synthetic_datasets(config):
        # The generator's marker too: a corpus made before the marker existed is made again.
        names.append(SYNTHETIC_MARKER)
    return [f"{ds['source_dir']}/{name}" for name in names]


def synthetic_files():
    """Files the synthetic generator writes: those of datasets whose source is {RESULTS}/synthetic,
    and its marker beside them."""
    return [
        f"{config['datasets'][dataset]['source_dir']}/{name}"
        for dataset in synthetic_datasets(config)
        for name in [*config["datasets"][dataset]["files"], SYNTHETIC_MARKER]
    ]


def get_cell(wildcards):
    return cell_config(
        config,
        wildcards.mix,
        wildcards.loss,
        wildcards.imbalance,
        int(wildcards.seed),
        RESULTS,
        model_dir(),
    )


def get_launcher(wildcards, resources):
    return train_launcher(requested_gpus(resources.get("gpu"), resources.get("gres")))


def get_train_priority(wildcards):
    """Above the bookkeeping jobs (0), and higher the more datasets the cell's mix draws from: an epoch
    draws as many rows as the mix's datasets hold, so the long cells start first and the short ones
    fill the end of the run instead of one long cell training alone at the end."""
    return len(config["mixes"][wildcards.mix])


def get_train_mem_mb(wildcards, attempt):
    """More memory on each retry: an out-of-memory kill is the usual reason for one."""
    return config["training"]["mem_mb"] * attempt


def get_train_runtime(wildcards):
    """The same time limit on every attempt: a retry resumes from the checkpoint SIGTERM made before
    the limit, so it needs no more time, and a growing limit soon passes the partition's MaxTime
    (a job SLURM then holds pending for good, or refuses)."""
    return config["training"]["runtime"]


def get_train_inputs(wildcards):
    cell = get_cell(wildcards)
    return sorted(
        set(cell["train_files"] + cell["validation_files"] + cell["eval_files"])
    )


def cell_paths(filename):
    return [
        f"{cell_dir(RESULTS, c['mix'], c['loss'], c['imbalance'], c['seed'])}/{filename}"
        for c in grid_cells(config)
    ]


def get_final_output():
    return [
        f"{RESULTS}/tables/f1_macro.csv",
        f"{RESULTS}/tables/paired.html",
        f"{RESULTS}/plots/paired_differences.png",
        f"{RESULTS}/tables/data_summary.html",
        f"{RESULTS}/tables/runs.html",
        f"{RESULTS}/gpu_check.html",
        f"{RESULTS}/plots/f1_macro_bars.png",
        f"{RESULTS}/plots/per_class_f1.png",
        f"{RESULTS}/plots/training_curves.png",
        f"{RESULTS}/config.resolved.yaml",
    ]
