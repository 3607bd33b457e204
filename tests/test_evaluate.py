"""emogrid.evaluate: thresholds and metrics against scikit-learn, and the validation-only tuning rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from emogrid import io
from emogrid.evaluate import evaluate_file, evaluate_predictions, score, threshold_grid, tune_thresholds

LABELS = ["anger", "joy", "fear", "sadness", "surprise", "neutral"]
GRID_SPEC = {"start": 0.05, "stop": 0.95, "step": 0.05}
GRID = threshold_grid(GRID_SPEC)
CELL = {"mix": "all4", "loss": "bce", "imbalance": "none", "seed": 1}


def expected_thresholds(y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Brute force with binary f1_score per class and threshold; ties -> closest to 0.5, then lowest."""
    chosen = []
    for column in range(y_true.shape[1]):
        if not y_true[:, column].any():
            chosen.append(0.5)
            continue
        f1s = [f1_score(y_true[:, column], probs[:, column] >= t, zero_division=0) for t in grid]
        best = max(f1s)
        ties = [t for t, f1 in zip(grid, f1s, strict=True) if abs(f1 - best) < 1e-12]
        chosen.append(min(ties, key=lambda t: (round(abs(t - 0.5), 9), t)))
    return np.array(chosen)


def noisy_problem(rng: np.random.Generator, n: int, n_labels: int, positive_rate: float = 0.3):
    """Labels plus probabilities that are informative but noisy, so the best threshold varies."""
    y_true = (rng.random((n, n_labels)) < positive_rate).astype(np.int8)
    probs = np.clip(0.35 * y_true + rng.normal(0.3, 0.18, size=(n, n_labels)), 0, 1)
    return y_true, probs


def make_rows(rng, dataset: str, split: str, n: int, mask: np.ndarray) -> pd.DataFrame:
    y_true, probs = noisy_problem(rng, n, len(LABELS))
    y_true = y_true * mask  # uncovered labels are never annotated
    return pd.DataFrame(
        {
            "dataset": dataset,
            "split": split,
            "id": [f"{dataset}-{split}-{i}" for i in range(n)],
            "probs": [row.astype(np.float32) for row in probs],
            "labels": [row.astype(np.int8) for row in y_true],
            "label_mask": [mask.astype(np.int8)] * n,
        }
    )


FULL_MASK = np.ones(len(LABELS), dtype=np.int8)
PARTIAL_MASK = np.array([1, 0, 1, 0, 0, 1], dtype=np.int8)


@pytest.fixture
def predictions() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.concat(
        [
            make_rows(rng, "goemotions", "validation", 300, FULL_MASK),
            make_rows(rng, "goemotions", "test", 250, FULL_MASK),
            make_rows(rng, "meld", "validation", 200, PARTIAL_MASK),
            make_rows(rng, "meld", "test", 220, PARTIAL_MASK),
        ],
        ignore_index=True,
    )


def stacked(rows: pd.DataFrame, column: str) -> np.ndarray:
    return np.stack(rows[column].to_numpy()).astype(float)


# --------------------------------------------------------------------------- grid and tuning


def test_threshold_grid_from_config_spec_includes_both_ends():
    assert GRID.tolist() == [round(0.05 * k, 2) for k in range(1, 20)]


def test_default_grid_is_the_schemas_and_cell_configs_carry_no_grid():
    # Training logs a validation F1 tuned on DEFAULT_THRESHOLD_GRID; it must be the grid a config gets
    # by default. And a grid changed for evaluation must not change what the train job reads.
    import copy

    import yaml

    from conftest import REPO_ROOT, load_config
    from emogrid.config import cell_config, grid_cells
    from emogrid.evaluate import DEFAULT_THRESHOLD_GRID

    schema = yaml.safe_load((REPO_ROOT / "schemas/config.schema.yaml").read_text())
    spec = schema["properties"]["evaluation"]["properties"]["threshold_grid"]["properties"]
    assert DEFAULT_THRESHOLD_GRID == {key: spec[key]["default"] for key in ("start", "stop", "step")}
    config = load_config("config/demo.yaml")
    other = copy.deepcopy(config)
    other["evaluation"]["threshold_grid"] = {"start": 0.1, "stop": 0.9, "step": 0.1}
    for cell in grid_cells(config)[:2]:
        coordinates = (cell["mix"], cell["loss"], cell["imbalance"], cell["seed"], "results/x", "model")
        assert cell_config(config, *coordinates) == cell_config(other, *coordinates)


