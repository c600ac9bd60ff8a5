"""Training losses: the paper's soft Dice over the three region channels, and the Dice (sigmoid
regions) and Dice + cross-entropy (softmax classes) losses of factory networks, with deep supervision."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Softmax classes: soft Dice over the foreground classes plus cross-entropy over all (nnU-Net's
    ``DC_and_CE_loss`` with ``do_bg=False``, batch Dice).

    Args:
        logits: ``(B, C, D, H, W)``, ``C >= 2`` (class 0 is the background).
        labels: ``(B, D, H, W)`` class indices, int64.

    Returns:
        A scalar float32 tensor: ``1 - mean foreground Dice + cross-entropy``.
    """
    logits = logits.float()
    probs = torch.softmax(logits, 1)[:, 1:]
    onehot = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    onehot.scatter_(1, labels.unsqueeze(1), True)
    onehot = onehot[:, 1:]
    dims = (0, *range(2, probs.dim()))
    intersection = (probs * onehot).sum(dims)
    denominator = (probs * probs).sum(dims) + onehot.sum(dims)
    dice = (2 * intersection + smooth) / (denominator + smooth)
    return 1 - dice.mean() + torch.nn.functional.cross_entropy(logits, labels)


def region_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sigmoid regions: :func:`soft_dice_loss` of ``sigmoid(logits)`` (``(B, C, D, H, W)`` each)."""
    return soft_dice_loss(torch.sigmoid(logits.float()), target)


def deep_supervision_weights(outputs: int) -> list[float]:
    """nnU-Net's deep-supervision weights: ``1/2**i`` per output (full resolution first), the lowest
    resolution set to 0 when there are several, normalised to sum 1."""
    weights = [1 / 2 ** i for i in range(outputs)]
    if outputs > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


def deep_supervision_loss(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                          outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i w_i * loss(outputs[i], targets[i])`` with :func:`deep_supervision_weights`; outputs
    whose weight is 0 are skipped, as nnU-Net's ``DeepSupervisionWrapper`` does."""
    weights = deep_supervision_weights(len(outputs))
    terms = [w * loss(o, t) for w, o, t in zip(weights, outputs, targets, strict=True) if w != 0.0]
    return sum(terms[1:], terms[0])
