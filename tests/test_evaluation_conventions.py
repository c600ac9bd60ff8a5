"""Predictions written in another label convention than the reference, and near-empty
predictions, scored on the real BraTS 2018 and 2021 cases and the MET samples (issues 25, 26)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from data_helpers import real_samples
from revprof.cli.app import app
from revprof.evaluation.evaluate import ScoringOptions, evaluate, scoring_options
from revprof.evaluation.hausdorff import HD95_EMPTY_PENALTY

pytestmark = pytest.mark.realdata

CASE = "Brats18_CBICA_AOP_1"
NO_HD95 = ScoringOptions(hd95=False, lesions=None)
NO_LESIONS = ScoringOptions(lesions=None)


def _seg_2018() -> Path:
    return real_samples() / "brats2018" / "HGG" / CASE / f"{CASE}_seg.nii.gz"


def _write(path: Path, labels: np.ndarray, like: Path) -> Path:
    """``labels`` as a NIfTI file on the grid of ``like`` (the way another tool writes one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = nib.load(like)
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), source.affine), path)
    return path


def _reference_2018() -> np.ndarray:
    return np.asarray(nib.load(_seg_2018()).dataobj).astype(np.uint8)


def test_a_2023_style_prediction_against_a_2018_reference(tmp_path: Path) -> None:
    reference = _reference_2018()
    assert set(np.unique(reference)) == {0, 1, 2, 4}
    as_2023 = np.where(reference == 4, 3, reference)  # ET = 3, as BraTS 2023 writes it
    _write(tmp_path / "pred" / f"{CASE}.nii.gz", as_2023, _seg_2018())
    result = evaluate(tmp_path / "pred", real_samples() / "brats2018" / "HGG",
                      options=NO_LESIONS)
    assert result.problems == () and result.convention == "brats2021"
    (case,) = result.cases
    assert case.pred_convention == "brats2023"
    assert case.dice == {"wt": 1.0, "tc": 1.0, "et": 1.0}
    assert case.hd95 == {"wt": 0.0, "tc": 0.0, "et": 0.0}
    # the command line names the convention each side was read in
    out = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref",
                                   str(real_samples() / "brats2018" / "HGG"), "--no-hd95",
                                   "--no-lesions"])
    assert out.exit_code == 0, out.output
    assert f"predictions read in brats2023 labels (their own; references brats2021): {CASE}" \
        in out.output.replace("\n", " ")


def test_labels_that_do_not_tell_their_convention_are_one_line(tmp_path: Path) -> None:
    met = real_samples() / "met-eval"
    ref = met / "ref" / "BraTS-MET-00630-001-seg.nii.gz"  # brats2023 labels 1-3
    labels = np.asarray(nib.load(ref).dataobj).astype(np.uint8)
    _write(tmp_path / "pred" / "00630-001.nii.gz", np.where(labels == 3, 4, labels), ref)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / ref.name).symlink_to(ref)
    result = evaluate(tmp_path / "pred", tmp_path / "ref", options=NO_HD95)
    assert result.cases == ()
    (line,) = result.problems
    assert line.startswith("BraTS-MET-00630-001: not scored: prediction 00630-001.nii.gz holds "
                           "labels") and "do not tell their convention" in line
    assert "brats2021: 4 in WT/TC/ET" in line and "brats2024: 4 in no region" in line
    # told which: scored region by region
    told = evaluate(tmp_path / "pred", tmp_path / "ref", options=NO_HD95,
                    pred_convention="brats2021")
    assert told.cases[0].dice == {"wt": 1.0, "tc": 1.0, "et": 1.0}


