"""evaluate() on the real BraTS 2023 metastasis samples and the real BraTS 2021 case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from revprof.evaluation.evaluate import ScoringOptions, evaluate

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
MET = REAL / "met-eval"
BRATS2021 = REAL / "brats2021"

pytestmark = pytest.mark.realdata


def _require(path: Path) -> None:
    if path.is_dir():
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"real samples missing under CI: {path}")
    pytest.skip(f"real samples not found: {path}")


def test_met_eval_pairs_messy_names_and_scores() -> None:
    _require(MET)
    result = evaluate(MET / "pred", MET / "ref", options=ScoringOptions(lesions=None))
    assert result.convention == "brats2023"  # labels 0-3
    assert [c.case for c in result.cases] == [
        "BraTS-MET-00132-000", "BraTS-MET-00217-000", "BraTS-MET-00630-001", "BraTS-MET-01325-000",
    ]
    assert {c.case: c.pred.name for c in result.cases} == {
        "BraTS-MET-00132-000": "00132-000.nii.gz",
        "BraTS-MET-00217-000": "SEG-00217-000.nii.gz",
        "BraTS-MET-00630-001": "BraTS-MET-00630-001.nii.gz",
        "BraTS-MET-01325-000": "BraTS-MET_01325-000.nii.gz",
    }
    assert result.unpaired == ()
    assert result.problems == ()  # shapes (240², 256², 512²) match pred vs ref per case
    by_case = {c.case: c for c in result.cases}
    # Single-lesion case: WT Dice equals the BraTS toolkit's lesion-wise WT Dice (0.98548).
    assert by_case["BraTS-MET-01325-000"].dice["wt"] == pytest.approx(0.9854805103820593)
    expected_dice = {
        "BraTS-MET-00132-000": {"wt": 0.75648, "tc": 0.68878, "et": 0.68408},
        "BraTS-MET-00217-000": {"wt": 0.82602, "tc": 0.89643, "et": 0.79132},
        "BraTS-MET-00630-001": {"wt": 0.92755, "tc": 0.92666, "et": 0.91479},
        "BraTS-MET-01325-000": {"wt": 0.98548, "tc": 0.97516, "et": 0.97216},
    }
    expected_hd95 = {
        "BraTS-MET-00132-000": {"wt": 31.8434, "tc": 33.5410, "et": 33.5261},
        "BraTS-MET-00217-000": {"wt": 5.0, "tc": 2.2361, "et": 2.8284},
        "BraTS-MET-00630-001": {"wt": 1.5, "tc": 1.2154, "et": 1.2154},  # 0.86 x 0.86 x 1.5 mm
        "BraTS-MET-01325-000": {"wt": 0.7071, "tc": 0.5, "et": 1.0},  # 0.5 x 0.5 x 1 mm
    }
    for case, dice in expected_dice.items():
        assert by_case[case].dice == pytest.approx(dice, abs=1e-4)
        assert by_case[case].hd95 == pytest.approx(expected_hd95[case], abs=1e-3)
    assert result.mean()["dice"] == pytest.approx({"wt": 0.87388, "tc": 0.87176, "et": 0.84059}, abs=1e-4)


def test_brats2021_case_against_itself(tmp_path: Path) -> None:
    _require(BRATS2021)
    seg = BRATS2021 / "BraTS2021_90001" / "BraTS2021_90001_seg.nii.gz"
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "BraTS2021_90001.nii.gz").symlink_to(seg)
    # The reference is the dataset folder itself: a case folder with four modalities and the seg.
    result = evaluate(pred, BRATS2021)
    assert result.convention == "brats2021"  # labels 0,1,2 only; decided by the BraTS2021_ name
    assert [c.case for c in result.cases] == ["BraTS2021_90001"]
    case = result.cases[0]
    assert case.dice == {"wt": 1.0, "tc": 1.0, "et": 1.0}  # no enhancing tumour: both empty → 1
    assert case.hd95 == {"wt": 0.0, "tc": 0.0, "et": 0.0}
    assert result.problems == ()
