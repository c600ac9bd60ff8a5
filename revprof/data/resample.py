"""Resample a case to a target voxel spacing, and back.

The paper's pipeline resamples to 1 mm only when a case is not already at it. Images are
resampled with linear interpolation, label maps with nearest neighbour (so no new label appears),
probabilities going back to the original grid linearly before they are thresholded.

Grid convention: the centre of voxel 0 stays where it is and the new voxel step is the target
spacing, so voxel ``i`` of the new grid lies at voxel ``i * target / spacing`` of the old one along
each axis (no half-voxel shift); the new size is ``round(size * spacing / target)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from revprof.errors import RevprofError

__all__ = ["SPACING_TOLERANCE", "needs_resampling", "parse_spacing", "resample", "resampled_shape"]

SPACING_TOLERANCE = 1e-3
"""Relative difference below which a spacing counts as already at the target."""


def parse_spacing(text: str) -> tuple[float, float, float] | None:
    """``"1,1,1"`` → ``(1.0, 1.0, 1.0)``; ``"none"``/``"keep"`` → None (no resampling).

    Raises:
        RevprofError: not three positive numbers.
    """
    if text.strip().lower() in {"none", "keep", "native"}:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise RevprofError(f"--spacing must be three positive numbers in mm (e.g. 1,1,1) or none; got {text!r}")
    return values[0], values[1], values[2]


def needs_resampling(spacing: Sequence[float], target: Sequence[float] | None) -> bool:
    """Whether ``spacing`` differs from ``target`` by more than :data:`SPACING_TOLERANCE`."""
    if target is None:
        return False
    return any(abs(s - t) > SPACING_TOLERANCE * t for s, t in zip(spacing, target, strict=True))


def resampled_shape(shape: Sequence[int], spacing: Sequence[float],
                    target: Sequence[float]) -> tuple[int, int, int]:
    """Spatial shape after resampling ``shape`` from ``spacing`` to ``target`` (mm)."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target, strict=True))  # type: ignore[return-value]


def resample(array: np.ndarray, shape: Sequence[int], spacing: Sequence[float],
             target: Sequence[float], order: int) -> np.ndarray:
    """Resample the last three axes of ``array`` from ``spacing`` onto a ``target``-spaced grid.

    Args:
        array: ``(..., D, H, W)``.
        shape: the output spatial shape (:func:`resampled_shape`, or the original shape when
            going back).
        spacing: voxel size (mm) of ``array``.
        target: voxel size (mm) of the output.
        order: 1 linear (images, probabilities), 0 nearest (labels).

    Returns:
        ``(..., *shape)`` of ``array``'s dtype (float32 for linear interpolation of integers).
    """
    array = np.asarray(array)
    step = np.asarray([t / s for s, t in zip(spacing, target, strict=True)], dtype=np.float64)
    dtype = array.dtype if (order == 0 or np.issubdtype(array.dtype, np.floating)) else np.float32
    lead = array.shape[:-3]
    flat = array.reshape((-1, *array.shape[-3:]))
    out = np.empty((flat.shape[0], *(int(s) for s in shape)), dtype=dtype)
    for i, volume in enumerate(flat):
        source = volume if order == 0 or volume.dtype == dtype else volume.astype(dtype)
        ndimage.affine_transform(source, step, output_shape=tuple(int(s) for s in shape),
                                 output=out[i], order=order, mode="nearest")
    return out.reshape((*lead, *out.shape[1:]))
