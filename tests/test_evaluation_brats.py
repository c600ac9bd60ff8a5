"""BraTS 2023+ scoring on real files: orientation, label checks, lesion-wise metrics, official figures.

Golden values: the official tool's own published output for the four MET sample pairs
(``met-eval/official/sample_mets_metrics.json``, ``brats-evaluation`` / panoptica, ``mets`` config).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.errors import RevprofError
from revprof.evaluation.evaluate import ScoringOptions, evaluate, scoring_options
from revprof.evaluation.lesions import LesionRules, lesion_rules, lesion_scores
from data_helpers import make_new_case, real_samples

pytestmark = pytest.mark.realdata

PRED_NAMES = {
    "00132-000": "00132-000.nii.gz",
    "00217-000": "SEG-00217-000.nii.gz",
    "00630-001": "BraTS-MET-00630-001.nii.gz",
    "01325-000": "BraTS-MET_01325-000.nii.gz",
}


def _met() -> Path:
    return real_samples() / "met-eval"


def _pair_folder(tmp_path: Path, keys: list[str]) -> tuple[Path, Path]:
    """Folders holding only the given MET pairs (symlinks to the real files)."""
    met = _met()
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    for key in keys:
        os.symlink(met / "pred" / PRED_NAMES[key], pred / PRED_NAMES[key])
        name = f"BraTS-MET-{key}-seg.nii.gz"
        os.symlink(met / "ref" / name, ref / name)
    return pred, ref


def _golden() -> dict[str, dict]:
    data = json.loads((_met() / "official" / "sample_mets_metrics.json").read_text())
    return {m["subject_name"][len("BraTS-MET-"):][:9]: m for m in data["metrics"]}


def _check_against_golden(result, keys: list[str]) -> None:
    golden = _golden()
    assert [c.case[len("BraTS-MET-"):] for c in result.cases] == keys
    for case in result.cases:
        g = golden[case.case[len("BraTS-MET-"):]]
        for region in ("wt", "tc", "et"):
            want, got = g[region], case.lesions[region]
            where = f"{case.case} {region}"
            assert (got.tp, got.fp, got.fn) == (want["tp"], want["fp"], want["fn"]), where
            assert case.dice[region] == pytest.approx(want["global_bin_dsc"], abs=1e-9), where
            assert case.hd95[region] == pytest.approx(want["global_bin_hd95"], abs=1e-9), where
            assert got.matched_dice == pytest.approx(want["sq_dsc"], abs=1e-9), where
            assert got.matched_hd95 == pytest.approx(want["sq_hd95"], abs=1e-9), where
            matched = [i for i in want["reference_instances"] if i["is_matched"]]
            ours = [m for m in got.lesions if m.kind == "tp"]
            assert sorted(m.dice for m in ours) == pytest.approx(sorted(i["sq_dsc"] for i in matched))
            assert sorted(m.ref_voxels for m in ours) == sorted(i["voxel_count"] for i in matched)
            # the challenge's lesion-wise score: matched Dice summed over all lesions, misses score 0
            total = want["tp"] + want["fp"] + want["fn"]
            assert got.dice == pytest.approx(want["sq_dsc"] * want["tp"] / total, abs=1e-9), where
            assert got.hd95 == pytest.approx(
                (want["sq_hd95"] * want["tp"] + 373 * (want["fp"] + want["fn"])) / total, abs=1e-6)
            # (373: what the official parser, brats-parse-metrics, scores an unmatched lesion)


def test_official_reproduces_the_published_figures_anisotropic_case(tmp_path: Path) -> None:
    pred, ref = _pair_folder(tmp_path, ["00630-001"])  # 0.86 x 0.86 x 1.5 mm
    result = evaluate(pred, ref, options=scoring_options(official=True))
    assert result.problems == ()
    _check_against_golden(result, ["00630-001"])
    # revprof's default: millimetres with the header's spacing on the right axes
    default = evaluate(pred, ref).cases[0]
    assert default.hd95 == pytest.approx({"wt": 1.5, "tc": 1.2154, "et": 1.2154}, abs=1e-4)
    assert default.dice == result.cases[0].dice
    assert default.lesions["wt"].matched_hd95 != pytest.approx(result.cases[0].lesions["wt"].matched_hd95)


@pytest.mark.slow
def test_official_reproduces_every_published_figure(tmp_path: Path) -> None:
    result = evaluate(_met() / "pred", _met() / "ref", options=scoring_options(official=True))
    _check_against_golden(result, ["00132-000", "00217-000", "00630-001", "01325-000"])


def _rewrite(src: Path, dst: Path, transform) -> Path:
    """Save ``src`` in another voxel order of the same world grid (nibabel's as_reoriented)."""
    image = nib.load(str(src))
    moved = image.as_reoriented(transform)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nib.save(moved, str(dst))
    return dst


LPS = np.array([[0, -1], [1, -1], [2, 1]])  # flip x and y: RAS -> LPS
SWAP = np.array([[1, 1], [0, 1], [2, 1]])  # swap the first two axes


@pytest.mark.parametrize("transform,codes", [pytest.param(LPS, "LPS", id="LPS"),
                                             pytest.param(SWAP, "ARS", id="axes-swapped")])
def test_a_reoriented_prediction_scores_as_the_original(tmp_path: Path, transform, codes) -> None:
    _, ref = _pair_folder(tmp_path, ["00630-001"])
    moved = tmp_path / "moved"
    _rewrite(_met() / "pred" / PRED_NAMES["00630-001"], moved / PRED_NAMES["00630-001"], transform)
    assert "".join(nib.aff2axcodes(nib.load(str(moved / PRED_NAMES["00630-001"])).affine)) == codes
    result = evaluate(moved, ref)
    case = result.cases[0]
    golden = _golden()["00630-001"]  # the stored RAS pair, as the official tool scored it
    assert case.dice == pytest.approx({r: golden[r]["global_bin_dsc"] for r in ("wt", "tc", "et")})
    assert case.hd95 == pytest.approx({"wt": 1.5, "tc": 1.2154, "et": 1.2154}, abs=1e-4)  # mm
    assert {r: (case.lesions[r].tp, case.lesions[r].fp, case.lesions[r].fn) for r in case.lesions} == {
        r: (golden[r]["tp"], golden[r]["fp"], golden[r]["fn"]) for r in ("wt", "tc", "et")}
    assert any(f"reoriented from {codes} to RAS" in p for p in result.problems), result.problems


def test_another_grid_is_refused_naming_both_orientations_and_spacings(tmp_path: Path) -> None:
    pred, ref = _pair_folder(tmp_path, ["00630-001"])
    image = nib.load(str(_met() / "pred" / PRED_NAMES["00630-001"]))
    shifted = image.affine.copy()
    shifted[:3, 3] += 5.0  # 5 mm away: not the same grid
    other = tmp_path / "other"
    other.mkdir()
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), shifted), str(other / PRED_NAMES["00630-001"]))
    result = evaluate(other, ref)
    assert result.cases == ()
    (line,) = [p for p in result.problems if "not scored" in p]
    assert "RAS 0.8594x0.8594x1.5 mm" in line and "origin" in line and "on another grid" in line


