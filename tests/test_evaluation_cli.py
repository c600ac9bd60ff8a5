"""``revprof evaluate`` through Typer's CliRunner: table, --json, --csv, bad inputs."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from data_helpers import HEADER_DAMAGE, damage_header
from revprof.cli.app import app

runner = CliRunner()


def _write(path: Path, values: list[int], length: int = 6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((length, 3, 3), dtype=np.uint8)
    data[: len(values), 1, 1] = values
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    # brats2023 labels. Case 00001: perfect. Case 00002: WT 2·2/(3+2)=0.8, TC ref x{0} pred x{0,2}
    # → 2/3, ET ref x{0} pred x{0,2} → 2/3.
    _write(ref / "BraTS-MET-00001-000-seg.nii.gz", [3, 2])
    _write(pred / "00001-000.nii.gz", [3, 2])
    _write(ref / "BraTS-MET-00002-000-seg.nii.gz", [3, 2])
    _write(pred / "SEG-00002-000.nii.gz", [3, 2, 3])
    _write(ref / "BraTS-MET-00003-000-seg.nii.gz", [1])  # no prediction
    return pred, ref


def _invoke(*args: str):
    return runner.invoke(app, ["evaluate", *args])


def test_table_lists_cases_means_and_unpaired(folders: tuple[Path, Path]) -> None:
    pred, ref = folders
    result = _invoke("--pred", str(pred), "--ref", str(ref))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "BraTS-MET-00001-000" in out and "BraTS-MET-00002-000" in out
    assert "mean (2 cases)" in out
    assert "0.8000" in out and "0.6667" in out and "0.9000" in out  # mean WT (1 + 0.8) / 2
    assert "brats2023" in out
    assert "1 unpaired" in out and "BraTS-MET-00003-000-seg.nii.gz" in out


def test_json_output(folders: tuple[Path, Path]) -> None:
    pred, ref = folders
    result = _invoke("--pred", str(pred), "--ref", str(ref), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"cases", "mean", "unpaired", "convention", "problems"} <= set(data)
    assert data["convention"] == "brats2023" and isinstance(data["problems"], list)
    assert data["kind"] == "evaluation"
    assert [c["case"] for c in data["cases"]] == ["BraTS-MET-00001-000", "BraTS-MET-00002-000"]
    for case in data["cases"]:
        assert set(case) == {"case", "dice", "hd95", "lesions", "empty_reference", "pred_convention"}
        assert set(case["dice"]) == set(case["hd95"]) == {"wt", "tc", "et"}
    assert data["cases"][1]["dice"] == pytest.approx({"wt": 0.8, "tc": 2 / 3, "et": 2 / 3})
    assert data["mean"]["dice"]["wt"] == pytest.approx(0.9)
    assert set(data["mean"]) == {"dice", "dice_nonempty", "hd95", "lesion_dice", "lesion_hd95"}
    assert len(data["unpaired"]) == 1 and data["unpaired"][0].endswith("BraTS-MET-00003-000-seg.nii.gz")


def test_no_hd95_gives_nulls(folders: tuple[Path, Path]) -> None:
    pred, ref = folders
    result = _invoke("--pred", str(pred), "--ref", str(ref), "--json", "--no-hd95")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["cases"][0]["hd95"] == {"wt": None, "tc": None, "et": None}


def test_csv_written_atomically(folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, ref = folders
    out = tmp_path / "scores.csv"
    result = _invoke("--pred", str(pred), "--ref", str(ref), "--csv", str(out), "--convention", "brats2023")
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["case"], r["region"]) for r in rows] == [
        (case, region)
        for case in ("BraTS-MET-00001-000", "BraTS-MET-00002-000")
        for region in ("wt", "tc", "et")
    ]
    assert float(rows[3]["dice"]) == pytest.approx(0.8)
    assert float(rows[0]["hd95"]) == 0.0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pred", "{tmp}/missing", "--ref", "{ref}"], "--pred folder does not exist"),
        (["--pred", "{pred}", "--ref", "{tmp}/missing"], "--ref folder does not exist"),
        (["--pred", "{tmp}/empty", "--ref", "{ref}"], "holds no NIfTI"),
        (["--pred", "{pred}", "--ref", "{tmp}/empty"], "holds no NIfTI"),
        (["--pred", "{pred}", "--ref", "{ref}", "--convention", "brats2033"], "did you mean 'brats2023'"),
        (["--pred", "{pred}", "--ref", "{ref}", "--csv", "{tmp}/nowhere/x.csv"], "--csv folder does not exist"),
    ],
)
def test_bad_inputs_one_line_nonzero_no_traceback(folders: tuple[Path, Path], tmp_path: Path,
                                                  args: list[str], message: str) -> None:
    pred, ref = folders
    (tmp_path / "empty").mkdir(exist_ok=True)
    argv = [a.format(tmp=tmp_path, pred=pred, ref=ref) for a in args]
    result = _invoke(*argv)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_no_matching_case_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "ref" / "BraTS-MET-00001-000-seg.nii.gz", [1])
    _write(tmp_path / "pred" / "something-else.nii.gz", [1])
    result = _invoke("--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"))
    assert result.exit_code == 1
    assert "matches a reference" in result.stderr


def test_shape_mismatch_is_reported_and_exit_zero(tmp_path: Path) -> None:
    _write(tmp_path / "ref" / "a_seg.nii.gz", [1, 3])
    _write(tmp_path / "pred" / "a.nii.gz", [1, 3], length=7)
    _write(tmp_path / "ref" / "b_seg.nii.gz", [1, 3])
    _write(tmp_path / "pred" / "b.nii.gz", [1, 3])
    result = _invoke("--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"), "--json")
    assert result.exit_code == 0
    assert [c["case"] for c in json.loads(result.stdout)["cases"]] == ["b"]
    assert "a: not scored" in result.stderr and "(7, 3, 3)" in result.stderr


def _one_case_without_et(tmp_path: Path) -> tuple[Path, Path]:
    """brats2023 labels (1 NCR, 2 ED, 3 ET). Case 00001 has ET: ref x{0}, pred x{0,2} -> 2/3.
    Case 00002 has none: the prediction's one ET voxel scores 0, as BraTS scores it."""
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    _write(ref / "BraTS-MET-00001-000-seg.nii.gz", [3, 2])
    _write(pred / "BraTS-MET-00001-000.nii.gz", [3, 2, 3])
    _write(ref / "BraTS-MET-00002-000-seg.nii.gz", [1, 2])
    _write(pred / "BraTS-MET-00002-000.nii.gz", [1, 2, 3])
    return pred, ref


