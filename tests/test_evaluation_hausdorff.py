"""HD95 on shapes with known distances, the empty rules, and agreement with a brute-force version."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from revprof.errors import RevprofError
from revprof.evaluation.hausdorff import HD95_EMPTY_PENALTY, hd95, region_hd95, surface_distances


def _brute_hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], q: float = 95) -> float:
    """Surface = voxels with a face neighbour outside the mask (or on the image border);
    all pairwise distances, no cropping."""

    def surface(mask: np.ndarray) -> np.ndarray:
        padded = np.pad(mask, 1)
        inner = padded[1:-1, 1:-1, 1:-1].copy()
        for axis in range(3):
            for shift in (1, -1):
                inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(mask & ~inner) * np.asarray(spacing)

    a, b = surface(pred), surface(ref)
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return float(np.percentile(np.concatenate([d.min(1), d.min(0)]), q))


def test_penalty_is_the_brats_image_diagonal() -> None:
    assert HD95_EMPTY_PENALTY == pytest.approx(math.sqrt(240**2 + 240**2 + 155**2), abs=1e-4)


def test_empty_rules() -> None:
    empty = np.zeros((4, 4, 4), dtype=bool)
    some = empty.copy()
    some[1, 1, 1] = True
    assert hd95(empty, empty) == 0.0
    assert hd95(some, empty) == HD95_EMPTY_PENALTY
    assert hd95(empty, some) == HD95_EMPTY_PENALTY
    assert hd95(some, some) == 0.0


def test_single_voxels_anisotropic_spacing() -> None:
    pred = np.zeros((8, 8, 12), dtype=bool)
    ref = np.zeros_like(pred)
    pred[5, 5, 2] = True
    ref[5, 5, 5] = True  # 3 voxels along the 2.5 mm axis
    assert hd95(pred, ref, spacing=(1.0, 1.0, 2.5)) == pytest.approx(7.5)
    ref2 = np.zeros_like(pred)
    ref2[2, 1, 2] = True  # offset (3, 4, 0) voxels with 2 mm x 0.5 mm → (6, 2) mm
    assert hd95(pred, ref2, spacing=(2.0, 0.5, 1.0)) == pytest.approx(math.hypot(6.0, 2.0))


@pytest.mark.parametrize(("k", "spacing"), [(1, (1.0, 1.0, 1.0)), (3, (2.5, 1.0, 1.0)), (2, (0.8, 1.2, 3.0))])
def test_parallel_slabs_offset_by_k(k: int, spacing: tuple[float, float, float]) -> None:
    """One-voxel-thick 5x5 slabs k voxels apart: every surface distance is k * spacing[0]."""
    pred = np.zeros((10, 7, 7), dtype=bool)
    ref = np.zeros_like(pred)
    pred[2, 1:6, 1:6] = True
    ref[2 + k, 1:6, 1:6] = True
    assert hd95(pred, ref, spacing=spacing) == pytest.approx(k * spacing[0])


def test_cubes_offset_by_k_hausdorff_and_hd95() -> None:
    pred = np.zeros((16, 10, 10), dtype=bool)
    ref = np.zeros_like(pred)
    pred[2:6, 3:7, 3:7] = True
    ref[5:9, 3:7, 3:7] = True  # offset k=3 along the 2 mm axis
    spacing = (2.0, 1.0, 1.0)
    assert hd95(pred, ref, spacing=spacing, percentile=100) == pytest.approx(6.0)
    assert hd95(pred, ref, spacing=spacing) == pytest.approx(_brute_hd95(pred, ref, spacing))
    forward, backward = surface_distances(pred, ref, spacing)
    assert len(forward) == len(backward) == 4**3 - 2**3  # surface voxels of a 4-cube


def test_matches_brute_force_on_random_blobs_touching_the_border() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        pred = rng.random((12, 10, 9)) > 0.7
        ref = rng.random((12, 10, 9)) > 0.8
        spacing = tuple(float(s) for s in rng.uniform(0.5, 2.0, size=3))
        assert hd95(pred, ref, spacing=spacing) == pytest.approx(_brute_hd95(pred, ref, spacing))


def test_small_blobs_far_from_the_border_are_cropped_exactly() -> None:
    pred = np.zeros((60, 60, 40), dtype=bool)
    ref = np.zeros_like(pred)
    pred[20:25, 30:33, 10:14] = True
    ref[22:29, 31:35, 12:15] = True
    ref[40, 10, 30] = True  # an isolated voxel far away
    assert hd95(pred, ref, (1.0, 0.7, 1.5)) == pytest.approx(_brute_hd95(pred, ref, (1.0, 0.7, 1.5)))


def test_region_hd95_and_torch_input() -> None:
    pred = np.zeros((3, 6, 6, 6), dtype=bool)
    ref = np.zeros_like(pred)
    pred[0, 1, 1, 1] = ref[0, 1, 1, 4] = True  # WT: 3 mm apart
    pred[1, 2, 2, 2] = True  # TC: reference empty → penalty
    got = region_hd95(torch.from_numpy(pred), torch.from_numpy(ref))
    assert got == {"wt": pytest.approx(3.0), "tc": HD95_EMPTY_PENALTY, "et": 0.0}


def test_bad_inputs() -> None:
    a = np.zeros((4, 4, 4), dtype=bool)
    with pytest.raises(RevprofError, match="shape"):
        hd95(a, np.zeros((4, 4, 5), dtype=bool))
    a[1, 1, 1] = True
    with pytest.raises(RevprofError, match="spacing"):
        hd95(a, a, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(RevprofError, match="boolean"):
        hd95(a.astype(np.float32), a)


@pytest.mark.parametrize("cost", [0, 10**9])  # 0: always the k-d tree; huge: always the EDT
def test_kdtree_and_distance_transform_paths_agree(cost: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import revprof.evaluation.hausdorff as hausdorff

    monkeypatch.setattr(hausdorff, "_KDTREE_COST", cost)
    rng = np.random.default_rng(1)
    pred = rng.random((14, 11, 9)) > 0.6
    ref = np.zeros_like(pred)
    ref[3:10, 2:8, 1:7] = True
    spacing = (0.9, 1.3, 2.0)
    assert hd95(pred, ref, spacing) == pytest.approx(_brute_hd95(pred, ref, spacing))
    slab_a = np.zeros((10, 7, 7), dtype=bool)
    slab_b = np.zeros_like(slab_a)
    slab_a[2, 1:6, 1:6] = slab_b[5, 1:6, 1:6] = True
    assert hd95(slab_a, slab_b, (2.5, 1.0, 1.0)) == pytest.approx(7.5)
