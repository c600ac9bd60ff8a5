"""Read a segmentation (label map) from a NIfTI file for evaluation.

The label values are checked by the same function training uses
(:func:`revprof.data.nifti.to_label_map`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from revprof.data.nifti import open_nifti, read_voxels, spacing_of, to_label_map
from revprof.errors import RevprofError

__all__ = ["Segmentation", "load_segmentation"]


@dataclass(frozen=True)
class Segmentation:
    """A label map as read from disk.

    Attributes:
        labels: integer label map ``(D, H, W)`` (``uint8`` when the labels fit, else ``int32``);
            float files holding integral values (within 1e-3) become integers.
        spacing: voxel size in mm of the three axes, from the NIfTI header.
        affine: ``(4, 4)`` voxel-to-world matrix.
    """

    labels: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray


def load_segmentation(path: Path, convention: str | None = None) -> Segmentation:
    """Load a NIfTI label map.

    A 4-D file with trailing singleton axes (``(D, H, W, 1)``) is squeezed to 3-D. The values go
    through :func:`revprof.data.nifti.to_label_map`, the label loader training uses too.

    Args:
        path: the file.
        convention: when given, labels outside this convention's label set are refused.

    Raises:
        RevprofError: unreadable, a damaged header (:func:`revprof.data.nifti.check_header`), or
            not 3-D; NaN/infinite or non-integral values (a probability
            map is refused, not rounded); labels the convention does not define.
    """
    path = Path(path)
    image = open_nifti(path)
    data = read_voxels(image, path, dtype=None)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise RevprofError(f"segmentation {path} must be 3-D; got shape {data.shape}")
    labels = to_label_map(data, path, convention)  # keeps the on-disk (Fortran) order
    return Segmentation(labels=labels, spacing=spacing_of(image),
                        affine=np.asarray(image.affine, dtype=np.float64))
