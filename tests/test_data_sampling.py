"""Training patches and sliding-window positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revprof.data import Geometry, PatchSampler, PreprocessedCase, sample_patch, sliding_window_positions
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
