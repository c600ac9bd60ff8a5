"""Dice similarity coefficient as the BraTS challenges score it — the one Dice in revprof.

Conventions (BraTS 2021 and later, per region and per case):

- both masks empty → 1.0 (the model correctly predicts "no such region");
- exactly one mask empty → 0.0;
- otherwise ``2 |P ∩ R| / (|P| + |R|)``.

Every function accepts NumPy arrays or torch tensors (any device) of boolean masks, so the training
loop can pass ``probs > 0.5`` straight from the GPU: the counts are reduced on the tensor's own
device and only three scalars per case travel to the host. Nothing is copied to NumPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard, Union

import numpy as np

from revprof.data.conventions import REGIONS
from revprof.errors import RevprofError

if TYPE_CHECKING:
    import torch

Mask = Union[np.ndarray, "torch.Tensor"]
"""A boolean mask (NumPy array or torch tensor). Integer masks count non-zero voxels as foreground."""

__all__ = ["Mask", "dice_from_counts", "dice_per_case", "dice_score", "region_dice"]


def _is_tensor(x: object) -> TypeGuard[torch.Tensor]:
    return type(x).__module__.startswith("torch") and hasattr(x, "device")


def _as_bool(x: Mask, what: str) -> Mask:
    """Return ``x`` as a boolean mask without copying boolean input.

    Floating-point input is rejected: a probability map must be thresholded by the caller.
    """
    if _is_tensor(x):
        import torch

        if x.dtype == torch.bool:
            return x
        if x.is_floating_point() or x.is_complex():
            raise RevprofError(
                f"{what} must be a boolean mask; got a {x.dtype} tensor (threshold it first, "
                "e.g. probs > 0.5)"
            )
        return x != 0
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        raise RevprofError(
            f"{what} must be a boolean mask; got a {arr.dtype} array (threshold it first, "
            "e.g. probs > 0.5)"
        )
    return arr != 0


def _match(pred: Mask, ref: Mask) -> tuple[Mask, Mask]:
    """Bring both masks to boolean and to the same library (torch wins, on ``pred``'s device)."""
    pred_t, ref_t = _is_tensor(pred), _is_tensor(ref)
    if pred_t or ref_t:
        import torch

        device = pred.device if _is_tensor(pred) else ref.device
        pred = pred if _is_tensor(pred) else torch.as_tensor(np.asarray(pred), device=device)
        ref = ref if _is_tensor(ref) else torch.as_tensor(np.asarray(ref), device=device)
        if ref.device != pred.device:
            ref = ref.to(pred.device)
    pred, ref = _as_bool(pred, "prediction"), _as_bool(ref, "reference")
    if tuple(pred.shape) != tuple(ref.shape):
        raise RevprofError(
            f"prediction shape {tuple(pred.shape)} does not match reference shape {tuple(ref.shape)}"
        )
    return pred, ref


def _counts(pred: Mask, ref: Mask, dims: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection, |pred| and |ref| summed over ``dims``, as int64 NumPy arrays."""
    if _is_tensor(pred):
        import torch

        assert _is_tensor(ref)  # _match gives both masks the same library
        with torch.no_grad():
            inter = torch.logical_and(pred, ref).sum(dim=dims, dtype=torch.int64)
            n_pred = pred.sum(dim=dims, dtype=torch.int64)
            n_ref = ref.sum(dim=dims, dtype=torch.int64)
            stacked = torch.stack([inter, n_pred, n_ref]).cpu().numpy()
        return stacked[0], stacked[1], stacked[2]
    return (
        np.asarray(np.count_nonzero(np.logical_and(pred, ref), axis=dims), dtype=np.int64),
        np.asarray(np.count_nonzero(pred, axis=dims), dtype=np.int64),
        np.asarray(np.count_nonzero(ref, axis=dims), dtype=np.int64),
    )


def dice_from_counts(intersection: np.ndarray | int, n_pred: np.ndarray | int,
                     n_ref: np.ndarray | int) -> np.ndarray:
    """Dice from voxel counts with the BraTS empty-mask rules (both empty → 1).

    Args:
        intersection: ``|P ∩ R|``, any shape.
        n_pred: ``|P|``, same shape.
        n_ref: ``|R|``, same shape.

    Returns:
        float64 array of the broadcast shape (0-d for scalars).
    """
    inter = np.asarray(intersection, dtype=np.float64)
    total = np.asarray(n_pred, dtype=np.float64) + np.asarray(n_ref, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total > 0, 2.0 * inter / np.where(total > 0, total, 1.0), 1.0)
    return dice


def dice_score(pred: Mask, ref: Mask) -> float:
    """Dice of two boolean masks of the same shape ``(...)``, BraTS empty rules.

    Args:
        pred: predicted mask, any shape (bool; integer → non-zero is foreground).
        ref: reference mask, same shape.

    Returns:
        Dice in ``[0, 1]``; 1.0 when both are empty, 0.0 when exactly one is.

    Raises:
        RevprofError: shapes differ, or a mask is floating point (not thresholded).
    """
    pred, ref = _match(pred, ref)
    dims = tuple(range(len(pred.shape)))
    if not dims:  # 0-d masks
        pred, ref = pred.reshape(1), ref.reshape(1)
        dims = (0,)
    inter, n_pred, n_ref = _counts(pred, ref, dims)
    return float(dice_from_counts(inter, n_pred, n_ref))


def dice_per_case(pred_masks: Mask, ref_masks: Mask) -> np.ndarray:
    """Per-case, per-region Dice of stacked region masks.

    Args:
        pred_masks: boolean ``(3, D, H, W)`` or ``(B, 3, D, H, W)`` WT, TC, ET masks.
        ref_masks: same shape.

    Returns:
        float64 array ``(B, 3)`` (``B = 1`` for unbatched input).
    """
    pred, ref = _match(pred_masks, ref_masks)
    shape = tuple(pred.shape)
    if len(shape) == 4 and shape[0] == len(REGIONS):
        pred, ref = pred[None], ref[None]  # (1, 3, D, H, W)
    elif not (len(shape) == 5 and shape[1] == len(REGIONS)):
        raise RevprofError(
            f"region masks must have shape (3, D, H, W) or (B, 3, D, H, W); got {shape}"
        )
    dims = tuple(range(2, len(pred.shape)))
    inter, n_pred, n_ref = _counts(pred, ref, dims)
    return dice_from_counts(inter, n_pred, n_ref).reshape(-1, len(REGIONS))


def region_dice(pred_masks: Mask, ref_masks: Mask) -> dict[str, float]:
    """Dice per region ``wt``, ``tc``, ``et``.

    Args:
        pred_masks: boolean ``(3, D, H, W)``, or ``(B, 3, D, H, W)`` for a batch.
        ref_masks: same shape.

    Returns:
        ``{"wt": ..., "tc": ..., "et": ...}``. For a batch each value is the mean over the ``B``
        cases of the per-case Dice (as the challenges average), not a Dice of the pooled voxels.
    """
    per_case = dice_per_case(pred_masks, ref_masks)
    means = per_case.mean(axis=0)
    return {region: float(means[i]) for i, region in enumerate(REGIONS)}
