"""Training patches and sliding-window positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revprof.data import Geometry, PatchSampler, PreprocessedCase, sample_patch, sliding_window_positions
from revprof.data.sampling import jitter_intensity
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