def test_near_empty_predictions_score_as_brats_does(tmp_path: Path) -> None:
    reference = _reference_2018()
    et = np.argwhere(reference == 4)
    pred = tmp_path / "pred"
    # a failed model: nothing at all
    _write(pred / "empty" / f"{CASE}.nii.gz", np.zeros_like(reference), _seg_2018())
    # a nearly failed one, in the 2023 convention: three enhancing voxels, all inside the ET
    few = np.zeros_like(reference)
    few[tuple(et[:3].T)] = 3
    _write(pred / "few" / f"{CASE}.nii.gz", few, _seg_2018())
    ref = real_samples() / "brats2018" / "HGG"
    options = NO_LESIONS
    (empty,) = evaluate(pred / "empty", ref, options=options).cases
    assert empty.dice == {"wt": 0.0, "tc": 0.0, "et": 0.0}
    assert empty.hd95 == {r: HD95_EMPTY_PENALTY for r in ("wt", "tc", "et")}
    (nearly,) = evaluate(pred / "few", ref, options=options).cases
    assert nearly.pred_convention == "brats2023"
    n_wt = int(np.count_nonzero(reference))
    n_tc = int(np.count_nonzero((reference == 1) | (reference == 4)))
    assert nearly.dice["et"] == pytest.approx(2 * 3 / (3 + len(et)))  # never 0 for a misread label
    assert nearly.dice["tc"] == pytest.approx(2 * 3 / (3 + n_tc))
    assert nearly.dice["wt"] == pytest.approx(2 * 3 / (3 + n_wt))


def test_empty_reference_and_empty_prediction_score_one(tmp_path: Path) -> None:
    case = "BraTS2021_90001"  # no enhancing tumour
    seg = real_samples() / "brats2021" / case / f"{case}_seg.nii.gz"
    labels = np.asarray(nib.load(seg).dataobj).astype(np.uint8)
    assert 4 not in labels
    one_et = labels.copy()
    one_et[tuple(np.argwhere(labels == 1)[0])] = 3  # one ET voxel, 2023 style, where there is none
    _write(tmp_path / "same" / f"{case}.nii.gz", labels, seg)
    _write(tmp_path / "one" / f"{case}.nii.gz", one_et, seg)
    ref = real_samples() / "brats2021"
    (same,) = evaluate(tmp_path / "same", ref, options=NO_LESIONS).cases
    assert (same.dice["et"], same.hd95["et"]) == (1.0, 0.0) and same.empty_reference == ("et",)
    (one,) = evaluate(tmp_path / "one", ref, options=NO_LESIONS).cases
    assert (one.dice["et"], one.hd95["et"]) == (0.0, HD95_EMPTY_PENALTY)
    assert one.pred_convention == "brats2023" and one.dice["tc"] == 1.0


def test_official_writes_373_where_one_side_is_empty(tmp_path: Path) -> None:
    met = real_samples() / "met-eval"
    ref = met / "ref" / "BraTS-MET-00630-001-seg.nii.gz"
    pred = met / "pred" / "BraTS-MET-00630-001.nii.gz"
    labels = np.asarray(nib.load(pred).dataobj).astype(np.uint8)
    _write(tmp_path / "pred" / pred.name, np.where(labels == 3, 1, labels), pred)  # no ET left
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / ref.name).symlink_to(ref)
    official = evaluate(tmp_path / "pred", tmp_path / "ref", options=scoring_options(official=True))
    (case,) = official.cases
    assert case.hd95["et"] == 373.0  # panoptica's infinity as brats-parse-metrics writes it
    assert case.lesions["et"].tp == 0 and case.lesions["et"].hd95 == 373.0  # every lesion missed
    assert official.to_json()["lesion_rules"]["penalty"] == 373.0
    classic = evaluate(tmp_path / "pred", tmp_path / "ref", options=NO_LESIONS).cases[0]
    assert classic.hd95["et"] == HD95_EMPTY_PENALTY == pytest.approx(373.1287)
    out = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref",
                                   str(tmp_path / "ref"), "--official", "--json"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.stdout)["cases"][0]
    assert row["hd95"]["et"] == 373.0 and row["lesions"]["et"]["hd95"] == 373.0
    refused = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--ref",
                                       str(tmp_path / "ref"), "--official", "--empty-penalty", "374"])
    assert refused.exit_code == 1 and "--official scores HD95 373" in refused.output
