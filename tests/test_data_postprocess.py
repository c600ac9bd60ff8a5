"""Keeping the largest connected tumour (``predict --largest-component``)."""

from __future__ import annotations

import numpy as np
import pytest

from revprof.data.postprocess import keep_largest_tumour
from revprof.errors import RevprofError


def _nested(wt: np.ndarray, tc: np.ndarray, et: np.ndarray) -> np.ndarray:
    return np.stack([wt | tc | et, tc | et, et])


def test_the_largest_whole_tumour_stays_with_its_core_and_the_rest_goes() -> None:
    wt = np.zeros((12, 12, 12), bool)
    tc, et = wt.copy(), wt.copy()
    wt[1:6, 1:6, 1:6] = True  # 125 voxels: the tumour
    tc[2:5, 2:5, 2:5] = True
    et[3, 3, 3] = True
    wt[8:10, 8:10, 8:10] = True  # 8 voxels elsewhere, with a core and enhancing voxel of its own
    tc[8, 8, 8] = et[9, 9, 9] = True
    kept = keep_largest_tumour(_nested(wt, tc, et))
    assert kept.components == 2 and kept.removed_voxels == 8
    assert kept.masks[0].sum() == 125 and kept.masks[1].sum() == 27 and kept.masks[2].sum() == 1
    assert not kept.masks[:, 7:].any()
    assert (kept.masks[2] <= kept.masks[1]).all() and (kept.masks[1] <= kept.masks[0]).all()


def test_voxels_touching_by_a_corner_are_one_tumour() -> None:
    wt = np.zeros((6, 6, 6), bool)
    wt[1, 1, 1] = wt[2, 2, 2] = wt[3, 3, 3] = True  # a diagonal chain: 26-connected
    kept = keep_largest_tumour(_nested(wt, wt & False, wt & False))
    assert kept.components == 1 and kept.removed_voxels == 0 and kept.masks[0].sum() == 3


def test_no_tumour_or_one_tumour_comes_back_unchanged() -> None:
    empty = np.zeros((3, 5, 5, 5), bool)
    kept = keep_largest_tumour(empty)
    assert kept.components == 0 and kept.removed_voxels == 0 and not kept.masks.any()
    one = empty.copy()
    one[0, 1:3, 1:3, 1:3] = True
    kept = keep_largest_tumour(one)
    assert kept.components == 1 and np.array_equal(kept.masks, one)
    assert kept.masks is not one  # a new array: the caller's masks are not changed


def test_masks_of_another_shape_are_refused() -> None:
    with pytest.raises(RevprofError, match=r"region masks must have shape \(3, D, H, W\); got \(2, 4, 4, 4\)"):
        keep_largest_tumour(np.zeros((2, 4, 4, 4), bool))
