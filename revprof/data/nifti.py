"""Read one case's NIfTI files into arrays, checking everything a real download can get wrong.

Arrays keep NIfTI voxel order: a file of shape ``(240, 240, 155)`` gives ``(D, H, W) =
(240, 240, 155)``. No reorientation is done; every file of a case must share shape and affine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from revprof.data.conventions import get_convention
from revprof.data.layouts import Case
from revprof.errors import RevprofError

AFFINE_TOLERANCE = 1e-3
"""Largest absolute difference (mm) tolerated between the affines of one case's files."""


@dataclass
class LoadedCase:
    """A case's voxels.

    Attributes:
        case: where the data came from.
        image: float32 ``(4, D, H, W)`` in revprof channel order (FLAIR, T1, T1ce, T2).
        labels: uint8 label map ``(D, H, W)`` in ``case.convention``, or None without segmentation.
        affine: ``(4, 4)`` voxel-to-world matrix of the first image.
        spacing: voxel size in mm along D, H, W.
        header: NIfTI header of the first image.
    """

    case: Case
    image: np.ndarray
    labels: np.ndarray | None
    affine: np.ndarray
    spacing: tuple[float, float, float]
    header: nib.Nifti1Header

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(D, H, W)``."""
        return tuple(int(s) for s in self.image.shape[1:])  # type: ignore[return-value]


def open_nifti(path: Path, case_id: str) -> nib.Nifti1Image:
    """Open a NIfTI file (header only; voxels are read lazily).

    Raises:
        RevprofError: missing, unreadable or not a NIfTI file; the message names case and file.
    """
    if not path.is_file():
        raise RevprofError(f"case {case_id}: file {path} does not exist")
    try:
        image = nib.load(os.fspath(path))
    except Exception as error:  # nibabel raises many types for broken files
        raise RevprofError(f"case {case_id}: cannot read file {path}: {_reason(error)}") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise RevprofError(f"case {case_id}: file {path} is not a NIfTI image")
    return image  # type: ignore[return-value]


def read_voxels(
    image: nib.Nifti1Image, path: Path, case_id: str, dtype: type | None = np.float32
) -> np.ndarray:
    """Read every voxel of an opened file (with its scaling applied) as ``dtype`` (None: as stored).

    Raises:
        RevprofError: the data are truncated or corrupt (e.g. a cut-off ``.nii.gz``).
    """
    try:
        return np.asarray(image.dataobj, dtype=dtype)
    except Exception as error:
        raise RevprofError(
            f"case {case_id}: cannot read the voxels of file {path} (truncated or corrupt?): "
            f"{_reason(error)}"
        ) from None


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def _spacing(image: nib.Nifti1Image) -> tuple[float, float, float]:
    zooms = image.header.get_zooms()[:3]
    return tuple(float(z) for z in zooms)  # type: ignore[return-value]


def labels_to_uint8(seg: np.ndarray, path: Path, case_id: str) -> np.ndarray:
    """Round a segmentation stored as float or any integer type to a uint8 label map.

    Raises:
        RevprofError: values that are not (close to) integers in 0..255.
    """
    seg = np.asarray(seg)
    if np.issubdtype(seg.dtype, np.floating):
        if not np.all(np.isfinite(seg)):
            raise RevprofError(f"case {case_id}: segmentation {path} holds NaN or infinite values")
        rounded = np.rint(seg)
        worst = float(np.max(np.abs(seg - rounded))) if seg.size else 0.0
        if worst > 1e-3:
            raise RevprofError(
                f"case {case_id}: segmentation {path} holds non-integer label values "
                f"(off by up to {worst:.3g}); expected integer labels"
            )
        seg = rounded
    low, high = (float(seg.min()), float(seg.max())) if seg.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise RevprofError(
            f"case {case_id}: segmentation {path} holds label values outside 0..255 "
            f"(min {low:g}, max {high:g})"
        )
    return seg.astype(np.uint8)


def load_case(case: Case, *, with_labels: bool = True) -> LoadedCase:
    """Load a case's four modalities and, when present, its segmentation.

    Args:
        case: a case found by :func:`revprof.data.discover`.
        with_labels: also read the segmentation (when the case has one).

    Returns:
        :class:`LoadedCase` with image ``(4, D, H, W)`` float32 and labels ``(D, H, W)`` uint8.

    Raises:
        RevprofError: unreadable or truncated file, a modality whose shape or affine differs
            from the others, a segmentation whose shape or affine differs from the images, or
            label values the case's convention does not define. The message names case and file.
    """
    cid = case.case_id
    if case.packed:
        path = case.images[0]
        nii = open_nifti(path, cid)
        if len(nii.shape) != 4 or nii.shape[3] != 4:
            raise RevprofError(
                f"case {cid}: file {path} has shape {tuple(nii.shape)}; expected a 4-D "
                "Decathlon image (H, W, D, 4)"
            )
        data = read_voxels(nii, path, cid)
        image = np.ascontiguousarray(np.moveaxis(data, -1, 0))
        first, first_path = nii, path
    else:
        channels = []
        first, first_path = None, case.images[0]
        for path in case.images:
            nii = open_nifti(path, cid)
            if len(nii.shape) != 3:
                raise RevprofError(
                    f"case {cid}: file {path} has shape {tuple(nii.shape)}; expected a 3-D image"
                )
            if first is None:
                first = nii
            else:
                _same_grid(first, first_path, nii, path, cid, what="image")
            channels.append(read_voxels(nii, path, cid))
        image = np.stack(channels)
    assert first is not None

    labels = None
    if with_labels and case.seg is not None:
        seg_nii = open_nifti(case.seg, cid)
        seg_shape = tuple(seg_nii.shape)
        if len(seg_shape) == 4 and seg_shape[3] == 1:
            seg_shape = seg_shape[:3]
        if seg_shape != image.shape[1:]:
            raise RevprofError(
                f"case {cid}: segmentation {case.seg} has shape {seg_shape}, but the images "
                f"have shape {tuple(image.shape[1:])}"
            )
        _same_affine(first, first_path, seg_nii, case.seg, cid, what="segmentation")
        raw = read_voxels(seg_nii, case.seg, cid, dtype=None)
        labels = labels_to_uint8(raw.reshape(seg_shape), case.seg, cid)
        check_labels(labels, case, case.seg)

    return LoadedCase(
        case=case,
        image=image.astype(np.float32, copy=False),
        labels=labels,
        affine=np.asarray(first.affine, dtype=np.float64),
        spacing=_spacing(first),
        header=first.header,
    )


def check_labels(labels: np.ndarray, case: Case, path: Path) -> None:
    """Raise when ``labels`` hold values that ``case.convention`` does not define."""
    convention = get_convention(case.convention)
    unknown = convention.unknown_labels(labels)
    if unknown:
        valid = ", ".join(str(v) for v in sorted(convention.labels))
        hint = ""
        if case.convention == "brats2023" and unknown == [4]:
            hint = " (label 4 is the resection cavity of BraTS 2024: use --convention brats2024)"
        elif case.convention == "brats2021" and 3 in unknown and 4 not in unknown:
            hint = " (labels 1-3 look like BraTS 2023: use --convention brats2023)"
        raise RevprofError(
            f"case {case.case_id}: segmentation {path} holds label values "
            f"{', '.join(str(v) for v in unknown)} that the {case.convention} convention does "
            f"not define (valid: {valid}){hint}"
        )


def _same_affine(ref: nib.Nifti1Image, ref_path: Path, other: nib.Nifti1Image, path: Path,
                 cid: str, what: str) -> None:
    if not np.allclose(ref.affine, other.affine, atol=AFFINE_TOLERANCE, rtol=0):
        raise RevprofError(
            f"case {cid}: {what} {path} has a different affine (voxel-to-world matrix) than "
            f"{ref_path.name}; the files must share one grid"
        )


def _same_grid(ref: nib.Nifti1Image, ref_path: Path, other: nib.Nifti1Image, path: Path,
               cid: str, what: str) -> None:
    if tuple(other.shape) != tuple(ref.shape):
        raise RevprofError(
            f"case {cid}: {what} {path} has shape {tuple(other.shape)}, but {ref_path.name} "
            f"has shape {tuple(ref.shape)}"
        )
    _same_affine(ref, ref_path, other, path, cid, what)


__all__ = ["LoadedCase", "check_labels", "labels_to_uint8", "load_case", "open_nifti", "read_voxels"]
