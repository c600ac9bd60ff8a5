"""Short runs on the real BraTS 2018 cases, end to end (issue 25).

The shipped CPU recipe (``studies/brats2018-cpu.json``) and study (``studies/brats2018-cpu.toml``)
load and describe what docs/benchmarks.md says they do; a tiny version of the recipe trains on two
real cases through ``measure --spec FILE --save-model`` (no ``--steps``: the file's recipe gives
them), and ``predict`` and ``evaluate`` score a third case it never saw; and the same trained
weights, run as the partially reversible network and as the plain network of the same shape,
give the same Dice on a real held-out case.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from data_helpers import real_samples
from revprof.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILE = ROOT / "studies" / "brats2018-cpu.json"
STUDY_FILE = ROOT / "studies" / "brats2018-cpu.toml"
TRAIN = ("Brats18_CBICA_AOZ_1", "Brats18_CBICA_ASA_1")
HELD_OUT = "Brats18_CBICA_APR_1"


def _links(folder: Path, cases: tuple[str, ...]) -> Path:
    """A split as the docs build it: a folder of links to real case folders."""
    folder.mkdir(parents=True)
    for case in cases:
        os.symlink(real_samples() / "brats2018" / "HGG" / case, folder / case)
    return folder


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_cpu_recipe_file_loads_and_trains_every_case_at_2_mm() -> None:
    from revprof.spec import validate_patch
    from revprof.train.specfile import read_spec_file

    loaded = read_spec_file(SPEC_FILE)
    settings, recipe = loaded.settings, loaded.settings.recipe
    assert settings.val_cases == 0 and settings.data is None  # every case of --data trains
    assert settings.spacing == (2.0, 2.0, 2.0) and settings.device == "cpu"
    assert validate_patch(loaded.spec, settings.patch) == settings.patch
    loaded.spec.checked(settings.patch, recipe.batch, recipe.targets)
    assert recipe.schedule == "poly" and 0 < recipe.foreground < 1 and recipe.steps >= 100


def test_the_real_study_file_reads_the_shared_cases_at_3_mm() -> None:
    from revprof.sweep.studyfile import read_study_file

    study = read_study_file(STUDY_FILE)
    assert study.data.spacing == (3.0, 3.0, 3.0)
    assert (ROOT / study.data.path).resolve() == (ROOT.parent / "shared" / "real-samples"
                                                  / "brats2018" / "HGG").resolve()
    assert study.to_dict()["data"]["spacing"] == [3.0, 3.0, 3.0]
    assert study.fixed.val_cases >= 3 and study.trials <= 8


@pytest.mark.parametrize(("value", "expected"), [
    (2, (2.0, 2.0, 2.0)), ([1, 1, 2.5], (1.0, 1.0, 2.5)), ("none", None), ("2,2,2", (2.0, 2.0, 2.0))])
def test_a_study_file_sets_the_spacing_its_trials_train_at(value: object, expected: object) -> None:
    from revprof.sweep.studyfile.parse import parse_study

    raw = {"study": {"name": "s", "trials": 1, "objectives": ["dice", "peak_bytes"]},
           "data": {"spacing": value}, "space": {"levels": 3, "width": 8}}
    assert parse_study(raw).data.spacing == expected


@pytest.mark.parametrize("value", [0, -1, [1, 1], "fine", True, [1, "a", 1]])
def test_a_bad_study_spacing_is_one_line_naming_the_key(value: object) -> None:
    from revprof.errors import RevprofError
    from revprof.sweep.studyfile.parse import parse_study

    raw = {"study": {"name": "s", "trials": 1, "objectives": ["dice", "peak_bytes"]},
           "data": {"spacing": value}, "space": {"levels": 3, "width": 8}}
    with pytest.raises(RevprofError, match=r"data\.spacing.*must be a voxel size in mm") as error:
        parse_study(raw)
    assert "\n" not in str(error.value)


def test_save_model_without_steps_or_a_spec_file_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16",
                                      "--backend", "simulate", "--save-model", str(tmp_path / "n.pt")])
    assert result.exit_code == 1
    assert result.output.strip() == ("error: --save-model and --save-predictions write a training "
                                     "run's results: add --steps N (or --spec FILE, whose recipe "
                                     "sets them)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.realdata
@pytest.mark.slow  # 60 steps, a prediction, an evaluation: 144 s on one core at load 5
def test_spec_file_run_on_real_cases_then_predict_and_evaluate_a_held_out_case(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from revprof.spec import spec_from_options
    from revprof.train.predict import load_checkpoint
    from revprof.train.specfile import SpecFile, read_spec_file, write_spec_file

    monkeypatch.chdir(tmp_path)  # the preprocessing cache goes under the working directory
    train = _links(tmp_path / "train", TRAIN)
    held = _links(tmp_path / "held", (HELD_OUT,))
    shipped = read_spec_file(SPEC_FILE)
    tiny = dataclasses.replace(
        shipped.settings, patch=(32, 32, 32), spacing=(3.0, 3.0, 3.0),
        recipe=shipped.settings.recipe.with_overrides({"steps": 60}))
    spec = spec_from_options(levels=3, width=8, depth=1, reversible="encoder")
    spec_path = write_spec_file(tmp_path / "tiny.json", SpecFile(spec, tiny, {}))

    _invoke("measure", "--spec", str(spec_path), "--data", str(train), "--val-cases", "0",
            "--save-model", "net.pt", "--results", "runs.csv", "--json")
    checkpoint = load_checkpoint(tmp_path / "net.pt")
    assert checkpoint.spacing == (3.0, 3.0, 3.0) and checkpoint.recipe.steps == 60
    _invoke("predict", "--model", "net.pt", "--data", str(held), "--out", "pred")
    written = nib.load(tmp_path / "pred" / f"{HELD_OUT}.nii.gz")
    reference = nib.load(held / HELD_OUT / f"{HELD_OUT}_seg.nii.gz")
    assert written.shape == reference.shape
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 4}
    report = json.loads(_invoke("evaluate", "--pred", "pred", "--ref", str(held), "--json"))
    (case,) = report["cases"]
    assert case["case"] == HELD_OUT and case["pred_convention"] == "brats2021"
    assert case["dice"]["wt"] > 0.3, case["dice"]  # 60 steps on two cases find the tumour
    # kept to its largest tumour, the map loses only voxels, never gains or relabels one
    _invoke("predict", "--model", "net.pt", "--data", str(held), "--out", "largest",
            "--largest-component")
    plain = np.asarray(written.dataobj)
    largest = np.asarray(nib.load(tmp_path / "largest" / f"{HELD_OUT}.nii.gz").dataobj)
    assert ((largest == plain) | (largest == 0)).all() and 0 < (largest > 0).sum() <= (plain > 0).sum()


@pytest.mark.realdata
@pytest.mark.slow  # 53 s on one core at load 5
def test_same_weights_reversible_and_plain_give_the_same_dice_on_a_real_case(tmp_path: Path) -> None:
    from revprof.recipe import PAPER
    from revprof.spec import spec_from_options
    from revprof.train import TrainSettings, run_training
    from revprof.train.predict import load_checkpoint, predict_folder
    from revprof.train.run import save_checkpoint
    from revprof.evaluation.evaluate import region_dice_of_labels
    from revprof.data import get_convention
    from revprof.data.nifti import load_labels
    from revprof.data import discover

    train = _links(tmp_path / "train", TRAIN)
    held = _links(tmp_path / "held", (HELD_OUT,))
    reversible = spec_from_options(levels=3, width=8, depth=1, reversible="encoder")
    plain = dataclasses.replace(reversible, encoder_reversible=(False,) * 3,
                                decoder_reversible=(False,) * 3)
    assert reversible.describe() != plain.describe()
    recipe = PAPER.with_overrides({"steps": 12, "lr": 3e-3, "foreground": 0.5})
    settings = TrainSettings(data=train, patch=(32, 32, 32), recipe=recipe, val_cases=0,
                             device="cpu", spacing=(3.0, 3.0, 3.0))
    result = run_training(reversible, settings, progress=False, cache_dir=tmp_path / "cache",
                          save_model=tmp_path / "rev.pt", score=False)
    assert result.status == "ok", result.error
    trained = load_checkpoint(tmp_path / "rev.pt")
    import torch

    from revprof.nn import build_model

    as_plain = build_model(plain)
    as_plain.load_state_dict(trained.state_dict)  # the same parameters under the same names
    save_checkpoint(as_plain, plain, tmp_path / "plain.pt", patch=trained.patch, crop=trained.crop,
                    recipe=trained.recipe, spacing=trained.spacing)
    (case,) = discover(held).cases
    reference = load_labels(case)
    dice, maps = {}, {}
    for name in ("rev", "plain"):
        (written,) = predict_folder(tmp_path / f"{name}.pt", held, tmp_path / name, device="cpu")
        maps[name] = np.asarray(nib.load(written.path).dataobj)
        dice[name] = region_dice_of_labels(maps[name], reference, get_convention("brats2021"))
    assert load_checkpoint(tmp_path / "plain.pt").spec == plain
    assert dice["rev"]["wt"] > 0.05, dice  # a trained network, not an empty prediction
    for region in ("wt", "tc", "et"):
        assert dice["rev"][region] == pytest.approx(dice["plain"][region], abs=1e-6), dice
    # the maps differ in at most a handful of voxels whose probability lies at 0.5 within
    # float rounding of the two executions' different operation orders
    assert int((maps["rev"] != maps["plain"]).sum()) <= 10
    assert torch.equal(trained.state_dict["head.weight"], as_plain.state_dict()["head.weight"])
