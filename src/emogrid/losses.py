"""Multi-label losses that honour the coverage mask.

Every loss takes logits, 0/1 targets and a 0/1 mask of the same shape, and returns the mean of the
element-wise loss over the *unmasked* entries: a label a dataset cannot speak about contributes
neither to the numerator nor to the denominator, so its gradient is exactly zero.

`count` (optional) replaces that denominator. Training passes the number of unmasked entries of the
whole optimizer batch (every micro-batch of a gradient-accumulation step, on every process), so the
loss is the mean over the covered entries of the optimizer batch however it is split: in a mix, rows
cover 28, 9 or 7 labels, and a per-micro-batch denominator would change each row's weight with the
micro-batch size, the accumulation steps and the GPU count (`emogrid.train.EmotionTrainer`).

`pos_weight` (per label, optional: the ``pos_weight`` imbalance strategy) multiplies the positive term
of every loss: BCE's exactly as torch's `pos_weight`, ASL's positive term the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from emogrid.settings import ASL_KEYS

LossFn = Callable[..., torch.Tensor]  # (logits, targets, mask=None, count=None) -> scalar


def masked_mean(
    elementwise: torch.Tensor, mask: torch.Tensor | None, count: torch.Tensor | float | None = None
) -> torch.Tensor:
    """Sum over the entries where mask is 1 (all entries when mask is None), divided by `count`, by
    default the number of those entries."""
    if mask is not None:
        elementwise = elementwise * mask.to(elementwise.dtype)
    if count is None:
        if mask is None:
            return elementwise.mean()
        count = mask.sum()
    count = torch.as_tensor(count, dtype=elementwise.dtype, device=elementwise.device)
    # clamp: with every entry masked the sum is 0 and so is the loss, not NaN.
    return elementwise.sum() / count.clamp_min(1e-12)


def bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
    count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=logits.device, dtype=torch.float32)
    elementwise = F.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), reduction="none", pos_weight=pos_weight
    )
    return masked_mean(elementwise, mask, count)


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    pos_weight: torch.Tensor | None = None,
    count: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., 2021), reduced by the mean over unmasked entries.

    Positives: -(1-p)^gamma_pos * log(p).  Negatives: -p_m^gamma_neg * log(1-p_m) with the shifted
    probability p_m = max(p - clip, 0), which discards easy negatives entirely.
    The focusing weights are part of the graph (the paper's formula), so gradients follow it exactly.
    Their bases are clamped at `eps` before the power: for a gamma between 0 and 1 the power's
    derivative at 0 is infinite, and a saturated logit (1 - p rounds to 0 in float32 from a logit of
    about 17) or a clipped negative would turn every gradient of the batch into NaN, masked entries'
    included. Below `eps` the weight gets no gradient; above it nothing changes.
    """
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p
    loss_pos = targets * (1 - p).clamp(min=eps).pow(gamma_pos) * torch.log(p.clamp(min=eps))
    if pos_weight is not None:
        loss_pos = loss_pos * pos_weight.to(device=logits.device, dtype=torch.float32)
    loss_neg = (1 - targets) * p_neg.clamp(min=eps).pow(gamma_neg) * torch.log((1 - p_neg).clamp(min=eps))
    return masked_mean(-(loss_pos + loss_neg), mask, count)


def combined_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    ratio: float = 0.7,
    pos_weight: torch.Tensor | None = None,
    count: torch.Tensor | float | None = None,
    **asl_params: float,
) -> torch.Tensor:
    """ratio * ASL + (1 - ratio) * BCE."""
    asl = asymmetric_loss(logits, targets, mask, pos_weight=pos_weight, count=count, **asl_params)
    return ratio * asl + (1 - ratio) * bce_loss(logits, targets, mask, pos_weight, count)


def build_loss(spec: dict, pos_weight=None) -> LossFn:
    """Turn a config entry such as {type: asl, gamma_neg: 4} into a loss function; `pos_weight`
    (per-label weights of the positive term, or None) is bound into it."""
    kind = spec["type"]
    asl_params = {k: float(spec[k]) for k in ASL_KEYS if k in spec}
    weights = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
    if kind == "bce":
        return lambda logits, targets, mask=None, count=None: bce_loss(logits, targets, mask, weights, count)
    if kind == "asl":
        return lambda logits, targets, mask=None, count=None: asymmetric_loss(
            logits, targets, mask, pos_weight=weights, count=count, **asl_params
        )
    if kind == "combined":
        ratio = float(spec.get("ratio", 0.7))
        return lambda logits, targets, mask=None, count=None: combined_loss(
            logits, targets, mask, ratio, pos_weight=weights, count=count, **asl_params
        )
    raise ValueError(f"unknown loss type {kind!r} (expected bce, asl or combined)")