def test_threshold_grid_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError):
        threshold_grid([0.2, 1.5])


def test_tune_thresholds_matches_brute_force_sklearn():
    rng = np.random.default_rng(0)
    y_true, probs = noisy_problem(rng, 400, 5)
    expected = expected_thresholds(y_true, probs, GRID)
    np.testing.assert_allclose(tune_thresholds(y_true, probs, GRID_SPEC), expected)


def test_tuning_all_classes_at_once_matches_brute_force_around_classes_without_positives():
    """tune_thresholds scores every (class, threshold) pair in one call: a class with no positives
    between tunable ones, and a rare class, must not shift or mix the columns."""
    rng = np.random.default_rng(5)
    y_true, probs = noisy_problem(rng, 300, 6)
    y_true[:, 2] = 0
    y_true[:, 4] = 0
    y_true[:3, 4] = 1  # rare: three positives
    expected = expected_thresholds(y_true, probs, GRID)
    np.testing.assert_allclose(tune_thresholds(y_true, probs, GRID_SPEC), expected)
    assert expected[2] == 0.5


@pytest.mark.parametrize("grid", [[0.3], [0.2, 0.6]])
def test_tuning_a_single_tunable_class_matches_brute_force(grid):
    """One tunable column (and a one-value grid) makes a one-column problem, which scikit-learn would
    read as binary with two classes."""
    rng = np.random.default_rng(8)
    y_true, probs = noisy_problem(rng, 50, 3)
    y_true[:, [0, 2]] = 0
    y_true[:4, 1] = 1
    np.testing.assert_allclose(tune_thresholds(y_true, probs, grid), expected_thresholds(y_true, probs, grid))


def test_tuning_in_chunks_of_classes_gives_the_same_thresholds(monkeypatch):
    import emogrid.evaluate

    rng = np.random.default_rng(9)
    y_true, probs = noisy_problem(rng, 120, 7)
    whole = tune_thresholds(y_true, probs, GRID_SPEC)
    monkeypatch.setattr(emogrid.evaluate, "_MAX_TUNING_CELLS", 120 * len(GRID) * 2)  # two classes a call
    np.testing.assert_array_equal(tune_thresholds(y_true, probs, GRID_SPEC), whole)
    np.testing.assert_allclose(whole, expected_thresholds(y_true, probs, GRID))


def test_score_with_one_covered_label_is_that_labels_binary_f1():
    rng = np.random.default_rng(10)
    y_true, probs = noisy_problem(rng, 80, len(LABELS))
    y_pred = probs >= 0.5
    result = score(y_true, y_pred, [2], LABELS)
    expected = f1_score(y_true[:, 2], y_pred[:, 2], zero_division=0)
    assert result["per_class"] == {LABELS[2]: pytest.approx(expected)}
    assert result["f1_macro"] == pytest.approx(expected)
    assert result["f1_micro"] == pytest.approx(expected)


def test_macro_f1_equals_sklearn_with_classes_never_true_or_never_predicted():
    rng = np.random.default_rng(6)
    y_true, probs = noisy_problem(rng, 100, len(LABELS))
    y_true[:, 1] = 0  # never true
    y_pred = probs >= 0.5
    y_pred[:, 3] = False  # never predicted
    y_true[:, 5] = 0
    y_pred[:, 5] = False  # neither: F1 0 by zero_division
    covered = list(range(len(LABELS)))
    assert score(y_true, y_pred, covered, LABELS)["f1_macro"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12
    )


