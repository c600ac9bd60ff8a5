"""The one trial record (revprof/sweep/record.py): it round-trips through a real Optuna trial's
user attributes, reads old stores unchanged, and the sweep's front and the report's plot agree
on one store (one Pareto rule)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.report.inputs import study_source
from revprof.report.panels.pareto import pareto_info
from revprof.sweep.pareto import non_dominated, pareto_front
from revprof.sweep.record import FIELDS, TrialRecord, TrialWriter, record_of
from revprof.sweep.storage import open_storage

OLD_STORE = Path(__file__).parent / "data" / "old-store"


def _full_record() -> TrialRecord:
    return TrialRecord(
        spec={"arch": "revunet", "levels": 2, "widths": [4, 8]}, spec_words="2 levels, 4-8",
        patch=[16, 16, 16], batch=1, precision="fp32", recipe={"name": "paper", "lr": 1e-4},
        status="ok", label="plain",
        worker={"host": "h", "pid": 7}, heartbeat=1796110583.5, budget_bytes=1 << 20, predicted_peak_bytes=123_456,
        predicted_reserved_bytes=2 << 20, breakdown={"parameters": 10, "activations": 20},
        activations_by_part={"enc0": 5}, params=4321, predict_seconds=0.25, peak_bytes=130_000,
        dice={"wt": 0.8, "tc": 0.7, "et": 0.6, "mean": 0.7},
        dice_per_case=[{"case": "c1", "wt": 0.8, "tc": 0.7, "et": None}],
        seconds_per_step=1.5, voxels_per_second=2730.5, losses=[0.9, None, 0.5], steps_done=3,
        device="cpu", environment={"torch": "2.x"}, error="none", traceback="tb",
        weight_key='{"network": {}}', training="reused", dice_from=2, train_seconds=9.5,
        source_train_seconds=8.25, measure_steps=3, duplicate_of=1,
        progress={"phase": "train", "done": 1, "total": 3, "loss": None, "seconds_left": 2.0},
        requeued_from=4, extra={"from_a_newer_revprof": {"x": 1}})


def test_a_record_round_trips_through_a_real_optuna_trials_user_attributes(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(study_name="r", storage=storage, directions=["maximize", "minimize"])
    record = _full_record()
    assert all(record.has(name) for name in FIELDS)  # the test covers every field
    trial = study.ask()
    writer = TrialWriter(trial)
    writer.set(**{name: getattr(record, name) for name in FIELDS})
    for key, value in record.extra.items():
        trial.set_user_attr(key, value)
    with pytest.raises(TypeError, match="no field 'dcie'"):
        writer.set(dcie={"mean": 1.0})
    study.tell(trial, [0.7, 130_000.0])

    stored = optuna.load_study(study_name="r", storage=open_storage(str(tmp_path / "s.journal")))
    frozen = stored.get_trials()[0]
    assert frozen.user_attrs == record.to_user_attrs()
    assert record_of(frozen) == record
    assert "dcie" not in frozen.user_attrs
    assert writer.record == TrialRecord(**{n: getattr(record, n) for n in FIELDS})


def test_absent_and_non_finite_values_are_stored_as_the_schema_says() -> None:
    record = TrialRecord(status="ok", seconds_per_step=math.inf, patch=(8, 8, 8))  # type: ignore[arg-type]
    assert record.to_user_attrs() == {"status": "ok", "seconds_per_step": None, "patch": [8, 8, 8]}
    assert not record.has("dice") and record.dice_mean is None and record.patch_text == "8×8×8"


def test_every_trial_of_an_old_store_reads_back_unchanged(tmp_path: Path) -> None:
    journal = tmp_path / "studies.journal"
    shutil.copy(OLD_STORE / "studies.journal", journal)
    storage = open_storage(str(journal), create=False)
    trials = [t for s in storage.get_all_studies()
              for t in optuna.load_study(study_name=s.study_name, storage=storage).get_trials()]
    assert trials
    for trial in trials:
        record = record_of(trial)
        assert record.to_user_attrs() == trial.user_attrs
        assert record.spec is not None and record.status in ("ok", "infeasible")
        assert record.extra == {}, f"trial {trial.number} holds keys the schema lacks: {record.extra}"


def test_one_pareto_rule_for_ties() -> None:
    points = [(0, (1.0, -0.5)), (1, (1.0, -0.5)), (2, (2.0, -0.5)), (3, (0.5, -0.1))]
    assert non_dominated(points, ties="all") == [0, 1, 3]
    assert non_dominated(points, ties="first") == [0, 3]
    with pytest.raises(ValueError, match="ties"):
        non_dominated(points, ties="some")


@pytest.mark.slow
def test_the_report_and_the_sweep_front_agree_on_one_store(tmp_path: Path) -> None:
    study_file = tmp_path / "tiny.toml"
    journal = tmp_path / "studies.journal"
    shutil.copy(OLD_STORE / "tiny.toml", study_file)
    result = CliRunner().invoke(app, ["sweep", str(study_file), "--memory-only", "--trials", "5",
                                      "--storage", str(journal)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny-memory", storage=open_storage(str(journal)))
    sweep_front = [t.number for t in pareto_front(study)]
    assert sweep_front
    statuses = {record_of(t).status for t in study.get_trials()}
    assert "infeasible" in statuses  # the budget leaves some out of both fronts

    source = study_source("tiny-memory", str(journal))
    info = pareto_info(source.trials, source.budget_bytes, source.name)
    assert info is not None
    report_front = next(g.numbers for g in info.groups if g.kind == "front")
    assert sorted(report_front) == sorted(sweep_front)
    rows = {row.number: row for row in source.trials}
    for trial in study.get_trials():
        record = record_of(trial)
        assert rows[trial.number].peak_bytes == record.peak_bytes
        assert rows[trial.number].params == record.params
        assert rows[trial.number].status == record.status
