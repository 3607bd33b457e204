"""Config: schema and cross-field checks name the key; cells never train or tune on test files."""

import copy

import numpy as np
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import REPO_ROOT, load_config
from emogrid.checkpoints import DEFAULT_KEEP, NOT_TRAINING_IDENTITY
from emogrid.config import (
    cell_config,
    check_config,
    check_config_files,
    check_whole_numbers,
    config_problem,
    grid_cells,
    main,
    recorded_config,
    synthetic_datasets,
)
from emogrid.errors import ConfigError

SCHEMA = str(REPO_ROOT / "schemas/config.schema.yaml")


@pytest.fixture
def config():
    return load_config()


def schema_error(config) -> str:
    with pytest.raises(WorkflowError) as caught:
        validate(config, SCHEMA)
    return str(caught.value)


def test_shipped_configs_are_valid():
    for overlays in [(), ("config/demo.yaml",)]:
        check_config(load_config(*overlays))


def test_unknown_loss_type_names_the_key(config):
    config["losses"]["focal"] = {"type": "focal"}
    message = schema_error(config)
    assert "focal" in message and "losses" in message


def test_negative_learning_rate_names_the_key(config):
    config["training"]["learning_rate"] = -1e-5
    assert "learning_rate" in schema_error(config)


def test_unknown_top_level_key_is_an_error(config):
    config["trainig"] = {}
    assert "trainig" in schema_error(config)


def test_mix_with_unknown_dataset_names_the_key(config):
    config["mixes"]["broken"] = {"goemotions": 1.0, "emobank": 1.0}
    with pytest.raises(ConfigError, match=r"mixes\.broken\.emobank"):
        check_config(config)


def test_label_map_to_unknown_label_names_the_key(config):
    config["datasets"]["isear"]["label_map"]["shame"] = "shyness"
    with pytest.raises(ConfigError, match=r"datasets\.isear\.label_map"):
        check_config(config)


def test_fused_attention_with_a_local_model_that_is_not_deberta_names_the_key(config, tmp_path, labels):
    """Said before any job starts, not by each training job and its retries."""
    from transformers import BertConfig, BertModel

    from emogrid.tiny_model import build_tiny_weights

    bert = tmp_path / "bert"
    BertModel(
        BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    ).save_pretrained(bert)
    config["model"].update(name=str(bert), build_tiny=False, attention="fused")
    with pytest.raises(ConfigError, match=r"model\.attention.*deberta-v2.*'bert'"):
        check_config(config)
    config["model"]["attention"] = "transformers"
    check_config(config)
    config["model"].update(name=str(build_tiny_weights(labels, tmp_path / "deberta")), attention="fused")
    check_config(config)


def test_one_file_for_two_splits_names_the_key(config):
    # MELD's ids carry their split, so only this check stops a test split that is the training file.
    config["datasets"]["meld"]["splits"]["test"] = "train_sent_emo.csv"
    with pytest.raises(ConfigError, match=r"datasets\.meld\.splits\.test.*also the train split"):
        check_config(config)


def test_one_file_under_two_names_names_the_key(config):
    files = config["datasets"]["meld"]["files"]
    files["copy_of_train.csv"] = dict(files["train_sent_emo.csv"])
    with pytest.raises(ConfigError, match=r"datasets\.meld\.files\.copy_of_train\.csv\.md5"):
        check_config(config)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (
            lambda c: c["datasets"]["isear"]["split"]["fractions"].update(train=0.7),
            r"datasets\.isear\.split\.fractions",
        ),
        (
            lambda c: c["evaluation"]["threshold_grid"].update(start=0.9, stop=0.1),
            r"evaluation\.threshold_grid",
        ),
        (lambda c: c["training"].update(deepspeed="config/zero2.yaml"), r"training\.deepspeed"),
        (
            lambda c: c["training"].update(deepspeed="config/zero3.json"),
            r"training\.deepspeed.*config/zero3\.json: no such file",
        ),
        (lambda c: c["training"].update(max_steps=0), r"training\.max_steps"),
        # NaN and infinity pass the schema's bounds; finite weights can still give a share of 0.
        (lambda c: c["mixes"]["all4"].update(isear=float("inf")), r"mixes\.all4\.isear'?: must be a finite"),
        (lambda c: c["training"].update(learning_rate=float("nan")), r"training\.learning_rate.*nan"),
        (
            lambda c: c["evaluation"]["threshold_grid"].update(step=float("-inf")),
            r"evaluation\.threshold_grid\.step",
        ),
        (
            lambda c: c["mixes"]["all4"].update(goemotions=1.0e300, isear=1.0e-300),
            r"mixes\.all4\.isear.*share of 0",
        ),
        (
            lambda c: c["mixes"]["all4"].update(goemotions=1.0e308, meld=1.0e308),
            r"mixes\.all4\.goemotions.*share of 0",
        ),
        (lambda c: c["datasets"]["meld"]["splits"].update(test="test.csv"), r"datasets\.meld\.splits\.test"),
        # A map to nothing trains the dataset on no label, and its evaluation fails after training.
        (
            lambda c: c["datasets"]["isear"].update(
                label_map=dict.fromkeys(c["datasets"]["isear"]["label_map"])
            ),
            r"datasets\.isear\.label_map.*maps no source label",
        ),
        (
            lambda c: c["datasets"]["meld"].update(label_map={}),
            r"datasets\.meld\.label_map.*maps no source label",
        ),
        # MELD used to pass and count as annotating all 28 labels; SemEval failed with a garbled header
        # error, ISEAR blamed its data.
        (
            lambda c: c["datasets"]["meld"].update(label_map="identity"),
            r"datasets\.meld\.label_map.*meld reader",
        ),
        (
            lambda c: c["datasets"]["semeval2018_ec"].update(label_map="identity"),
            r"semeval2018_ec\.label_map",
        ),
        (
            lambda c: c["evaluation"]["statistics"]["clusters"].update(emobank="(.+)_\\d+"),
            r"evaluation\.statistics\.clusters\.emobank.*unknown dataset",
        ),
        (
            lambda c: c["evaluation"]["statistics"]["clusters"].update(meld="(.+_utt"),
            r"clusters\.meld.*not a regular expression",
        ),
        (
            lambda c: c["evaluation"]["statistics"]["clusters"].update(meld=".+_utt\\d+"),
            r"clusters\.meld.*has no group",
        ),
        # Whole folds of respondents give 1/2 for a test share of 0.4 (round(2.5) == 2): silently, before.
        (
            lambda c: c["datasets"]["isear"]["split"].update(
                fractions={"train": 0.5, "validation": 0.1, "test": 0.4}
            ),
            r"datasets\.isear\.split\.fractions.*train 0\.417, validation 0\.083, test 0\.500",
        ),
        (
            lambda c: c["datasets"]["isear"]["split"].update(
                fractions={"train": 0.6, "validation": 0.1, "test": 0.3}
            ),
            r"datasets\.isear\.split\.fractions.*would give",
        ),
    ],
)
def test_cross_field_checks_name_the_key(config, change, key):
    change(config)
    with pytest.raises(ConfigError, match=key):
        check_config(config)


