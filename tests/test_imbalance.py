"""Imbalance strategies: oversampling shifts label frequencies as specified, pos_weight as specified,
and neither ever sees a validation or test row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from emogrid.batching import MixtureLengthSampler, mixture_weights
from emogrid.imbalance import label_frequencies, positive_weights, repeat_factors, sampling_weights
from emogrid.losses import asymmetric_loss, bce_loss, build_loss


def single_label(counts: dict[int, int], n_labels: int = 3) -> np.ndarray:
    rows = [np.eye(n_labels, dtype=np.int8)[label] for label, count in counts.items() for _ in range(count)]
    return np.array(rows)


def drawn_frequencies(labels: np.ndarray, weights: np.ndarray, seed: int = 0) -> np.ndarray:
    """Label frequencies among the rows a MixtureLengthSampler draws over a few epochs."""
    sampler = MixtureLengthSampler(np.ones(len(labels), dtype=int), weights, batch_size=50, seed=seed)
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn.extend(sampler)
    return labels[np.array(drawn)].mean(axis=0)


def test_oversampling_draws_rare_labels_as_specified():
    # Label 0: 900 rows, label 1: 100, label 2: 20. Factors f_max / f: 1, 9, 45 -> capped at 5: 1, 5, 5.
    labels = single_label({0: 900, 1: 100, 2: 20})
    mask = np.ones_like(labels)
    names = np.array(["d"] * len(labels))
    factors = repeat_factors(labels, mask, cap=5.0)
    assert factors[:900].tolist() == [1.0] * 900 and set(factors[900:].tolist()) == {5.0}
    weights = sampling_weights(names, labels, mask, {"d": 1.0}, {"strategy": "oversample", "cap": 5.0})
    expected = np.array([900, 100 * 5, 20 * 5]) / (900 + 500 + 100)
    np.testing.assert_allclose(weights @ labels, expected)
    np.testing.assert_allclose(drawn_frequencies(labels, weights), expected, atol=0.02)
    # Without oversampling, the draws follow the data.
    plain = sampling_weights(names, labels, mask, {"d": 1.0}, {"strategy": "none"})
    np.testing.assert_allclose(
        drawn_frequencies(labels, plain), [900 / 1020, 100 / 1020, 20 / 1020], atol=0.02
    )


def test_uncapped_oversampling_balances_single_label_data():
    labels = single_label({0: 900, 1: 100, 2: 20})
    weights = sampling_weights(
        np.array(["d"] * len(labels)),
        labels,
        np.ones_like(labels),
        {"d": 1.0},
        {"strategy": "oversample", "cap": 1000.0},
    )
    np.testing.assert_allclose(weights @ labels, [1 / 3, 1 / 3, 1 / 3])


def test_a_row_takes_the_factor_of_its_rarest_label_and_uncovered_labels_count_for_nothing():
    labels = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=np.int8)
    mask = np.array([[1, 1, 0]] * 5, dtype=np.int8)  # label 2 not covered: its 1 is ignored
    # Covered frequencies: label 0 4/5, label 1 1/5 -> factors 1 and 4.
    assert repeat_factors(labels, mask, cap=10.0).tolist() == [1.0, 4.0, 1.0, 1.0, 1.0]


def test_oversampling_keeps_the_mix_shares():
    labels = np.concatenate([single_label({0: 900, 1: 100}), single_label({0: 50, 2: 50})])
    names = np.array(["a"] * 1000 + ["b"] * 100)
    mix = {"a": 0.7, "b": 0.3}
    weights = sampling_weights(
        names, labels, np.ones_like(labels), mix, {"strategy": "oversample", "cap": 5.0}
    )
    assert weights.sum() == pytest.approx(1.0)
    assert weights[names == "a"].sum() == pytest.approx(0.7)
    assert weights[names == "b"].sum() == pytest.approx(0.3)
    np.testing.assert_allclose(mixture_weights(names, mix)[names == "b"].sum(), 0.3)


def test_pos_weight_from_training_frequencies_with_cap():
    labels = single_label({0: 500, 1: 400, 2: 100}) | np.array([[0, 0, 0]] * 1000, dtype=np.int8)
    mask = np.ones_like(labels)
    weights = np.full(len(labels), 1 / len(labels))
    # f = 0.5, 0.4, 0.1 -> (1 - f) / f = 1, 1.5, 9 -> cap 5 -> 1, 1.5, 5
    result = positive_weights(labels, mask, weights, {"strategy": "pos_weight", "cap": 5.0})
    np.testing.assert_allclose(result, [1.0, 1.5, 5.0])
    assert positive_weights(labels, mask, weights, {"strategy": "oversample", "cap": 5.0}) is None
    # The frequencies are those of the draws: doubling the weight of label-2 rows doubles its share.
    skewed = np.where(labels[:, 2] == 1, 2.0, 1.0)
    np.testing.assert_allclose(label_frequencies(labels, mask, skewed / skewed.sum())[2], 200 / 1100)


def test_label_never_positive_gets_weight_one():
    labels = np.array([[1, 0], [0, 0]], dtype=np.int8)
    result = positive_weights(
        labels, np.ones_like(labels), np.array([0.5, 0.5]), {"strategy": "pos_weight", "cap": 9.0}
    )
    np.testing.assert_allclose(result, [1.0, 1.0])


def test_pos_weight_multiplies_the_positive_term_of_each_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 3, generator=g)
    targets = (torch.rand(8, 3, generator=g) < 0.4).float()
    weights = torch.tensor([1.0, 2.0, 5.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights)
    torch.testing.assert_close(bce_loss(logits, targets, None, weights), expected)
    torch.testing.assert_close(build_loss({"type": "bce"}, weights.numpy())(logits, targets), expected)
    # ASL: with all-positive targets the loss is the positive term alone, so it scales with the weight.
    ones = torch.ones_like(targets)
    torch.testing.assert_close(
        asymmetric_loss(logits, ones, pos_weight=torch.full((3,), 3.0)), 3 * asymmetric_loss(logits, ones)
    )


@pytest.mark.parametrize("strategy", ["oversample", "pos_weight"])
def test_strategies_see_only_training_rows(make_cell, tiny_corpus, monkeypatch, strategy):
    import emogrid.train as train_module
    from emogrid.train import run_cell

    seen = []

    def spy(function):
        def wrapped(*args, **kwargs):
            seen.append(len(args[1]) if function is train_module.sampling_weights else len(args[0]))
            return function(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(train_module, "sampling_weights", spy(train_module.sampling_weights))
    monkeypatch.setattr(train_module, "positive_weights", spy(train_module.positive_weights))
    cell = make_cell(imbalance={"strategy": strategy, "cap": 5.0}, max_steps=3, save_steps=100)
    out = run_cell(cell)
    files = tiny_corpus["files"]
    train_rows = sum(len(pd.read_parquet(files[(d, "train")])) for d in ("alpha", "beta"))
    assert seen == [train_rows, train_rows]
    # Validation and test rows are predicted exactly once each: nothing was resampled there.
    predictions = pd.read_parquet(out / "predictions.parquet")
    expected_ids = {
        i
        for d in ("alpha", "beta")
        for s in ("validation", "test")
        for i in pd.read_parquet(files[(d, s)])["id"]
    }
    assert predictions["id"].is_unique and set(predictions["id"]) == expected_ids


def test_prior_bias_with_pos_weight_starts_at_the_weighted_optimum():
    from emogrid.train import init_bias_from_prior

    labels = np.array([[1, 0], [0, 0], [0, 0], [0, 1]] * 5, dtype=np.float32)  # priors 1/4, 1/4
    mask = np.ones_like(labels)
    layer = torch.nn.Linear(4, 2)
    init_bias_from_prior(layer, labels, mask, pos_weight=np.array([3.0, 1.0]))
    # Weight 3 on a 1/4 prior: 0.75 / (0.75 + 0.75) = 0.5 -> logit 0; weight 1 keeps logit(1/4).
    np.testing.assert_allclose(layer.bias.detach().numpy(), [0.0, np.log(1 / 3)], atol=1e-6)
    # The weighted BCE of that constant output is at its minimum: its gradient in the bias is 0.
    bias = layer.bias.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        bias.expand(len(labels), 2), torch.from_numpy(labels), pos_weight=torch.tensor([3.0, 1.0])
    )
    loss.backward()
    np.testing.assert_allclose(bias.grad.numpy(), [0.0, 0.0], atol=1e-6)
