"""`revprof predict`: a saved network segments synthetic and real BraTS cases, in each case's
original geometry, and `revprof evaluate` scores the output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.spec import spec_from_options

from data_helpers import HEADER_DAMAGE, damage_header, real_samples

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny network trained 2 steps on 3 synthetic cases, saved with --save-model's writer."""
    from revprof.data import synthesize
    from revprof.recipe import PAPER
    from revprof.train import TrainSettings, run_training

    folder = tmp_path_factory.mktemp("predict")
    data = folder / "data"
    synthesize(data, 3, shape=(32, 28, 24), seed=3)
    spec = spec_from_options(levels=2, width=4, depth=1, reversible="all")
    model = folder / "model.pt"
    run_training(spec, TrainSettings(data=data, patch=(16, 16, 16),
                                     recipe=PAPER.with_overrides({"steps": 2}), val_cases=1,
                                     device="cpu"), progress=False, save_model=model,
                 cache_dir=folder / "cache")
    return model, data


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_predict_round_trip_on_synthetic_cases(trained, tmp_path) -> None:
    model, data = trained
    saved = torch.load(model, weights_only=True)
    assert saved["patch"] == [16, 16, 16] and saved["precision"] == "fp32"
    out = tmp_path / "pred"
    result = invoke("predict", "--model", str(model), "--data", str(data), "--out", str(out),
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "segmented 3 case(s)" in result.output
    # 32×28×24 is more than four 16³ patches: this ran the sliding window
    for case in sorted(p for p in data.iterdir() if p.is_dir()):
        written = nib.load(out / f"{case.name}.nii.gz")
        source = nib.load(case / f"{case.name}_flair.nii.gz")
        assert written.shape == source.shape == (32, 28, 24)
        np.testing.assert_allclose(written.affine, source.affine)
        assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 4}  # the 2021 labels
    scored = invoke("evaluate", "--pred", str(out), "--ref", str(data), "--no-hd95", "--json")
    assert scored.exit_code == 0, scored.output
    cases = json.loads(scored.output.strip().splitlines()[-1])["cases"]
    assert len(cases) == 3


def test_largest_component_keeps_the_largest_tumour_of_each_plain_prediction(trained, tmp_path) -> None:
    from scipy import ndimage

    from revprof.data import get_convention

    model, data = trained
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    assert invoke("predict", "--model", str(model), "--data", str(data), "--out", str(plain),
                  "--device", "cpu").exit_code == 0
    result = invoke("predict", "--model", str(model), "--data", str(data), "--out", str(kept),
                    "--device", "cpu", "--largest-component")
    assert result.exit_code == 0, result.output
    convention = get_convention("brats2021")
    several = 0
    for case in sorted(p.name for p in data.iterdir() if p.is_dir()):
        before = np.asarray(nib.load(plain / f"{case}.nii.gz").dataobj)
        after = np.asarray(nib.load(kept / f"{case}.nii.gz").dataobj)
        components, count = ndimage.label(before > 0, structure=np.ones((3, 3, 3)))
        if count > 1:
            several += 1
            sizes = np.bincount(components.ravel())[1:]
            largest = components == 1 + int(np.argmax(sizes))
            assert f"{case}: " in result.output and f"largest of {count} tumour components kept" in result.output
            removed = int((before > 0).sum() - largest.sum())
            assert f"{removed:,} voxels removed" in result.output
        else:
            largest = before > 0
        # the same labels inside the largest component, background elsewhere
        np.testing.assert_array_equal(after, np.where(largest, before, 0))
        assert convention.region_masks(after)[0].sum() == largest.sum()
    assert several > 0, "no prediction had several tumour components: the option was not exercised"


@pytest.mark.slow  # one 240×240×155 case through a tiny network: about 10 s on a quiet CPU
def test_predict_segments_the_real_inference_only_2023_case(trained, tmp_path) -> None:
    model, _ = trained
    sample = real_samples() / "brats2023"
    out = tmp_path / "pred"
    result = invoke("predict", "--model", str(model), "--data", str(sample), "--out", str(out),
                    "--patch", "96", "--device", "cpu")  # one pass (sliding windows: above)
    assert result.exit_code == 0, result.output
    case = "BraTS-GLI-00001-000"
    written = nib.load(out / f"{case}.nii.gz")
    source = nib.load(sample / case / f"{case}-t1c.nii.gz")
    assert written.shape == source.shape == (240, 240, 155)
    np.testing.assert_allclose(written.affine, source.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 3}  # the 2023 labels
    # evaluate reads it: scored against itself as the reference, every region agrees
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(out / f"{case}.nii.gz", ref / f"{case}-seg.nii.gz")
    scored = invoke("evaluate", "--pred", str(out), "--ref", str(ref), "--no-hd95", "--json")
    assert scored.exit_code == 0, scored.output
    (row,) = json.loads(scored.output.strip().splitlines()[-1])["cases"]
    assert all(v == 1.0 for v in row["dice"].values()), row


@pytest.mark.parametrize("kind", ["missing", "pickled code", "not a checkpoint"])
def test_bad_checkpoints_are_one_line(tmp_path, trained, kind) -> None:
    _, data = trained
    path = tmp_path / "model.pt"
    if kind == "pickled code":
        torch.save({"spec": {}, "state_dict": {}, "hook": Path("x")}, path)  # not weights only
    elif kind == "not a checkpoint":
        torch.save({"weights": torch.zeros(2)}, path)
    result = invoke("predict", "--model", str(path), "--data", str(data), "--out",
                    str(tmp_path / "out"))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: --model {path}"), result.output
    assert not (tmp_path / "out").exists()


def test_predict_follows_linked_case_folders(trained, tmp_path) -> None:
    model, data = trained
    split = tmp_path / "split"
    split.mkdir()
    cases = sorted(p for p in data.iterdir() if p.is_dir())
    for case in cases[:2]:
        os.symlink(case, split / case.name)
    out = tmp_path / "pred"
    result = invoke("predict", "--model", str(model), "--data", str(split), "--out", str(out),
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [f"{c.name}.nii.gz" for c in cases[:2]]


@pytest.mark.parametrize("kind", HEADER_DAMAGE)
def test_a_damaged_header_is_one_line_and_nothing_is_written(trained, tmp_path, kind) -> None:
    model, data = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    last = sorted(p for p in copy.iterdir() if p.is_dir())[-1]
    damaged = damage_header(last / f"{last.name}_t1ce.nii.gz", kind)
    out = tmp_path / "pred"
    result = invoke("predict", "--model", str(model), "--data", str(copy), "--out", str(out),
                    "--device", "cpu")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(damaged) in lines[0], result.output
    assert ("voxel size" if kind == "nan-zooms" else "affine is singular") in lines[0]
    assert not out.exists() or not any(out.iterdir())