def test_tune_thresholds_recovers_planted_separation():
    rng = np.random.default_rng(1)
    y_true = (rng.random((500, 1)) < 0.2).astype(np.int8)
    # Negatives below 0.2, positives in [0.3, 0.9): any threshold in (0.2, 0.3] separates them
    # perfectly; 0.25 and 0.3 tie at F1 = 1 and the tie goes to the one closer to 0.5.
    probs = np.where(y_true == 1, rng.uniform(0.3, 0.9, y_true.shape), rng.uniform(0.0, 0.2, y_true.shape))
    assert tune_thresholds(y_true, probs, GRID) == pytest.approx([0.3])


def test_tune_thresholds_finds_low_threshold_for_underconfident_class():
    rng = np.random.default_rng(2)
    y_true = (rng.random((1000, 1)) < 0.3).astype(np.int8)
    probs = np.clip(np.where(y_true == 1, 0.25, 0.05) + rng.normal(0, 0.04, y_true.shape), 0, 1)
    threshold = tune_thresholds(y_true, probs, GRID)[0]
    assert 0.1 <= threshold <= 0.2
    # Tuning must beat the default 0.5, where this class is never predicted.
    assert f1_score(y_true[:, 0], probs[:, 0] >= threshold) > f1_score(y_true[:, 0], probs[:, 0] >= 0.5)


def test_class_without_positives_gets_default_threshold():
    y_true = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    probs = np.array([[0.9, 0.8], [0.1, 0.7], [0.8, 0.2], [0.2, 0.9]])
    assert tune_thresholds(y_true, probs, GRID)[1] == 0.5


def test_ties_prefer_closest_to_half_then_lowest():
    y_true = np.array([[1], [0], [1], [0]])
    probs = np.array([[0.9], [0.1], [0.8], [0.2]])
    # F1 = 1 for every threshold in (0.2, 0.8]; 0.5 is in the grid, so it wins.
    assert tune_thresholds(y_true, probs, GRID)[0] == 0.5
    # Without 0.5, 0.4 and 0.6 are equally close and both perfect: the lower one wins.
    assert tune_thresholds(y_true, probs, [0.1, 0.4, 0.6, 0.9])[0] == 0.4


# --------------------------------------------------------------------------- score


def test_score_matches_sklearn_on_covered_columns():
    rng = np.random.default_rng(3)
    y_true, probs = noisy_problem(rng, 200, len(LABELS))
    y_pred = probs >= 0.5
    covered = [0, 2, 5]
    result = score(y_true, y_pred, covered, LABELS)
    assert result["f1_macro"] == pytest.approx(
        f1_score(y_true[:, covered], y_pred[:, covered], average="macro", zero_division=0)
    )
    assert result["f1_micro"] == pytest.approx(
        f1_score(y_true[:, covered], y_pred[:, covered], average="micro", zero_division=0)
    )
    assert list(result["per_class"]) == ["anger", "fear", "neutral"]
    for index in covered:
        assert result["per_class"][LABELS[index]] == pytest.approx(
            f1_score(y_true[:, index], y_pred[:, index], zero_division=0)
        )


def test_uncovered_columns_do_not_affect_scores():
    rng = np.random.default_rng(4)
    y_true, probs = noisy_problem(rng, 200, len(LABELS))
    y_pred = probs >= 0.5
    covered = [0, 2, 5]
    scrambled_true, scrambled_pred = y_true.copy(), y_pred.copy()
    scrambled_true[:, [1, 3, 4]] = 0
    scrambled_pred[:, [1, 3, 4]] = True  # would be all false positives if these labels counted
    assert score(scrambled_true, scrambled_pred, covered, LABELS) == score(y_true, y_pred, covered, LABELS)


# --------------------------------------------------------------------------- evaluate_predictions


