"""Training patches and sliding-window positions."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from revprof.data.preprocess import PreprocessedCase
from revprof.errors import RevprofError

PAPER_PATCH: tuple[int, int, int] = (128, 128, 128)
"""Training patch size used in the paper."""


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random patch of a case, randomly flipped along each axis.

    Args:
        case: preprocessed case with regions.
        patch: patch size ``(pd, ph, pw)`` (an int means a cube); larger than the volume pads.
        generator: source of randomness (deterministic results for a seeded generator).
        flip: flip each axis with probability 1/2.
        around: a voxel ``(d, h, w)`` of the case's volume the patch must contain (at a random
            place in it); None: anywhere.
        intensity: random intensity change of each modality (:func:`jitter_intensity`); 0: none.

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
    window: tuple[Any, ...] = (Ellipsis, *(slice(s, s + p) for s, p in zip(starts, size)))
    img = torch.from_numpy(np.ascontiguousarray(image[window], dtype=np.float32))
    tgt = torch.from_numpy(np.ascontiguousarray(regions[window]).astype(np.float32))
    if flip:
        flips = torch.rand(3, generator=generator) < 0.5
        axes = [i + 1 for i in range(3) if bool(flips[i])]
        if axes:
            img = torch.flip(img, axes)
            tgt = torch.flip(tgt, axes)
    if intensity > 0.0:
        img = jitter_intensity(img, intensity, generator)
    return img, tgt


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
    """

    def __init__(self, cases: Sequence[PreprocessedCase], patch: int | Sequence[int] = PAPER_PATCH,
                 seed: int = 0, generator: torch.Generator | None = None, flip: bool = True,
                 foreground: float = 0.0, intensity: float = 0.0) -> None:
        if not 0.0 <= foreground <= 1.0:
            raise RevprofError(f"foreground fraction must lie in [0, 1]; got {foreground}")
        if not 0.0 <= intensity < 1.0:
            raise RevprofError(f"intensity augmentation strength must lie in [0, 1); got {intensity}")
        self.foreground = float(foreground)
        self.intensity = float(intensity)
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
                              around=self._tumour_voxel(int(i)), intensity=self.intensity)
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


__all__ = ["PAPER_PATCH", "PatchSampler", "jitter_intensity", "pad_to", "sample_patch",
           "sliding_window_positions"]