def test_a_scaled_segmentation_is_refused_not_rounded(tmp_path: Path) -> None:
    pred, ref = _pair_folder(tmp_path, ["00630-001"])
    image = nib.load(str(_met() / "ref" / "BraTS-MET-00630-001-seg.nii.gz"))
    scaled = np.asarray(image.dataobj, dtype=np.float32) * np.float32(0.45)
    bad = tmp_path / "bad"
    bad.mkdir()
    nib.save(nib.Nifti1Image(scaled, image.affine), str(bad / PRED_NAMES["00630-001"]))
    result = evaluate(bad, ref)
    assert result.cases == ()
    (line,) = result.problems
    assert PRED_NAMES["00630-001"] in line and "non-integer label values 0.45, 0.9, 1.35" in line
    # the training loader refuses the same values with the same function
    x, y, z = np.argwhere(np.isclose(scaled, 1.35))[0]  # an enhancing-tumour voxel
    crop = np.ascontiguousarray(scaled[max(x - 8, 0):x + 8, max(y - 8, 0):y + 8, max(z - 4, 0):z + 4])
    case_dir = make_new_case(tmp_path / "data", "BraTS-MET-00001-000", None, shape=crop.shape)
    nib.save(nib.Nifti1Image(crop, np.eye(4)), str(case_dir / "BraTS-MET-00001-000-seg.nii.gz"))
    from revprof.data import discover, load_case

    (case,) = discover(tmp_path / "data").cases
    with pytest.raises(RevprofError, match=r"BraTS-MET-00001-000-seg.nii.gz holds non-integer label "
                                           r"values .*1.35.*brats2023"):
        load_case(case)