def test_report_structure_follows_architecture(predictions):
    report = evaluate_predictions(predictions, LABELS, GRID_SPEC, CELL)
    assert report["cell"] == CELL
    assert report["threshold_source"] == "validation"
    assert list(report["datasets"]) == ["goemotions", "meld"]
    meld = report["datasets"]["meld"]
    assert meld["covered_labels"] == ["anger", "fear", "neutral"]
    assert list(meld["thresholds"]) == ["anger", "fear", "neutral"]
    scalar_metrics = {
        "n",
        "positives",
        "prediction_spread",
        "f1_macro@0.5",
        "f1_macro@tuned",
        "f1_micro@0.5",
        "f1_micro@tuned",
    }
    assert set(meld["validation"]) == scalar_metrics
    assert set(meld["test"]) == set(meld["validation"]) | {"per_class@0.5", "per_class@tuned"}
    assert list(meld["validation"]["positives"]) == ["anger", "fear", "neutral"]
    assert meld["validation"]["n"] == 200 and meld["test"]["n"] == 220
    assert list(meld["test"]["per_class@tuned"]) == ["anger", "fear", "neutral"]


def test_report_thresholds_and_metrics_match_sklearn(predictions):
    report = evaluate_predictions(predictions, LABELS, GRID_SPEC, CELL)
    for dataset, mask in (("goemotions", FULL_MASK), ("meld", PARTIAL_MASK)):
        covered = np.flatnonzero(mask)
        rows = predictions[predictions["dataset"] == dataset]
        validation, test = rows[rows["split"] == "validation"], rows[rows["split"] == "test"]
        val_true = stacked(validation, "labels")[:, covered]
        val_probs = stacked(validation, "probs")[:, covered]
        thresholds = expected_thresholds(val_true, val_probs, GRID)
        entry = report["datasets"][dataset]
        np.testing.assert_allclose(list(entry["thresholds"].values()), thresholds)

        test_true, test_probs = stacked(test, "labels")[:, covered], stacked(test, "probs")[:, covered]
        tuned_pred, default_pred = test_probs >= thresholds, test_probs >= 0.5
        metrics = entry["test"]
        assert metrics["f1_macro@tuned"] == pytest.approx(
            f1_score(test_true, tuned_pred, average="macro", zero_division=0)
        )
        assert metrics["f1_macro@0.5"] == pytest.approx(
            f1_score(test_true, default_pred, average="macro", zero_division=0)
        )
        assert metrics["f1_micro@tuned"] == pytest.approx(
            f1_score(test_true, tuned_pred, average="micro", zero_division=0)
        )
        per_class = f1_score(test_true, tuned_pred, average=None, zero_division=0)
        np.testing.assert_allclose(list(metrics["per_class@tuned"].values()), per_class)
        # Tuned on validation, so on validation it can only match or beat 0.5 class by class,
        # hence also in macro-F1.
        assert entry["validation"]["f1_macro@tuned"] >= entry["validation"]["f1_macro@0.5"] - 1e-12


def test_changing_test_rows_never_changes_thresholds(predictions):
    baseline = evaluate_predictions(predictions, LABELS, GRID_SPEC, CELL)
    altered = predictions.copy()
    is_test = altered["split"] == "test"
    rng = np.random.default_rng(99)
    altered.loc[is_test, "probs"] = pd.Series(
        [rng.random(len(LABELS)).astype(np.float32) for _ in range(is_test.sum())],
        index=altered.index[is_test],
    )
    altered.loc[is_test, "labels"] = pd.Series(
        [(1 - np.asarray(row)).astype(np.int8) for row in altered.loc[is_test, "labels"]],
        index=altered.index[is_test],
    )
    changed = evaluate_predictions(altered, LABELS, GRID_SPEC, CELL)
    for dataset in ("goemotions", "meld"):
        assert changed["datasets"][dataset]["thresholds"] == baseline["datasets"][dataset]["thresholds"]
        assert changed["datasets"][dataset]["validation"] == baseline["datasets"][dataset]["validation"]
        # The change did reach the test metrics, so the equality above is not vacuous.
        assert changed["datasets"][dataset]["test"] != baseline["datasets"][dataset]["test"]


