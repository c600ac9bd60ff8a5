"""The training loss of the paper: soft Dice over the three region channels."""

from __future__ import annotations

import torch


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over regions of ``1 - soft Dice``, as the paper trains.

    Per region channel ``c`` over the whole batch: ``dice_c = (2 Σ p t + s) / (Σ p² + Σ t² + s)``.

    Args:
        probs: sigmoid probabilities ``(B, 3, D, H, W)``.
        target: region masks ``(B, 3, D, H, W)`` of 0 and 1 (any float or bool dtype).
        smooth: additive smoothing ``s``; keeps empty regions at Dice 1.

    Returns:
        A scalar tensor in ``[0, 1]``, float32 (computed in float32 under autocast).
    """
    probs = probs.float()
    target = target.to(probs.dtype)
    dims = (0, *range(2, probs.dim()))
    intersection = (probs * target).sum(dims)
    denominator = (probs * probs).sum(dims) + (target * target).sum(dims)
    dice = (2 * intersection + smooth) / (denominator + smooth)
    return 1 - dice.mean()
