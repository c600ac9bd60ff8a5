"""A sweep a researcher can trust: the data a study was trained on is part of the study, and a
network is trained once per set of weights (executions reuse its Dice, each measured itself)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.sweep.pareto import pareto_front
from revprof.sweep.storage import open_storage
from study_helpers import TINY_TRAINING

pytestmark = pytest.mark.slow  # each trains a tiny network (about 10 s on a loaded 2-core CPU)

STUDY = """
[study]
name = "trust"
trials = {trials}
""" + TINY_TRAINING + """
[space]
levels = 2
width = 8
reversible = ["all", "none"]

[sampler]
name = "random"
seed = 1

[[enqueue]]
label = "reversible"
reversible = "all"

[[enqueue]]
label = "plain"
reversible = "none"
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_study(folder: Path, trials: int) -> Path:
    path = folder / "trust.toml"
    path.write_text(STUDY.format(trials=trials))
    return path


def sweep(*args: str):
    result = CliRunner().invoke(app, ["sweep", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def trials_of(folder: Path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(str(folder / ".revprof" / "studies.journal"), create=False)
    return optuna.load_study(study_name="trust", storage=storage).get_trials()


def complete(folder: Path) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials_of(folder) if t.state == TrialState.COMPLETE]


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_executions_share_one_training(in_tmp: Path) -> None:
    result = sweep(str(write_study(in_tmp, trials=2)))
    assert result.exit_code == 0, result.output
    trained, reused = trials_of(in_tmp)
    assert [trained.state, reused.state] == [TrialState.COMPLETE] * 2
    a, b = trained.user_attrs, reused.user_attrs
    assert a["training"] == "trained" and a["train_seconds"] > 0 and "dice_from" not in a
    assert b["training"] == "reused" and b["dice_from"] == trained.number
    assert a["weight_key"] == b["weight_key"] and a["spec"] != b["spec"]
    # the Dice is the training's; memory and time are this execution's own, measured
    assert b["dice"] == a["dice"] and b["dice_per_case"] == a["dice_per_case"]
    assert reused.values[0] == trained.values[0]
    assert b["measure_steps"] == 3 and b["seconds_per_step"] > 0
    assert b["peak_bytes"] > a["peak_bytes"]  # plain keeps the activations reversible frees
    assert b["peak_bytes"] == reused.values[1]
    assert "(reused from trial 0, same weights)" in result.output
    assert "trained 1 network(s) for 2 trained-or-reused trials" in result.output
    # progress inside the trial (plain lines when not a terminal) and the estimate beforehand
    assert "trial 0: training step 3/3 · loss " in result.output
    assert "trial 0: validation window " in result.output
    assert "estimate: about " in result.output and "of training on the CPU" in result.output
    assert a["progress"]["phase"] == "validate"
    # for one accuracy the front keeps the cheapest execution
    study = optuna.load_study(study_name="trust", storage=open_storage(
        str(in_tmp / ".revprof" / "studies.journal"), create=False))
    assert pareto_front(study) == [trained]


def test_resume_with_other_data_or_missing_data_is_refused(in_tmp: Path) -> None:
    from revprof.data import synthesize

    synthesize(in_tmp / "a", 3, shape=(32, 32, 32), seed=0)
    synthesize(in_tmp / "b", 4, shape=(32, 32, 32), seed=1)
    study_file = str(write_study(in_tmp, trials=1))
    # a missing folder: refused before the first trial, nothing written
    missing = sweep(study_file, "--data", "nowhere")
    assert missing.exit_code == 1
    assert one_line(missing.output).startswith("error: data folder 'nowhere' (--data of ")
    assert not (in_tmp / ".revprof").exists()

    assert sweep(study_file, "--data", "a").exit_code == 0
    journal = in_tmp / ".revprof" / "studies.journal"
    before = journal.read_bytes()
    (stored,) = complete(in_tmp)
    identity = optuna.load_study(study_name="trust", storage=open_storage(str(journal))).user_attrs[
        "data_identity"]
    assert identity["cases"] == ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"]
    assert len(identity["validation"]) == 1 and identity["files"] == 15
    assert identity["preprocessing"]["convention"] == ["brats2021"]

    other = sweep(study_file, "--data", "b", "--trials", "2")
    assert other.exit_code == 1
    line = one_line(other.output)
    assert line.startswith("error: study 'trust' in journal ") and "trained on other data" in line
    assert "cases (3 stored, 4 now; new BraTS2021_00003)" in line and "--study-name" in line
    # also on a complete study, a missing folder is refused, and nothing changed
    again = sweep(study_file, "--data", str(in_tmp / "gone"))
    assert again.exit_code == 1 and "is not an existing folder" in one_line(again.output)
    assert journal.read_bytes() == before

    # the same data moved elsewhere is the same data
    (in_tmp / "a").rename(in_tmp / "a-moved")
    moved = sweep(study_file, "--data", "a-moved")
    assert moved.exit_code == 0 and "nothing to run" in moved.output, moved.output
    assert [t.number for t in complete(in_tmp)] == [stored.number]


def test_grid_sampler_runs_to_the_end_of_its_grid(in_tmp: Path) -> None:
    """Optuna's grid sampler calls study.stop() when its grid is used up, which raises outside
    study.optimize; the last trial is still recorded and the sweep ends normally."""
    text = STUDY.format(trials=4).replace('name = "random"', 'name = "grid"').replace(
        "width = 8", "width = [4, 8]")
    path = in_tmp / "grid.toml"
    path.write_text(text.split("[[enqueue]]")[0])
    result = sweep(str(path), "--memory-only")
    assert result.exit_code == 0, result.output
    storage = open_storage(str(in_tmp / ".revprof" / "studies.journal"), create=False)
    trials = optuna.load_study(study_name="trust-memory", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({(t.params["width"], t.params["reversible"]) for t in trials}) == 4


def test_a_cpu_sweep_of_hours_needs_yes_or_fewer_steps(in_tmp: Path) -> None:
    path = write_study(in_tmp, trials=2)
    path.write_text(path.read_text().replace("steps = 3", "steps = 1000000"))
    result = sweep(str(path))
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: this sweep would take about ") and " h of training" in line
    assert "--yes" in line and "--steps N" in line
    assert not any(t.state == TrialState.COMPLETE or t.state == TrialState.RUNNING
                   for t in trials_of(in_tmp))