def test_changing_validation_rows_changes_thresholds(predictions):
    baseline = evaluate_predictions(predictions, LABELS, GRID_SPEC, CELL)
    altered = predictions.copy()
    is_validation = (altered["split"] == "validation") & (altered["dataset"] == "goemotions")
    # Squash validation probabilities towards 0: best thresholds must move down.
    altered.loc[is_validation, "probs"] = pd.Series(
        [(np.asarray(row) * 0.3).astype(np.float32) for row in altered.loc[is_validation, "probs"]],
        index=altered.index[is_validation],
    )
    changed = evaluate_predictions(altered, LABELS, GRID_SPEC, CELL)
    before = np.array(list(baseline["datasets"]["goemotions"]["thresholds"].values()))
    after = np.array(list(changed["datasets"]["goemotions"]["thresholds"].values()))
    assert (after < before).all()
    assert changed["datasets"]["meld"]["thresholds"] == baseline["datasets"]["meld"]["thresholds"]


def test_differing_masks_within_a_dataset_are_rejected(predictions):
    altered = predictions.copy()
    altered.at[altered.index[-1], "label_mask"] = FULL_MASK  # one meld test row claims full coverage
    with pytest.raises(ValueError, match="label_mask"):
        evaluate_predictions(altered, LABELS, GRID_SPEC, CELL)


def test_dataset_without_validation_rows_is_rejected(predictions):
    is_meld_validation = (predictions["dataset"] == "meld") & (predictions["split"] == "validation")
    no_validation = predictions[~is_meld_validation]
    with pytest.raises(ValueError, match="validation"):
        evaluate_predictions(no_validation, LABELS, GRID_SPEC, CELL)


def test_duplicated_ids_are_rejected(predictions):
    with pytest.raises(ValueError, match="repeat"):
        evaluate_predictions(pd.concat([predictions, predictions.iloc[:1]]), LABELS, GRID_SPEC, CELL)


def test_id_in_both_validation_and_test_is_rejected(predictions):
    leaked = predictions.copy()
    first_test = leaked.index[(leaked["dataset"] == "meld") & (leaked["split"] == "test")][0]
    first_validation = leaked.index[(leaked["dataset"] == "meld") & (leaked["split"] == "validation")][0]
    leaked.at[first_test, "id"] = leaked.at[first_validation, "id"]
    with pytest.raises(ValueError, match="repeat"):
        evaluate_predictions(leaked, LABELS, GRID_SPEC, CELL)


def test_evaluate_file_round_trips_parquet_and_writes_atomically(predictions, tmp_path):
    pred_path = tmp_path / "predictions.parquet"
    io.write_parquet(pred_path, predictions)
    out_path = tmp_path / "run" / "eval_report.json"
    returned = evaluate_file(pred_path, out_path, LABELS, GRID_SPEC, CELL)
    assert io.read_json(out_path) == returned
    assert returned == evaluate_predictions(predictions, LABELS, GRID_SPEC, CELL)
    assert not list(tmp_path.rglob("*.tmp"))


# --------------------------------------------------------------------------- grouped levels

GROUP_LABELS = ["anger", "annoyance", "joy", "amusement", "neutral"]
GROUPS = {
    "level": {"negative": ["anger", "annoyance"], "positive": ["joy", "amusement"], "neutral": ["neutral"]}
}
GROUP_PROBS = np.array(
    [
        [0.2, 0.7, 0.1, 0.1, 0.1],
        [0.1, 0.1, 0.6, 0.3, 0.4],
        [0.6, 0.1, 0.2, 0.1, 0.3],
        [0.3, 0.8, 0.4, 0.2, 0.1],
    ]
)
GROUP_TRUTH = np.array([[1, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 1, 1, 0, 0]], dtype=np.int8)


