"""Sweeps run in this process on the embedded journal store: what a trial stores, budgets,
outcomes the sampler learns from, resuming, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.sweep.pareto import pareto_front
from revprof.sweep.storage import open_storage
from study_helpers import TINY_TRAINING

TINY = """
[study]
name = "tiny"
trials = {trials}
{budget}
""" + TINY_TRAINING + """
[space]
levels = 2
width = [4, 8]
reversible = ["all", "none"]

[sampler]
name = "random"
seed = 1

[[enqueue]]
label = "reversible"
width = 8
reversible = "all"

[[enqueue]]
label = "plain"
width = 8
reversible = "none"
"""

TRIAL_KEYS = {"spec", "spec_words", "patch", "batch", "precision", "status", "predicted_peak_bytes",
              "predicted_reserved_bytes",
              "breakdown", "activations_by_part", "peak_bytes", "params", "device", "environment"}
STUDY_KEYS = {"revprof_version", "study_file", "study", "objectives", "budget_bytes", "memory_only",
              "fixed"}


def write_study(folder: Path, trials: int = 2, budget: str | None = None) -> Path:
    path = folder / "tiny.toml"
    path.write_text(TINY.format(trials=trials, budget=f'budget = "{budget}"' if budget else ""))
    return path


def sweep(*args: str) -> object:
    result = CliRunner().invoke(app, ["sweep", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def load(name: str, folder: Path) -> optuna.Study:
    storage = open_storage(str(folder / ".revprof" / "studies.journal"), create=False)
    return optuna.load_study(study_name=name, storage=storage)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_memory_only_sweep_records_the_schema_and_resumes(in_tmp: Path) -> None:
    study_file = write_study(in_tmp, trials=3, budget="1.2MiB")
    result = sweep(str(study_file), "--memory-only", "--all")
    assert result.exit_code == 0, result.output
    assert "study tiny-memory" in result.output and "new" in result.output
    assert "3/3 complete" in result.output and "All complete trials" in result.output
    study = load("tiny-memory", in_tmp)
    assert STUDY_KEYS <= set(study.user_attrs)
    assert study.user_attrs["objectives"] == ["params", "peak_bytes"]
    assert study.user_attrs["memory_only"] is True
    assert study.user_attrs["budget_bytes"] == int(1.2 * 2**20)
    assert study.user_attrs["fixed"]["patch"] == [16, 16, 16]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:
        attrs = trial.user_attrs
        assert TRIAL_KEYS <= set(attrs), TRIAL_KEYS - set(attrs)
        assert attrs["peak_bytes"] == attrs["predicted_peak_bytes"] > 0
        assert sum(attrs["breakdown"].values()) == attrs["peak_bytes"]
        over = attrs["predicted_peak_bytes"] - study.user_attrs["budget_bytes"]
        # Optuna's own constraint (Trial.set_constraint) and the list form optuna-dashboard reads
        assert trial.constraints == {"peak_over_budget_bytes": over, "0": over}
        assert trial.system_attrs["constraints"] == [over]
        assert attrs["status"] == ("infeasible" if over > 0 else "ok")
        assert trial.values == [attrs["params"] if over <= 0 else 0.0, attrs["peak_bytes"]]
        json.dumps(attrs)
    reversible, plain = trials[0].user_attrs, trials[1].user_attrs
    assert reversible["label"] == "reversible" and reversible["status"] == "ok"
    assert plain["label"] == "plain" and plain["status"] == "infeasible"
    assert plain["params"] == reversible["params"]
    front = pareto_front(study)
    assert trials[1] not in front and front

    again = sweep(str(study_file), "--memory-only")
    assert again.exit_code == 0 and "resumed" in again.output and "nothing to run" in again.output
    more = sweep(str(study_file), "--memory-only", "--trials", "4")
    assert more.exit_code == 0, more.output
    assert len(load("tiny-memory", in_tmp).get_trials(states=(TrialState.COMPLETE,))) == 4


def test_training_sweep_with_a_budget(in_tmp: Path) -> None:
    study_file = write_study(in_tmp, trials=2, budget="1.2MiB")
    result = sweep(str(study_file))
    assert result.exit_code == 0, result.output
    assert "Pareto front of tiny" in result.output
    study = load("tiny", in_tmp)
    assert study.user_attrs["objectives"] == ["dice", "peak_bytes"]
    trained, skipped = study.get_trials()
    assert trained.state == skipped.state == TrialState.COMPLETE
    attrs = trained.user_attrs
    assert attrs["status"] == "ok" and TRIAL_KEYS <= set(attrs)
    assert set(attrs["dice"]) == {"wt", "tc", "et", "mean"}
    assert attrs["dice_per_case"] and set(attrs["dice_per_case"][0]) == {"case", "wt", "tc", "et"}
    assert attrs["seconds_per_step"] > 0 and attrs["voxels_per_second"] > 0
    assert attrs["device"].startswith("cpu")
    assert trained.values == [attrs["dice"]["mean"], attrs["peak_bytes"]]
    assert trained.constraints["peak_over_budget_bytes"] <= 0
    # over budget: recorded with its predicted peak, never trained
    assert skipped.user_attrs["status"] == "infeasible"
    assert "dice" not in skipped.user_attrs and "seconds_per_step" not in skipped.user_attrs
    assert skipped.values == [0.0, skipped.user_attrs["predicted_peak_bytes"]]
    assert skipped.constraints["peak_over_budget_bytes"] > 0
    assert pareto_front(study) == [trained]
    assert study.best_trials == [trained]  # Optuna's constrained front agrees


@pytest.mark.parametrize("outcome", ["oom", "diverged", "error"])
def test_failures_are_recorded_outcomes(in_tmp: Path, monkeypatch: pytest.MonkeyPatch,
                                        outcome: str) -> None:
    import revprof.train as train

    def fake_training(spec, settings, progress=True, **options):
        if outcome == "error":
            raise RuntimeError("the data loader broke\nsecond line")
        return train.TrainResult(status=outcome, dice=None, dice_per_case=[], peak_bytes=0,
                                 predicted_peak_bytes=None, seconds_per_step=0.1,
                                 voxels_per_second=1.0, losses=[1.0, float("nan")], device="cpu",
                                 steps_done=2, train_cases=2, val_cases=1, error=f"{outcome}!")

    monkeypatch.setattr(train, "run_training", fake_training)
    study_file = write_study(in_tmp, trials=1)
    result = sweep(str(study_file))
    study = load("tiny", in_tmp)
    if outcome == "error":
        # a failure is FAIL with its message; five in a row stop the worker with one line
        assert result.exit_code == 1
        assert "5 trials in a row failed" in result.output
        failed = study.get_trials(states=(TrialState.FAIL,))
        assert all(t.state == TrialState.FAIL for t in failed) and len(failed) == 5
        assert failed[0].user_attrs["status"] == "failed"
        assert failed[0].user_attrs["error"] == "RuntimeError: the data loader broke"
        assert "Traceback" not in result.output
        return
    assert result.exit_code == 0, result.output
    (trial,) = study.get_trials(states=(TrialState.COMPLETE,))
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["status"] == outcome
    assert trial.values == [0.0, trial.user_attrs["predicted_peak_bytes"]]
    assert trial.user_attrs["losses"] == [1.0, None]
    assert pareto_front(study) == []


def test_changed_study_file_is_refused_and_store_kept(in_tmp: Path) -> None:
    study_file = write_study(in_tmp, trials=1)
    assert sweep(str(study_file), "--memory-only").exit_code == 0
    journal = in_tmp / ".revprof" / "studies.journal"
    before = journal.read_bytes()
    study_file.write_text(study_file.read_text().replace("steps = 3", "steps = 4"))
    result = sweep(str(study_file), "--memory-only")
    assert result.exit_code == 1
    assert "was created from a study file with other fixed" in result.output
    assert "--study-name" in result.output
    assert journal.read_bytes() == before
    other = sweep(str(study_file), "--memory-only", "--study-name", "tiny-steps4")
    assert other.exit_code == 0, other.output


@pytest.mark.parametrize(("args", "expected"), [
    (["missing.toml"], "error: study file 'missing.toml' does not exist"),
    (["bad.toml"], "error: bad.toml: space.widht is not a known key"),
    (["tiny.toml", "--storage", "mysql://u@h/db"], "error: storage URL scheme 'mysql' is not supported"),
    (["tiny.toml", "--storage", "postgresql://u:secret@127.0.0.1:1/db"],
     "error: cannot open the study store postgresql://u:***@127.0.0.1:1/db: "),
    (["tiny.toml", "--storage", "postgresql:///db"], "error: PostgreSQL storage URL must look like"),
    (["tiny.toml", "--devices", "a,b"], "error: --devices must list GPU indices like 0,1"),
    (["tiny.toml", "extra.html"], "error: unexpected argument 'extra.html'"),
])
def test_errors_are_one_line_and_touch_nothing(in_tmp: Path, args: list[str], expected: str) -> None:
    write_study(in_tmp)
    (in_tmp / "bad.toml").write_text(TINY.format(trials=1, budget="").replace("width = [", "widht = ["))
    result = sweep(*args, "--memory-only")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected), result.output
    assert "secret" not in result.output
    assert not (in_tmp / ".revprof").exists()


def test_sqlite_store(in_tmp: Path) -> None:
    study_file = write_study(in_tmp, trials=2)
    url = f"sqlite:///{in_tmp / 'sweeps.db'}"
    result = sweep(str(study_file), "--memory-only", "--storage", url)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny-memory", storage=open_storage(url))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


def test_torn_journal_tail_is_repaired(in_tmp: Path) -> None:
    study_file = write_study(in_tmp, trials=1)
    assert sweep(str(study_file), "--memory-only").exit_code == 0
    journal = in_tmp / ".revprof" / "studies.journal"
    with open(journal, "ab") as handle:
        handle.write(b'{"op_code": 5, "worker_id": "x", "tri')  # a writer killed mid-line
    result = sweep(str(study_file), "--memory-only", "--trials", "2")
    assert result.exit_code == 0, result.output
    assert journal.read_bytes().endswith(b"\n")
    assert len(load("tiny-memory", in_tmp).get_trials(states=(TrialState.COMPLETE,))) == 2


def test_pareto_front_is_the_non_dominated_ok_trials() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    points = [(0.5, 10), (0.6, 20), (0.4, 30), (0.6, 15), (0.9, 5), (0.6, 15)]
    statuses = ["ok", "ok", "ok", "ok", "infeasible", "ok"]
    for (dice, peak), status in zip(points, statuses, strict=True):
        trial = study.ask()
        trial.set_user_attr("status", status)
        study.tell(trial, [dice, peak])
    front = pareto_front(study)
    assert [t.number for t in front] == [3, 5, 0]


def test_a_network_proposed_again_reuses_its_figures(in_tmp: Path) -> None:
    study_file = write_study(in_tmp, trials=3)
    text = study_file.read_text().replace("width = [4, 8]", "width = 8").replace(
        'reversible = ["all", "none"]', 'reversible = "all"')
    study_file.write_text(text.split("[[enqueue]]")[0])
    assert sweep(str(study_file), "--memory-only").exit_code == 0
    first, second, third = load("tiny-memory", in_tmp).get_trials()
    assert "duplicate_of" not in first.user_attrs
    for again in (second, third):
        assert again.user_attrs["duplicate_of"] == 0
        assert again.values == first.values
        assert again.user_attrs["peak_bytes"] == first.user_attrs["peak_bytes"]
        assert again.user_attrs["spec"] == first.user_attrs["spec"]


def test_run_sweep_from_python_reports_each_trial(tmp_path: Path) -> None:
    """The library API: a memory-only sweep run from Python, each finished trial handed to
    ``on_trial``, the summary's counts the store's; a rerun resumes with nothing to run."""
    from revprof.sweep.run import SweepSummary, run_sweep
    from revprof.sweep.studyfile import read_study_file

    study_file = read_study_file(write_study(tmp_path, trials=3))
    store = str(tmp_path / "store.journal")
    seen: list[tuple[int, str, int]] = []
    starts: list[str] = []
    messages: list[str] = []

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, target: int) -> None:
        assert trial.state.is_finished()
        seen.append((trial.number, trial.user_attrs["status"], target))

    summary = run_sweep(study_file, store, memory_only=True, on_trial=on_trial,
                        on_start=lambda start: starts.append(start.name),
                        on_message=messages.append)
    assert isinstance(summary, SweepSummary)
    assert starts == ["tiny-memory"] and summary.name == "tiny-memory" and summary.ran
    assert [number for number, _, _ in seen] == [0, 1, 2]
    assert all(status == "ok" and target == 3 for _, status, target in seen)
    stored = optuna.load_study(study_name="tiny-memory",
                               storage=open_storage(store, create=False)).get_trials()
    assert [t.state for t in stored] == [TrialState.COMPLETE] * 3
    assert summary.before.complete == 0 and summary.counts.complete == 3
    assert [t.number for t in summary.study.get_trials()] == [0, 1, 2]

    seen.clear()
    again = run_sweep(study_file, store, memory_only=True, on_trial=on_trial,
                      on_message=messages.append)
    assert not again.ran and seen == [] and again.counts.complete == 3
    assert messages[-1] == "the study already holds 3 complete trials (target 3); nothing to run"


def test_the_public_sweep_command_has_no_worker_flags() -> None:
    result = CliRunner().invoke(app, ["sweep", "x.toml", "--worker", "0"])
    assert result.exit_code == 2 and "No such option: --worker" in result.output


def test_a_worker_without_its_store_is_one_line(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m revprof.sweep.worker`` takes the store only from the environment."""
    from revprof.sweep.worker import main
    from revprof.sweep.workers import STORAGE_ENV

    monkeypatch.delenv(STORAGE_ENV, raising=False)
    code = main(["tiny.toml", "--worker", "0", "--study-name", "tiny", "--trials", "2"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: no store") and STORAGE_ENV in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):  # the store is never an option of the command line
        main(["tiny.toml", "--worker", "0", "--study-name", "tiny", "--trials", "2",
              "--storage", "x.journal"])


def test_study_stored_before_a_recipe_field_existed_resumes(in_tmp: Path) -> None:
    # a store written before ``intensity`` and ``spatial`` were recipe fields has no such keys
    study_file = write_study(in_tmp, trials=1)
    assert sweep(str(study_file), "--memory-only").exit_code == 0
    study = load("tiny-memory", in_tmp)  # a memory-only study's name
    stored = dict(study.user_attrs["study"])
    stored["recipe"] = {k: v for k, v in stored["recipe"].items() if k not in ("intensity", "spatial")}
    study.set_user_attr("study", stored)
    study_file.write_text(study_file.read_text().replace("trials = 1", "trials = 2"))
    resumed = sweep(str(study_file), "--memory-only")
    assert resumed.exit_code == 0, resumed.output
    # a recipe that does set the new field is another recipe
    study_file.write_text(study_file.read_text() + "\n[recipe]\nspatial = 0.2\n")
    changed = sweep(str(study_file), "--memory-only")
    assert changed.exit_code == 1 and "with other recipe" in changed.output, changed.output
