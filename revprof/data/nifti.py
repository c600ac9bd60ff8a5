"""Read one case's NIfTI files into arrays, checking everything a real download can get wrong.

Arrays keep the NIfTI voxel order of the case's first image: a file of shape ``(240, 240, 155)``
gives ``(D, H, W) = (240, 240, 155)``. Another file of the case stored in another orientation of
the same grid (LPS instead of RAS, axes swapped) is reoriented onto the first image's grid and the
case says so in :attr:`LoadedCase.notes`; a file on a really different grid is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from revprof.data.conventions import get_convention
from revprof.data.layouts import Case
from revprof.data.orientation import align_to_grid
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
        notes: what was adjusted, one line each (e.g. a file reoriented onto the first image's grid).
    """

    case: Case
    image: np.ndarray
    labels: np.ndarray | None
    affine: np.ndarray
    spacing: tuple[float, float, float]
    header: nib.Nifti1Header
    notes: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(D, H, W)``."""
        return tuple(int(s) for s in self.image.shape[1:])  # type: ignore[return-value]


class HeaderError(RevprofError):
    """A NIfTI header whose voxel size or affine describes no grid (:func:`check_header`)."""


def open_nifti(path: Path, case_id: str | None = None) -> nib.Nifti1Image:
    """Open a NIfTI file (header only; voxels are read lazily) and check its header's geometry.

    Every reader of a header (training, ``data check``, ``evaluate``, ``predict``) opens files
    here, so a voxel size or affine that cannot describe a grid is one line naming the file
    (:func:`check_header`), never an error deep inside nibabel or NumPy.

    Raises:
        RevprofError: missing, unreadable or not a NIfTI file, or a damaged header; the message
            names the case (when given) and the file.
    """
    prefix = f"case {case_id}: " if case_id is not None else ""
    if not path.is_file():
        raise RevprofError(f"{prefix}file {path} does not exist")
    try:
        image = nib.load(os.fspath(path))
    except Exception as error:  # nibabel raises many types for broken files
        raise RevprofError(f"{prefix}cannot read file {path}: {_reason(error)}") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise RevprofError(f"{prefix}file {path} is not a NIfTI image")
    problem = check_header(image)
    if problem is not None:
        raise HeaderError(f"{prefix}file {path}: {problem}; the header is damaged (rewrite "
                           "it with the right voxel size and orientation)")
    return image


def check_header(image: nib.Nifti1Image) -> str | None:
    """What is wrong with a NIfTI header's geometry, or None when it describes a grid.

    The voxel size (``pixdim``) must be three positive finite numbers, and the voxel-to-world
    affine nibabel takes (sform, else qform, else one built from ``pixdim``) finite with three
    independent axes (not singular, e.g. not all zero). Both are needed: the spacing for
    resampling and HD95, the affine for orientation and for writing predictions.
    """
    header = image.header
    zooms = tuple(float(z) for z in header.get_zooms()[:3])
    if len(zooms) < 3 or not all(np.isfinite(z) and z > 0 for z in zooms):
        shown = " x ".join(f"{z:g}" for z in zooms)
        return f"voxel size (pixdim) {shown} is not three positive numbers (mm)"
    source = ("sform" if int(header["sform_code"]) > 0
              else "qform" if int(header["qform_code"]) > 0 else "pixdim")
    try:
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # a qform nibabel cannot turn into a matrix
        return f"the {source} affine cannot be read ({_reason(error)})"
    axes = affine[:3, :3]
    if not np.all(np.isfinite(affine)):
        return f"the {source} affine holds NaN or infinite values"
    lengths = np.linalg.norm(axes, axis=0)
    if not np.all(lengths > 0) or abs(np.linalg.det(axes)) <= SINGULAR_TOLERANCE * np.prod(lengths):
        rows = "; ".join(" ".join(f"{v:g}" for v in row) for row in axes)
        return (f"the {source} affine is singular (axes [{rows}] do not span three dimensions), "
                "so it has no orientation")
    return None


SINGULAR_TOLERANCE = 1e-6
"""An affine whose axes span less than this fraction of the box of their lengths is singular."""


def read_voxels(
    image: nib.Nifti1Image, path: Path, case_id: str | None = None, dtype: type | None = np.float32
) -> np.ndarray:
    """Read every voxel of an opened file (with its scaling applied) as ``dtype`` (None: as stored).

    Raises:
        RevprofError: the data are truncated or corrupt (e.g. a cut-off ``.nii.gz``).
    """
    try:
        return np.asarray(image.dataobj, dtype=dtype)
    except Exception as error:
        prefix = f"case {case_id}: " if case_id is not None else ""
        raise RevprofError(
            f"{prefix}cannot read the voxels of file {path} (truncated or corrupt?): "
            f"{_reason(error)}"
        ) from None


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def spacing_of(image: nib.Nifti1Image) -> tuple[float, float, float]:
    """The voxel size in mm of a file opened by :func:`open_nifti` (its header checked)."""
    zooms = image.header.get_zooms()[:3]
    return tuple(float(z) for z in zooms)  # type: ignore[return-value]


LABEL_TOLERANCE = 1e-3
"""Largest distance of a stored label value from the nearest integer that still counts as a label."""


def _values(values: np.ndarray, limit: int = 6) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:limit])
    return shown + (f", ... ({len(values)} distinct)" if len(values) > limit else "")


def to_label_map(seg: np.ndarray, path: Path, convention: str | None = None,
                 case_id: str | None = None) -> np.ndarray:
    """The one label loader: check a stored segmentation and return it as an integer label map.

    Used by training (:func:`load_case`) and evaluation alike. A label map must hold integral
    values (within :data:`LABEL_TOLERANCE`, so ``2.9999`` stored as float32 is label 3) and, when
    ``convention`` is given, only that convention's labels. A probability map or a scaled
    segmentation (values such as 0.45) is refused, never rounded.

    Args:
        seg: the stored voxels ``(D, H, W)``, any numeric dtype (scaling already applied).
        path: the file, for messages.
        convention: label convention name whose label set the values must belong to.
        case_id: prefix messages with ``case <id>:``.

    Returns:
        ``uint8`` label map ``(D, H, W)`` (``int32`` when ``convention`` is None and values
        exceed 0..255).

    Raises:
        RevprofError: one line naming the file, the bad values and the convention: NaN or
            infinite values, non-integral values, or labels the convention does not define.
    """
    prefix = f"case {case_id}: " if case_id is not None else ""
    seg = np.asarray(seg)
    if seg.dtype == np.bool_:
        seg = seg.view(np.uint8)
    if np.issubdtype(seg.dtype, np.floating):
        if not np.all(np.isfinite(seg)):
            raise RevprofError(f"{prefix}segmentation {path} holds NaN or infinite values")
        rounded = np.rint(seg)
        off = np.abs(seg - rounded) > LABEL_TOLERANCE
        if off.any():
            bad = np.unique(seg[off])
            raise RevprofError(
                f"{prefix}segmentation {path} holds non-integer label values {_values(bad)} (a probability "
                f"map or a scaled segmentation?); expected integer labels"
                + (f" of the {convention} convention" if convention else "")
                + " (threshold or relabel it first)"
            )
        seg = rounded
    elif not np.issubdtype(seg.dtype, np.integer):
        raise RevprofError(f"{prefix}segmentation {path} has non-numeric data type {seg.dtype}")
    if convention is not None:
        labels = get_convention(convention).labels
        unknown = sorted(v for v in present_labels(seg) if v not in labels)
        if unknown:
            valid = ", ".join(str(v) for v in sorted(labels))
            hint = ""
            if convention == "brats2023" and unknown == [4]:
                hint = " (label 4 is the resection cavity of BraTS 2024: use --convention brats2024)"
            elif convention == "brats2021" and 3 in unknown and 4 not in unknown:
                hint = " (labels 1-3 look like BraTS 2023: use --convention brats2023)"
            raise RevprofError(
                f"{prefix}segmentation {path} holds label values "
                f"{', '.join(str(v) for v in unknown)} that the {convention} convention does "
                f"not define (valid: {valid}){hint}"
            )
        return seg.astype(np.uint8, copy=False)
    low, high = (int(seg.min()), int(seg.max())) if seg.size else (0, 0)
    if low < 0 or high > 255:
        return seg.astype(np.int32, copy=False)
    return seg.astype(np.uint8, copy=False)


def present_labels(labels: np.ndarray) -> set[int]:
    """The label values present in an integral label map ``(D, H, W)``, without sorting it."""
    if labels.size == 0:
        return set()
    low, high = int(labels.min()), int(labels.max())
    if high - low <= 16:
        return {v for v in range(low, high + 1) if (labels == v).any()}
    return {int(v) for v in np.unique(labels)}


def labels_to_uint8(seg: np.ndarray, path: Path, case_id: str) -> np.ndarray:
    """A uint8 label map from stored voxels (:func:`to_label_map` without a convention).

    Raises:
        RevprofError: non-integral values, or values outside 0..255.
    """
    labels = to_label_map(seg, path, None, case_id)
    if labels.dtype != np.uint8:
        raise RevprofError(
            f"case {case_id}: segmentation {path} holds label values outside 0..255 "
            f"(min {int(labels.min())}, max {int(labels.max())})"
        )
    return labels


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
    notes: list[str] = []
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
            voxels = read_voxels(nii, path, cid)
            if first is None:
                first = nii
            else:
                voxels = _onto_first(voxels, nii, path, first, first_path, cid, "image", notes)
            channels.append(voxels)
        image = np.stack(channels)
    assert first is not None

    labels = None
    if with_labels and case.seg is not None:
        seg_nii = open_nifti(case.seg, cid)
        seg_shape = tuple(seg_nii.shape)
        if len(seg_shape) == 4 and seg_shape[3] == 1:
            seg_shape = seg_shape[:3]
        if len(seg_shape) != 3:
            raise RevprofError(
                f"case {cid}: segmentation {case.seg} has shape {tuple(seg_nii.shape)}; expected 3-D"
            )
        raw = read_voxels(seg_nii, case.seg, cid, dtype=None).reshape(seg_shape)
        labels = to_label_map(raw, case.seg, case.convention, cid)
        labels = _onto_first(labels, seg_nii, case.seg, first, first_path, cid, "segmentation", notes)

    return LoadedCase(
        case=case,
        image=image.astype(np.float32, copy=False),
        labels=labels,
        affine=np.asarray(first.affine, dtype=np.float64),
        spacing=spacing_of(first),
        header=first.header,
        notes=tuple(notes),
    )


def load_labels(case: Case) -> np.ndarray:
    """The case's segmentation as a label map on its first image's grid, without reading images.

    Returns:
        uint8 ``(D, H, W)`` in ``case.convention`` (the labels :func:`load_case` gives).

    Raises:
        RevprofError: no segmentation, or any problem :func:`load_case` reports for it.
    """
    if case.seg is None:
        raise RevprofError(f"case {case.case_id} has no segmentation")
    cid = case.case_id
    first_path = case.images[0]
    first = open_nifti(first_path, cid)
    seg_nii = open_nifti(case.seg, cid)
    shape = tuple(seg_nii.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    raw = read_voxels(seg_nii, case.seg, cid, dtype=None).reshape(shape)
    labels = to_label_map(raw, case.seg, case.convention, cid)
    return _onto_first(labels, seg_nii, case.seg, first, first_path, cid, "segmentation", [])


def check_labels(labels: np.ndarray, case: Case, path: Path) -> None:
    """Raise when ``labels`` hold values that ``case.convention`` does not define."""
    to_label_map(labels, path, case.convention, case.case_id)


def _onto_first(data: np.ndarray, nii: nib.Nifti1Image, path: Path, first: nib.Nifti1Image,
                first_path: Path, cid: str, what: str, notes: list[str]) -> np.ndarray:
    """``data`` of ``path`` on the grid of the case's first image (reoriented when needed)."""
    try:
        moved, note = align_to_grid(data, nii.affine, first.affine, tuple(first.shape[:3]),
                                    what=f"{what} {path}", target=first_path.name,
                                    tolerance=AFFINE_TOLERANCE)
    except RevprofError as error:
        raise RevprofError(f"case {cid}: {error}") from None
    if note is not None:
        notes.append(note)
    return moved


__all__ = [
    "LABEL_TOLERANCE", "SINGULAR_TOLERANCE", "HeaderError", "LoadedCase", "check_header",
    "check_labels", "labels_to_uint8", "load_case", "load_labels",
    "open_nifti", "present_labels", "spacing_of",
    "read_voxels", "to_label_map",
]
