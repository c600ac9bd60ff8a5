"""``revprof data synth`` and ``revprof data check`` through the real Typer app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from data_helpers import label_map, make_old_case, write_nii
from revprof.cli.app import app

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("convention", ["brats2021", "brats2023", "msd"])
def test_synth_then_check(tmp_path: Path, convention: str) -> None:
    out = tmp_path / convention
    result = _run("data", "synth", str(out), "--cases", "2", "--shape", "40,48,32",
                  "--convention", convention, "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "wrote 2" in result.output
    result = _run("data", "check", str(out))
    assert result.exit_code == 0, result.output
    assert "40x48x32 (2)" in result.output and "usable" in result.output
    assert f"{'msd' if convention == 'msd' else convention} (2)" in result.output


@pytest.mark.parametrize("shape", ["64,64", "abc", "0,10,10"])
def test_synth_bad_shape(tmp_path: Path, shape: str) -> None:
    result = _run("data", "synth", str(tmp_path), "--cases", "1", "--shape", shape)
    assert result.exit_code == 2
    assert "shape" in result.output and shape in result.output
    assert not any(tmp_path.iterdir())


def test_synth_bad_convention(tmp_path: Path) -> None:
    result = _run("data", "synth", str(tmp_path), "--cases", "1", "--convention", "brats2022")
    assert result.exit_code == 2 and "brats2023" in result.output


def test_check_missing_folder(tmp_path: Path) -> None:
    result = _run("data", "check", str(tmp_path / "nope"))
    assert result.exit_code == 1 and "does not exist" in result.output


def test_check_reports_each_problem(tmp_path: Path) -> None:
    make_old_case(tmp_path, "BraTS2021_00001", label_map([1, 2, 4]))
    make_old_case(tmp_path, "BraTS2021_00002", label_map([1]), skip=("t2",))
    make_old_case(tmp_path, "BraTS2021_00003", label_map([1, 7]))
    make_old_case(tmp_path, "BraTS2021_00004", np.zeros((5, 5, 5), np.uint8))
    folder = make_old_case(tmp_path, "BraTS2021_00005", label_map([1]))
    (folder / "BraTS2021_00005_flair.nii.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    result = _run("data", "check", str(tmp_path))
    assert result.exit_code == 1
    lines = result.output.splitlines()

    def line_for(case_id: str) -> str:
        (line,) = [ln for ln in lines if f"case {case_id}" in ln]
        return line

    assert "missing t2 image" in line_for("BraTS2021_00002") and "BraTS2021_00002_t2.nii.gz" in line_for("BraTS2021_00002")
    assert "label values 7" in line_for("BraTS2021_00003") and "BraTS2021_00003_seg.nii.gz" in line_for("BraTS2021_00003")
    assert "shape (5, 5, 5)" in line_for("BraTS2021_00004") and "BraTS2021_00004_seg.nii.gz" in line_for("BraTS2021_00004")
    assert "cannot read" in line_for("BraTS2021_00005") and "BraTS2021_00005_flair.nii.gz" in line_for("BraTS2021_00005")
    assert "not usable" in result.output


def test_check_forced_convention(tmp_path: Path) -> None:
    make_old_case(tmp_path, "BraTS2021_00001", label_map([1, 2, 3]))
    assert _run("data", "check", str(tmp_path)).exit_code == 1
    assert _run("data", "check", str(tmp_path), "--convention", "brats2023").exit_code == 0
    result = _run("data", "check", str(tmp_path), "--convention", "bratz")
    assert result.exit_code == 2 and "convention must be one of" in result.output


def test_check_empty_folder(tmp_path: Path) -> None:
    write_nii(tmp_path / "stray" / "something.nii.gz", np.zeros((2, 2, 2), np.uint8))
    result = _run("data", "check", str(tmp_path))
    assert result.exit_code == 1 and "no BraTS or Decathlon case found" in result.output
