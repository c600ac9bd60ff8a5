"""Resampling to the target spacing on the real anisotropic MET segmentations, and back."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from revprof.data import PreprocessCache, PreprocessConfig, discover
from revprof.data.preprocess import restore_labels
from revprof.data.resample import parse_spacing, resample, resampled_shape
from revprof.errors import RevprofError
from revprof.evaluation.dice import dice_score
from data_helpers import NEW_MODS, real_samples

pytestmark = pytest.mark.realdata


def _real_case(tmp_path: Path, seg_name: str) -> tuple[Path, np.ndarray, tuple[float, ...]]:
    """A BraTS 2023 case folder around the real segmentation's lesions, on its real grid."""
    image = nib.load(str(real_samples() / "met-eval" / "ref" / seg_name))
    labels = np.rint(np.asarray(image.dataobj)).astype(np.uint8)
    hits = np.argwhere(labels > 0)
    low, high = np.maximum(hits.min(0) - 6, 0), np.minimum(hits.max(0) + 7, labels.shape)
    crop = np.ascontiguousarray(labels[low[0]:high[0], low[1]:high[1], low[2]:high[2]])
    if crop.size > 3_000_000:  # keep the test fast: the central part of a large case
        centre = np.asarray(crop.shape) // 2
        half = np.minimum(np.asarray(crop.shape) // 2, (70, 70, 40))
        crop = np.ascontiguousarray(crop[tuple(slice(c - h, c + h) for c, h in zip(centre, half))])
    affine = image.affine
    case = tmp_path / "BraTS-MET-00001-000"
    case.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, mod in enumerate(NEW_MODS):
        voxels = (100 + 50 * crop + rng.normal(0, 5, crop.shape) + i).astype(np.float32)
        nib.save(nib.Nifti1Image(voxels, affine), str(case / f"BraTS-MET-00001-000-{mod}.nii.gz"))
    nib.save(nib.Nifti1Image(crop, affine), str(case / "BraTS-MET-00001-000-seg.nii.gz"))
    return tmp_path, crop, tuple(float(z) for z in image.header.get_zooms()[:3])


@pytest.mark.parametrize("seg_name,spacing", [
    pytest.param("BraTS-MET-00630-001-seg.nii.gz", (0.8594, 0.8594, 1.5), id="0.86x0.86x1.5mm",
                 marks=pytest.mark.slow),
    pytest.param("BraTS-MET-01325-000-seg.nii.gz", (0.5, 0.5, 1.0), id="0.5x0.5x1mm", marks=pytest.mark.slow),
])
def test_anisotropic_case_is_resampled_to_1mm_cached_and_restored(tmp_path, seg_name, spacing) -> None:
    root, labels, zooms = _real_case(tmp_path / "data", seg_name)
    assert zooms == pytest.approx(spacing, abs=1e-4)
    (case,) = discover(root).cases
    cache = PreprocessCache(tmp_path / "cache", PreprocessConfig(size=None, spacing=(1.0, 1.0, 1.0)))
    pre = cache.get(case)
    assert pre.grid_spacing == (1.0, 1.0, 1.0) and pre.source_shape == labels.shape
    assert pre.geometry.original_shape == resampled_shape(labels.shape, zooms, (1.0, 1.0, 1.0))
    # the whole tumour keeps its volume in mm³ (nearest-neighbour labels, within a few %)
    wt_mm3 = np.count_nonzero(labels) * float(np.prod(zooms))
    assert np.count_nonzero(pre.regions[0]) == pytest.approx(wt_mm3, rel=0.06)
    assert set(np.unique(pre.regions)) <= {0, 1}
    # back to the original grid: the reference's own regions come back almost unchanged
    back = restore_labels(pre.regions.astype(np.float32), pre)
    assert back.shape == labels.shape
    assert dice_score(back > 0, labels > 0) > 0.9
    assert dice_score(back == 3, labels == 3) > 0.85
    # cached: the second run reads the resampled case back
    again = PreprocessCache(tmp_path / "cache", cache.config)
    cached = again.get(case)
    assert again.hits == 1 and cached.source_shape == pre.source_shape
    np.testing.assert_array_equal(cached.regions, pre.regions)
    # --spacing none keeps the native grid
    native = PreprocessCache(tmp_path / "cache", PreprocessConfig(size=None, spacing=None)).get(case)
    assert native.source_shape is None and native.geometry.original_shape == labels.shape


def test_resample_and_parse_spacing() -> None:
    volume = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    same = resample(volume, volume.shape, (1, 1, 1), (1, 1, 1), order=1)
    np.testing.assert_array_equal(same, volume)
    halved = resample(volume, (2, 3, 8), (1, 1, 1), (1, 1, 0.5), order=1)
    assert halved[0, 0, 1] == pytest.approx(0.5)  # linear between voxels 0 and 1
    labels = np.array([[[0, 3, 1]]], dtype=np.uint8)
    assert set(np.unique(resample(labels, (1, 1, 6), (1, 1, 1), (1, 1, 0.5), order=0))) == {0, 1, 3}
    assert parse_spacing("1,1,1") == (1.0, 1.0, 1.0) and parse_spacing("none") is None
    with pytest.raises(RevprofError, match="--spacing must be three positive numbers"):
        parse_spacing("1,0,1")
