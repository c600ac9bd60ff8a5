"""The paper's preprocessing: resampling to the target spacing when a case is not at it (1 mm),
brain bounding-box crop, centre crop/pad to a fixed size, z-score.

Every step is recorded in a :class:`Geometry`, so a prediction on the preprocessed grid can be
put back into the original image with :func:`restore_geometry`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from revprof.data.conventions import get_convention
from revprof.data.nifti import LoadedCase
from revprof.data.resample import needs_resampling, resample, resampled_shape
from revprof.errors import RevprofError

PAPER_SIZE: tuple[int, int, int] = (160, 192, 160)
"""Preprocessed volume size used in the paper."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings (part of the cache key).

    Attributes:
        size: output spatial size ``(D, H, W)`` after centre crop/pad, or None to keep the
            bounding-box size.
        crop_to_brain: crop to the bounding box of non-zero voxels (union over modalities) first.
        normalize: z-score each modality over brain (non-zero) voxels.
        spacing: target voxel size in mm; a case at another spacing is resampled to it first
            (images linearly, labels nearest neighbour). None keeps every case's own spacing.
    """

    size: tuple[int, int, int] | None = PAPER_SIZE
    crop_to_brain: bool = True
    normalize: bool = True
    spacing: tuple[float, float, float] | None = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.spacing is not None:
            if len(self.spacing) != 3 or not all(float(s) > 0 for s in self.spacing):
                raise RevprofError(f"preprocessing spacing must be three positive numbers (mm); got {self.spacing}")
            object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        if self.size is not None:
            if len(self.size) != 3 or any(int(s) < 1 for s in self.size):
                raise RevprofError(f"preprocessing size must be three positive integers; got {self.size}")
            object.__setattr__(self, "size", tuple(int(s) for s in self.size))

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly form (used in cache keys)."""
        return {"size": list(self.size) if self.size else None,
                "crop_to_brain": self.crop_to_brain, "normalize": self.normalize,
                "spacing": list(self.spacing) if self.spacing else None}


@dataclass(frozen=True)
class Geometry:
    """Where the preprocessed volume lies in the original image.

    Voxels ``source_start[i]:source_stop[i]`` of the original axis ``i`` were copied to
    ``target_start[i]:target_stop[i]`` of the preprocessed axis ``i``; the rest of the
    preprocessed volume is padding.

    Attributes:
        original_shape: spatial shape of the original image ``(D, H, W)``.
        shape: spatial shape of the preprocessed volume.
        bbox_start, bbox_stop: the brain bounding box in original coordinates.
        source_start, source_stop: copied region in original coordinates.
        target_start, target_stop: the same region in preprocessed coordinates.
    """

    original_shape: tuple[int, int, int]
    shape: tuple[int, int, int]
    bbox_start: tuple[int, int, int]
    bbox_stop: tuple[int, int, int]
    source_start: tuple[int, int, int]
    source_stop: tuple[int, int, int]
    target_start: tuple[int, int, int]
    target_stop: tuple[int, int, int]

    @property
    def source(self) -> tuple[slice, slice, slice]:
        """Slices of the original volume that were kept."""
        return tuple(slice(a, b) for a, b in zip(self.source_start, self.source_stop))  # type: ignore[return-value]

    @property
    def target(self) -> tuple[slice, slice, slice]:
        """Slices of the preprocessed volume that hold original voxels."""
        return tuple(slice(a, b) for a, b in zip(self.target_start, self.target_stop))  # type: ignore[return-value]

    def apply(self, array: np.ndarray, fill: float = 0) -> np.ndarray:
        """Map an array ``(..., *original_shape)`` to the preprocessed grid ``(..., *shape)``."""
        array = np.asarray(array)
        _check_trailing(array, self.original_shape, "original")
        out = np.full(array.shape[:-3] + self.shape, fill, dtype=array.dtype)
        out[(Ellipsis, *self.target)] = array[(Ellipsis, *self.source)]
        return out

    def restore(self, array: np.ndarray, fill: float = 0) -> np.ndarray:
        """Map an array ``(..., *shape)`` back to the original grid ``(..., *original_shape)``."""
        array = np.asarray(array)
        _check_trailing(array, self.shape, "preprocessed")
        out = np.full(array.shape[:-3] + self.original_shape, fill, dtype=array.dtype)
        out[(Ellipsis, *self.source)] = array[(Ellipsis, *self.target)]
        return out

    def as_dict(self) -> dict[str, list[int]]:
        """JSON-friendly form."""
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> Geometry:
        """Inverse of :meth:`as_dict`."""
        return cls(**{k: tuple(int(x) for x in v) for k, v in data.items()})  # type: ignore[arg-type]


