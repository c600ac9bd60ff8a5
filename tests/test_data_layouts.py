"""Discovery of cases in the public release layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_helpers import label_map, make_msd, make_new_case, make_old_case, write_nii
from revprof.data import discover
from revprof.errors import RevprofError


def test_brats2018_hgg_lgg_and_nii(tmp_path: Path) -> None:
    root = tmp_path / "MICCAI_BraTS_2018_Data_Training"
    make_old_case(root / "HGG", "Brats18_2013_2_1", label_map([1, 2, 4]))
    make_old_case(root / "LGG", "Brats18_2013_0_1", label_map([1, 2]), ext=".nii")
    (root / "survival_data.csv").write_text("BraTS18ID,Age\n")
    index = discover(root)
    assert [c.case_id for c in index] == ["Brats18_2013_0_1", "Brats18_2013_2_1"]
    assert not index.problems
    lgg = index.cases[0]
    assert lgg.convention == "brats2021"
    assert [p.name for p in lgg.images] == [
        "Brats18_2013_0_1_flair.nii", "Brats18_2013_0_1_t1.nii",
        "Brats18_2013_0_1_t1ce.nii", "Brats18_2013_0_1_t2.nii",
    ]
    assert lgg.seg is not None and lgg.seg.name == "Brats18_2013_0_1_seg.nii"
    assert lgg.patient_id == lgg.case_id


def test_brats2020_irregularities(tmp_path: Path) -> None:
    root = tmp_path / "MICCAI_BraTS2020_TrainingData"
    make_old_case(root, "BraTS20_Training_001", label_map([1]))
    # Case 355 of the real download: the segmentation is misnamed.
    make_old_case(root, "BraTS20_Training_355", label_map([2]), ext=".nii", seg_name="W39_1998.09.19_Segm.nii")
    (root / "name_mapping.csv").write_text("a,b\n")
    (root / "survival_info.csv").write_text("a,b\n")
    (root / ".DS_Store").write_text("x")
    (root / "BraTS20_Training_001" / "._BraTS20_Training_001_t1.nii.gz").write_bytes(b"\0\0")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a case")
    (root / ".hidden_case").mkdir()
    write_nii(root / ".hidden_case" / "x_flair.nii.gz", np.zeros((2, 2, 2), np.int16))
    index = discover(root)
    assert [c.case_id for c in index] == ["BraTS20_Training_001", "BraTS20_Training_355"]
    case355 = index.cases[1]
    assert case355.seg is not None and case355.seg.name == "W39_1998.09.19_Segm.nii"
    (warning,) = index.problems
    assert warning.severity == "warning"
    assert warning.case_id == "BraTS20_Training_355"
    assert "W39_1998.09.19_Segm.nii" in str(warning) and "misnamed" in str(warning)


def test_upper_and_lower_case_names(tmp_path: Path) -> None:
    folder = make_old_case(tmp_path, "BraTS2021_00007", None)
    (folder / "BraTS2021_00007_flair.nii.gz").rename(folder / "BraTS2021_00007_FLAIR.NII.GZ")
    write_nii(folder / "BraTS2021_00007_Seg.nii.gz", label_map([4]))
    index = discover(tmp_path)
    (case,) = index.cases
    assert case.images[0].name == "BraTS2021_00007_FLAIR.NII.GZ"
    assert case.seg is not None and case.seg.name == "BraTS2021_00007_Seg.nii.gz"


def test_missing_modality_is_reported(tmp_path: Path) -> None:
    make_old_case(tmp_path, "BraTS2021_00001", label_map([1]), skip=("t1ce",))
    make_old_case(tmp_path, "BraTS2021_00002", label_map([1]))
    index = discover(tmp_path)
    assert [c.case_id for c in index] == ["BraTS2021_00002"]
    (problem,) = index.errors
    assert problem.case_id == "BraTS2021_00001"
    assert "missing t1ce image" in str(problem)
    assert "BraTS2021_00001_t1ce.nii.gz" in str(problem)


def test_brats2023_cohorts_and_time_points(tmp_path: Path) -> None:
    root = tmp_path / "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData"
    make_new_case(root, "BraTS-GLI-00001-000", label_map([1, 2, 3]))
    make_new_case(root, "BraTS-GLI-00001-001", label_map([2]))
    make_new_case(root, "BraTS-MET-00005-000", None, ext=".nii")
    make_new_case(root, "BraTS-SSA-00002-000", label_map([3]))
    index = discover(root)
    ids = [c.case_id for c in index]
    assert ids == ["BraTS-GLI-00001-000", "BraTS-GLI-00001-001", "BraTS-MET-00005-000", "BraTS-SSA-00002-000"]
    assert {c.convention for c in index} == {"brats2023"}
    assert [c.patient_id for c in index] == ["BraTS-GLI-00001", "BraTS-GLI-00001", "BraTS-MET-00005", "BraTS-SSA-00002"]
    gli = index.cases[0]
    assert [p.name.split("-")[-1] for p in gli.images] == ["t2f.nii.gz", "t1n.nii.gz", "t1c.nii.gz", "t2w.nii.gz"]
    assert index.cases[2].seg is None and not index.cases[2].has_seg


def test_brats2024_detected_from_folder_name_and_forced(tmp_path: Path) -> None:
    root = tmp_path / "BraTS2024-BraTS-GLI-TrainingData"
    make_new_case(root, "BraTS-GLI-02024-100", label_map([4]))
    assert discover(root).cases[0].convention == "brats2024"
    # A case id containing 02024 does not make a 2023 dataset a 2024 one.
    other = tmp_path / "gli"
    make_new_case(other, "BraTS-GLI-02024-000", label_map([3]))
    assert discover(other).cases[0].convention == "brats2023"
    assert discover(other, convention="brats2024").cases[0].convention == "brats2024"


def test_single_case_folder(tmp_path: Path) -> None:
    folder = make_new_case(tmp_path, "BraTS-PED-00010-000", label_map([1]))
    (case,) = discover(folder).cases
    assert case.case_id == "BraTS-PED-00010-000"


def test_msd_layout(tmp_path: Path) -> None:
    root = make_msd(tmp_path / "Task01_BrainTumour",
                    {"BRATS_001": label_map([1]), "BRATS_002": label_map([3])}, test=["BRATS_485"])
    (root / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\0\5\x16\7")
    (root / "labelsTr" / "._BRATS_001.nii.gz").write_bytes(b"\0\5\x16\7")
    index = discover(tmp_path)  # the parent of the task folder works too
    assert [c.case_id for c in index] == ["BRATS_001", "BRATS_002", "BRATS_485"]
    assert not index.problems
    first, _, test_case = index.cases
    assert first.packed and first.convention == "msd" and len(set(first.images)) == 1
    assert first.seg == root / "labelsTr" / "BRATS_001.nii.gz"
    assert test_case.seg is None


def test_bad_root_and_convention(tmp_path: Path) -> None:
    with pytest.raises(RevprofError, match="does not exist"):
        discover(tmp_path / "nope")
    with pytest.raises(RevprofError, match="convention must be one of"):
        discover(tmp_path, convention="brats2022")
