"""The loaders against real BraTS downloads in ../shared/real-samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from data_helpers import real_samples
from revprof.cli.app import app
from revprof.data import PreprocessConfig, discover, get_convention, load_case, preprocess_case, restore_geometry
from revprof.data.orientation import orientation_code

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


def _brats2018() -> Path:
    return real_samples() / "brats2018"


def _release_layout(tmp_path: Path, hgg: list[str], lgg: list[str]) -> Path:
    """``MICCAI_BraTS_2018_Data_Training/HGG|LGG/`` with links to real 2018 case folders."""
    root = tmp_path / "MICCAI_BraTS_2018_Data_Training"
    for grade, cases in (("HGG", hgg), ("LGG", lgg)):
        (root / grade).mkdir(parents=True)
        for case in cases:
            os.symlink(_brats2018() / "HGG" / case, root / grade / case)
    return root


def test_brats2018_release_layouts_list_all_16_cases(tmp_path: Path) -> None:
    release = tmp_path / "MICCAI_BraTS_2018_Data_Training"
    release.mkdir()
    os.symlink(_brats2018() / "HGG", release / "HGG")
    (release / "LGG").mkdir()
    for root in (_brats2018(), _brats2018() / "HGG", release):
        index = discover(root)
        assert len(index) == 16 and not index.problems, root
        assert all(c.case_id.startswith("Brats18_CBICA_") and c.case_id.endswith("_1") for c in index)
        assert {c.convention for c in index} == {"brats2021"}  # 2017-2021 labels: ET = 4
        assert all(c.seg is not None and c.seg.name == f"{c.case_id}_seg.nii.gz" for c in index)


def test_brats2018_check_lists_each_case_with_convention_and_orientation(tmp_path: Path) -> None:
    root = _release_layout(tmp_path, ["Brats18_CBICA_AOP_1", "Brats18_CBICA_AQR_1"],
                           ["Brats18_CBICA_ARZ_1"])
    result = CliRunner().invoke(app, ["data", "check", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["usable"] and report["orientations"] == {"LPS": 3}
    assert [c["case"] for c in report["cases"]] == [
        "Brats18_CBICA_AOP_1", "Brats18_CBICA_AQR_1", "Brats18_CBICA_ARZ_1"]
    for case in report["cases"]:
        assert case["convention"] == "brats2021" and case["orientation"] == "LPS"
        assert case["shape"] == [240, 240, 155] and case["spacing_mm"] == [1.0, 1.0, 1.0]
        assert case["labels"] == [0, 1, 2, 4]
    table = CliRunner().invoke(app, ["data", "check", str(root)], terminal_width=160)
    assert table.exit_code == 0, table.output
    rows = [line for line in table.output.splitlines() if "Brats18_CBICA_" in line]
    assert len(rows) == 3 and all("brats2021" in r and "LPS" in r and "0, 1, 2, 4" in r for r in rows)


def test_brats2018_cases_through_the_preprocessing_cache(tmp_path: Path) -> None:
    from revprof.data import PreprocessCache

    case = next(c for c in discover(_brats2018()) if c.case_id == "Brats18_CBICA_AOP_1")
    labels = load_case(case).labels
    cache = PreprocessCache(tmp_path / "cache", PreprocessConfig(size=None, spacing=(2.0, 2.0, 2.0)))
    first = cache.get(case)
    again = cache.get(case)
    assert (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.regions, again.regions)
    assert first.grid_spacing == (2.0, 2.0, 2.0) and first.source_shape == (240, 240, 155)
    assert orientation_code(first.affine) == "LPS"  # the original affine, kept for writing back
    # every region survives the 2 mm grid (nearest-neighbour labels), ET included
    wt, tc, et = (int(first.regions[i].sum()) for i in range(3))
    assert wt > tc > et > 0
    assert et == pytest.approx(np.count_nonzero(labels == 4) / 8, rel=0.1)
