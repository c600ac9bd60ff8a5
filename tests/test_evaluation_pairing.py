"""Pairing predictions with references by case id despite messy names."""

from __future__ import annotations

from pathlib import Path

import pytest

from revprof.evaluation.pairing import case_key, case_name, pair_files


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("BraTS-MET-00132-000-seg.nii.gz", "00132-000"),
        ("00132-000.nii.gz", "00132-000"),
        ("SEG-00217-000.nii.gz", "00217-000"),
        ("BraTS-MET_01325-000.nii.gz", "01325-000"),
        ("BraTS-MET-00630-001.nii.gz", "00630-001"),
        ("BraTS-GLI-00001-000", "00001-000"),
        ("BraTS2021_00001", "1"),
        ("BraTS2021_00001_seg.nii.gz", "1"),
        ("BraTS20_Training_001", "1"),
        ("BraTS20_Validation_012_pred.nii", "12"),
        ("BRATS_001.nii.gz", "1"),
        ("00001.nii.gz", "1"),
        ("pred_BraTS2021_00042.nii.gz", "42"),
        ("BraTS19_2013_10_1_seg.nii.gz", "brats19_2013_10_1"),
        ("Patient_A_mask.NII.GZ", "patient_a"),
    ],
)
def test_case_key(name: str, key: str) -> None:
    assert case_key(name) == key


def test_case_name_strips_extension_prefix_and_suffix() -> None:
    assert case_name("BraTS-MET-00132-000-seg.nii.gz") == "BraTS-MET-00132-000"
    assert case_name("SEG-00217-000.nii.gz") == "00217-000"
    assert case_name("x_pred_seg.nii") == "x"


def test_messy_met_names_pair_and_extras_are_reported(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for case in ("00132-000", "00217-000", "00630-001", "01325-000", "00777-000"):
        _touch(ref / f"BraTS-MET-{case}-seg.nii.gz")
    for name in ("00132-000.nii.gz", "SEG-00217-000.nii.gz", "BraTS-MET_01325-000.nii.gz",
                 "BraTS-MET-00630-001.nii.gz", "BraTS-MET-09999-000.nii.gz"):
        _touch(pred / name)
    _touch(pred / "plans.json")  # nnU-Net side files are ignored
    _touch(pred / ".hidden.nii.gz")
    pairing = pair_files(pred, ref)
    assert {p.case: p.pred.name for p in pairing.pairs} == {
        "BraTS-MET-00132-000": "00132-000.nii.gz",
        "BraTS-MET-00217-000": "SEG-00217-000.nii.gz",
        "BraTS-MET-00630-001": "BraTS-MET-00630-001.nii.gz",
        "BraTS-MET-01325-000": "BraTS-MET_01325-000.nii.gz",
    }
    assert [p.name for p in pairing.unpaired_pred] == ["BraTS-MET-09999-000.nii.gz"]
    assert [p.name for p in pairing.unpaired_ref] == ["BraTS-MET-00777-000-seg.nii.gz"]
    assert pairing.problems == ()


def test_dataset_of_case_folders(tmp_path: Path) -> None:
    ref, pred = tmp_path / "BraTS2021_Training_Data", tmp_path / "pred"
    for n in (1, 2, 3):
        case = f"BraTS2021_{n:05d}"
        for suffix in ("flair", "t1", "t1ce", "t2", "seg"):
            _touch(ref / case / f"{case}_{suffix}.nii.gz")
    _touch(ref / "BraTS2021_00004" / "BraTS2021_00004_flair.nii.gz")  # no segmentation
    _touch(ref / "BraTS2021_00004" / "BraTS2021_00004_t1.nii.gz")
    _touch(pred / "BraTS2021_00001.nii.gz")
    _touch(pred / "00002.nii.gz")
    _touch(pred / "BraTS20_Training_003" / "prediction.nii.gz")  # case folder on the pred side
    pairing = pair_files(pred, ref)
    assert [(p.case, p.ref.name) for p in pairing.pairs] == [
        ("BraTS2021_00001", "BraTS2021_00001_seg.nii.gz"),
        ("BraTS2021_00002", "BraTS2021_00002_seg.nii.gz"),
        ("BraTS2021_00003", "BraTS2021_00003_seg.nii.gz"),
    ]
    assert pairing.pairs[2].pred.name == "prediction.nii.gz"
    assert len(pairing.problems) == 1 and "BraTS2021_00004" in pairing.problems[0]
    assert "no segmentation" in pairing.problems[0]


def test_flat_reference_folder_with_modalities_uses_only_segmentations(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for suffix in ("t1c", "t1n", "t2f", "t2w", "seg"):
        _touch(ref / f"BraTS-GLI-00001-000-{suffix}.nii.gz")
    _touch(pred / "BraTS-GLI-00001-000.nii.gz")
    pairing = pair_files(pred, ref)
    assert len(pairing.pairs) == 1
    assert pairing.pairs[0].ref.name == "BraTS-GLI-00001-000-seg.nii.gz"
    assert pairing.unpaired_ref == ()


def test_flat_msd_labels_folder_without_seg_suffix(tmp_path: Path) -> None:
    ref, pred = tmp_path / "labelsTr", tmp_path / "pred"
    for n in (1, 2):
        _touch(ref / f"BRATS_{n:03d}.nii.gz")
    _touch(pred / "BRATS_002.nii.gz")
    pairing = pair_files(pred, ref)
    assert [p.case for p in pairing.pairs] == ["BRATS_002"]
    assert [p.name for p in pairing.unpaired_ref] == ["BRATS_001.nii.gz"]


def test_duplicate_case_ids_are_reported_and_left_unpaired(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    _touch(ref / "BraTS-MET-00132-000-seg.nii.gz")
    _touch(pred / "00132-000.nii.gz")
    _touch(pred / "SEG-00132-000.nii.gz")
    pairing = pair_files(pred, ref)
    assert len(pairing.pairs) == 1
    assert len(pairing.unpaired_pred) == 1
    assert len(pairing.problems) == 1 and "00132-000" in pairing.problems[0]
