"""Short training runs: learning on synthetic data, identical loss curves across executions,
the results table, failures as results, predictions in the original geometry, real data."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from revprof import build_model, spec_from_options
from revprof.cli.app import app
from revprof.data import synthesize
from revprof.recipe import FIELDS, PAPER
from revprof.train import TrainSettings, append_row, run_training
from revprof.train.run import evaluate_cases, mean_dice, prepare_data

from conftest import REAL_SAMPLES, require

TINY = spec_from_options(width=8, levels=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    synthesize(root, 5, shape=(40, 40, 40), convention="brats2021", seed=3)
    return root


def _settings(dataset, **overrides) -> TrainSettings:
    """Training settings of the tests: 3 steps of the paper's recipe unless overridden (recipe
    fields such as ``steps`` or ``lr`` go into the recipe)."""
    recipe_fields = {k: overrides.pop(k) for k in list(overrides) if k in FIELDS}
    values = dict(data=dataset, patch=(16, 16, 16), val_cases=1, device="cpu", seed=0,
                  recipe=PAPER.with_overrides({"steps": 3, **recipe_fields}))
    values.update(overrides)
    return TrainSettings(**values)


@pytest.mark.slow
def test_loss_curves_equal_across_executions(dataset, tmp_path):
    curves = {}
    for execution in ("reversible", "plain", "checkpoint"):
        result = run_training(TINY.with_execution(execution), _settings(dataset, steps=4), progress=False,
                              cache_dir=tmp_path)
        assert result.status == "ok"
        curves[execution] = np.array(result.losses)
    assert np.allclose(curves["reversible"], curves["plain"], rtol=1e-5, atol=1e-6)
    assert np.allclose(curves["checkpoint"], curves["plain"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_training_is_deterministic_on_cpu(dataset, tmp_path):
    first = run_training(TINY, _settings(dataset), progress=False, cache_dir=tmp_path)
    second = run_training(TINY, _settings(dataset), progress=False, cache_dir=tmp_path)
    assert first.losses == second.losses
    assert first.dice == second.dice


@pytest.mark.slow
def test_short_run_clearly_improves_dice(dataset, tmp_path):
    # The demo's recipe (studies/quick.toml): the paper's lr 1e-4 needs far more than 60 steps
    # before its ET channel stops flooding the nested WT region that validation scores.
    settings = _settings(dataset, patch=(32, 32, 32), steps=60, seed=1, lr=3e-3, schedule="poly",
                         foreground=0.33)
    spec = spec_from_options(width=8, levels=3)
    data = prepare_data(settings, tmp_path)
    torch.manual_seed(settings.seed)
    untrained = mean_dice(evaluate_cases(build_model(spec), spec, data.validation, settings.patch,
                                         torch.device("cpu"), "fp32", data.cases)[0])
    trained = run_training(spec, settings, progress=False, cache_dir=tmp_path)
    assert trained.status == "ok"
    assert trained.losses[-1] < trained.losses[0] - 0.1
    assert trained.dice["wt"] > untrained["wt"] + 0.15, (untrained, trained.dice)
    assert trained.dice["mean"] > untrained["mean"] + 0.15, (untrained, trained.dice)


def test_memory_and_speed_are_measured(dataset, tmp_path):
    result = run_training(TINY, _settings(dataset), progress=False, cache_dir=tmp_path)
    assert result.peak_bytes > 0 and result.predicted_peak_bytes > 0
    # the tracked figure of the real run agrees with the simulated prediction within a few percent
    assert abs(result.peak_bytes - result.predicted_peak_bytes) / result.predicted_peak_bytes < 0.05
    assert result.seconds_per_step > 0 and result.voxels_per_second > 0
    assert set(result.dice) == {"wt", "tc", "et", "mean"}


def test_non_finite_loss_is_recorded_as_diverged(tmp_path):
    root = tmp_path / "nan-data"
    synthesize(root, 3, shape=(32, 32, 32), convention="brats2021", seed=0)
    for case in sorted(root.iterdir()):
        flair = next(case.glob("*_flair.nii.gz"))
        image = nib.load(flair)
        data = np.asarray(image.dataobj).astype(np.float32)
        data[data > 0] = np.nan  # a broken scanner export
        nib.save(nib.Nifti1Image(data, image.affine), flair)
    result = run_training(TINY, _settings(root, patch=(16, 16, 16)), progress=False, cache_dir=tmp_path)
    assert result.status == "diverged"
    assert result.dice is None and "loss became nan" in result.error
    assert result.steps_done == 1
    # its NaN weights are not written as a model: the run is still a result, the model an error
    from revprof.train.run import OutputsNotSaved

    with pytest.raises(OutputsNotSaved, match="not written: the run ended diverged") as failed:
        run_training(TINY, _settings(root, patch=(16, 16, 16)), progress=False, cache_dir=tmp_path,
                     save_model=tmp_path / "net.pt")
    assert failed.value.result.status == "diverged" and not (tmp_path / "net.pt").exists()


@pytest.mark.slow
def test_measure_steps_json_and_results_table(dataset, tmp_path):
    runner = CliRunner()
    table = tmp_path / "results" / "runs.csv"
    args = ["measure", "--levels", "3", "--width", "8", "--patch", "16", "--steps", "2", "--device", "cpu",
            "--data", str(dataset), "--val-cases", "1", "--results", str(table), "--json",
            "--save-predictions", str(tmp_path / "pred"), "--save-model", str(tmp_path / "model.pt")]
    for _ in range(2):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert set(data["dice"]) == {"wt", "tc", "et", "mean"} and data["seconds_per_step"] > 0
    frame = pd.read_csv(table)
    assert len(frame) == 2
    assert {"spec", "patch", "status", "peak_bytes", "dice_wt", "dice_mean", "seconds_per_step"} <= set(frame)
    assert frame["status"].tolist() == ["ok", "ok"]
    predictions = list((tmp_path / "pred").glob("*.nii.gz"))
    assert len(predictions) == 1
    assert nib.load(predictions[0]).shape == (40, 40, 40)  # the original geometry
    checkpoint = torch.load(tmp_path / "model.pt")
    assert checkpoint["spec"] == TINY.to_dict()


def test_corrupt_results_table_is_an_error_and_is_left_alone(tmp_path):
    table = tmp_path / "runs.csv"
    table.write_bytes(b"\xff\xfe\x00garbage\x00\n\"unterminated")
    before = table.read_bytes()
    from revprof import RevprofError

    with pytest.raises(RevprofError, match="is not a readable CSV file"):
        append_row({"spec": "{}", "peak_bytes": 1}, table)
    assert table.read_bytes() == before
    assert list(tmp_path.iterdir()) == [table]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--device", "tpu"], "device must be auto, cpu, cuda or cuda:N", id="device"),
        pytest.param(["--data", "/nonexistent/brats"], "does not exist", id="data"),
        pytest.param(["--patch", "18"], "must be divisible by 2^(levels-1)=4", id="patch"),
        pytest.param(["--spacing", "1,0,1"], "--spacing must be three positive numbers", id="spacing"),
    ],
)
def test_bad_training_input(args, message, tmp_path):
    result = CliRunner().invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16",
                                      "--steps", "2", "--results", str(tmp_path / "r.csv"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_short_run_on_the_real_brats2021_case(tmp_path):
    require(REAL_SAMPLES.is_dir(), f"real samples not found at {REAL_SAMPLES}")
    settings = TrainSettings(data=REAL_SAMPLES / "brats2021", patch=(32, 32, 32),
                             recipe=PAPER.with_overrides({"steps": 2}), val_cases=0,
                             device="cpu")
    result = run_training(TINY, settings, progress=False, cache_dir=tmp_path)
    assert result.status == "ok" and result.train_cases == 1 and len(result.losses) == 2
    assert all(math.isfinite(loss) for loss in result.losses)


@pytest.mark.slow
def test_saved_predictions_evaluate_to_the_runs_dice(dataset, tmp_path):
    """One Dice everywhere: ``evaluate`` on what ``measure --steps`` saved gives the run's Dice."""
    from revprof.evaluation import evaluate

    pred = tmp_path / "pred"
    args = ["measure", "--levels", "3", "--width", "8", "--patch", "16", "--steps", "2", "--device", "cpu",
            "--data", str(dataset), "--val-cases", "2", "--results", str(tmp_path / "r.csv"), "--json",
            "--save-predictions", str(pred)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads(result.output.strip().splitlines()[-1])
    scored = evaluate(pred, dataset, convention="brats2021", hd95=False)
    assert scored.problems == () and len(scored.cases) == 2
    by_case = {c.case: c.dice for c in scored.cases}
    for case in run["dice_per_case"]:
        assert by_case[case["case"]] == pytest.approx({r: case[r] for r in ("wt", "tc", "et")}, abs=1e-6)
    for region in ("wt", "tc", "et"):
        assert scored.mean()["dice"][region] == pytest.approx(run["dice"][region], abs=1e-6)


def test_training_table_marks_empty_reference_regions():
    from io import StringIO

    from rich.console import Console

    from revprof.cli.render import training_tables
    from revprof.train.settings import CaseDice, TrainResult

    scores = [CaseDice("with-et", 0.9, 0.8, 0.6), CaseDice("no-et", 0.7, 0.5, 0.0, empty=("et",))]
    result = TrainResult(status="ok", dice={"wt": 0.8, "tc": 0.65, "et": 0.3, "mean": 0.5833},
                         dice_per_case=scores, peak_bytes=1 << 20, predicted_peak_bytes=1 << 20,
                         seconds_per_step=0.1, voxels_per_second=1e4, losses=[0.9, 0.5],
                         device="cpu", steps_done=2, train_cases=3, val_cases=2)
    out = StringIO()
    Console(file=out, width=200).print(training_tables(TINY, TrainSettings(data=None), result))
    text = out.getvalue()
    assert "0.000*" in text and "0.600*" not in text
    row = next(line for line in text.splitlines() if "non-empty references" in line)
    assert [cell.strip() for cell in row.split("│")[2:5]] == ["0.800", "0.650", "0.600"]
    assert "ET in 1 case(s)" in text
