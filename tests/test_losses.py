"""Losses: gradients against the closed-form formula, ASL->BCE limit, masking."""

import pytest
import torch

from emogrid.losses import asymmetric_loss, bce_loss, build_loss, combined_loss


def _batch(seed=0, n=6, k=5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * 2
    targets = (torch.rand(n, k, generator=g) < 0.4).double()
    mask = (torch.rand(n, k, generator=g) < 0.7).double()
    mask[0] = 1.0  # at least some unmasked entries
    return logits, targets, mask


def row_weights(mask):
    """Each entry's weight in the loss: 1 / (rows x the row's unmasked entries), 0 where masked."""
    return mask / (mask.shape[0] * mask.sum(dim=1, keepdim=True).clamp_min(1))


def test_bce_gradient_matches_formula():
    logits, targets, mask = _batch()
    logits.requires_grad_(True)
    bce_loss(logits, targets, mask).backward()
    # d/dz of the row mean of masked BCE = (sigmoid(z) - y) * mask / (rows * row's sum(mask))
    expected = (torch.sigmoid(logits.detach()) - targets) * row_weights(mask)
    torch.testing.assert_close(logits.grad.double(), expected)


def test_asl_gradient_matches_formula():
    logits, targets, mask = _batch(1)
    gp, gn, clip = 1.0, 4.0, 0.05
    logits.requires_grad_(True)
    asymmetric_loss(logits, targets, mask, gamma_neg=gn, gamma_pos=gp, clip=clip, eps=1e-12).backward()
    z = logits.detach()
    p = torch.sigmoid(z)
    dp_dz = p * (1 - p)
    # positive term L+ = -(1-p)^gp log p
    d_pos = (gp * (1 - p) ** (gp - 1) * torch.log(p) - (1 - p) ** gp / p) * dp_dz
    # negative term L- = -q^gn log(1-q), q = max(p - clip, 0)
    q = (p - clip).clamp(min=0)
    active = (p > clip).double()
    d_neg = (-(gn * q ** (gn - 1) * torch.log(1 - q)) + q**gn / (1 - q)) * dp_dz * active
    expected = (targets * d_pos + (1 - targets) * d_neg) * row_weights(mask)
    torch.testing.assert_close(logits.grad.double(), expected, rtol=1e-6, atol=1e-9)


def test_asl_with_zero_gammas_and_clip_equals_bce():
    logits, targets, mask = _batch(2)
    asl = asymmetric_loss(logits, targets, mask, gamma_neg=0, gamma_pos=0, clip=0, eps=1e-12)
    torch.testing.assert_close(asl, bce_loss(logits, targets, mask))


@pytest.mark.parametrize("name", ["bce", "asl", "combined"])
def test_masked_entries_get_zero_gradient(name):
    logits, targets, mask = _batch(3)
    logits.requires_grad_(True)
    build_loss({"type": name})(logits, targets, mask).backward()
    assert torch.all(logits.grad[mask == 0] == 0)
    assert torch.any(logits.grad[mask == 1] != 0)


@pytest.mark.parametrize("name", ["bce", "asl", "combined"])
def test_masked_entries_do_not_change_the_loss(name):
    logits, targets, mask = _batch(4)
    loss_fn = build_loss({"type": name})
    scrambled = torch.where(mask == 0, 1 - targets, targets)
    torch.testing.assert_close(loss_fn(logits, targets, mask), loss_fn(logits, scrambled, mask))


@pytest.mark.parametrize("name", ["bce", "asl", "combined"])
def test_splitting_a_batch_into_micro_batches_changes_nothing(name):
    # Rows covering 5, 2 and 3 labels (as GoEmotions, ISEAR and SemEval rows in one mix): the mean of
    # two equal micro-batches' losses, as Trainer computes it under gradient accumulation or on two
    # GPUs, must be the whole batch's loss, with the same gradient.
    logits, targets, _ = _batch(7, n=4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]]).double()
    loss_fn = build_loss({"type": name})
    whole = logits.clone().requires_grad_(True)
    loss_fn(whole, targets, mask).backward()
    split = logits.clone().requires_grad_(True)
    halves = [loss_fn(split[rows], targets[rows], mask[rows]) for rows in (slice(0, 2), slice(2, 4))]
    (sum(halves) / 2).backward()
    torch.testing.assert_close(sum(halves) / 2, loss_fn(logits, targets, mask))
    torch.testing.assert_close(split.grad, whole.grad)


def test_every_row_weighs_the_same_whatever_its_coverage():
    # At logit 0 with target 0 each unmasked entry's BCE gradient is 0.5 x its weight, so a row's
    # gradient sum is 0.5 x its total weight: 0.5 / rows for every row, covering 5 labels or 2.
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0]]).double()
    logits = torch.zeros(3, 5, dtype=torch.float64, requires_grad=True)
    bce_loss(logits, torch.zeros_like(logits), mask).backward()
    torch.testing.assert_close(logits.grad.sum(dim=1), torch.full((3,), 0.5 / 3, dtype=torch.float64))


def test_combined_is_weighted_sum():
    logits, targets, mask = _batch(5)
    got = combined_loss(logits, targets, mask, ratio=0.3)
    want = 0.3 * asymmetric_loss(logits, targets, mask) + 0.7 * bce_loss(logits, targets, mask)
    torch.testing.assert_close(got, want)


def test_all_masked_batch_is_zero_not_nan():
    logits, targets, _ = _batch(6)
    assert bce_loss(logits, targets, torch.zeros_like(logits)).item() == 0.0


def test_unknown_loss_type_is_rejected():
    with pytest.raises(ValueError, match="unknown loss type"):
        build_loss({"type": "focal"})