def group_rows(mask: np.ndarray) -> pd.DataFrame:
    """The hand-computed case as validation and test rows (test = the four rows above)."""
    frames = []
    for split in ("validation", "test"):
        frames.append(
            pd.DataFrame(
                {
                    "dataset": "toy",
                    "split": split,
                    "id": [f"{split}-{i}" for i in range(4)],
                    "probs": list(GROUP_PROBS.astype(np.float32)),
                    "labels": list(GROUP_TRUTH * mask),
                    "label_mask": [mask] * 4,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_grouped_scoring_matches_a_hand_computed_case():
    # Group probabilities (max over members): negative .7 .1 .6 .8, positive .1 .6 .2 .4, neutral .1 .4 .3 .1
    # Truth: negative 1 0 0 1, positive 0 1 0 1, neutral 0 0 1 0.
    # At 0.5: negative TP 2, FP 1, FN 0 -> F1 4/5; positive TP 1, FN 1 -> 2/3; neutral never predicted -> 0.
    full = np.ones(5, dtype=np.int8)
    report = evaluate_predictions(group_rows(full), GROUP_LABELS, GRID_SPEC, CELL, GROUPS)
    level = report["datasets"]["toy"]["levels"]["level"]
    assert level["covered_labels"] == ["negative", "positive", "neutral"]
    assert level["test"]["per_class@0.5"] == pytest.approx(
        {"negative": 0.8, "positive": 2 / 3, "neutral": 0.0}
    )
    assert level["test"]["f1_macro@0.5"] == pytest.approx((0.8 + 2 / 3 + 0.0) / 3)
    # The fine level is unchanged by the grouping.
    assert (
        report["datasets"]["toy"]["test"]
        == evaluate_predictions(group_rows(full), GROUP_LABELS, GRID_SPEC, CELL)["datasets"]["toy"]["test"]
    )


def test_group_thresholds_are_tuned_on_validation_only():
    full = np.ones(5, dtype=np.int8)
    rows = group_rows(full)
    baseline = evaluate_predictions(rows, GROUP_LABELS, GRID_SPEC, CELL, GROUPS)
    is_test = rows["split"] == "test"
    rows.loc[is_test, "probs"] = pd.Series([np.full(5, 0.99, np.float32)] * 4, index=rows.index[is_test])
    changed = evaluate_predictions(rows, GROUP_LABELS, GRID_SPEC, CELL, GROUPS)
    before, after = baseline["datasets"]["toy"]["levels"], changed["datasets"]["toy"]["levels"]
    assert after["level"]["thresholds"] == before["level"]["thresholds"]
    assert after["level"]["test"] != before["level"]["test"]
    # With validation = the hand-computed rows, the tuned negative threshold separates .6 from .7.
    assert before["level"]["thresholds"]["negative"] == pytest.approx(0.65)


def test_groups_use_only_covered_members():
    # annoyance uncovered: negative = anger only, probs .2 .1 .6 .3, truth 1 0 0 0 -> TP 0, FP 1, FN 1 -> 0.
    mask = np.array([1, 0, 1, 1, 1], dtype=np.int8)
    level = evaluate_predictions(group_rows(mask), GROUP_LABELS, GRID_SPEC, CELL, GROUPS)["datasets"]["toy"]
    assert level["levels"]["level"]["test"]["per_class@0.5"]["negative"] == 0.0
    assert level["levels"]["level"]["test"]["f1_macro@0.5"] == pytest.approx((0 + 2 / 3 + 0) / 3)
    # No covered member at all: the group is not scored.
    mask = np.array([0, 0, 1, 1, 1], dtype=np.int8)
    level = evaluate_predictions(group_rows(mask), GROUP_LABELS, GRID_SPEC, CELL, GROUPS)["datasets"]["toy"]
    assert level["levels"]["level"]["covered_labels"] == ["positive", "neutral"]


def test_split_decisions_reproduce_the_report():
    from emogrid.bootstrap import f1_macro
    from emogrid.evaluate import split_decisions

    rows = group_rows(np.ones(5, dtype=np.int8))
    entry = evaluate_predictions(rows, GROUP_LABELS, GRID_SPEC, CELL, GROUPS)["datasets"]["toy"]
    found = split_decisions("toy", rows, entry, GROUP_LABELS, GROUPS)
    assert set(found) == {"labels", "level"}
    for level, level_entry in (("labels", entry), ("level", entry["levels"]["level"])):
        for mode in ("0.5", "tuned"):
            recomputed = f1_macro(found[level]["truth"], found[level]["decisions"][mode])
            assert recomputed == pytest.approx(level_entry["test"][f"f1_macro@{mode}"])
    assert found["level"]["truth"][:, 0].tolist() == [True, False, False, True]


def test_prediction_spread_is_reported_and_a_constant_model_is_named_in_the_tables(predictions, tmp_path):
    from emogrid.report import collect_reports, constant_prediction_warning, summarize_metric, write_tables

    report = evaluate_predictions(predictions, LABELS, GRID_SPEC, CELL)
    meld = predictions[(predictions["dataset"] == "meld") & (predictions["split"] == "test")]
    covered = np.flatnonzero(PARTIAL_MASK)
    probs = stacked(meld, "probs")[:, covered]
    expected = (probs.max(axis=0) - probs.min(axis=0)).max()
    assert expected > 0.5
    assert report["datasets"]["meld"]["test"]["prediction_spread"] == pytest.approx(expected)
    io.write_json(tmp_path / "learned.json", report)
    assert constant_prediction_warning(collect_reports([tmp_path / "learned.json"])) == ""
    # The same cell with one output for every meld row (an uncovered column may differ: not scored).
    flat = predictions.copy()
    is_meld = flat["dataset"] == "meld"
    first = np.asarray(flat.loc[is_meld, "probs"].iloc[0], dtype=float)
    same = [first.copy() for _ in range(is_meld.sum())]
    flat.loc[is_meld, "probs"] = pd.Series(same, index=flat.index[is_meld])
    collapsed = evaluate_predictions(flat, LABELS, GRID_SPEC, CELL | {"seed": 2})
    assert collapsed["datasets"]["meld"]["test"]["prediction_spread"] == 0.0
    io.write_json(tmp_path / "collapsed.json", collapsed)
    reports = collect_reports([tmp_path / "learned.json", tmp_path / "collapsed.json"])
    warning = constant_prediction_warning(reports)
    assert "all4/bce/none/seed2 on meld validation; all4/bce/none/seed2 on meld test" in warning
    assert "seed1" not in warning and "goemotions" not in warning
    paths = write_tables(summarize_metric(reports, "f1_macro@tuned"), tmp_path / "f1", warning=warning)
    assert paths["md"].read_text().count("WARNING: these cells gave every row of a split the same") == 1
    # Reports from before the spread existed: the note says the check did not run, not that all passed.
    old = collect_reports([tmp_path / "learned.json"])
    old = old[old["metric"] != "prediction_spread"]
    assert constant_prediction_warning(old).startswith("Not checked for collapsed models")


def test_labels_without_positive_rows_are_counted_and_named_in_the_tables(predictions, tmp_path):
    from emogrid.report import (
        collect_reports,
        covered_label_counts,
        missing_positives_warning,
        summarize_metric,
        write_tables,
    )

    report = evaluate_predictions(predictions, LABELS, GRID_SPEC, CELL)
    meld_test = predictions[(predictions["dataset"] == "meld") & (predictions["split"] == "test")]
    truth = stacked(meld_test, "labels")
    assert report["datasets"]["meld"]["test"]["positives"] == {
        LABELS[i]: int(truth[:, i].sum()) for i in np.flatnonzero(PARTIAL_MASK)
    }
    io.write_json(tmp_path / "full.json", report)
    assert missing_positives_warning(collect_reports([tmp_path / "full.json"])) == ""
    # No fear in goemotions' validation rows, no neutral in meld's test rows.
    thin = predictions.copy()

    def drop(frame, dataset, split, label):
        where = (frame["dataset"] == dataset) & (frame["split"] == split)
        keep = np.arange(len(LABELS)) != LABELS.index(label)
        frame["labels"] = [y * keep if w else y for y, w in zip(frame["labels"], where, strict=True)]

    drop(thin, "goemotions", "validation", "fear")
    drop(thin, "meld", "test", "neutral")
    thinned = evaluate_predictions(thin, LABELS, GRID_SPEC, CELL | {"seed": 2})
    assert thinned["datasets"]["goemotions"]["thresholds"]["fear"] == 0.5
    assert thinned["datasets"]["meld"]["test"]["per_class@tuned"]["neutral"] == 0.0
    io.write_json(tmp_path / "thin.json", thinned)
    reports = collect_reports([tmp_path / "full.json", tmp_path / "thin.json"])
    warning = missing_positives_warning(reports)
    assert "in validation (threshold left at 0.5, not tuned): goemotions fear" in warning
    assert "in test (F1 0 whatever the model predicts, counted in the macro average): meld neutral" in warning
    assert warning.count("goemotions") == 1 and warning.count("meld") == 1
    # The table note says how many labels each column averages over.
    assert covered_label_counts(reports) == {("goemotions", "labels"): 6, ("meld", "labels"): 3}
    paths = write_tables(
        summarize_metric(reports, "f1_macro@tuned"),
        tmp_path / "f1",
        warning=warning,
        covered=covered_label_counts(reports),
    )
    note = paths["md"].read_text()
    assert "WARNING: labels without a positive row" in note
    assert "its dataset covers, not a dataset's own label set: goemotions 6, meld 3." in note
    # Reports from before the count: not claimed as checked.
    old = reports[reports["metric"] != "positives"]
    assert missing_positives_warning(old).startswith("Not checked for labels without positive rows")


def single_label_rows(rng, split: str, n: int) -> pd.DataFrame:
    """MELD-like rows: exactly one of the covered labels (PARTIAL_MASK) is true, probabilities noisy."""
    covered = np.flatnonzero(PARTIAL_MASK)
    truth = np.zeros((n, len(LABELS)), dtype=np.int8)
    truth[np.arange(n), rng.choice(covered, size=n, p=[0.6, 0.3, 0.1])] = 1
    probs = np.clip(0.3 * truth + rng.random((n, len(LABELS))) * 0.6, 0, 1)
    return pd.DataFrame(
        {
            "dataset": "meld",
            "split": split,
            "id": [f"meld-{split}-{i}" for i in range(n)],
            "probs": [row.astype(np.float32) for row in probs],
            "labels": list(truth),
            "label_mask": [PARTIAL_MASK] * n,
        }
    )


def test_single_label_datasets_get_argmax_accuracy_and_weighted_f1_computed_by_hand(predictions):
    rng = np.random.default_rng(3)
    rows = pd.concat([single_label_rows(rng, "validation", 150), single_label_rows(rng, "test", 400)])
    multi = predictions[predictions["dataset"] == "goemotions"]
    report = evaluate_predictions(pd.concat([multi, rows], ignore_index=True), LABELS, GRID_SPEC, CELL)
    assert not any("@argmax" in key for key in report["datasets"]["goemotions"]["test"])
    covered = np.flatnonzero(PARTIAL_MASK)
    for split in ("validation", "test"):
        part = rows[rows["split"] == split]
        truth = stacked(part, "labels")[:, covered].argmax(axis=1)
        predicted = stacked(part, "probs")[:, covered].argmax(axis=1)
        f1 = []
        for k in range(len(covered)):
            tp = np.sum((predicted == k) & (truth == k))
            fp, fn = np.sum((predicted == k) & (truth != k)), np.sum((predicted != k) & (truth == k))
            f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        support = np.bincount(truth, minlength=len(covered))
        metrics = report["datasets"]["meld"][split]
        assert metrics["accuracy@argmax"] == pytest.approx(np.mean(truth == predicted))
        assert metrics["f1_weighted@argmax"] == pytest.approx(np.average(f1, weights=support))
        assert metrics["f1_macro@argmax"] == pytest.approx(np.mean(f1))
    # One row with a second true label: the dataset is multi-label, and argmax scores would mislead.
    rows = rows.reset_index(drop=True)
    rows.at[0, "labels"] = rows.at[0, "labels"] | PARTIAL_MASK
    report = evaluate_predictions(rows, LABELS, GRID_SPEC, CELL)
    assert not any("@argmax" in key for key in report["datasets"]["meld"]["test"])