def test_every_shipped_config_writes_under_its_own_results_directory():
    # Two configs in one directory rerun, delete and overwrite each other's outputs and checkpoints.
    shipped = [
        (),
        ("config/demo.yaml",),
        ("config/minilm_cpu.yaml",),
        ("config/minilm_cpu.yaml", "config/minilm_cpu_grid.yaml"),
        ("config/minilm_cpu.yaml", "bench/configs/minilm_lr1e-4.yaml"),
    ]
    directories = [load_config(*overlays)["results"] for overlays in shipped]
    assert len(set(directories)) == len(shipped), directories
    real, demo = load_config(), load_config("config/demo.yaml")
    assert real["results"] == "results" and demo["results"] == "results/demo"
    # Its synthetic corpus lies in its own directory too (the rule generating it writes only there).
    for ds in demo["datasets"].values():
        assert ds["source_dir"].startswith(f"{demo['results']}/synthetic/")
    assert demo["model"]["build_tiny"] and not real["model"]["build_tiny"]


def test_a_new_loss_gets_the_prior_bias_default_of_its_type():
    # A user's own ASL variant must not get the bias init that makes pure ASL drift to all-positive.
    config = load_config()
    config["losses"] |= {
        "asl_g2": {"type": "asl", "gamma_neg": 2.0},
        "bce2": {"type": "bce"},
        "mix2": {"type": "combined", "ratio": 0.5},
        "asl_on": {"type": "asl", "prior_bias_init": True},
    }
    validate(config, SCHEMA)  # fills the type-independent defaults, as Snakemake does
    bias = {
        name: cell_config(config, "all4", name, "none", 1, "results", "m")["loss"]["prior_bias_init"]
        for name in ("asl_g2", "bce2", "mix2", "asl_on", "asl", "bce", "combined")
    }
    assert bias == {
        "asl_g2": False,
        "bce2": True,
        "mix2": True,
        "asl_on": True,
        "asl": False,
        "bce": True,
        "combined": True,
    }


def test_filling_in_a_loss_default_keeps_the_key_order_snakemake_compares():
    # Snakemake compares a cell's params by repr: reordering a loss's keys would rerun every cell.
    from emogrid.settings import loss_settings

    stated = {"type": "asl", "prior_bias_init": True, "gamma_neg": 2.0}
    assert list(loss_settings(stated)) == ["type", "prior_bias_init", "gamma_neg"]
    assert list(loss_settings({"type": "bce", "gamma_neg": 4.0})) == ["type", "gamma_neg", "prior_bias_init"]
    # The shipped cells: the key sits where the schema's default used to put it, last.
    cell = cell_config(load_config(), "all4", "combined", "none", 1, "results", "m")
    assert list(cell["loss"])[-1] == "prior_bias_init" and list(cell["loss"])[0] == "type"


def test_synthetic_datasets_are_those_read_from_the_generated_corpus():
    demo = load_config("config/demo.yaml")
    assert synthetic_datasets(demo) == list(demo["datasets"])
    assert synthetic_datasets(load_config()) == []
    # Someone's own copy of a dataset is real data, even beside the corpus; a results directory that
    # merely starts with the same letters is not the corpus either.
    demo["datasets"]["isear"]["source_dir"] = "/data/isear"
    demo["datasets"]["meld"]["source_dir"] = f"{demo['results']}/synthetic_not/meld"
    assert synthetic_datasets(demo) == ["goemotions", "semeval2018_ec"]


def test_a_generated_corpus_outside_the_runs_results_is_refused(tmp_path):
    from emogrid.config import SYNTHETIC_MARKER
    from emogrid.synthetic import write_corpus

    demo = load_config("config/demo.yaml")
    written = write_corpus(tmp_path / "synthetic", {"datasets": demo["datasets"], "labels": demo["labels"]})
    assert {path.name for path in written if path.parent.name == "meld"} == {
        *demo["datasets"]["meld"]["files"],
        SYNTHETIC_MARKER,
    }
    # A copied config.resolved.yaml with its own `results`, still reading the old run's corpus: by its
    # path it is not this run's corpus, and the tables would call its scores real.
    demo["results"] = "results/mine"
    for name, ds in demo["datasets"].items():
        ds["source_dir"] = f"results/mine/synthetic/{name}"
    demo["datasets"]["meld"]["source_dir"] = str(tmp_path / "synthetic" / "meld")
    with pytest.raises(ConfigError) as caught:
        check_config(demo)
    assert caught.value.key == "datasets.meld.source_dir"
    assert "holds a generated demo corpus (SYNTHETIC_DATA.txt)" in caught.value.problem
    assert '"{results}/synthetic/meld"' in caught.value.problem
    (tmp_path / "synthetic" / "meld" / SYNTHETIC_MARKER).unlink()
    check_config(demo)  # files without the mark: taken for real data, as before