def test_empty_reference_regions_are_marked_and_a_non_empty_mean_offered(tmp_path: Path) -> None:
    pred, ref = _one_case_without_et(tmp_path)
    data = json.loads(_invoke("--pred", str(pred), "--ref", str(ref), "--json").stdout)
    assert [c["empty_reference"] for c in data["cases"]] == [[], ["et"]]
    assert [c["dice"]["et"] for c in data["cases"]] == pytest.approx([2 / 3, 0.0])
    assert data["mean"]["dice"]["et"] == pytest.approx(1 / 3)
    assert data["mean"]["dice_nonempty"]["et"] == pytest.approx(2 / 3)
    assert data["mean"]["dice_nonempty"]["wt"] == pytest.approx(data["mean"]["dice"]["wt"])
    table = _invoke("--pred", str(pred), "--ref", str(ref), "--no-lesions").stdout
    assert "0.0000*" in table and "0.6667*" not in table
    assert "mean, non-empty references" in table and "ET in 1 case(s)" in table


def test_no_empty_region_no_extra_row(folders: tuple[Path, Path]) -> None:
    pred, ref = folders
    table = _invoke("--pred", str(pred), "--ref", str(ref), "--no-lesions").stdout
    assert "*" not in table and "non-empty" not in table


def test_a_narrow_terminal_folds_case_names_and_never_cuts_a_figure(tmp_path: Path) -> None:
    from rich.console import Console

    from revprof.cli.evaluate import _table
    from revprof.evaluation import evaluate

    pred, ref = _one_case_without_et(tmp_path)
    screen = Console(width=80, record=True, file=open(os.devnull, "w"))
    screen.print(_table(evaluate(pred, ref, convention="brats2023")))
    text = screen.export_text()
    assert "…" not in text, text
    for figure in ("0.8000", "0.6667", "0.0000*", "0.3333", "373.13", "187.46"):
        assert figure in text, (figure, text)
    assert "BraTS-MET-00001-" in text  # the name folds onto a second line, whole


@pytest.mark.parametrize("side", ["pred", "ref"])
@pytest.mark.parametrize("kind", HEADER_DAMAGE)
def test_a_damaged_header_is_one_line_nonzero(folders: tuple[Path, Path], tmp_path: Path,
                                              side: str, kind: str) -> None:
    pred, ref = folders
    damaged = damage_header(
        (pred / "SEG-00002-000.nii.gz") if side == "pred" else (ref / "BraTS-MET-00002-000-seg.nii.gz"),
        kind)
    out = tmp_path / "rows.csv"
    result = _invoke("--pred", str(pred), "--ref", str(ref), "--csv", str(out))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert str(damaged) in line
    assert ("voxel size (pixdim) nan" if kind == "nan-zooms" else "sform affine is singular") in line
    assert not out.exists()
