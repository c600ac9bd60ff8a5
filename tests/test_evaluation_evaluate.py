"""evaluate(): real NIfTI files written with nibabel, convention detection, problems, outputs."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from revprof.errors import RevprofError
from revprof.evaluation.evaluate import detect_convention, evaluate, present_labels
from revprof.evaluation.hausdorff import HD95_EMPTY_PENALTY


def write_seg(path: Path, labels: np.ndarray, spacing=(1.0, 1.0, 1.0), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    image = nib.Nifti1Image(np.asarray(labels).astype(dtype), affine)
    image.header.set_zooms(spacing)
    nib.save(image, str(path))
    return path


def _line(values: list[int], length: int = 8) -> np.ndarray:
    """A (length, 4, 4) label map whose x=0..len(values)-1 slices, at y=z=1, hold ``values``."""
    out = np.zeros((length, 4, 4), dtype=np.uint8)
    out[: len(values), 1, 1] = values
    return out


def test_brats2021_case_folders_known_dice_and_hd95(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    # WT ref x{0,1,2,3} pred x{0,1,2,5} → 0.75; TC ref x{0,1,3} pred x{0,5} → 0.4; ET x{0,1} vs x{0} → 2/3
    write_seg(ref / "BraTS2021_00001" / "BraTS2021_00001_seg.nii.gz", _line([4, 4, 2, 1]))
    write_seg(pred / "BraTS2021_00001.nii.gz", _line([4, 2, 2, 0, 0, 1]))
    # A perfect case with no enhancing tumour on either side.
    write_seg(ref / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz", _line([1, 2]))
    write_seg(pred / "00002.nii.gz", _line([1, 2]))
    result = evaluate(pred, ref)
    assert result.convention == "brats2021"  # labels {0,1,2,4}
    assert [c.case for c in result.cases] == ["BraTS2021_00001", "BraTS2021_00002"]
    first, second = result.cases
    assert first.dice == pytest.approx({"wt": 0.75, "tc": 0.4, "et": 2 / 3})
    assert second.dice == {"wt": 1.0, "tc": 1.0, "et": 1.0}
    assert second.hd95 == {"wt": 0.0, "tc": 0.0, "et": 0.0}
    # ET: single-voxel-thick lines; pred x{0} vs ref x{0,1} → distances {0, 0, 1} → p95 = 0.9
    assert first.hd95 is not None and first.hd95["et"] == pytest.approx(0.9)
    mean = result.mean()
    assert mean["dice"] == pytest.approx({"wt": 0.875, "tc": 0.7, "et": 5 / 6})
    assert result.unpaired == () and result.problems == ()


@pytest.mark.parametrize(
    ("labels", "names", "expected"),
    [
        ({0, 1, 2, 4}, ["case1"], "brats2021"),
        ({0, 1, 2, 3}, ["case1"], "brats2023"),
        ({0, 1, 2, 3, 4}, ["case1"], "brats2024"),
        ({0, 1, 2, 4}, ["BraTS-GLI-00001-000"], "brats2024"),
        ({0, 1, 2, 3}, ["BRATS_001"], "msd"),
        ({0, 1, 2}, ["BraTS2021_90001"], "brats2021"),
        ({0, 1, 2}, ["BRATS_001"], "msd"),
        ({0, 1, 2}, ["BraTS-MET-00001-000"], "brats2023"),
    ],
)
def test_detect_convention(labels: set[int], names: list[str], expected: str) -> None:
    assert detect_convention(labels, names) == (expected, None)


def test_detect_convention_ambiguous_and_impossible() -> None:
    name, note = detect_convention({0, 1}, ["case"])
    assert name == "brats2023" and note and "--convention" in note
    with pytest.raises(RevprofError, match="fit no known convention"):
        detect_convention({0, 1, 7}, ["case"])


def test_forced_convention_changes_the_regions(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    write_seg(ref / "case1_seg.nii.gz", _line([2, 2, 3]))
    write_seg(pred / "case1.nii.gz", _line([2, 0, 3, 1]))
    as_2023 = evaluate(pred, ref, convention="brats2023", hd95=False)
    as_msd = evaluate(pred, ref, convention="msd", hd95=False)
    assert as_2023.cases[0].dice == pytest.approx({"wt": 2 / 3, "tc": 2 / 3, "et": 1.0})
    assert as_msd.cases[0].dice == pytest.approx({"wt": 2 / 3, "tc": 0.8, "et": 1.0})
    assert as_msd.cases[0].hd95 is None
    with pytest.raises(RevprofError, match="did you mean 'brats2024'"):
        evaluate(pred, ref, convention="brats2042")


def test_float32_and_uint16_segmentations_are_rounded(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    labels = _line([1, 2, 3, 3])
    noisy = labels.astype(np.float32) + np.float32(0.0001)
    noisy[labels == 3] = 2.9999
    write_seg(ref / "BraTS-MET-00001-000-seg.nii.gz", noisy, dtype=np.float32)
    write_seg(pred / "00001-000.nii.gz", labels, dtype=np.uint16)
    result = evaluate(pred, ref)
    assert result.convention == "brats2023"
    assert result.cases[0].dice == {"wt": 1.0, "tc": 1.0, "et": 1.0}


def test_shape_mismatch_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    write_seg(ref / "a_seg.nii.gz", _line([1, 3]))
    write_seg(pred / "a.nii.gz", _line([1, 3], length=9))
    write_seg(ref / "b_seg.nii.gz", _line([1, 3]))
    write_seg(pred / "b.nii.gz", _line([1, 3]))
    (pred / "c.nii.gz").write_bytes(b"not a nifti")
    write_seg(ref / "c_seg.nii.gz", _line([1]))
    result = evaluate(pred, ref)
    assert [c.case for c in result.cases] == ["b"]
    assert any("a: not scored" in p and "(9, 4, 4)" in p and "(8, 4, 4)" in p for p in result.problems)
    assert any(p.startswith("c: not scored: cannot read") for p in result.problems)
    assert result.mean()["dice"] == {"wt": 1.0, "tc": 1.0, "et": 1.0}


def test_unknown_labels_and_other_grids_are_refused_not_scored(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    write_seg(ref / "a_seg.nii.gz", _line([1, 3]))
    write_seg(pred / "a.nii.gz", _line([1, 3, 7]))  # label 7 is no convention's label
    write_seg(ref / "b_seg.nii.gz", _line([1, 3]), spacing=(1.0, 1.0, 2.0))
    write_seg(pred / "b.nii.gz", _line([1, 3]), spacing=(1.0, 1.0, 1.0))  # another grid
    write_seg(ref / "c_seg.nii.gz", _line([1, 3]))
    write_seg(pred / "c.nii.gz", _line([1, 3]))
    result = evaluate(pred, ref, convention="brats2023")
    assert [c.case for c in result.cases] == ["c"]
    assert any(p.startswith("a: not scored") and "a.nii.gz" in p and "labels 1, 3, 7" in p
               and "no convention defines" in p for p in result.problems), result.problems
    assert any(p.startswith("b: not scored") and "RAS 1x1x1 mm" in p and "RAS 1x1x2 mm" in p
               for p in result.problems), result.problems


def test_empty_regions_score_the_brats_way(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    write_seg(ref / "a_seg.nii.gz", _line([2, 2]))  # no core, no ET
    write_seg(pred / "a.nii.gz", _line([2, 3]))  # predicts ET where there is none
    case = evaluate(pred, ref, convention="brats2023").cases[0]
    assert case.dice == {"wt": 1.0, "tc": 0.0, "et": 0.0}
    assert case.hd95 == {"wt": 0.0, "tc": HD95_EMPTY_PENALTY, "et": HD95_EMPTY_PENALTY}


def test_to_json_and_to_frame(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    write_seg(ref / "a_seg.nii.gz", _line([1, 2, 3]))
    write_seg(pred / "a.nii.gz", _line([1, 2, 3]))
    write_seg(pred / "orphan.nii.gz", _line([1]))
    result = evaluate(pred, ref, convention="brats2023")
    data = result.to_json()
    assert set(data) == {"convention", "hd95_units", "official", "lesion_rules", "cases", "mean",
                         "unpaired", "problems"}
    assert data["convention"] == "brats2023" and data["problems"] == [] and data["hd95_units"] == "mm"
    perfect = {"tp": 1, "fp": 0, "fn": 0, "dice": 1.0, "hd95": 0.0, "matched_dice": 1.0,
               "matched_hd95": 0.0}
    assert data["cases"] == [
        {"case": "a", "dice": {"wt": 1.0, "tc": 1.0, "et": 1.0}, "hd95": {"wt": 0.0, "tc": 0.0, "et": 0.0},
         "lesions": {"wt": perfect, "tc": {**perfect, "tp": 2}, "et": perfect},
         "empty_reference": [], "pred_convention": "brats2023"}
    ]  # TC is labels 1 (x=0) and 3 (x=2): two separate lesions
    ones, zeros = {"wt": 1.0, "tc": 1.0, "et": 1.0}, {"wt": 0.0, "tc": 0.0, "et": 0.0}
    assert data["mean"] == {"dice": ones, "dice_nonempty": ones, "hd95": zeros, "lesion_dice": ones,
                            "lesion_hd95": zeros}
    assert data["unpaired"] == [str(pred / "orphan.nii.gz")]
    frame = result.to_frame()
    assert list(frame.columns) == ["case", "region", "dice", "hd95", "lesion_dice", "lesion_hd95",
                                   "tp", "fp", "fn"]
    assert frame[["case", "region"]].values.tolist() == [["a", "wt"], ["a", "tc"], ["a", "et"]]
    no_hd = evaluate(pred, ref, convention="brats2023", hd95=False).to_json()
    assert no_hd["cases"][0]["hd95"] == {"wt": None, "tc": None, "et": None}
    assert no_hd["mean"]["hd95"] == {"wt": None, "tc": None, "et": None}


def test_progress_callback(tmp_path: Path) -> None:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for name in ("a", "b", "c"):
        write_seg(ref / f"{name}_seg.nii.gz", _line([1]))
        write_seg(pred / f"{name}.nii.gz", _line([1]))
    calls: list[tuple[int, int, str]] = []
    evaluate(pred, ref, convention="msd", hd95=False, progress=lambda *a: calls.append(a))
    assert calls == [(1, 3, "a"), (2, 3, "b"), (3, 3, "c")]


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write_seg(tmp_path / "ref" / "a_seg.nii.gz", _line([1]))
    write_seg(tmp_path / "pred" / "zzz.nii.gz", _line([1]))
    with pytest.raises(RevprofError, match="does not exist"):
        evaluate(tmp_path / "missing", tmp_path / "ref")
    with pytest.raises(RevprofError, match="no NIfTI"):
        evaluate(tmp_path / "empty", tmp_path / "ref")
    with pytest.raises(RevprofError, match="no NIfTI"):
        evaluate(tmp_path / "pred", tmp_path / "empty")
    with pytest.raises(RevprofError, match="matches a reference"):
        evaluate(tmp_path / "pred", tmp_path / "ref")
    with pytest.raises(RevprofError, match="a folder"):
        evaluate(tmp_path / "pred" / "zzz.nii.gz", tmp_path / "ref")


def test_present_labels() -> None:
    assert present_labels(np.array([[[0, 4, 4, 1]]], dtype=np.uint8)) == {0, 1, 4}
    assert present_labels(np.array([[[0, 200]]], dtype=np.int32)) == {0, 200}
