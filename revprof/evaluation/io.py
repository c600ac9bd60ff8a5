"""Read a segmentation (label map) from a NIfTI file for evaluation.

Deliberately small and independent of revprof's training data loaders.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from revprof.errors import RevprofError

__all__ = ["Segmentation", "load_segmentation"]


@dataclass(frozen=True)
class Segmentation:
    """A label map as read from disk.

    Attributes:
        labels: integer label map ``(D, H, W)`` (``uint8`` when the labels fit, else ``int32``);
            float and other integer files are rounded to the nearest integer.
        spacing: voxel size in mm of the three axes, from the NIfTI header.
        affine: ``(4, 4)`` voxel-to-world matrix.
    """

    labels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray


def load_segmentation(path: Path) -> Segmentation:
    """Load a NIfTI label map.

    A 4-D file with trailing singleton axes (``(D, H, W, 1)``) is squeezed to 3-D.

    Raises:
        RevprofError: unreadable or not 3-D, or holding non-finite values.
    """
    path = Path(path)
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as error:
        raise RevprofError(f"cannot read segmentation {path}: {error}") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise RevprofError(f"segmentation {path} must be 3-D; got shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating):
        if not np.isfinite(data).all():
            raise RevprofError(f"segmentation {path} holds NaN or infinite values")
        data = np.rint(data)
    elif not np.issubdtype(data.dtype, np.integer) and data.dtype != np.bool_:
        raise RevprofError(f"segmentation {path} has non-numeric data type {data.dtype}")
    low, high = (int(data.min()), int(data.max())) if data.size else (0, 0)
    dtype = np.uint8 if 0 <= low and high <= 255 else np.int32
    labels = np.asarray(data.astype(dtype, copy=False))  # keep the on-disk (Fortran) order: no copy
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    spacing = zooms if len(zooms) == 3 and all(z > 0 for z in zooms) else (1.0, 1.0, 1.0)
    return Segmentation(labels=labels, spacing=spacing, affine=np.asarray(image.affine))
