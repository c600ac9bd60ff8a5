"""Preprocessing: brain crop, centre crop/pad, z-score, region channels and the way back."""

from __future__ import annotations

import numpy as np
import pytest

from revprof.data import PreprocessConfig, brain_bbox, preprocess_arrays, restore_geometry
from revprof.data.preprocess import plan_geometry
from revprof.errors import RevprofError


def _volume(shape=(20, 18, 16), box=((3, 15), (4, 12), (2, 14)), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros((4, *shape), dtype=np.float32)
    sl = tuple(slice(a, b) for a, b in box)
    for c in range(4):
        image[(c, *sl)] = rng.normal(100 * (c + 1), 10 * (c + 1), size=image[(c, *sl)].shape)
    return image


def test_brain_bbox_is_union_over_modalities() -> None:
    image = np.zeros((4, 10, 10, 10), np.float32)
    image[0, 2, 3, 4] = 1
    image[3, 7, 1, 8] = 5
    assert brain_bbox(image) == ((2, 1, 4), (8, 4, 9))
    assert brain_bbox(np.zeros((4, 5, 6, 7))) == ((0, 0, 0), (5, 6, 7))


def test_crop_to_bbox_without_resizing() -> None:
    image = _volume()
    out, regions, geometry = preprocess_arrays(image, None, "brats2021", PreprocessConfig(size=None, normalize=False))
    assert out.shape == (4, 12, 8, 12) and regions is None
    np.testing.assert_array_equal(out, image[:, 3:15, 4:12, 2:14])
    assert geometry.bbox_start == (3, 4, 2) and geometry.bbox_stop == (15, 12, 14)


def test_centre_crop_and_pad() -> None:
    image = _volume()  # brain box 12 x 8 x 12
    out, _, geometry = preprocess_arrays(image, None, "brats2021", PreprocessConfig(size=(8, 12, 12), normalize=False))
    assert out.shape == (4, 8, 12, 12)
    # axis 0: 12 -> 8 crops 2 voxels each side; axis 1: 8 -> 12 pads 2 each side; axis 2 unchanged
    np.testing.assert_array_equal(out[:, :, 2:10, :], image[:, 5:13, 4:12, 2:14])
    assert not out[:, :, :2].any() and not out[:, :, 10:].any()
    assert geometry.source_start == (5, 4, 2) and geometry.target_start == (0, 2, 0)


def test_zscore_over_brain() -> None:
    image = _volume()
    out, _, _ = preprocess_arrays(image, None, "brats2021", PreprocessConfig(size=(16, 16, 16)))
    brain = np.any(out != 0, axis=0)
    assert brain.sum() == 12 * 8 * 12
    for c in range(4):
        values = out[c][brain]
        assert abs(values.mean()) < 1e-4 and abs(values.std() - 1) < 1e-4
    assert out.dtype == np.float32 and not out[:, ~brain].any()


def test_regions_follow_the_geometry() -> None:
    image = _volume()
    labels = np.zeros(image.shape[1:], np.uint8)
    labels[5, 6, 7] = 4
    labels[6, 6, 7] = 2
    _, regions, geometry = preprocess_arrays(image, labels, "brats2021", PreprocessConfig(size=(10, 10, 10)))
    assert regions.dtype == np.uint8 and regions.shape == (3, 10, 10, 10)
    off = np.subtract(geometry.target_start, geometry.source_start)
    et = tuple(np.add((5, 6, 7), off))
    ed = tuple(np.add((6, 6, 7), off))
    assert regions[(slice(None), *et)].tolist() == [1, 1, 1]
    assert regions[(slice(None), *ed)].tolist() == [1, 0, 0]
    assert regions.sum() == 4


@pytest.mark.parametrize("size", [(10, 10, 10), (16, 6, 20), None])
def test_restore_geometry_round_trip(size) -> None:
    image = _volume()
    _, _, geometry = preprocess_arrays(image, None, "brats2021", PreprocessConfig(size=size))
    # A crafted mask on the preprocessed grid: the voxels that hold original voxels, marked.
    mask = np.zeros(geometry.shape, np.uint8)
    t = geometry.target_start
    mask[t[0], t[1], t[2]] = 3
    mask[geometry.target_stop[0] - 1, t[1], t[2]] = 2
    back = restore_geometry(mask, geometry)
    assert back.shape == image.shape[1:] and back.dtype == np.uint8
    s = geometry.source_start
    assert back[s[0], s[1], s[2]] == 3
    assert back[geometry.source_stop[0] - 1, s[1], s[2]] == 2
    assert back.sum() == 5
    # Multi-channel masks, and apply/restore are inverse on the kept region.
    original = np.random.default_rng(1).random((3, *image.shape[1:]))
    again = restore_geometry(geometry.apply(original), geometry)
    np.testing.assert_array_equal(again[(slice(None), *geometry.source)], original[(slice(None), *geometry.source)])


def test_paper_geometry_on_brats_shape() -> None:
    geometry = plan_geometry((240, 240, 155), ((40, 30, 0), (200, 230, 150)), (160, 192, 160))
    assert geometry.source_start == (40, 34, 0) and geometry.source_stop == (200, 226, 150)
    assert geometry.target_start == (0, 0, 5) and geometry.target_stop == (160, 192, 155)


def test_bad_inputs() -> None:
    with pytest.raises(RevprofError, match="three positive integers"):
        PreprocessConfig(size=(0, 4, 4))
    with pytest.raises(RevprofError, match="does not end with"):
        restore_geometry(np.zeros((3, 3, 3)), plan_geometry((5, 5, 5), ((0, 0, 0), (5, 5, 5)), (4, 4, 4)))