def test_loader_reorients_a_segmentation_stored_as_lps(tmp_path: Path) -> None:
    from revprof.data import check_dataset, discover, load_case

    seg = np.asarray(nib.load(str(_met() / "ref" / "BraTS-MET-00630-001-seg.nii.gz")).dataobj).astype(np.uint8)
    seg = seg[100:140, 100:150, 30:60]  # a crop: real labels, small and fast
    folder = make_new_case(tmp_path, "BraTS-MET-00001-000", None, shape=seg.shape)
    affine = np.diag([0.8594, 0.8594, 1.5, 1.0])
    for path in folder.iterdir():  # give the images the real anisotropic grid
        nib.save(nib.Nifti1Image(np.asarray(nib.load(str(path)).dataobj), affine), str(path))
    target = folder / "BraTS-MET-00001-000-seg.nii.gz"
    nib.save(nib.Nifti1Image(seg, affine).as_reoriented(LPS), str(target))
    (case,) = discover(tmp_path).cases
    loaded = load_case(case)
    np.testing.assert_array_equal(loaded.labels, seg)
    assert any("reoriented from LPS to RAS" in n for n in loaded.notes)
    report = check_dataset(tmp_path)
    assert report.ok and any("reoriented" in str(p) and p.severity == "warning" for p in report.problems)


def _blob(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius ** 2


def test_lesion_rules_official_versus_2023() -> None:
    shape = (40, 40, 20)
    ref = _blob(shape, (10, 10, 10), 4) | _blob(shape, (10, 20, 10), 4)  # two lesions 2 voxels apart
    ref |= _blob(shape, (30, 30, 10), 0.5)  # one voxel: below every 2023 minimum volume but MET's
    pred = _blob(shape, (10, 10, 10), 4) | _blob(shape, (30, 10, 10), 3)  # one hit, one false positive
    official = lesion_scores(pred, ref, LesionRules())
    assert (official.tp, official.fp, official.fn) == (1, 1, 2)
    assert official.dice == pytest.approx(1.0 / 4)
    assert official.hd95 == pytest.approx((0.0 + 3 * 373.1287) / 4)
    gli = lesion_scores(pred, ref, lesion_rules("brats2023", "GLI"))  # dilation 3 joins the two
    assert (gli.tp, gli.fp, gli.fn) == (1, 1, 0)  # the 1-voxel lesion is below 50 mm³
    assert gli.lesions[0].ref_voxels == int(np.count_nonzero(ref)) - 1
    assert gli.hd95 == pytest.approx((gli.lesions[0].hd95 + 374.0) / 2)
    met = lesion_scores(pred, ref, lesion_rules("brats2023", "met"), spacing=(1.0, 1.0, 2.0))
    assert (met.tp, met.fp, met.fn) == (1, 1, 0)  # dilation 1 still joins; 2 mm³ is not above 2
    met_fine = lesion_scores(pred, ref, lesion_rules("brats2023", "MET"), spacing=(1.0, 1.0, 3.0))
    assert (met_fine.tp, met_fine.fp, met_fine.fn) == (1, 1, 1)  # 3 mm³: scored, and missed
    none = lesion_scores(np.zeros(shape, bool), np.zeros(shape, bool), lesion_rules("brats2023"))
    assert (none.dice, none.hd95) == (1.0, 0.0)


def test_scoring_options_validation() -> None:
    assert scoring_options().hd95_units == "mm"
    assert scoring_options(official=True) == ScoringOptions(hd95_units="voxel", official=True)
    assert scoring_options(lesion_style="brats2023", challenge="PED").lesions.penalty == 374.0
    assert scoring_options(empty_penalty=374).penalty == 374.0
    with pytest.raises(RevprofError, match="--official measures the global HD95 in voxel"):
        scoring_options(official=True, hd95_units="mm")
    with pytest.raises(RevprofError, match="challenge must be one of GLI"):
        scoring_options(challenge="XYZ")
    with pytest.raises(RevprofError, match="--hd95-units must be one of mm, voxel"):
        scoring_options(hd95_units="cm")


def test_cli_official_and_units(tmp_path: Path) -> None:
    pred, ref = _pair_folder(tmp_path, ["00630-001"])
    runner = CliRunner()
    out = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--json",
                              "--hd95-units", "voxel", "--no-lesions"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["hd95_units"] == "voxel" and data["cases"][0]["lesions"] is None
    assert data["cases"][0]["hd95"] == pytest.approx({"wt": 1.4142, "tc": 1.0, "et": 1.0}, abs=1e-4)
    table = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--official"])
    assert table.exit_code == 0, table.output
    assert "lesion-wise (official rules" in table.stdout
    assert "0.8410" in table.stdout and "0.8789" in table.stdout  # WT and TC lesion-wise Dice
    bad = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref), "--official",
                              "--hd95-units", "mm"])
    assert bad.exit_code == 1 and bad.output.count("error:") == 1 and "Traceback" not in bad.output
