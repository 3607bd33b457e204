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


def test_bce_gradient_matches_formula():
    logits, targets, mask = _batch()
    logits.requires_grad_(True)
    bce_loss(logits, targets, mask).backward()
    # d/dz of mean masked BCE = (sigmoid(z) - y) * mask / sum(mask)
    expected = (torch.sigmoid(logits.detach()) - targets) * mask / mask.sum()
    torch.testing.assert_close(logits.grad.double(), expected)


@pytest.mark.parametrize(("gp", "gn"), [(1.0, 4.0), (0.5, 0.5), (0.3, 2.5)])
def test_asl_gradient_matches_formula(gp, gn):
    logits, targets, mask = _batch(1)
    clip = 0.05
    logits.requires_grad_(True)
    asymmetric_loss(logits, targets, mask, gamma_neg=gn, gamma_pos=gp, clip=clip, eps=1e-12).backward()
    z = logits.detach()
    p = torch.sigmoid(z)
    dp_dz = p * (1 - p)
    # positive term L+ = -(1-p)^gp log p
    d_pos = (gp * (1 - p) ** (gp - 1) * torch.log(p) - (1 - p) ** gp / p) * dp_dz
    # negative term L- = -q^gn log(1-q), q = max(p - clip, 0)
    q = (p - clip).clamp(min=0)
    active = p > clip  # a clipped negative has no loss and no gradient (its formula is 0 * inf there)
    d_neg = torch.where(active, (-(gn * q ** (gn - 1) * torch.log(1 - q)) + q**gn / (1 - q)) * dp_dz, 0.0)
    expected = (targets * d_pos + (1 - targets) * d_neg) * mask / mask.sum()
    torch.testing.assert_close(logits.grad.double(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["asl", "combined"])
def test_fractional_gammas_keep_gradients_finite_at_saturated_and_clipped_logits(name):
    """Between 0 and 1 a gamma's power has an infinite derivative at 0, which a saturated positive
    (1 - p rounds to 0) or a clipped negative (p below clip) reaches: without the clamp every entry's
    gradient became NaN, masked ones included."""
    logits = torch.tensor([[17.0, 20.0, -9.0, 0.3], [25.0, -30.0, 0.02, -0.5]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    loss = build_loss({"type": name, "gamma_pos": 0.5, "gamma_neg": 0.5, "clip": 0.05})
    loss(logits, targets, mask).backward()
    assert torch.isfinite(logits.grad).all(), logits.grad
    assert torch.all(logits.grad[mask == 0] == 0)
    assert logits.grad[0, 3] != 0 and logits.grad[1, 2] != 0  # the unsaturated entries still learn


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
def test_count_replaces_the_number_of_unmasked_entries(name):
    # Training divides by the covered entries of the whole optimizer batch (emogrid.train).
    logits, targets, mask = _batch(7)
    loss_fn = build_loss({"type": name})
    default = loss_fn(logits, targets, mask)
    torch.testing.assert_close(loss_fn(logits, targets, mask, count=mask.sum()), default)
    torch.testing.assert_close(loss_fn(logits, targets, mask, count=2.5 * mask.sum()), default / 2.5)


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