def test_the_generator_job_reads_only_what_it_uses_of_the_dataset_configs():
    from emogrid.config import generator_config

    demo = load_config("config/demo.yaml")
    before = generator_config(demo)
    assert set(before) == set(demo["datasets"]) and before["meld"]["files"] == list(
        demo["datasets"]["meld"]["files"]
    )
    # Row counts, split seeds and md5s do not change the corpus, so they must not rerun it (and with it
    # every job of the demo).
    demo["datasets"]["meld"]["expected_rows"] = {"train": 1, "validation": 1, "test": 1}
    demo["datasets"]["isear"]["split"]["seed"] = 7
    for entry in demo["datasets"]["goemotions"]["files"].values():
        entry["md5"] = "0" * 32
    assert generator_config(demo) == before
    demo["datasets"]["isear"]["non_answers"] = ["no response"]
    assert generator_config(demo)["isear"]["non_answers"] == ["no response"]
    # A real dataset beside the corpus is not generated.
    demo["datasets"]["meld"]["source_dir"] = "/data/meld"
    assert "meld" not in generator_config(demo)


def test_unknown_evaluation_dataset_is_an_error(config):
    config["evaluation"]["datasets"] = ["goemotions", "nope"]
    with pytest.raises(ConfigError, match="evaluation.datasets"):
        check_config(config)


def test_grid_is_the_product_of_mixes_losses_imbalance_and_seeds(config):
    cells = grid_cells(config)
    dimensions = ("mixes", "losses", "imbalance", "seeds")
    assert len(cells) == np.prod([len(config[d]) for d in dimensions])
    assert len({(c["mix"], c["loss"], c["imbalance"], c["seed"]) for c in cells}) == len(cells)
    assert {c["imbalance"] for c in cells} == {"none", "oversample", "pos_weight"}


def test_cells_train_and_tune_only_on_train_and_validation(config):
    for c in grid_cells(config):
        cell = cell_config(config, c["mix"], c["loss"], c["imbalance"], c["seed"], "results", "results/model")
        assert all(f.endswith("/train.parquet") for f in cell["train_files"])
        assert all(f.endswith("/validation.parquet") for f in cell["validation_files"])
        assert {f.split("/")[-2] for f in cell["train_files"]} == set(config["mixes"][c["mix"]])
        assert cell["model"]["pooling"] in {"cls", "mean"}


def test_cell_config_names_the_attention_only_when_fused(config):
    """Results made before model.attention existed keep their cell configs (no retraining); fused cells
    say so, and the switch reaches the cell."""
    args = ("all4", "bce", "none", 1, "results", "results/model")
    assert "attention" not in cell_config(config, *args)["model"]
    config["model"]["attention"] = "fused"
    assert cell_config(config, *args)["model"]["attention"] == "fused"


def test_cell_config_names_compile_and_padding_multiple_only_when_set(config):
    """Cells made before training.torch_compile and training.pad_to_multiple_of existed keep their
    cell configs and recorded config (no retraining); set, both reach the cell."""
    args = ("all4", "bce", "none", 1, "results", "results/model")
    assert config["training"]["torch_compile"] is None  # the schema default is there ...
    before = cell_config(config, *args)
    assert "torch_compile" not in before["training"] and "pad_to_multiple_of" not in before["training"]
    assert "torch_compile" not in recorded_config(config)["training"]  # ... and named nowhere
    config["training"].update(torch_compile="reduce-overhead", pad_to_multiple_of=16)
    after = cell_config(config, *args)
    assert after["training"] == before["training"] | {
        "torch_compile": "reduce-overhead",
        "pad_to_multiple_of": 16,
    }
    assert recorded_config(config)["training"]["pad_to_multiple_of"] == 16


def test_keep_checkpoints_is_named_in_a_cell_only_when_not_the_default(config):
    """Cells made before training.keep_checkpoints keep their files; the default the schema fills in is
    the one training applies to a cell that does not name it."""
    args = ("all4", "bce", "none", 1, "results", "results/model")
    assert config["training"]["keep_checkpoints"] == DEFAULT_KEEP == "weights"
    assert "keep_checkpoints" not in cell_config(config, *args)["training"]
    config["training"]["keep_checkpoints"] = "all"
    assert cell_config(config, *args)["training"]["keep_checkpoints"] == "all"
    assert "keep_checkpoints" in NOT_TRAINING_IDENTITY


def test_cell_config_depends_only_on_its_own_settings(config):
    """Adding a seed or a loss, or changing another strategy's settings, must not change the resolved
    config of an existing cell."""
    before = cell_config(config, "all4", "bce", "oversample", 1, "results", "results/model")
    grown = copy.deepcopy(config)
    grown["seeds"].append(99)
    grown["losses"]["asl2"] = {"type": "asl", "gamma_neg": 2.0}
    grown["imbalance_settings"]["pos_weight"]["cap"] = 3.0
    assert cell_config(grown, "all4", "bce", "oversample", 1, "results", "results/model") == before
    grown["imbalance_settings"]["oversample"]["cap"] = 3.0
    changed = cell_config(grown, "all4", "bce", "oversample", 1, "results", "results/model")
    assert changed["imbalance"] == {"strategy": "oversample", "cap": 3.0}


