"""Training patches and sliding-window positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revprof.data import Geometry, PatchSampler, PreprocessedCase, sample_patch, sliding_window_positions
from revprof.data.sampling import (
    MAX_ROTATION,
    SCALE_RANGE,
    _resampled_window,
    _rotation,
    jitter_intensity,
    spatial_transform,
)
from revprof.errors import RevprofError


def _case(shape=(10, 12, 14), seed=0) -> PreprocessedCase:
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(4, *shape)).astype(np.float32)
    regions = (rng.random((3, *shape)) > 0.7).astype(np.uint8)
    geometry = Geometry(shape, shape, (0, 0, 0), shape, (0, 0, 0), shape, (0, 0, 0), shape)
    return PreprocessedCase("c", image, regions, geometry, np.eye(4), (1.0, 1.0, 1.0), "brats2021")


def test_batch_shapes_dtypes_and_determinism() -> None:
    cases = [_case(seed=0), _case(seed=1)]
    a = PatchSampler(cases, patch=(4, 6, 8), seed=3).sample(5)
    b = PatchSampler(cases, patch=(4, 6, 8), seed=3).sample(5)
    c = PatchSampler(cases, patch=(4, 6, 8), seed=4).sample(5)
    assert a[0].shape == (5, 4, 4, 6, 8) and a[1].shape == (5, 3, 4, 6, 8)
    assert a[0].dtype == torch.float32 and a[1].dtype == torch.float32
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_patch_is_a_flipped_window_of_the_case() -> None:
    case = _case()
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        img, tgt = sample_patch(case, (4, 5, 6), gen)
        found = False
        for flips in range(8):
            axes = [a for a in range(3) if flips >> a & 1]
            x = np.flip(img.numpy(), [a + 1 for a in axes])
            y = np.flip(tgt.numpy(), [a + 1 for a in axes])
            for d in range(7):
                for h in range(8):
                    for w in range(9):
                        if np.array_equal(case.image[:, d:d + 4, h:h + 5, w:w + 6], x):
                            assert np.array_equal(case.regions[:, d:d + 4, h:h + 5, w:w + 6], y)
                            found = True
        assert found


def test_patch_larger_than_volume_is_padded() -> None:
    img, tgt = sample_patch(_case((6, 6, 6)), 8, torch.Generator().manual_seed(0), flip=False)
    assert img.shape == (4, 8, 8, 8) and tgt.shape == (3, 8, 8, 8)
    assert not img[:, 0].any() and img[:, 1:7, 1:7, 1:7].abs().sum() > 0


def test_intensity_jitter_scales_and_shifts_each_modality_inside_the_brain() -> None:
    image = torch.randn(4, 6, 7, 8)
    image[:, :2] = 0.0  # background: every modality 0
    out = jitter_intensity(image, 0.2, torch.Generator().manual_seed(1))
    assert out.shape == image.shape and out.dtype == torch.float32
    assert not out[:, :2].any()  # the background stays 0
    brain = image[:, 2:].reshape(4, -1)
    moved = out[:, 2:].reshape(4, -1)
    for c in range(4):  # one affine map per modality: x * (1 + a) + b, |a|, |b| <= 0.2
        a, b = np.polyfit(brain[c].numpy(), moved[c].numpy(), 1)
        assert abs(a - 1.0) <= 0.2 + 1e-5 and abs(b) <= 0.2 + 1e-5
        assert np.allclose(moved[c].numpy(), a * brain[c].numpy() + b, atol=1e-5)
    scales = {round(float(np.polyfit(brain[c].numpy(), moved[c].numpy(), 1)[0]), 4) for c in range(4)}
    assert len(scales) == 4  # drawn per modality
    with pytest.raises(RevprofError, match=r"strength must lie in \(0, 1\); got 1.5"):
        jitter_intensity(image, 1.5)


def test_sampler_without_intensity_draws_as_before_and_with_it_changes_only_the_image() -> None:
    cases = [_case(seed=0), _case(seed=1)]
    plain = PatchSampler(cases, patch=(4, 6, 8), seed=3)
    default = PatchSampler(cases, patch=(4, 6, 8), seed=3, intensity=0.0)
    jittered = PatchSampler(cases, patch=(4, 6, 8), seed=3, intensity=0.1)
    for _ in range(3):
        a, b = plain.sample(2), default.sample(2)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    first, augmented = PatchSampler(cases, patch=(4, 6, 8), seed=3).sample(1), jittered.sample(1)
    assert torch.equal(first[1], augmented[1])  # same window, same targets
    assert not torch.equal(first[0], augmented[0])
    with pytest.raises(RevprofError, match=r"intensity augmentation strength must lie in \[0, 1\); got -0.1"):
        PatchSampler(cases, patch=4, intensity=-0.1)


def test_spatial_transform_is_a_bounded_rotation_times_a_bounded_scale() -> None:
    gen = torch.Generator().manual_seed(0)
    kinds = {"none": 0, "rotation": 0, "scale": 0, "both": 0}
    for _ in range(400):
        matrix = spatial_transform(0.5, gen)
        if matrix is None:
            kinds["none"] += 1
            continue
        scale = float(torch.linalg.det(matrix)) ** (1.0 / 3.0)
        rotation = matrix / scale
        assert SCALE_RANGE[0] - 1e-9 <= scale <= SCALE_RANGE[1] + 1e-9
        assert torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-9)
        # three rotations of at most 30 degrees each turn by at most 90 degrees in all
        assert float(torch.trace(rotation)) >= 1.0 + 2.0 * np.cos(3 * MAX_ROTATION) - 1e-9
        rotated = not torch.allclose(rotation, torch.eye(3, dtype=torch.float64))
        scaled = abs(scale - 1.0) > 1e-9
        kinds["both" if rotated and scaled else "rotation" if rotated else "scale"] += 1
    # each drawn with probability 1/2, independently: a quarter of each kind
    assert all(60 <= count <= 140 for count in kinds.values()), kinds
    assert all(spatial_transform(0.0, gen) is None for _ in range(20))
    with pytest.raises(RevprofError, match=r"probability must lie in \[0, 1\]; got 1.5"):
        spatial_transform(1.5, gen)


def test_resampled_window_reads_through_the_matrix() -> None:
    case = _case((20, 22, 24))
    image, regions = case.image, case.regions
    assert regions is not None
    identity = torch.eye(3, dtype=torch.float64)
    img, tgt = _resampled_window(image, regions, (3 + 4.5, 5 + 3.5, 6 + 5.5), (10, 8, 12), identity)
    assert np.allclose(img.numpy(), image[:, 3:13, 5:13, 6:18], atol=1e-5)
    assert np.array_equal(tgt.numpy(), regions[:, 3:13, 5:13, 6:18])
    # a quarter turn about the d axis: output (d, h, w) reads (d, -w, h) about the centre
    img, tgt = _resampled_window(image, regions, (10.0, 11.0, 12.0), (5, 7, 7), _rotation(0, np.pi / 2))
    window = image[:, 8:13, 8:15, 9:16]
    assert np.allclose(img.numpy(), np.rot90(window, k=1, axes=(3, 2)), atol=1e-5)
    assert np.array_equal(tgt.numpy(), np.rot90(regions[:, 8:13, 8:15, 9:16], k=1, axes=(3, 2)))
    # scale 2 about the centre: every other voxel; outside the volume: 0
    img, _ = _resampled_window(image, regions, (10.0, 11.0, 12.0), (5, 5, 5), identity * 2.0)
    assert np.allclose(img.numpy(), image[:, 6:15:2, 7:16:2, 8:17:2], atol=1e-5)
    img, tgt = _resampled_window(image, regions, (-0.5, -0.5, -0.5), (4, 4, 4), identity)
    assert not img[:, :2].any() and not tgt[:, :, :2].any()  # voxels -2 and -1: outside
    assert np.allclose(img[:, 2:, 2:, 2:].numpy(), image[:, 0:2, 0:2, 0:2], atol=1e-5)
    # interpolated labels are thresholded: the targets stay 0 or 1
    _, tgt = _resampled_window(image, regions, (10.0, 11.0, 12.0), (6, 6, 6),
                               _rotation(1, 0.3) * 0.8)
    assert set(np.unique(tgt.numpy())) <= {0.0, 1.0}


def test_sampler_without_spatial_draws_as_before_and_with_it_is_seeded() -> None:
    cases = [_case((12, 14, 16), seed=0), _case((12, 14, 16), seed=1)]
    plain = PatchSampler(cases, patch=(6, 6, 8), seed=3, foreground=0.5)
    default = PatchSampler(cases, patch=(6, 6, 8), seed=3, foreground=0.5, spatial=0.0)
    for _ in range(3):
        a, b = plain.sample(2), default.sample(2)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    a = PatchSampler(cases, patch=(6, 6, 8), seed=3, spatial=1.0).sample(3)
    b = PatchSampler(cases, patch=(6, 6, 8), seed=3, spatial=1.0).sample(3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, 4, 6, 6, 8) and set(np.unique(a[1].numpy())) <= {0.0, 1.0}
    assert not torch.equal(a[0], PatchSampler(cases, patch=(6, 6, 8), seed=3).sample(3)[0])
    with pytest.raises(RevprofError, match=r"spatial augmentation probability must lie in \[0, 1\]; got 2"):
        PatchSampler(cases, patch=4, spatial=2)


def test_needs_regions() -> None:
    case = _case()
    case.regions = None
    with pytest.raises(RevprofError, match="no segmentation"):
        PatchSampler([case], patch=4)


def test_sliding_window_positions() -> None:
    pos = sliding_window_positions((10, 4, 7), (4, 4, 4), overlap=0.5)
    assert sorted({p[0] for p in pos}) == [0, 2, 4, 6]
    assert sorted({p[1] for p in pos}) == [0]
    assert sorted({p[2] for p in pos}) == [0, 2, 3]
    assert len(pos) == 4 * 1 * 3
    covered = np.zeros((10, 4, 7), bool)
    for d, h, w in pos:
        covered[d:d + 4, h:h + 4, w:w + 4] = True
    assert covered.all()
    assert sliding_window_positions((3, 3, 3), 8) == [(0, 0, 0)]
    with pytest.raises(RevprofError, match="overlap"):
        sliding_window_positions((10, 10, 10), 4, overlap=1.0)
