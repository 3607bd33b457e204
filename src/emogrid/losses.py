"""Multi-label losses that honour the coverage mask.

Every loss takes logits, 0/1 targets and a 0/1 mask of the same shape, and returns the mean of the
element-wise loss over the *unmasked* entries: a label a dataset cannot speak about contributes
neither to the numerator nor to the denominator, so its gradient is exactly zero.

`pos_weight` (per label, optional: the ``pos_weight`` imbalance strategy) multiplies the positive term
of every loss: BCE's exactly as torch's `pos_weight`, ASL's positive term the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def masked_mean(elementwise: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the entries where mask is 1 (all entries when mask is None)."""
    if mask is None:
        return elementwise.mean()
    mask = mask.to(elementwise.dtype)
    # clamp: a batch whose entries are all masked gives loss 0, not NaN.
    return (elementwise * mask).sum() / mask.sum().clamp_min(1.0)


def bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=logits.device, dtype=torch.float32)
    elementwise = F.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), reduction="none", pos_weight=pos_weight
    )
    return masked_mean(elementwise, mask)


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., 2021), reduced by the mean over unmasked entries.

    Positives: -(1-p)^gamma_pos * log(p).  Negatives: -p_m^gamma_neg * log(1-p_m) with the shifted
    probability p_m = max(p - clip, 0), which discards easy negatives entirely.
    The focusing weights are part of the graph (the paper's formula), so gradients follow it exactly.
    """
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p
    loss_pos = targets * (1 - p).pow(gamma_pos) * torch.log(p.clamp(min=eps))
    if pos_weight is not None:
        loss_pos = loss_pos * pos_weight.to(device=logits.device, dtype=torch.float32)
    loss_neg = (1 - targets) * p_neg.pow(gamma_neg) * torch.log((1 - p_neg).clamp(min=eps))
    return masked_mean(-(loss_pos + loss_neg), mask)


def combined_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    ratio: float = 0.7,
    pos_weight: torch.Tensor | None = None,
    **asl_params: float,
) -> torch.Tensor:
    """ratio * ASL + (1 - ratio) * BCE."""
    asl = asymmetric_loss(logits, targets, mask, pos_weight=pos_weight, **asl_params)
    return ratio * asl + (1 - ratio) * bce_loss(logits, targets, mask, pos_weight)


_ASL_KEYS = ("gamma_neg", "gamma_pos", "clip", "eps")


def build_loss(spec: dict, pos_weight=None) -> LossFn:
    """Turn a config entry such as {type: asl, gamma_neg: 4} into a loss function; `pos_weight`
    (per-label weights of the positive term, or None) is bound into it."""
    kind = spec["type"]
    asl_params = {k: float(spec[k]) for k in _ASL_KEYS if k in spec}
    weights = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
    if kind == "bce":
        return lambda logits, targets, mask=None: bce_loss(logits, targets, mask, weights)
    if kind == "asl":
        return lambda logits, targets, mask=None: asymmetric_loss(
            logits, targets, mask, pos_weight=weights, **asl_params
        )
    if kind == "combined":
        ratio = float(spec.get("ratio", 0.7))
        return lambda logits, targets, mask=None: combined_loss(
            logits, targets, mask, ratio, pos_weight=weights, **asl_params
        )
    raise ValueError(f"unknown loss type {kind!r} (expected bce, asl or combined)")
