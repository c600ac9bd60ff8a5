"""Damaged NIfTI headers (issue 26): a NaN voxel size or a singular affine is one line naming the
file and what is wrong, wherever a header is read (``data check`` and training here; ``evaluate``
and ``predict`` in their own test files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_helpers import HEADER_DAMAGE, damage_header, label_map, make_old_case
from revprof.cli.app import app
from revprof.data import discover, load_case
from revprof.errors import RevprofError

EXPECTED = {
    "nan-zooms": "voxel size (pixdim) nan x nan x nan is not three positive numbers",
    "singular-affine": "the sform affine is singular",
}


def _dataset(tmp_path: Path, kind: str, file: str = "seg") -> tuple[Path, Path]:
    for i in (1, 2):
        make_old_case(tmp_path / "data", f"BraTS2021_0000{i}", label_map([1, 2, 4]), seed=i)
    damaged = tmp_path / "data" / "BraTS2021_00002" / f"BraTS2021_00002_{file}.nii.gz"
    return tmp_path / "data", damage_header(damaged, kind)


@pytest.mark.parametrize("kind", HEADER_DAMAGE)
@pytest.mark.parametrize("file", ["seg", "flair"])
def test_data_check_names_the_file_and_the_damage(tmp_path: Path, kind: str, file: str) -> None:
    data, damaged = _dataset(tmp_path, kind, file)
    result = CliRunner().invoke(app, ["data", "check", str(data)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert "case BraTS2021_00002" in line and str(damaged) in line and EXPECTED[kind] in line


@pytest.mark.parametrize("kind", HEADER_DAMAGE)
def test_loading_for_training_is_one_line(tmp_path: Path, kind: str) -> None:
    data, damaged = _dataset(tmp_path, kind)
    (case,) = [c for c in discover(data).cases if c.case_id == "BraTS2021_00002"]
    with pytest.raises(RevprofError) as raised:
        load_case(case)
    message = str(raised.value)
    assert len(message.splitlines()) == 1 and str(damaged) in message and EXPECTED[kind] in message


@pytest.mark.parametrize("kind", HEADER_DAMAGE)
def test_training_run_refuses_in_one_line(tmp_path: Path, kind: str) -> None:
    from revprof.recipe import PAPER
    from revprof.spec import spec_from_options
    from revprof.train import TrainSettings, run_training

    data, damaged = _dataset(tmp_path, kind)
    spec = spec_from_options(levels=2, width=4)
    settings = TrainSettings(data=data, patch=(8, 8, 8), recipe=PAPER.with_overrides({"steps": 1}),
                             val_cases=1, device="cpu", spacing=None)
    with pytest.raises(RevprofError, match=EXPECTED[kind].replace("(", r"\(").replace(")", r"\)")):
        run_training(spec, settings, progress=False, cache_dir=tmp_path / "cache")