def test_scheduler_settings_stay_out_of_the_cell_but_the_gpu_count_does_not(config):
    before = cell_config(config, "all4", "bce", "none", 1, "results", "results/model")
    training = config["training"]
    longer = {"threads": 7, "mem_mb": 3 * training["mem_mb"], "runtime": 9 * training["runtime"]}
    rescheduled = {**config, "training": {**training, **longer}}
    assert cell_config(rescheduled, "all4", "bce", "none", 1, "results", "results/model") == before
    more_gpus = {**config, "training": {**training, "gpus": training["gpus"] + 1}}
    assert cell_config(more_gpus, "all4", "bce", "none", 1, "results", "results/model") != before


def test_cell_paths_carry_the_imbalance_strategy(config):
    cell = cell_config(config, "all4", "asl", "pos_weight", 2, "results", "results/model")
    assert cell["output_dir"] == "results/runs/all4/asl/pos_weight/seed2"
    assert cell["cell"] == {"mix": "all4", "loss": "asl", "imbalance": "pos_weight", "seed": 2}
    assert cell_config(config, "all4", "asl", "none", 2, "results", "m")["imbalance"] == {"strategy": "none"}


def test_unknown_imbalance_strategy_names_the_key(config):
    config["imbalance"] = ["none", "smote"]
    message = schema_error(config)
    assert "imbalance" in message and "smote" in message


def test_shipped_label_groups_partition_the_labels(config):
    for level, groups in config["label_groups"].items():
        members = [m for group in groups.values() for m in group]
        assert sorted(members) == sorted(config["labels"]), level
    assert list(config["label_groups"]["ekman"]) == [
        "anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"
    ]  # fmt: skip
    assert list(config["label_groups"]["sentiment"]) == ["positive", "negative", "ambiguous", "neutral"]


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (lambda g: g["ekman"]["joy"].append("glee"), "label_groups.ekman.joy", "not one of the labels"),
        (lambda g: g["ekman"]["fear"].append("annoyance"), "label_groups.ekman.fear", "already in group"),
        (lambda g: g["sentiment"]["ambiguous"].remove("surprise"), "label_groups.sentiment", "in no group"),
    ],
)
def test_bad_label_groups_name_the_key(config, change, key, problem):
    change(config["label_groups"])
    with pytest.raises(ConfigError, match=problem) as caught:
        check_config(config)
    assert caught.value.key == key


def test_grid_selects_named_losses_and_mixes(config):
    config["grid"] = {"losses": ["asl"], "mixes": ["all4"]}
    cells = grid_cells(config)
    assert {(c["mix"], c["loss"]) for c in cells} == {("all4", "asl")}
    assert len(cells) == len(config["seeds"]) * len(config["imbalance"])


def test_grid_naming_an_unknown_loss_names_the_key(config):
    config["grid"] = {"losses": ["focal"]}
    with pytest.raises(ConfigError, match=r"grid\.losses.*focal"):
        check_config(config)


def test_gpu_count_comes_from_gpu_or_gres():
    from emogrid.config import requested_gpus

    assert requested_gpus(1, None) == 1
    assert requested_gpus(0, "gpu:2") == 2
    assert requested_gpus(0, "gpu:a100:4") == 4
    assert requested_gpus(0, "gpu") == 1
    with pytest.raises(ConfigError, match="gres"):
        requested_gpus(0, "shard:2")


@pytest.mark.parametrize(
    "change, path_parts, allowed",
    [
        (
            lambda c: c["losses"]["bce"].update(type="focal"),
            ["losses", "bce", "type"],
            ["bce", "asl", "combined"],
        ),
        (lambda c: c["model"].update(pooling="max"), ["model", "pooling"], ["cls", "mean"]),
        (lambda c: c["model"].update(attention="flash"), ["model", "attention"], ["transformers", "fused"]),
        (lambda c: c["training"].update(precision="fp8"), ["training", "precision"], ["auto", "bf16"]),
        (
            lambda c: c["training"].update(torch_compile="fast"),
            ["training", "torch_compile"],
            ["default", "reduce-overhead"],
        ),
        (lambda c: c["training"].update(pad_to_multiple_of=0), ["training", "pad_to_multiple_of"], []),
        (
            lambda c: c["evaluation"].update(threshold_split="test"),
            ["evaluation", "threshold_split"],
            ["validation"],
        ),
        (lambda c: c.update(trainning={}), ["trainning"], []),
        (lambda c: c["training"].update(learning_rate="fast"), ["training", "learning_rate"], ["number"]),
        # numpy refused these inside the preprocess or training job, naming neither key nor file.
        (lambda c: c["datasets"]["isear"]["split"].update(seed=-1), ["isear", "split", "seed"], []),
        (lambda c: c.update(seeds=[2**32]), ["seeds"], ["4294967295"]),
        # A misspelt split was only warned about, after preprocessing.
        (lambda c: c["datasets"]["meld"].update(expected_rows={"trian": 9989}), ["expected_rows"], ["trian"]),
        # Braces are wildcards to Snakemake: every output path would need a value for them.
        (lambda c: c.update(results="results/x{dataset}"), ["results"], []),
    ],
)
def test_schema_errors_name_the_key_path_and_the_allowed_values(config, change, path_parts, allowed):
    change(config)
    message = schema_error(config)
    for part in path_parts:
        assert part in message, (part, message)
    for value in allowed:
        assert value in message, (value, message)