def _check_trailing(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if array.ndim < 3 or tuple(array.shape[-3:]) != tuple(shape):
        raise RevprofError(
            f"array of shape {tuple(array.shape)} does not end with the {name} shape {tuple(shape)}"
        )


@dataclass
class PreprocessedCase:
    """A case ready for training or inference.

    Attributes:
        case_id: the case's identifier.
        image: float32 ``(4, D, H, W)``, z-scored over brain voxels, zero outside the brain.
        regions: uint8 ``(3, D, H, W)`` WT, TC, ET masks, or None without segmentation.
        geometry: how to map back to the original image.
        affine: ``(4, 4)`` affine of the original image.
        spacing: voxel size in mm of the original image.
        convention: label convention of the source segmentation.
        source_shape: the original image's spatial shape when the case was resampled (then
            ``geometry`` describes the resampled grid), else None.
        grid_spacing: voxel size in mm of the resampled grid, else None.
    """

    case_id: str
    image: np.ndarray
    regions: np.ndarray | None
    geometry: Geometry
    affine: np.ndarray
    spacing: tuple[float, float, float]
    convention: str
    source_shape: tuple[int, int, int] | None = None
    grid_spacing: tuple[float, float, float] | None = None


def brain_bbox(image: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Bounding box of voxels non-zero in any modality.

    Args:
        image: ``(C, D, H, W)``.

    Returns:
        ``(start, stop)`` per spatial axis; the whole volume when the image is all zero.
    """
    mask = np.any(image != 0, axis=0)
    shape = mask.shape
    if not mask.any():
        return (0, 0, 0), tuple(int(s) for s in shape)  # type: ignore[return-value]
    start, stop = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        start.append(int(hits[0]))
        stop.append(int(hits[-1]) + 1)
    return tuple(start), tuple(stop)  # type: ignore[return-value]


def plan_geometry(
    original_shape: tuple[int, int, int],
    bbox: tuple[tuple[int, int, int], tuple[int, int, int]],
    size: tuple[int, int, int] | None,
) -> Geometry:
    """Centre-crop or centre-pad the bounding box to ``size`` (None: keep the box)."""
    bstart, bstop = bbox
    src0, src1, dst0, dst1, shape = [], [], [], [], []
    for axis in range(3):
        length = bstop[axis] - bstart[axis]
        target = length if size is None else size[axis]
        if length >= target:
            offset = (length - target) // 2
            src0.append(bstart[axis] + offset)
            src1.append(bstart[axis] + offset + target)
            dst0.append(0)
            dst1.append(target)
        else:
            pad = (target - length) // 2
            src0.append(bstart[axis])
            src1.append(bstop[axis])
            dst0.append(pad)
            dst1.append(pad + length)
        shape.append(target)
    return Geometry(
        original_shape=tuple(int(s) for s in original_shape),  # type: ignore[arg-type]
        shape=tuple(shape), bbox_start=tuple(bstart), bbox_stop=tuple(bstop),  # type: ignore[arg-type]
        source_start=tuple(src0), source_stop=tuple(src1),  # type: ignore[arg-type]
        target_start=tuple(dst0), target_stop=tuple(dst1),  # type: ignore[arg-type]
    )


def zscore(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Normalise each channel to mean 0, std 1 over ``mask``; voxels outside ``mask`` become 0.

    Args:
        image: ``(C, D, H, W)``.
        mask: boolean ``(D, H, W)``.

    Returns:
        float32 ``(C, D, H, W)``.
    """
    out = np.zeros(image.shape, dtype=np.float32)
    if not mask.any():
        return out
    for c in range(image.shape[0]):
        values = image[c][mask].astype(np.float64)
        mean = values.mean()
        std = values.std()
        if std < 1e-8:
            std = 1.0
        out[c][mask] = ((values - mean) / std).astype(np.float32)
    return out


def preprocess_arrays(
    image: np.ndarray,
    labels: np.ndarray | None,
    convention: str,
    config: PreprocessConfig = PreprocessConfig(),
    spacing: tuple[float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, Geometry]:
    """Preprocess raw arrays.

    Args:
        image: ``(4, D, H, W)`` raw intensities.
        labels: ``(D, H, W)`` label map in ``convention``, or None.
        convention: label convention name.
        config: settings.
        spacing: the arrays' voxel size in mm; when it differs from ``config.spacing`` the
            arrays are resampled to it first (then ``geometry`` is on the resampled grid).

    Returns:
        ``(image (4, *size) float32, regions (3, *size) uint8 or None, geometry)``.
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise RevprofError(f"image must have shape (C, D, H, W); got {tuple(image.shape)}")
    if spacing is not None and needs_resampling(spacing, config.spacing):
        shape = resampled_shape(image.shape[1:], spacing, config.spacing)  # type: ignore[arg-type]
        image = resample(image.astype(np.float32, copy=False), shape, spacing, config.spacing, order=1)  # type: ignore[arg-type]
        if labels is not None:
            labels = resample(labels, shape, spacing, config.spacing, order=0)  # type: ignore[arg-type]
    original = tuple(int(s) for s in image.shape[1:])
    bbox = brain_bbox(image) if config.crop_to_brain else ((0, 0, 0), original)
    geometry = plan_geometry(original, bbox, config.size)  # type: ignore[arg-type]
    out = geometry.apply(image.astype(np.float32, copy=False))
    if config.normalize:
        out = zscore(out, np.any(out != 0, axis=0))
    regions = None
    if labels is not None:
        masks = get_convention(convention).region_masks(labels).astype(np.uint8)
        regions = geometry.apply(masks)
    return out, regions, geometry


def preprocess_case(loaded: LoadedCase, config: PreprocessConfig = PreprocessConfig()) -> PreprocessedCase:
    """Preprocess a loaded case (see :func:`preprocess_arrays`)."""
    image, regions, geometry = preprocess_arrays(
        loaded.image, loaded.labels, loaded.case.convention, config, spacing=loaded.spacing
    )
    resampled = needs_resampling(loaded.spacing, config.spacing)
    return PreprocessedCase(
        case_id=loaded.case.case_id, image=image, regions=regions, geometry=geometry,
        affine=loaded.affine, spacing=loaded.spacing, convention=loaded.case.convention,
        source_shape=loaded.shape if resampled else None,
        grid_spacing=config.spacing if resampled else None,
    )


def restore_labels(probabilities: np.ndarray, pre: PreprocessedCase, threshold: float = 0.5) -> np.ndarray:
    """The label map a prediction on the preprocessed grid means on the case's original grid.

    The region masks of :func:`restore_masks` turned into the case's label convention. This is
    what a saved prediction holds and what training's validation Dice is computed on.

    Args:
        probabilities: float ``(3, D', H', W')`` WT, TC, ET probabilities on ``pre``'s grid.
        pre: the preprocessed case.
        threshold: foreground above this.

    Returns:
        uint8 label map ``(D, H, W)`` on the original grid, in ``pre.convention``.
    """
    return get_convention(pre.convention).labels_from_regions(restore_masks(probabilities, pre, threshold))


def restore_masks(probabilities: np.ndarray, pre: PreprocessedCase, threshold: float = 0.5) -> np.ndarray:
    """The region masks a prediction on the preprocessed grid means on the case's original grid.

    The region probabilities are put back into the original geometry (and resampled back to the
    original spacing, linearly, when the case was resampled), thresholded and nested as the
    labels require (ET ⊆ TC ⊆ WT).

    Args:
        probabilities: float ``(3, D', H', W')`` WT, TC, ET probabilities on ``pre``'s grid.
        pre: the preprocessed case.
        threshold: foreground above this.

    Returns:
        bool ``(3, D, H, W)`` WT, TC, ET masks on the original grid.
    """
    probabilities = restore_geometry(np.asarray(probabilities, dtype=np.float32), pre.geometry)
    if pre.source_shape is not None and pre.grid_spacing is not None:  # back from the resampled grid
        probabilities = resample(probabilities, pre.source_shape, pre.grid_spacing, pre.spacing, order=1)
    masks = probabilities > threshold
    masks[1] |= masks[2]
    masks[0] |= masks[1]
    return masks


def restore_geometry(prediction: np.ndarray, geometry: Geometry, fill: float = 0) -> np.ndarray:
    """Put a prediction on the preprocessed grid back into the original image geometry.

    Args:
        prediction: labels ``(D', H', W')`` or masks/probabilities ``(C, D', H', W')`` on the
            preprocessed grid ``geometry.shape``.
        geometry: from the :class:`PreprocessedCase`.
        fill: value outside the region that was kept (background).

    Returns:
        Array of shape ``(..., *geometry.original_shape)`` with the same dtype.
    """
    return geometry.restore(prediction, fill=fill)


__all__ = [
    "PAPER_SIZE", "Geometry", "PreprocessConfig", "PreprocessedCase", "brain_bbox",
    "plan_geometry", "preprocess_arrays", "preprocess_case", "restore_geometry", "restore_labels",
    "restore_masks",
    "zscore",
]
