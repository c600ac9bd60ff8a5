"""The losses of a training recipe (:class:`revprof.recipe.Recipe`): soft Dice, Dice plus
cross-entropy and cross-entropy, against region masks, exclusive classes or class labels, with
deep supervision over several outputs.

Every loss computes in float32 (its input cast first), so it is the same with or without
autocast. A network's output is either sigmoid probabilities (revprof's U-Nets) or logits (any
other network; see :data:`revprof.network.OutputKind`); the loss applies the sigmoid or softmax
to logits itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from revprof.recipe import Recipe

LossFn = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]
"""``loss(outputs, targets)``: one target per output, a scalar float32 tensor."""


def soft_dice(probs: torch.Tensor, target: torch.Tensor, smooth: tuple[float, float] = (1.0, 1.0),
              batch: bool = True, squared: bool = True) -> torch.Tensor:
    """Mean over channels of ``1 - soft Dice``.

    Per channel ``c``: ``dice_c = (2 Σ p t + s_nr) / (Σ p² + Σ t² + s_dr)`` (``squared``; else
    ``Σ p + Σ t``), summed over the whole batch (``batch``) or per sample and then averaged.

    Args:
        probs: probabilities ``(B, C, *S)``, float32.
        target: masks ``(B, C, *S)`` of 0 and 1 (float or bool).
        smooth: ``(s_nr, s_dr)``; ``(1, 1)`` keeps empty channels at Dice 1.

    Returns:
        A scalar tensor in ``[0, 1]`` (``[-s_nr/s_dr ...]`` edge cases aside), float32.
    """
    target = target.to(probs.dtype)
    dims = (0, *range(2, probs.dim())) if batch else tuple(range(2, probs.dim()))
    intersection = (probs * target).sum(dims)
    if squared:
        denominator = (probs * probs).sum(dims) + (target * target).sum(dims)
    else:
        denominator = probs.sum(dims) + target.sum(dims)
    dice = (2 * intersection + smooth[0]) / (denominator + smooth[1])
    return 1 - dice.mean()


def soft_dice_loss(probs: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """The paper's loss: :func:`soft_dice` of sigmoid probabilities ``(B, 3, D, H, W)`` against
    the three region masks, batch Dice, squared sums, smoothing ``smooth`` on both sides."""
    return soft_dice(probs.float(), target, (smooth, smooth))


def _region_probs(output: torch.Tensor, kind: str) -> torch.Tensor:
    output = output.float()
    return output if kind == "probabilities" else torch.sigmoid(output)


_BCE_FLOOR = 1e-12
"""The smallest ``p`` and ``1 - p`` a probability cross-entropy takes the log of (the bound
``binary_cross_entropy``'s gradient uses)."""


def _region_ce(output: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Binary cross-entropy per region channel, mean over voxels (logits: with the sigmoid folded
    in, as ``BCEWithLogitsLoss``; probabilities: ``-(t log p + (1 - t) log(1 - p))``, written out
    in elementwise ops because ``binary_cross_entropy``'s CPU kernel keeps a per-voxel buffer its
    fake-tensor kernel does not, so a measurement could not be exact).

    ``p`` and ``1 - p`` are clamped at :data:`_BCE_FLOOR` *before* the log: a sigmoid that
    saturates to exactly 0 or 1 then gets a zero gradient, and one just inside gets at most
    ``1 / _BCE_FLOOR``, as ``binary_cross_entropy``'s own gradient is bounded. (Clamping the log's
    value instead, at -100 as that op's forward does, multiplies a zero gradient by an infinite
    one in backward: NaN after a few steps on real BraTS cases.) Each log is thereby at least
    ``log(1e-12)`` = -27.6 rather than -100, which only changes voxels predicted wrongly with
    certainty."""
    target = target.to(torch.float32)
    if kind == "probabilities":
        probs = output.float()
        positive = target * torch.log(probs.clamp_min(_BCE_FLOOR))
        negative = (1 - target) * torch.log((1 - probs).clamp_min(_BCE_FLOOR))
        return -(positive + negative).mean()
    return F.binary_cross_entropy_with_logits(output.float(), target)


def _class_dice(logits: torch.Tensor, labels: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Soft Dice over the foreground classes of a softmax (class 0, the background, left out)."""
    probs = torch.softmax(logits, 1)[:, 1:]
    onehot = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    onehot.scatter_(1, labels.unsqueeze(1), True)
    return soft_dice(probs, onehot[:, 1:], recipe.dice_smooth, recipe.batch_dice, recipe.dice_squared)


def single_loss(recipe: Recipe, kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss of one output against one target, as ``recipe`` and the network's output ``kind``
    (``probabilities`` or ``logits``) say.

    - ``regions``: output ``(B, C, *S)``, target masks ``(B, C, *S)``; ``dice`` soft Dice of the
      sigmoid, ``dice_ce`` plus binary cross-entropy (nnU-Net's ``DC_and_BCE_loss``), ``ce``
      binary cross-entropy alone.
    - ``classes``: logits ``(B, C, *S)``, class indices ``(B, *S)`` int64; ``dice`` soft Dice of
      the softmax over the foreground classes, ``dice_ce`` plus cross-entropy over all
      (``DC_and_CE_loss``), ``ce`` cross-entropy alone.
    - ``labels``: logits ``(B, K)``, one index per sample ``(B,)``; ``ce`` only.
    """
    loss, targets = recipe.loss, recipe.targets

    def regions(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if loss == "ce":
            return _region_ce(output, target, kind)
        dice = soft_dice(_region_probs(output, kind), target, recipe.dice_smooth, recipe.batch_dice,
                         recipe.dice_squared)
        return dice if loss == "dice" else dice + _region_ce(output, target, kind)

    def classes(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = output.float()
        if loss == "ce":
            return F.cross_entropy(logits, target)
        dice = _class_dice(logits, target, recipe)
        return dice if loss == "dice" else dice + F.cross_entropy(logits, target)

    def labels(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output.float(), target)

    return {"regions": regions, "classes": classes, "labels": labels}[targets]


def make_loss(recipe: Recipe, kind: str) -> LossFn:
    """``loss(outputs, targets)``: :func:`single_loss` on each output against its target, weighted
    by :meth:`revprof.recipe.Recipe.ds_weights` (outputs weighted 0 are skipped, as nnU-Net's
    ``DeepSupervisionWrapper`` does)."""
    single = single_loss(recipe, kind)

    def loss(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(outputs) == 1:
            return single(outputs[0], targets[0])
        weights = recipe.ds_weights(len(outputs))
        terms = [w * single(o, t) for w, o, t in zip(weights, outputs, targets, strict=True) if w != 0.0]
        return sum(terms[1:], terms[0])

    return loss