def test_pickle_only_model_needs_the_explicit_flag(tmp_path):
    from emogrid.modeling import load_classifier

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ConfigError, match=r"model\.allow_pickle_weights.*pytorch_model\.bin"):
        load_classifier(str(tmp_path), 3, "cls")


def test_a_pickle_only_model_folder_is_refused_when_the_workflow_starts(config, tmp_path):
    # Not first in every GPU job, after preprocessing and tokenizing have run.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    config["model"] |= {"name": str(tmp_path), "build_tiny": False}
    with pytest.raises(ConfigError, match=r"model\.allow_pickle_weights.*pytorch_model\.bin"):
        check_config(config)
    config["model"]["allow_pickle_weights"] = True
    check_config(config)
    config["model"]["allow_pickle_weights"] = False
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_config(config)


@pytest.mark.parametrize(
    ("value", "hint"),
    [("1e-5", "write 1.0e-5"), ("2.5E-3", "write 2.5e-3"), ("3e+2", "write 3.0e+2"), ("1e5", "write 1.0e+5")],
)
def test_a_yaml_float_read_as_a_string_gets_the_spelling_that_works(config, value, hint):
    config["training"]["learning_rate"] = value
    with pytest.raises(WorkflowError) as caught:
        validate(config, SCHEMA)
    problem = config_problem(caught.value, ["config/config.yaml", "over.yaml"])
    assert problem.key == "training.learning_rate"
    assert f"(YAML reads {value} as a string: {hint})" in str(problem)
    assert str(problem).endswith("[config files: config/config.yaml, over.yaml]")
    # The spelling offered is one YAML reads as a number.
    assert isinstance(yaml.safe_load(hint.removeprefix("write ")), float)


def test_a_cross_field_error_keeps_its_key_and_gains_the_files(config):
    config["evaluation"]["datasets"] = ["nope"]
    with pytest.raises(ConfigError) as caught:
        check_config(config)
    problem = config_problem(caught.value, ["a.yaml"])
    assert problem.key == "evaluation.datasets" and str(problem).endswith("[config files: a.yaml]")


def test_a_split_block_without_fractions_and_a_model_without_a_name_get_the_schema_defaults():
    # Both defaults used to be dead: `fractions` had none of its own (so `split: {seed: 7}` crashed
    # the config check with a KeyError) and `model.name` was required.
    config = load_config()
    del config["datasets"]["isear"]["split"]["fractions"]
    del config["model"]["name"]
    validate(config, SCHEMA)
    assert config["datasets"]["isear"]["split"]["fractions"] == {"train": 0.8, "validation": 0.1, "test": 0.1}
    assert config["model"]["name"] == "microsoft/deberta-v3-large"
    check_config(config)


SHIPPED_OVERLAYS = [
    (),
    ("config/demo.yaml",),
    ("config/minilm_cpu.yaml",),
    ("config/minilm_cpu.yaml", "config/minilm_cpu_grid.yaml"),
]


@pytest.mark.parametrize(
    ("change", "key"),
    [
        # 1.0 passes `type: integer` (JSON Schema counts it as one) and broke the DAG's int('1.0').
        (lambda c: c.update(seeds=[1.0, 2]), "seeds[0]"),
        # ... or passed the dry run and failed inside the training job.
        (
            lambda c: c["training"].update(per_device_train_batch_size=16.0),
            "training.per_device_train_batch_size",
        ),
        (
            lambda c: c["training"].update(pad_to_multiple_of=8.0),
            "training.pad_to_multiple_of",
        ),  # [integer, null]
        (lambda c: c["datasets"]["isear"]["split"].update(seed=2018.0), "datasets.isear.split.seed"),
        (
            lambda c: c["datasets"]["meld"].update(expected_rows={"test": 2610.0}),
            "datasets.meld.expected_rows.test",
        ),
        (lambda c: c["evaluation"]["statistics"].update(resamples=1e3), "evaluation.statistics.resamples"),
    ],
)
def test_a_float_where_the_schema_asks_for_an_integer_names_the_key(config, change, key):
    change(config)
    validate(config, SCHEMA)  # JSON Schema lets it through
    with pytest.raises(ConfigError) as caught:
        check_whole_numbers(config, SCHEMA)
    assert caught.value.key == key
    assert "whole number written without a decimal point" in caught.value.problem


def test_floats_stay_allowed_where_the_schema_allows_numbers(config):
    for overlays in SHIPPED_OVERLAYS:
        check_whole_numbers(load_config(*overlays), SCHEMA)
    config["training"].update(num_train_epochs=3.0, learning_rate=1, max_grad_norm=2)
    config["mixes"]["all4"].update(goemotions=2.0)
    check_whole_numbers(config, SCHEMA)


def test_a_float_among_alternatives_is_refused_only_when_no_alternative_takes_numbers(tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "type: object\n"
        "properties:\n"
        "  either: {anyOf: [{type: integer}, {type: number}]}\n"
        "  count: {oneOf: [{type: string}, {type: object, additionalProperties: {type: integer}}]}\n"
        "  items: {type: array, items: {oneOf: [{type: integer}, {type: 'null'}]}}\n"
    )
    check_whole_numbers({"either": 1.0, "count": {"a": 1}, "items": [1, None]}, str(schema))
    with pytest.raises(ConfigError) as caught:
        check_whole_numbers({"count": {"a": 1, "b": 2.0}}, str(schema))
    assert caught.value.key == "count.b"
    with pytest.raises(ConfigError) as caught:
        check_whole_numbers({"items": [1, None, 3.0]}, str(schema))
    assert caught.value.key == "items[2]" and "write 3, not 3.0" in caught.value.problem


