"""Training patches and sliding-window positions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from revprof.data.preprocess import PreprocessedCase
from revprof.errors import RevprofError

PAPER_PATCH: tuple[int, int, int] = (128, 128, 128)
"""Training patch size used in the paper."""

MAX_ROTATION = math.pi / 6
"""The largest random rotation about each axis of a spatially augmented patch (30°, nnU-Net's)."""

SCALE_RANGE: tuple[float, float] = (0.7, 1.4)
"""The range of a spatially augmented patch's random isotropic scale (nnU-Net's)."""


def _patch3(patch: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(patch, int):
        patch = (patch, patch, patch)
    patch = tuple(int(p) for p in patch)
    if len(patch) != 3 or any(p < 1 for p in patch):
        raise RevprofError(f"patch size must be three positive integers; got {patch}")
    return patch


def pad_to(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Zero-pad the last three axes of ``array`` (centred) to at least ``shape``."""
    pads = [(0, 0)] * (array.ndim - 3)
    for size, want in zip(array.shape[-3:], shape):
        extra = max(0, int(want) - size)
        pads.append((extra // 2, extra - extra // 2))
    if all(p == (0, 0) for p in pads):
        return array
    return np.pad(array, pads)


def sample_patch(
    case: PreprocessedCase,
    patch: int | Sequence[int] = PAPER_PATCH,
    generator: torch.Generator | None = None,
    flip: bool = True,
    around: Sequence[int] | None = None,
    intensity: float = 0.0,
    spatial: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random patch of a case, randomly rotated and scaled, then flipped along each axis.

    Args:
        case: preprocessed case with regions.
        patch: patch size ``(pd, ph, pw)`` (an int means a cube); larger than the volume pads.
        generator: source of randomness (deterministic results for a seeded generator).
        flip: flip each axis with probability 1/2.
        around: a voxel ``(d, h, w)`` of the case's volume the patch must contain (at a random
            place in it); None: anywhere.
        intensity: random intensity change of each modality (:func:`jitter_intensity`); 0: none.
        spatial: the probability of a random rotation and, independently, of a random scale of
            the patch about its centre (:func:`spatial_transform`); 0: none (nothing is drawn,
            so a seeded sampler gives the patches it gave before this option existed).

    Returns:
        ``(image (4, pd, ph, pw) float32, target (3, pd, ph, pw) float32)``.
    """
    size = _patch3(patch)
    if case.regions is None:
        raise RevprofError(f"case {case.case_id} has no segmentation; it cannot be used for training")
    image = pad_to(case.image, size)
    regions = pad_to(case.regions, size)
    starts = []
    for axis, (dim, p) in enumerate(zip(image.shape[1:], size)):
        high = dim - p + 1
        if around is not None and high > 1:
            # a window holding voxel ``around`` at a random position inside it
            centre = int(around[axis]) + (dim - case.regions.shape[axis + 1]) // 2
            low, top = max(0, centre - p + 1), min(high - 1, centre)
            starts.append(int(torch.randint(low, top + 1, (1,), generator=generator)))
            continue
        starts.append(int(torch.randint(0, high, (1,), generator=generator)) if high > 1 else 0)
    matrix = spatial_transform(spatial, generator) if spatial > 0.0 else None
    if matrix is None:
        window: tuple[Any, ...] = (Ellipsis, *(slice(s, s + p) for s, p in zip(starts, size)))
        img = torch.from_numpy(np.ascontiguousarray(image[window], dtype=np.float32))
        tgt = torch.from_numpy(np.ascontiguousarray(regions[window]).astype(np.float32))
    else:
        centre = [s + (p - 1) / 2.0 for s, p in zip(starts, size)]
        img, tgt = _resampled_window(image, regions, centre, size, matrix)
    if flip:
        flips = torch.rand(3, generator=generator) < 0.5
        axes = [i + 1 for i in range(3) if bool(flips[i])]
        if axes:
            img = torch.flip(img, axes)
            tgt = torch.flip(tgt, axes)
    if intensity > 0.0:
        img = jitter_intensity(img, intensity, generator)
    return img, tgt


def spatial_transform(probability: float,
                      generator: torch.Generator | None = None) -> torch.Tensor | None:
    """A random rotation and scale of a patch, each applied with ``probability``.

    With ``probability`` the patch is rotated by an angle drawn uniformly from
    ``[-MAX_ROTATION, MAX_ROTATION]`` about each of its three axes, and, independently with
    ``probability``, scaled by one factor drawn uniformly from :data:`SCALE_RANGE` (below 1 the
    patch shows a smaller part of the case, enlarged). nnU-Net draws both for a fifth of its
    patches, with these ranges.

    Args:
        probability: in ``[0, 1]``.
        generator: source of randomness.

    Returns:
        The ``(3, 3)`` float64 matrix that takes an offset from the patch's centre, in output
        voxels ``(d, h, w)``, to the offset in the case's voxels it is read from; ``None`` when
        neither was drawn.
    """
    if not 0.0 <= probability <= 1.0:
        raise RevprofError(f"spatial augmentation probability must lie in [0, 1]; got {probability}")
    draws = torch.rand(6, generator=generator, dtype=torch.float64)
    rotate, scale = bool(draws[0] < probability), bool(draws[1] < probability)
    if not (rotate or scale):
        return None
    matrix = torch.eye(3, dtype=torch.float64)
    if rotate:
        for axis, unit in enumerate(draws[2:5]):
            angle = float(unit * 2.0 - 1.0) * MAX_ROTATION
            matrix = _rotation(axis, angle) @ matrix
    if scale:
        low, high = SCALE_RANGE
        matrix = matrix * (low + float(draws[5]) * (high - low))
    return matrix


def _rotation(axis: int, angle: float) -> torch.Tensor:
    """The ``(3, 3)`` rotation by ``angle`` (radians) about voxel axis ``axis`` (0: d, 1: h, 2: w)."""
    first, second = [a for a in range(3) if a != axis]
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.eye(3, dtype=torch.float64)
    rotation[first, first], rotation[first, second] = cos, -sin
    rotation[second, first], rotation[second, second] = sin, cos
    return rotation


def _crop_filled(array: np.ndarray, low: Sequence[int], high: Sequence[int]) -> np.ndarray:
    """``array[..., low:high]`` over the last three axes, zero where the box leaves the array."""
    shape = array.shape[-3:]
    out = np.zeros((*array.shape[:-3], *(h - lo for lo, h in zip(low, high))), dtype=np.float32)
    src = tuple(slice(max(lo, 0), min(h, n)) for lo, h, n in zip(low, high, shape))
    if any(s.start >= s.stop for s in src):
        return out
    dst = tuple(slice(s.start - lo, s.stop - lo) for s, lo in zip(src, low))
    into: tuple[Any, ...] = (Ellipsis, *dst)
    read: tuple[Any, ...] = (Ellipsis, *src)
    out[into] = array[read]
    return out


def _resampled_window(image: np.ndarray, regions: np.ndarray, centre: Sequence[float],
                      size: tuple[int, int, int],
                      matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The window of ``size`` about ``centre`` (voxels of ``image``), read through ``matrix``.

    Output voxel ``o`` (an offset from the window's centre) takes the value at ``centre +
    matrix @ o``, trilinearly interpolated, 0 outside the volume; the regions are interpolated
    the same way and thresholded at 1/2.

    Args:
        image: ``(C, D, H, W)``; regions: ``(R, D, H, W)``.
        centre: ``(d, h, w)``, fractional voxels.
        size: ``(pd, ph, pw)``.
        matrix: ``(3, 3)`` from :func:`spatial_transform`.

    Returns:
        ``(image (C, pd, ph, pw) float32, regions (R, pd, ph, pw) float32)``.
    """
    axes = [torch.arange(p, dtype=torch.float64) - (p - 1) / 2.0 for p in size]
    offsets = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (pd, ph, pw, 3)
    source = offsets @ matrix.T + torch.tensor(list(centre), dtype=torch.float64)
    low = [int(math.floor(float(v))) for v in source.reshape(-1, 3).min(dim=0).values]
    high = [int(math.floor(float(v))) + 2 for v in source.reshape(-1, 3).max(dim=0).values]
    box = np.concatenate([_crop_filled(image, low, high), _crop_filled(regions, low, high)])
    extent = torch.tensor([h - lo - 1 for lo, h in zip(low, high)], dtype=torch.float64)
    # grid_sample's grid is (x, y, z) = (w, h, d), each in [-1, 1] across the box (align_corners)
    grid = ((source - torch.tensor(low, dtype=torch.float64)) / extent * 2.0 - 1.0).flip(-1)
    sampled = F.grid_sample(torch.from_numpy(box)[None], grid[None].float(), mode="bilinear",
                            padding_mode="zeros", align_corners=True)[0]
    channels = image.shape[0]
    return sampled[:channels].contiguous(), (sampled[channels:] >= 0.5).float()


def jitter_intensity(image: torch.Tensor, strength: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale and shift each modality of a z-scored patch by a random amount, inside the brain.

    Every channel ``c`` becomes ``x * (1 + a_c) + b_c`` on the brain's voxels (those where any
    modality is non-zero; the background stays 0, as preprocessing leaves it), with ``a_c`` and
    ``b_c`` drawn uniformly from ``[-strength, strength]``: MONAI's BraTS tutorial applies the same
    scale and shift (``RandScaleIntensity`` / ``RandShiftIntensity``, 0.1) to the whole image; here
    they are per modality, as nnU-Net's multiplicative brightness is, so that a network does not
    learn one scanner's contrast between modalities.

    Args:
        image: ``(C, D, H, W)`` float32, z-scored per modality (background 0).
        strength: the largest relative scale and absolute shift, in ``(0, 1)``.
        generator: source of randomness.

    Returns:
        A new ``(C, D, H, W)`` float32 tensor.
    """
    if not 0.0 < strength < 1.0:
        raise RevprofError(f"intensity augmentation strength must lie in (0, 1); got {strength}")
    channels = image.shape[0]
    draws = (torch.rand(2, channels, generator=generator) * 2.0 - 1.0) * strength
    scale = (1.0 + draws[0]).view(channels, 1, 1, 1)
    shift = draws[1].view(channels, 1, 1, 1)
    brain = (image != 0).any(dim=0, keepdim=True)
    return torch.where(brain, image * scale + shift, image)


class PatchSampler:
    """Draws batches of random training patches from preprocessed cases.

    Args:
        cases: preprocessed cases with regions.
        patch: patch size (paper: 128³).
        seed: seed of the sampler's own ``torch.Generator`` (ignored when ``generator`` given).
        generator: a generator to draw from instead.
        flip: random flips along each axis.
        foreground: the fraction of patches made to contain tumour (a random whole-tumour
            voxel), as nnU-Net oversamples foreground (a third of its patches); 0: uniform.
        intensity: strength of the random per-modality scale and shift of every patch
            (:func:`jitter_intensity`); 0: none.
        spatial: probability of a random rotation and of a random scale of a patch
            (:func:`spatial_transform`); 0: none.
    """

    def __init__(self, cases: Sequence[PreprocessedCase], patch: int | Sequence[int] = PAPER_PATCH,
                 seed: int = 0, generator: torch.Generator | None = None, flip: bool = True,
                 foreground: float = 0.0, intensity: float = 0.0, spatial: float = 0.0) -> None:
        if not 0.0 <= foreground <= 1.0:
            raise RevprofError(f"foreground fraction must lie in [0, 1]; got {foreground}")
        if not 0.0 <= intensity < 1.0:
            raise RevprofError(f"intensity augmentation strength must lie in [0, 1); got {intensity}")
        if not 0.0 <= spatial <= 1.0:
            raise RevprofError(f"spatial augmentation probability must lie in [0, 1]; got {spatial}")
        self.foreground = float(foreground)
        self.intensity = float(intensity)
        self.spatial = float(spatial)
        self._tumour: dict[int, np.ndarray] = {}
        if not cases:
            raise RevprofError("the patch sampler needs at least one case")
        for case in cases:
            if case.regions is None:
                raise RevprofError(
                    f"case {case.case_id} has no segmentation; it cannot be used for training"
                )
        self.cases = list(cases)
        self.patch = _patch3(patch)
        self.flip = flip
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        self.generator = generator

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch: ``(image (B, 4, *patch) float32, target (B, 3, *patch) float32)``."""
        if batch_size < 1:
            raise RevprofError(f"batch size must be >= 1; got {batch_size}")
        picks = torch.randint(0, len(self.cases), (batch_size,), generator=self.generator)
        pairs = [sample_patch(self.cases[int(i)], self.patch, self.generator, self.flip,
                              around=self._tumour_voxel(int(i)), intensity=self.intensity,
                              spatial=self.spatial)
                 for i in picks]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


    def _tumour_voxel(self, index: int) -> tuple[int, int, int] | None:
        """With probability ``foreground``, a random whole-tumour voxel of case ``index``."""
        if self.foreground <= 0.0:
            return None
        if float(torch.rand(1, generator=self.generator)) >= self.foreground:
            return None
        regions = self.cases[index].regions
        if regions is None:
            return None
        if index not in self._tumour:
            self._tumour[index] = np.argwhere(regions[0] > 0)
        voxels = self._tumour[index]
        if len(voxels) == 0:
            return None
        pick = int(torch.randint(0, len(voxels), (1,), generator=self.generator))
        return tuple(int(v) for v in voxels[pick])  # type: ignore[return-value]


def sliding_window_positions(
    volume_shape: Sequence[int], patch: int | Sequence[int], overlap: float = 0.5
) -> list[tuple[int, int, int]]:
    """Start corners of patches that tile a volume with the given overlap.

    Windows are spaced ``round(patch * (1 - overlap))`` apart and the last one ends at the volume's
    edge. An axis shorter than the patch gets the single start 0 (pad the volume to the patch).

    Args:
        volume_shape: ``(D, H, W)``.
        patch: ``(pd, ph, pw)`` or an int.
        overlap: fraction of a patch shared by neighbours, in [0, 1).

    Returns:
        Sorted ``(d, h, w)`` start corners.
    """
    size = _patch3(patch)
    if not 0.0 <= overlap < 1.0:
        raise RevprofError(f"overlap must lie in [0, 1); got {overlap}")
    if len(volume_shape) != 3:
        raise RevprofError(f"volume shape must have three axes; got {tuple(volume_shape)}")
    per_axis = []
    for dim, p in zip(volume_shape, size):
        dim = int(dim)
        if dim <= p:
            per_axis.append([0])
            continue
        step = max(1, int(round(p * (1.0 - overlap))))
        starts = list(range(0, dim - p + 1, step))
        if starts[-1] != dim - p:
            starts.append(dim - p)
        per_axis.append(starts)
    return [tuple(s) for s in itertools.product(*per_axis)]  # type: ignore[misc]


__all__ = ["MAX_ROTATION", "PAPER_PATCH", "SCALE_RANGE", "PatchSampler", "jitter_intensity", "pad_to",
           "sample_patch", "sliding_window_positions", "spatial_transform"]
