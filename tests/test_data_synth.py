"""Synthetic BraTS-format cases."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from revprof.data import discover, load_case, make_phantom, parse_shape, synthesize
from revprof.errors import RevprofError

SHAPE = (48, 56, 40)


def test_deterministic_per_seed() -> None:
    a = make_phantom(SHAPE, np.random.default_rng([5, 0]))
    b = make_phantom(SHAPE, np.random.default_rng([5, 0]))
    c = make_phantom(SHAPE, np.random.default_rng([6, 0]))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.tissue, b.tissue)
    assert not np.array_equal(a.image, c.image)


def test_files_are_deterministic(tmp_path: Path) -> None:
    synthesize(tmp_path / "a", 2, SHAPE, "brats2023", seed=1)
    synthesize(tmp_path / "b", 2, SHAPE, "brats2023", seed=1)
    cases_a, cases_b = discover(tmp_path / "a"), discover(tmp_path / "b")
    assert len(cases_a) == len(cases_b) == 2
    for x, y in zip(cases_a, cases_b, strict=True):
        lx, ly = load_case(x), load_case(y)
        np.testing.assert_array_equal(lx.image, ly.image)
        np.testing.assert_array_equal(lx.labels, ly.labels)


@pytest.mark.parametrize("seed", range(4))
def test_phantom_is_plausible(seed: int) -> None:
    case = make_phantom(SHAPE, np.random.default_rng([seed, 0]))
    image = case.image.astype(np.float64)
    brain = image[0] > 0
    assert case.image.dtype == np.int16  # as the BraTS releases store them
    # Zero background outside the head, and every modality non-zero inside.
    assert 0.1 < brain.mean() < 0.5
    assert all(((case.image[m] > 0) == brain).all() for m in range(4))
    assert not brain[0].any() and not brain[:, 0].any() and not brain[..., 0].any()
    # Tumour labels present; oedema and core both there.
    assert (case.tissue == 2).any() and ((case.tissue == 1) | (case.tissue == 3)).any()
    assert not (case.tissue[~brain] > 0).any()
    if (case.tissue == 3).any():
        et = case.tissue == 3
        rest = brain & ~et
        assert image[2][et].mean() > 1.3 * image[2][rest].mean()  # ET bright on T1ce
        assert image[2][et].mean() > 1.3 * image[1][et].mean()  # ... brighter than on T1
    # Oedema bright on FLAIR.
    ed = case.tissue == 2
    assert image[0][ed].mean() > image[0][brain & (case.tissue == 0)].mean()


def test_enhancing_tumour_present_in_most_cases() -> None:
    with_et = sum((make_phantom((32, 32, 32), np.random.default_rng([0, i])).tissue == 3).any() for i in range(10))
    assert with_et >= 7


@pytest.mark.parametrize("convention,labels", [
    ("brats2021", {0, 1, 2, 4}), ("brats2023", {0, 1, 2, 3}), ("msd", {0, 1, 2, 3}),
])
def test_written_layout_reads_back(tmp_path: Path, convention: str, labels: set[int]) -> None:
    written = synthesize(tmp_path, 2, SHAPE, convention, seed=0)
    assert len(written) == 2
    index = discover(tmp_path)
    assert not index.problems and len(index) == 2
    assert {c.convention for c in index} == {convention}
    seen: set[int] = set()
    for case in index:
        loaded = load_case(case)
        assert loaded.image.shape == (4, *SHAPE)
        seen |= set(np.unique(loaded.labels).tolist())
        first = nib.load(case.images[0])
        assert first.get_data_dtype() == np.int16
        assert nib.load(case.seg).get_data_dtype() == np.uint8
        assert first.header.get_zooms()[:3] == (1.0, 1.0, 1.0)
    assert seen <= labels and len(seen) >= 3
    if convention == "msd":
        assert (tmp_path / "dataset.json").is_file()
        assert nib.load(written[0]).shape == (*SHAPE, 4)


@pytest.mark.parametrize("text", ["64,64", "abc", "64,64,0", "8,8,8", "1,2,3,4", ""])
def test_parse_shape_rejects(text: str) -> None:
    with pytest.raises(RevprofError, match="shape"):
        parse_shape(text)


def test_parse_shape() -> None:
    assert parse_shape("240,240,155") == (240, 240, 155)
    assert parse_shape("64x64x48") == (64, 64, 48)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(RevprofError, match="convention"):
        synthesize(tmp_path, 1, SHAPE, "brats2024")
    with pytest.raises(RevprofError, match="cases"):
        synthesize(tmp_path, 0, SHAPE)
