"""Label maps from the config: coverage, masks, multi-hot vectors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import data_fixtures
from emogrid.errors import ConfigError
from emogrid.labels import coverage_mask, covered_labels, multi_hot, source_labels, target_label

config, cfg = data_fixtures.config, data_fixtures.cfg


def test_identity_map_covers_every_label(config):
    labels = config["labels"]
    assert covered_labels(config["datasets"]["goemotions"], labels) == labels
    assert coverage_mask(config["datasets"]["goemotions"], labels).tolist() == [1] * len(labels)


def test_covered_labels_are_non_null_targets_plus_empty_label_in_label_order(config):
    labels, semeval = config["labels"], config["datasets"]["semeval2018_ec"]
    covered = covered_labels(semeval, labels)
    targets = {t for t in semeval["label_map"].values() if t is not None} | {semeval["empty_label"]}
    assert set(covered) == targets
    assert covered == sorted(covered, key=labels.index)
    assert None not in covered


@pytest.mark.parametrize("name", ["isear", "meld"])
def test_single_label_datasets_cover_their_map_targets(config, name):
    ds = config["datasets"][name]
    assert set(covered_labels(ds, config["labels"])) == set(ds["label_map"].values())


def test_coverage_mask_marks_covered_labels(config):
    labels, meld = config["labels"], config["datasets"]["meld"]
    mask = coverage_mask(meld, labels)
    assert mask.dtype == np.int8
    assert [labels[i] for i in np.flatnonzero(mask)] == covered_labels(meld, labels)
    assert 0 < mask.sum() < len(labels)


def test_target_label_maps_unmapped_to_none_and_rejects_unknown(config):
    labels, semeval = config["labels"], config["datasets"]["semeval2018_ec"]
    unmapped = next(k for k, v in semeval["label_map"].items() if v is None)
    assert target_label(semeval, unmapped, labels) is None
    with pytest.raises(KeyError):
        target_label(semeval, "not-a-label", labels)
    with pytest.raises(KeyError):
        target_label(config["datasets"]["goemotions"], "not-a-label", labels)


def test_source_labels(config):
    labels = config["labels"]
    assert source_labels(config["datasets"]["goemotions"], labels) == labels
    assert source_labels(config["datasets"]["isear"], labels) == list(
        config["datasets"]["isear"]["label_map"]
    )


def test_target_outside_configured_labels_is_a_config_error(cfg):
    ds = cfg["datasets"]["meld"]
    ds["label_map"]["anger"] = "rage"
    with pytest.raises(ConfigError, match="rage"):
        covered_labels(ds, cfg["labels"])


def test_multi_hot_sets_named_positions_and_rejects_unknown_names(config):
    labels = config["labels"]
    vector = multi_hot([labels[0], labels[-1], labels[0]], labels)
    assert vector.dtype == np.int8 and vector.shape == (len(labels),)
    assert np.flatnonzero(vector).tolist() == [0, len(labels) - 1]
    with pytest.raises(ValueError, match="nope"):
        multi_hot(["nope"], labels)


@given(st.lists(st.integers(min_value=0, max_value=27)))
def test_multi_hot_has_one_per_distinct_name(indices):
    labels = [f"label{i}" for i in range(28)]
    vector = multi_hot([labels[i] for i in indices], labels)
    assert int(vector.sum()) == len(set(indices))
    assert set(np.flatnonzero(vector)) == set(indices)
