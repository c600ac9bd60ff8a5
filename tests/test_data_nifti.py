"""Loading cases from NIfTI, region masks per convention, and clear errors for broken files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from data_helpers import SHAPE, brain_images, label_map, make_msd, make_new_case, make_old_case, write_nii
from revprof.data import discover, get_convention, load_case
from revprof.errors import RevprofError

# Hand-written expectations: label value -> (in WT, in TC, in ET).
EXPECTED = {
    "brats2021": {0: (0, 0, 0), 1: (1, 1, 0), 2: (1, 0, 0), 4: (1, 1, 1)},
    "brats2023": {0: (0, 0, 0), 1: (1, 1, 0), 2: (1, 0, 0), 3: (1, 1, 1)},
    "brats2024": {0: (0, 0, 0), 1: (1, 1, 0), 2: (1, 0, 0), 3: (1, 1, 1), 4: (0, 0, 0)},
    "msd": {0: (0, 0, 0), 1: (1, 0, 0), 2: (1, 1, 0), 3: (1, 1, 1)},
}


def _only(tmp_path: Path, convention: str | None = None):
    (case,) = discover(tmp_path, convention).cases
    return case


def _check_masks(loaded, convention: str, values: list[int]) -> None:
    masks = get_convention(convention).region_masks(loaded.labels)
    assert masks.shape == (3, *SHAPE)
    expected = np.zeros((3, *SHAPE), dtype=bool)
    for i, v in enumerate(values):
        expected[:, i + 2, 3, 3] = EXPECTED[convention][v]
    np.testing.assert_array_equal(masks, expected)


@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_load_brats2021(tmp_path: Path, ext: str) -> None:
    values = [0, 1, 2, 4, 1]
    make_old_case(tmp_path / "LGG", "BraTS19_X_1", label_map(values), ext=ext, seed=3)
    loaded = load_case(_only(tmp_path))
    assert loaded.image.dtype == np.float32 and loaded.image.shape == (4, *SHAPE)
    np.testing.assert_array_equal(loaded.image, brain_images(SHAPE, 3).astype(np.float32))
    assert loaded.labels is not None and loaded.labels.dtype == np.uint8
    assert loaded.spacing == (1.0, 1.0, 1.0) and loaded.affine.shape == (4, 4)
    _check_masks(loaded, "brats2021", values)


def test_load_brats2023_and_2024(tmp_path: Path) -> None:
    make_new_case(tmp_path / "a", "BraTS-GLI-00000-000", label_map([3, 2, 1, 0]), seed=1)
    loaded = load_case(_only(tmp_path / "a"))
    # Channel order is FLAIR (t2f), T1 (t1n), T1ce (t1c), T2 (t2w).
    np.testing.assert_array_equal(loaded.image, brain_images(SHAPE, 1).astype(np.float32))
    _check_masks(loaded, "brats2023", [3, 2, 1, 0])

    root = tmp_path / "BraTS2024_GLI"
    make_new_case(root, "BraTS-GLI-02000-100", label_map([4, 3, 2, 1]))
    loaded = load_case(_only(root))
    assert loaded.case.convention == "brats2024"
    _check_masks(loaded, "brats2024", [4, 3, 2, 1])  # resection cavity in no region


def test_load_msd_4d(tmp_path: Path) -> None:
    make_msd(tmp_path, {"BRATS_001": label_map([1, 2, 3])}, test=["BRATS_500"])
    train, test = discover(tmp_path).cases
    loaded = load_case(train)
    np.testing.assert_array_equal(loaded.image, brain_images(SHAPE, 0).astype(np.float32))
    _check_masks(loaded, "msd", [1, 2, 3])
    assert load_case(test).labels is None


def test_float_and_uint16_segmentations_are_rounded(tmp_path: Path) -> None:
    seg = label_map([4, 2, 1]).astype(np.float32)
    seg[seg > 0] += 1e-5
    make_old_case(tmp_path / "f", "BraTS2021_00001", seg)
    assert sorted(np.unique(load_case(_only(tmp_path / "f")).labels)) == [0, 1, 2, 4]
    make_new_case(tmp_path / "u", "BraTS-MET-00001-000", label_map([3, 1]).astype(np.uint16))
    assert sorted(np.unique(load_case(_only(tmp_path / "u")).labels)) == [0, 1, 3]


def test_non_integer_segmentation(tmp_path: Path) -> None:
    seg = label_map([1]).astype(np.float32)
    seg[2, 3, 3] = 1.5
    make_old_case(tmp_path, "BraTS2021_00001", seg)
    with pytest.raises(RevprofError, match="non-integer label values"):
        load_case(_only(tmp_path))


def test_unknown_label_names_case_file_and_valid_values(tmp_path: Path) -> None:
    make_old_case(tmp_path, "BraTS2021_00009", label_map([1, 3]))
    with pytest.raises(RevprofError) as info:
        load_case(_only(tmp_path))
    text = str(info.value)
    assert "case BraTS2021_00009" in text and "BraTS2021_00009_seg.nii.gz" in text
    assert "label values 3" in text and "valid: 0, 1, 2, 4" in text
    # Label 4 in a 2023 case hints at the 2024 convention.
    make_new_case(tmp_path / "n", "BraTS-GLI-00002-000", label_map([4]))
    with pytest.raises(RevprofError, match="brats2024"):
        load_case(_only(tmp_path / "n"))
    assert load_case(_only(tmp_path / "n", "brats2024")).labels is not None


def test_corrupted_gzip(tmp_path: Path) -> None:
    folder = make_old_case(tmp_path, "BraTS2021_00003", label_map([1]))
    bad = folder / "BraTS2021_00003_t1.nii.gz"
    bad.write_bytes(b"this is not gzip at all")
    with pytest.raises(RevprofError) as info:
        load_case(_only(tmp_path))
    assert "case BraTS2021_00003" in str(info.value) and str(bad) in str(info.value)


def test_truncated_gzip(tmp_path: Path) -> None:
    shape = (40, 40, 30)
    folder = make_old_case(tmp_path, "BraTS2021_00004", None, shape=shape)
    bad = folder / "BraTS2021_00004_t2.nii.gz"
    raw = np.random.default_rng(0).integers(0, 3000, size=shape).astype(np.int16)
    write_nii(bad, raw)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    assert gzip.decompress(data)  # the intact file was a valid gzip
    with pytest.raises(RevprofError) as info:
        load_case(_only(tmp_path))
    text = str(info.value)
    assert "case BraTS2021_00004" in text and str(bad) in text


def test_seg_shape_mismatch(tmp_path: Path) -> None:
    make_old_case(tmp_path, "BraTS2021_00005", np.zeros((12, 10, 9), np.uint8))
    with pytest.raises(RevprofError) as info:
        load_case(_only(tmp_path))
    text = str(info.value)
    assert "BraTS2021_00005_seg.nii.gz" in text and "(12, 10, 9)" in text and "(12, 10, 8)" in text


def test_seg_affine_mismatch(tmp_path: Path) -> None:
    folder = make_old_case(tmp_path, "BraTS2021_00006", None)
    write_nii(folder / "BraTS2021_00006_seg.nii.gz", label_map([1]), affine=np.diag([2.0, 1, 1, 1]))
    with pytest.raises(RevprofError, match=r"BraTS2021_00006_seg.nii.gz is on another grid .*RAS 2x1x1 mm"):
        load_case(_only(tmp_path))


def test_modality_shape_mismatch(tmp_path: Path) -> None:
    folder = make_old_case(tmp_path, "BraTS2021_00008", None)
    write_nii(folder / "BraTS2021_00008_t1ce.nii.gz", np.ones((12, 10, 7), np.int16))
    with pytest.raises(RevprofError, match=r"BraTS2021_00008_t1ce.nii.gz is on another grid .*shape \(12, 10, 7\)"):
        load_case(_only(tmp_path))


def test_msd_image_must_be_4d(tmp_path: Path) -> None:
    write_nii(tmp_path / "imagesTr" / "BRATS_001.nii.gz", np.ones(SHAPE, np.int16))
    with pytest.raises(RevprofError, match="expected a 4-D Decathlon image"):
        load_case(_only(tmp_path))
