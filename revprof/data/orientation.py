"""Bring a voxel array onto another file's grid when the two differ only by axis order and flips.

Two NIfTI files can describe the same voxels in world space with different voxel orders: a
prediction written as LPS next to an RAS reference, or with two axes swapped. Comparing such arrays
as stored compares different anatomy. :func:`align_to_grid` reorients the array with nibabel's
orientation tools (``io_orientation``, ``ornt_transform``, ``apply_orientation``) when the result
lands exactly on the target grid (same shape, and the same affine within
:data:`GRID_TOLERANCE_MM`), and refuses otherwise with one line naming both orientation codes
(``aff2axcodes``), spacings, shapes and origins.

No resampling is ever done here: a grid that really differs (other spacing, shape or origin) is an
error, not something to interpolate silently.
"""

from __future__ import annotations

import numpy as np
from nibabel.orientations import (
    aff2axcodes,
    apply_orientation,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

from revprof.errors import RevprofError

__all__ = ["GRID_TOLERANCE_MM", "align_to_grid", "describe_grid", "orientation_code", "same_grid"]

GRID_TOLERANCE_MM = 1e-3
"""Largest absolute difference (mm) between two affines' entries that still counts as one grid."""


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]


def orientation_code(affine: np.ndarray) -> str:
    """The axis codes of an affine's voxel axes, e.g. ``"LPS"`` for BraTS's diag(-1, -1, 1)."""
    return "".join(c or "?" for c in aff2axcodes(np.asarray(affine)))


def describe_grid(affine: np.ndarray, shape: tuple[int, ...]) -> str:
    """``"RAS 1x1x1 mm, shape (240, 240, 155), origin (0, -239, 0)"`` for messages."""
    codes = orientation_code(affine)
    spacing = "x".join(f"{s:.4g}" for s in _spacing(affine))
    origin = ", ".join(f"{v:.4g}" for v in np.asarray(affine)[:3, 3])
    return f"{codes} {spacing} mm, shape {tuple(int(s) for s in shape[:3])}, origin ({origin})"


def same_grid(affine: np.ndarray, shape: tuple[int, ...], target_affine: np.ndarray,
              target_shape: tuple[int, ...], tolerance: float = GRID_TOLERANCE_MM) -> bool:
    """Whether two (affine, spatial shape) pairs describe the same voxel grid as stored."""
    return (tuple(shape[:3]) == tuple(target_shape[:3])
            and bool(np.allclose(affine, target_affine, atol=tolerance, rtol=0)))


def align_to_grid(data: np.ndarray, affine: np.ndarray, target_affine: np.ndarray,
                  target_shape: tuple[int, ...], what: str, target: str = "the reference",
                  tolerance: float = GRID_TOLERANCE_MM) -> tuple[np.ndarray, str | None]:
    """Reorient ``data`` (spatial axes first) onto the target grid, or refuse.

    Args:
        data: array ``(X, Y, Z, ...)`` on the grid of ``affine``.
        affine: its ``(4, 4)`` voxel-to-world matrix.
        target_affine: the grid to land on.
        target_shape: the target's spatial shape ``(X', Y', Z')``.
        what: how to name ``data`` in messages (e.g. ``"prediction 00132-000.nii.gz"``).
        target: how to name the target grid in messages.
        tolerance: :data:`GRID_TOLERANCE_MM`.

    Returns:
        ``(array on the target grid, note)``; the note says what was reoriented, ``None`` when the
        grids were already the same (then ``data`` is returned unchanged, no copy).

    Raises:
        RevprofError: the grids differ by more than axis order and flips (spacing, shape or
            origin), naming both grids' orientation codes, spacings, shapes and origins.
    """
    affine = np.asarray(affine, dtype=np.float64)
    target_affine = np.asarray(target_affine, dtype=np.float64)
    shape = tuple(int(s) for s in data.shape[:3])
    target_shape = tuple(int(s) for s in target_shape[:3])
    if same_grid(affine, shape, target_affine, target_shape, tolerance):
        return data, None
    transform = ornt_transform(io_orientation(affine), io_orientation(target_affine))
    new_shape = tuple(shape[int(axis)] for axis in np.argsort(transform[:, 0]))
    new_affine = affine @ inv_ornt_aff(transform, shape)
    if not same_grid(new_affine, new_shape, target_affine, target_shape, tolerance):
        raise RevprofError(
            f"{what} is on another grid than {target} ({describe_grid(affine, shape)} vs "
            f"{describe_grid(target_affine, target_shape)}): spacing, shape or origin differ, "
            "so it is not a reorientation of it; resample it onto that grid first"
        )
    moved = np.ascontiguousarray(apply_orientation(data, transform))
    return moved, (f"{what} reoriented from {orientation_code(affine)} to "
                   f"{orientation_code(target_affine)} (same grid in world space)")