def test_duplicate_evaluation_datasets_name_the_key(config):
    # They used to fail only after training, when the evaluation wrote one dataset twice.
    config["evaluation"]["datasets"] = ["goemotions", "goemotions"]
    with pytest.raises(WorkflowError) as caught:
        validate(config, SCHEMA)
    problem = config_problem(caught.value)
    assert problem.key == "evaluation.datasets" and "non-unique" in problem.problem


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        # Snakemake's loader keeps the last block: the first one's learning rate was silently lost.
        ("training:\n  learning_rate: 3.0e-4\nseeds: [1]\ntraining:\n  max_steps: 5\n", "training", (1, 4)),
        ("training:\n  max_steps: 5\n  max_steps: 6\n", "training.max_steps", (2, 3)),
        ("mixes:\n  a: {goemotions: 1.0, goemotions: 2.0}\n", "mixes.a.goemotions", (2, 2)),
        ("x:\n  - {a: 1}\n  - {b: 1,\n     b: 2}\n", "x[1].b", (3, 4)),
    ],
)
def test_a_key_given_twice_in_a_config_file_names_the_file_the_lines_and_the_key(tmp_path, text, key, lines):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    with pytest.raises(ConfigError) as caught:
        check_config_files([str(REPO_ROOT / "config/config.yaml"), str(overlay)])
    assert caught.value.key == key
    assert f"given twice in {overlay} (lines {lines[0]} and {lines[1]})" in caught.value.problem


