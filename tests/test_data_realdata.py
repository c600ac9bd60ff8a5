"""The loaders against real BraTS downloads in ../shared/real-samples."""

from __future__ import annotations


import numpy as np
import pytest
from typer.testing import CliRunner

from data_helpers import real_samples
from revprof.cli.app import app
from revprof.data import PreprocessConfig, discover, get_convention, load_case, preprocess_case, restore_geometry

pytestmark = pytest.mark.realdata


def test_brats2021_case() -> None:
    (case,) = discover(real_samples() / "brats2021").cases
    assert case.case_id == "BraTS2021_90001" and case.convention == "brats2021" and case.has_seg
    loaded = load_case(case)
    assert loaded.image.shape == (4, 240, 240, 155) and loaded.spacing == (1.0, 1.0, 1.0)
    wt, tc, et = get_convention("brats2021").region_masks(loaded.labels)
    assert wt.sum() == 9281 + 14907 and tc.sum() == 9281 and et.sum() == 0
    pre = preprocess_case(loaded, PreprocessConfig())
    assert pre.image.shape == (4, 160, 192, 160) and pre.regions[0].sum() == wt.sum()
    brain = np.any(pre.image != 0, axis=0)
    assert abs(pre.image[0][brain].mean()) < 1e-3
    back = restore_geometry(pre.regions, pre.geometry)
    np.testing.assert_array_equal(back[0].astype(bool), wt)


def test_brats2023_case_is_inference_only() -> None:
    (case,) = discover(real_samples() / "brats2023").cases
    assert case.case_id == "BraTS-GLI-00001-000" and case.patient_id == "BraTS-GLI-00001"
    assert case.convention == "brats2023" and case.seg is None
    loaded = load_case(case)
    assert loaded.labels is None and loaded.image.shape == (4, 240, 240, 155)
    assert (loaded.image.reshape(4, -1) > 0).any(axis=1).all()


@pytest.mark.parametrize("folder", ["brats2021", "brats2023"])
def test_check_cli(folder: str) -> None:
    result = CliRunner().invoke(app, ["data", "check", str(real_samples() / folder)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "240x240x155 (1)" in result.output


def test_check_cli_on_segmentation_only_folder() -> None:
    result = CliRunner().invoke(app, ["data", "check", str(real_samples() / "met-eval" / "ref")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "case BraTS-MET-00630-001" in result.output and "missing t2f, t1n, t1c, t2w images" in result.output
