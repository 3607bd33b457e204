"""emogrid.bootstrap: macro-F1 from counts, intervals that cover, paired p-values, Holm."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from emogrid.bootstrap import (
    bootstrap_f1_macro,
    confusion_counts,
    f1_macro,
    f1_macro_from_counts,
    holm,
    paired_difference,
    paired_p_value,
    resample_counts,
    resampled_f1_macro,
    resampled_statistic,
    statistic_of,
)


def noisy_predictions(rng: np.random.Generator, n: int, n_labels: int, accuracy: float, rate: float = 0.1):
    """Multi-label truth and predictions that agree on a share `accuracy` of the entries."""
    truth = rng.random((n, n_labels)) < rate
    flip = rng.random((n, n_labels)) > accuracy
    return truth, truth ^ flip


def test_macro_f1_from_counts_equals_sklearn_with_rare_and_empty_classes():
    rng = np.random.default_rng(0)
    truth, predicted = noisy_predictions(rng, 500, 12, accuracy=0.9, rate=0.08)
    truth[:, 3] = False  # a class never true...
    predicted[:, 3] = False  # ...nor predicted: F1 0 under zero_division=0, in both
    truth[:, 5] = False  # never true but predicted: F1 0
    expected = f1_score(truth, predicted, average="macro", zero_division=0)
    assert f1_macro(truth, predicted) == pytest.approx(expected, abs=1e-12)


def test_resampled_counts_equal_counts_of_the_resampled_rows():
    """The matrix-product shortcut gives what indexing the drawn rows would."""
    rng = np.random.default_rng(1)
    truth, predicted = noisy_predictions(rng, 60, 5, accuracy=0.8)
    weights = resample_counts(60, 7, seed=3)
    assert weights.shape == (7, 60) and (weights.sum(axis=1) == 60).all()
    tp, fp, fn = confusion_counts(weights, truth, predicted)
    for b in range(7):
        rows = np.repeat(np.arange(60), weights[b].astype(int))
        expected = f1_score(truth[rows], predicted[rows], average="macro", zero_division=0)
        assert f1_macro_from_counts(tp[b], fp[b], fn[b]) == pytest.approx(expected, abs=1e-12)


def test_single_label_statistics_of_each_resample_equal_sklearn_with_the_draws_as_sample_weights():
    """Weighted-F1, accuracy and macro-F1 of argmax decisions (one class per row, truth and prediction),
    per resample, against scikit-learn on the labels with the resample's counts as sample weights; a
    class never true (weight 0 in weighted-F1) and one never predicted are in it."""
    rng = np.random.default_rng(7)
    n, k = 300, 6
    true_class = rng.choice(k - 1, size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05])  # class 5 never true
    predicted_class = np.where(rng.random(n) < 0.6, true_class, rng.integers(0, k, n))
    predicted_class[predicted_class == 3] = 0  # class 3 never predicted
    truth, predicted = np.eye(k, dtype=bool)[true_class], np.eye(k, dtype=bool)[predicted_class]
    weights = resample_counts(n, 9, seed=2)
    sklearn_scores = {
        "f1_weighted": lambda w: f1_score(
            true_class, predicted_class, labels=range(k), average="weighted", sample_weight=w, zero_division=0
        ),
        "f1_macro": lambda w: f1_score(
            true_class, predicted_class, labels=range(k), average="macro", sample_weight=w, zero_division=0
        ),
        "accuracy": lambda w: accuracy_score(true_class, predicted_class, sample_weight=w),
    }
    for statistic, expected in sklearn_scores.items():
        resampled = resampled_statistic(weights, truth, [predicted], statistic)
        for b in range(weights.shape[0]):
            assert resampled[b] == pytest.approx(expected(weights[b]), abs=1e-12), (statistic, b)
        assert statistic_of(truth, predicted, statistic) == pytest.approx(expected(np.ones(n)), abs=1e-12)
    # Weighted-F1 is not macro-F1 here (skewed classes), so the two are not mixed up above.
    assert (
        abs(statistic_of(truth, predicted, "f1_weighted") - statistic_of(truth, predicted, "f1_macro")) > 0.01
    )


def test_resamples_are_seeded():
    np.testing.assert_array_equal(resample_counts(100, 5, seed=4), resample_counts(100, 5, seed=4))
    assert not np.array_equal(resample_counts(100, 5, seed=4), resample_counts(100, 5, seed=5))


def test_interval_of_a_known_case_contains_the_true_value():
    """Test sets drawn from one population whose macro-F1 is known (a huge sample): the 95% interval
    of a 2,000-example test set covers it in about 95% of repetitions."""
    rng = np.random.default_rng(2)
    population_truth, population_pred = noisy_predictions(rng, 400_000, 6, accuracy=0.85, rate=0.2)
    true_value = f1_macro(population_truth, population_pred)
    covered, repetitions = 0, 60
    for repetition in range(repetitions):
        rows = rng.integers(0, len(population_truth), size=2000)
        interval = bootstrap_f1_macro(
            population_truth[rows], [population_pred[rows]], n_resamples=400, seed=repetition
        )
        assert interval.low <= interval.estimate <= interval.high
        covered += interval.low <= true_value <= interval.high
    # 95% nominal: 60 draws of a Bernoulli(0.95) fall below 51 with probability < 0.2%.
    assert covered >= 51


def test_interval_narrows_with_more_examples():
    rng = np.random.default_rng(3)
    truth, predicted = noisy_predictions(rng, 8000, 6, accuracy=0.85, rate=0.2)
    small = bootstrap_f1_macro(truth[:500], [predicted[:500]], 500, seed=0)
    large = bootstrap_f1_macro(truth, [predicted], 500, seed=0)
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


def test_seed_average_is_the_mean_of_seed_scores():
    rng = np.random.default_rng(4)
    truth, first = noisy_predictions(rng, 300, 4, accuracy=0.8)
    _, second = noisy_predictions(rng, 300, 4, accuracy=0.7)
    second = truth ^ (rng.random(truth.shape) > 0.7)
    interval = bootstrap_f1_macro(truth, [first, second], 200, seed=0)
    assert interval.estimate == pytest.approx((f1_macro(truth, first) + f1_macro(truth, second)) / 2)
    weights = resample_counts(300, 200, seed=0)
    np.testing.assert_allclose(
        resampled_f1_macro(weights, truth, [first, second]),
        (resampled_f1_macro(weights, truth, [first]) + resampled_f1_macro(weights, truth, [second])) / 2,
    )


@pytest.mark.parametrize("method", ["normal", "empirical"])
def test_identical_predictions_give_p_one(method):
    rng = np.random.default_rng(5)
    truth, predicted = noisy_predictions(rng, 1000, 8, accuracy=0.85)
    weights = resample_counts(1000, 500, seed=0)
    a = resampled_f1_macro(weights, truth, [predicted])
    estimate = f1_macro(truth, predicted)
    result = paired_difference(a, a.copy(), estimate, estimate, method=method)
    assert result.difference == 0.0 and result.low == 0.0 and result.high == 0.0
    assert result.p_value == pytest.approx(1.0)


def compare_on_resamples(weights, truth, a, b, method):
    """The paired test of predictors a and b on the same bootstrap resamples of one test set."""
    return paired_difference(
        resampled_f1_macro(weights, truth, [a]),
        resampled_f1_macro(weights, truth, [b]),
        f1_macro(truth, a),
        f1_macro(truth, b),
        method=method,
    )


@pytest.mark.parametrize("method", ["normal", "empirical"])
def test_planted_large_difference_gives_small_p(method):
    rng = np.random.default_rng(6)
    truth, good = noisy_predictions(rng, 2000, 8, accuracy=0.92)
    bad = truth ^ (rng.random(truth.shape) > 0.80)
    weights = resample_counts(2000, 1000, seed=0)
    result = compare_on_resamples(weights, truth, good, bad, method)
    assert result.difference > 0.1
    assert result.low > 0 and result.low <= result.difference <= result.high
    assert result.p_value <= 1 / 1001 + 1e-12


@pytest.mark.parametrize("method", ["normal", "empirical"])
def test_equal_quality_predictors_are_rarely_called_different(method):
    """Type-I error: two predictors of the same expected quality, on many test sets; p < 0.05 should
    happen about 5% of the time (here: at most 12 of 100, which a calibrated test exceeds with
    probability < 0.2%)."""
    rng = np.random.default_rng(7)
    weights = resample_counts(1500, 300, seed=1)
    false_alarms = 0
    for _ in range(100):
        truth = rng.random((1500, 6)) < 0.2
        a = truth ^ (rng.random(truth.shape) > 0.85)
        b = truth ^ (rng.random(truth.shape) > 0.85)
        result = compare_on_resamples(weights, truth, a, b, method)
        false_alarms += result.p_value < 0.05
    assert false_alarms <= 12


def test_normal_and_empirical_p_values_agree_for_a_moderate_difference():
    rng = np.random.default_rng(8)
    differences = rng.normal(0.01, 0.006, size=20_000)
    normal = paired_p_value(differences, 0.01, "normal")
    empirical = paired_p_value(differences, 0.01, "empirical")
    assert 0.05 < normal < 0.15 and empirical == pytest.approx(normal, abs=0.01)


def test_unknown_p_value_method_is_rejected():
    with pytest.raises(ValueError, match="p-value method"):
        paired_p_value(np.zeros(3), 0.0, "permutation")


def test_holm_matches_a_hand_computed_case():
    # Sorted p: 0.01, 0.02, 0.03, 0.04 -> 4*0.01, 3*0.02, max(.06, 2*.03), max(.06, 1*.04)
    adjusted, reject = holm([0.04, 0.01, 0.03, 0.02], alpha=0.05)
    np.testing.assert_allclose(adjusted, [0.06, 0.04, 0.06, 0.06])
    assert reject.tolist() == [False, True, False, False]


def test_thousand_resamples_of_a_goemotions_sized_test_split_take_seconds():
    rng = np.random.default_rng(9)
    truth, predicted = noisy_predictions(rng, 5427, 28, accuracy=0.95, rate=0.04)
    start = time.perf_counter()
    bootstrap_f1_macro(truth, [predicted], n_resamples=1000, seed=0)
    assert time.perf_counter() - start < 10


def test_cluster_resampling_draws_whole_clusters_and_by_singletons_is_the_row_bootstrap():
    clusters = np.repeat(np.arange(12), [1, 5, 3, 3, 8, 2, 2, 6, 1, 4, 4, 1])
    weights = resample_counts(len(clusters), 200, seed=9, clusters=clusters)
    for k in range(12):
        members = weights[:, clusters == k]
        assert (members == members[:, :1]).all(), "a cluster's rows were drawn apart"
    # Each resample draws 12 clusters: the rows it holds add up to their clusters' sizes.
    sizes = np.bincount(clusters)
    cluster_draws = weights[:, [np.flatnonzero(clusters == k)[0] for k in range(12)]]
    np.testing.assert_array_equal(cluster_draws.sum(axis=1), 12)
    np.testing.assert_array_equal(weights.sum(axis=1), cluster_draws @ sizes)
    # One row per cluster is the row bootstrap, draw for draw.
    np.testing.assert_array_equal(
        resample_counts(50, 30, seed=2, clusters=np.arange(50)[::-1]),
        resample_counts(50, 30, seed=2)[:, ::-1],
    )
    with pytest.raises(ValueError, match="every value used"):
        resample_counts(4, 10, seed=0, clusters=np.array([0, 0, 2, 2]))