@pytest.mark.parametrize(
    ("text", "key", "kind"),
    [
        ("mixes:\n  2018: {goemotions: 1.0}\n", "mixes.2018", "a number"),
        ("losses:\n  bce: {type: bce}\n  on: {type: bce}\n", "losses.on", "true or false"),
        ("datasets:\n  goemotions:\n    1.5: x\n", "datasets.goemotions.1.5", "a number"),
    ],
)
def test_a_key_yaml_reads_as_no_name_names_the_file_and_line(tmp_path, text, key, kind):
    """YAML 1.1 reads `2018:` as a number and `on:` as true: a mix so named used to fail building the
    DAG with "expected str instance, int found", naming nothing."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    line = text.count("\n", 0, text.index(key.split(".")[-1] + ":")) + 1
    with pytest.raises(ConfigError) as caught:
        check_config_files([str(REPO_ROOT / "config/config.yaml"), str(overlay)])
    assert caught.value.key == key
    assert caught.value.problem.startswith(f"{overlay} line {line}: YAML reads the key")
    assert f"as {kind}, not as a name: quote it" in caught.value.problem
    overlay.write_text(text.replace(key.split(".")[-1] + ":", f'"{key.split(".")[-1]}":'))
    check_config_files([str(overlay)])


def test_shipped_config_files_have_no_key_twice_and_anchors_json_and_repeated_files_pass(tmp_path):
    shipped = sorted(REPO_ROOT.glob("config/*.yaml")) + sorted(REPO_ROOT.glob("bench/configs/*.yaml"))
    assert len(shipped) >= 5
    # The Snakefile's configfile: and the same file on the command line are one file, not a repeat.
    check_config_files([str(path) for path in shipped] + [str(REPO_ROOT / "config/config.yaml")])
    anchored = tmp_path / "anchored.yaml"
    anchored.write_text("base: &base {a: 1}\nother:\n  <<: *base\n  b: 2\nlist: [{a: 1}, {a: 2}]\n")
    # JSON indented with tabs: Snakemake reads it as JSON, YAML refuses the tabs.
    tabbed = tmp_path / "tabbed.json"
    tabbed.write_text('{\n\t"seeds": [1]\n}\n')
    check_config_files([str(anchored), str(tabbed)])


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        # Snakemake 9.27 says only "Config file is not valid JSON or YAML" for each of these.
        ("training:\n  learning_rate: [1.0e-4\n", ":3:1:", "flow sequence (from line 2)"),
        ("training:\n\tmax_steps: 5\n", ":2:1:", "'\\t' that cannot start any token"),
        ("training:\n  max_steps: 5\n num_train_epochs: 2\n", ":3:2:", "block mapping (from line 1)"),
        ("", ":", "needs keys at its top level"),
        ("- training\n", ":", "needs keys at its top level, not list"),
    ],
)
def test_the_config_checker_names_the_file_and_line_of_a_file_snakemake_cannot_read(
    tmp_path, capsys, text, where, problem
):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    assert main(["--workflow", str(REPO_ROOT), str(overlay)]) == 1
    error = capsys.readouterr().err
    assert f"{overlay}{where}" in error and problem in error, error


@pytest.mark.parametrize(
    ("overlay", "key"),
    [
        ("trainig: {epochs: 3}", "config key 'trainig': not a known key; did you mean 'training'?"),
        ("mixes: {bad: {goemotions: 1.0, emobank: 1.0}}", "config key 'mixes.bad.emobank'"),
        ("seeds: [1.0, 2]", "config key 'seeds[0]': must be a whole number"),
        # Ignored by the bce loss, yet a change would rerun its cells.
        (
            "losses: {bce: {type: bce, gamma_neg: 2.0}}",
            "config key 'losses.bce.gamma_neg': a loss of type bce does",
        ),
        # Another type for a shipped loss keeps the shipped keys it no longer reads.
        (
            "losses: {combined: {type: asl}}",
            "config key 'losses.combined.ratio': a loss of type asl does not",
        ),
        ("training: {max_steps: 5}\nseeds: [1]\ntraining: {max_steps: 6}", "config key 'training'"),
    ],
)
def test_the_config_checker_makes_the_workflows_checks(tmp_path, capsys, monkeypatch, overlay, key):
    monkeypatch.chdir(REPO_ROOT)
    bad = tmp_path / "bad.yaml"
    bad.write_text(overlay + "\n")
    assert main(["config/demo.yaml", str(bad)]) == 1
    error = capsys.readouterr().err
    assert key in error and f"config/demo.yaml, {bad}]" in error, error


@pytest.mark.parametrize(
    ("overlay", "problem"),
    [
        # Merged key by key this ran all four datasets, at weights summing to 1.25.
        (
            "mixes: {all4: {goemotions: 0.7, meld: 0.3}}",
            "config key 'mixes.all4': {file} gives it without semeval2018_ec, isear, which an earlier",
        ),
        # The schema's "{} = labels only" held in config/config.yaml alone: merged, both levels stayed.
        (
            "label_groups: {}",
            "config key 'label_groups': {file} gives it empty ({{}}), but an earlier config file gives "
            "ekman, sentiment",
        ),
    ],
)
def test_an_overlay_cannot_drop_part_of_a_mix_or_empty_a_mapping(
    tmp_path, capsys, monkeypatch, overlay, problem
):
    monkeypatch.chdir(REPO_ROOT)
    partial = tmp_path / "partial.yaml"
    partial.write_text(overlay + "\n")
    assert main(["config/demo.yaml", str(partial)]) == 1
    error = capsys.readouterr().err
    assert problem.format(file=partial) in error, error
    # Giving all of a mix (other weights, a new mix beside it), or one level of label_groups, passes.
    whole = tmp_path / "whole.yaml"
    whole.write_text(
        "mixes:\n  all4: {goemotions: 0.7, meld: 0.3, isear: 0.1, semeval2018_ec: 0.1}\n"
        "  two: {goemotions: 0.7, meld: 0.3}\n"
        "label_groups:\n  sentiment: {neutral: [neutral]}\n"
    )
    assert main(["config/demo.yaml", str(whole)]) == 0, capsys.readouterr().err


def test_whole_mapping_checks_follow_the_merge_order(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    # A later file that gives more of a mix than an earlier one: what the run uses is what it says.
    grown = tmp_path / "grown.yaml"
    grown.write_text("mixes: {goemotions: {goemotions: 0.8, meld: 0.2}}\n")
    assert main([str(grown)]) == 0, capsys.readouterr().err
    # An empty mapping that a later file fills in is not left empty.
    emptied, filled = tmp_path / "emptied.yaml", tmp_path / "filled.yaml"
    emptied.write_text("label_groups: {}\n")
    filled.write_text(
        "label_groups:\n"
        + "".join(f"  {level}: {groups}\n" for level, groups in load_config()["label_groups"].items())
    )
    assert main([str(emptied), str(filled)]) == 0, capsys.readouterr().err
    assert main([str(filled), str(emptied)]) == 1
    assert f"config key 'label_groups': {emptied} gives it empty" in capsys.readouterr().err
    # Keys with dots (file names) are looked up as keys, not split.
    files = tmp_path / "files.yaml"
    files.write_text("datasets: {goemotions: {files: {train.tsv: {}}}}\n")
    assert main([str(files)]) == 1
    assert "config key 'datasets.goemotions.files.train.tsv'" in capsys.readouterr().err


def test_the_config_checker_passes_the_shipped_configs_and_counts_their_cells(capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    for overlays in [(), ("config/demo.yaml",), ("config/minilm_cpu.yaml", "config/minilm_cpu_grid.yaml")]:
        assert main(list(overlays)) == 0
        cells = len(grid_cells(load_config(*overlays)))
        out = capsys.readouterr().out
        assert f"valid; {cells} cells in the grid" in out, out


def test_an_overlay_turns_a_default_cluster_pattern_off_with_null(config):
    # An empty mapping would merge into the defaults and change nothing; null is the way.
    config["evaluation"]["statistics"]["clusters"]["meld"] = None
    validate(config, SCHEMA)
    check_config(config)
    config["evaluation"]["statistics"]["clusters"]["meld"] = ""
    assert "clusters" in schema_error(config)


@pytest.mark.parametrize("overlays", [(), ("config/demo.yaml",), ("config/minilm_cpu.yaml",)])
def test_the_recorded_config_given_back_plans_the_same_cells(tmp_path, capsys, overlays):
    """config.resolved.yaml as the only overlay passes every check and gives every cell the settings it
    had. The schema fills all loss keys into every loss; the record keeps those its type reads."""
    from snakemake.utils import update_config

    from emogrid.config import check_workflow_config
    from emogrid.settings import LOSS_KEYS

    original = load_config(*overlays)
    recorded = recorded_config(original)
    for loss in recorded["losses"].values():
        assert set(loss) == set(LOSS_KEYS[loss["type"]])
    resolved = tmp_path / "config.resolved.yaml"
    resolved.write_text(yaml.safe_dump(recorded, sort_keys=False))
    assert main(["--workflow", str(REPO_ROOT), str(resolved)]) == 0, capsys.readouterr().err
    base = str(REPO_ROOT / "config/config.yaml")
    again = yaml.safe_load(open(base))
    update_config(again, yaml.safe_load(resolved.read_text()))
    check_workflow_config(again, [base, str(resolved)], SCHEMA)
    assert grid_cells(again) == grid_cells(original)
    for cell in grid_cells(original):
        args = (cell["mix"], cell["loss"], cell["imbalance"], cell["seed"], "results", "model")
        assert cell_config(again, *args) == cell_config(original, *args)


def test_config_yaml_given_after_an_overlay_is_refused(tmp_path, capsys, monkeypatch):
    """`--configfile my.yaml config/config.yaml`: Snakemake merges config/config.yaml first (the Snakefile's
    configfile:), then my.yaml, then config/config.yaml again, whose values then win: my.yaml's
    results, grid and seeds were silently lost. Under `snakemake -d elsewhere` the working directory has
    no config/config.yaml, and the workflow's own file given after an overlay is refused the same way."""
    from emogrid.config import check_base_first

    monkeypatch.chdir(REPO_ROOT)
    mine = tmp_path / "my.yaml"
    mine.write_text("seeds: [7]\n")
    assert main([str(mine), "config/config.yaml"]) == 1
    error = capsys.readouterr().err
    assert f"config/config.yaml is given after {mine}" in error and "give it first" in error
    assert main(["config/config.yaml", str(mine)]) == 0
    assert main([str(mine)]) == 0
    # In workflow.configfiles' order: the --configfile files as given, then the Snakefile's.
    check_base_first(["config/config.yaml", str(mine), "config/config.yaml"])
    check_base_first([str(mine), "config/config.yaml"])
    with pytest.raises(ConfigError):
        check_base_first([str(mine), str(REPO_ROOT / "config/config.yaml"), "config/config.yaml"])
    workflows_own = str(REPO_ROOT / "config/config.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="is given after"):
        check_base_first([str(mine), workflows_own], workflow_base=workflows_own)
    check_base_first([workflows_own, str(mine)], workflow_base=workflows_own)


def _checked(config, overrides=None, configfiles=None, base=str(REPO_ROOT / "config/config.yaml")):
    from emogrid.config import check_workflow_config

    files = configfiles or [str(REPO_ROOT / "config/demo.yaml"), base]
    with pytest.raises(ConfigError) as caught:
        check_workflow_config(config, files, SCHEMA, base, overrides)
    return caught.value


def test_values_from_the_command_line_are_named_as_such_and_checked_like_files():
    """Snakemake's --config passes values below the top level on as text ('0', 'null'): the error says
    the value came from --config and why it is text, not which files it might be in."""
    from snakemake.utils import update_config

    def merged(overrides):
        config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
        update_config(config, yaml.safe_load((REPO_ROOT / "config/demo.yaml").read_text()))
        update_config(config, copy.deepcopy(overrides))
        return config

    given = {"training": {"learning_rate": "0"}}
    error = _checked(merged(given), given)
    assert error.key == "training.learning_rate"
    assert "(Snakemake passes --config values below the top level on as text" in error.problem
    assert error.problem.endswith("[given with --config or a profile's config:]")
    assert "config files" not in error.problem
    # At the top level Snakemake reads numbers as numbers: no text hint there.
    given = {"seeds": "abc"}
    error = _checked(merged(given), given)
    assert error.key == "seeds" and "as text" not in error.problem and "given with --config" in error.problem
    # The same bad value from a file names the files (in merge order) and gets no --config hint.
    given = {"training": {"learning_rate": "0"}}
    error = _checked(merged(given), {"seeds": [1]})
    assert "given with --config" not in error.problem
    assert error.problem.endswith(
        "config/config.yaml, /work/main/config/demo.yaml; --config seeds]".replace(
            "/work/main", str(REPO_ROOT)
        )
    )
    # A key holding dots (a file name) is found in the --config values too.
    given = {"datasets": {"isear": {"files": {"isear.csv": {"md5": "abc"}}}}}
    error = _checked(merged(given), given)
    assert error.key == "datasets.isear.files.isear.csv.md5" and "given with --config" in error.problem
    # Merged key by key like a file's, so an empty mapping on the command line is refused too.
    given = {"label_groups": {}}
    error = _checked(merged(given), given)
    assert error.key == "label_groups" and error.problem.startswith("--config gives it empty ({})")
    given = {"mixes": {"all4": {"goemotions": "1"}}}
    error = _checked(merged(given), given)
    assert error.key == "mixes.all4" and "--config gives it without semeval2018_ec" in error.problem
    # A setting at the wrong level says where it belongs.
    given = {"learning_rate": 0.1}
    error = _checked(merged(given), given)
    assert error.problem.startswith("not a known key; it is a key of training")


def test_without_the_workflows_config_yaml_the_error_says_it_was_not_merged(tmp_path, monkeypatch):
    """`snakemake -d elsewhere --configfile overlay.yaml`: the Snakefile's configfile: is relative to the
    working directory, so nothing is merged under the overlay and the error would only say
    "'labels' is a required property"."""
    monkeypatch.chdir(tmp_path)
    demo = str(REPO_ROOT / "config/demo.yaml")
    error = _checked(yaml.safe_load(open(demo)), configfiles=[demo], base="config/config.yaml")
    assert "'labels' is a required property" in error.problem
    assert f"note: config/config.yaml is not in the working directory ({tmp_path})" in error.problem


def test_the_workflow_passes_its_command_line_config_and_own_config_file_to_the_checks(tmp_path):
    """The Snakefile hands Snakemake's --config values to the checks (workflow.config_settings.config)."""
    from conftest import run_snakemake

    result = run_snakemake(tmp_path, "-n", "--config", "training={learning_rate: 0}", check=False)
    assert result.returncode != 0
    assert "config key 'training.learning_rate': '0' is not of type 'number' (Snakemake passes --config" in (
        result.stdout + result.stderr
    )
    # Under --directory (as here) the working directory has no config/config.yaml: the workflow's own,
    # given after the demo overlay, would be merged over it; refused.
    result = run_snakemake(tmp_path, "-n", check=False, overlays=[REPO_ROOT / "config/config.yaml"])
    assert result.returncode != 0 and "config/config.yaml is given after" in result.stdout + result.stderr
