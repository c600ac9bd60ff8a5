"""revprof's stores as Optuna users know them: public constraints, named objectives, no global
warning filters, the private API kept in one adapter (and pinned here), old stores still open."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from revprof.cli.app import app
from revprof.sweep import optuna_adapter
from revprof.sweep.objective import CONSTRAINT_NAME
from revprof.sweep.pareto import pareto_front
from revprof.sweep.storage import open_storage

OLD_STORE = Path(__file__).parent / "data" / "old-store"
ROOT = Path(__file__).resolve().parents[1]


def _old_store(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a journal written by revprof before this change (list-form constraints from the
    sampler's ``constraints_func``, no metric names): tiny.toml --memory-only, 3 trials, budget
    1.2 MiB, trials 1 and 2 over it."""
    study_file = tmp_path / "tiny.toml"
    journal = tmp_path / "studies.journal"
    shutil.copy(OLD_STORE / "tiny.toml", study_file)
    shutil.copy(OLD_STORE / "studies.journal", journal)
    return study_file, journal


def _optuna_front(study: optuna.Study) -> set[int]:
    """Optuna's constrained Pareto front; revprof leaves out repeats of a network (same values,
    ``duplicate_of`` names the first), Optuna keeps them."""
    return {t.number for t in study.best_trials if "duplicate_of" not in t.user_attrs}


def test_the_adapter_reaches_what_it_claims_in_this_optuna(tmp_path: Path) -> None:
    """Fails loudly when an Optuna release renames what revprof.sweep.optuna_adapter uses."""
    storage = open_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    assert isinstance(optuna_adapter.storage_of(study), optuna.storages.BaseStorage)
    frozen = optuna_adapter.frozen_trial(study, trial)
    assert frozen.number == trial.number and optuna_adapter.trial_id(frozen) == optuna_adapter.trial_id(trial)
    optuna_adapter.set_study_system_attr(study, "revprof_probe", 3)
    assert optuna_adapter.study_system_attrs(study)["revprof_probe"] == 3
    trial.set_constraint(CONSTRAINT_NAME, 5.0)
    optuna_adapter.mirror_constraint_list(study, trial, [5.0])
    study.tell(trial, [1.0, 2.0])
    done = study.get_trials()[0]
    # the list form is the key optuna-dashboard reads; Optuna reads both forms
    assert done.system_attrs[optuna_adapter.LIST_CONSTRAINTS_KEY] == [5.0]
    assert done.constraints == {CONSTRAINT_NAME: 5.0, "0": 5.0}
    from optuna_dashboard import _serializer  # optional extra: revprof[dashboard]

    assert _serializer.CONSTRAINTS_KEY == optuna_adapter.LIST_CONSTRAINTS_KEY


@pytest.mark.slow
def test_importing_revprof_and_running_a_sweep_leaves_warnings_alone(tmp_path: Path) -> None:
    # torch, numpy and scipy add filters of their own; none may touch Optuna's warnings
    code = ("import warnings, optuna; import revprof.sweep.study, revprof.cli.app, "
            "revprof.sweep.objective; revprof.sweep.study.quiet_optuna(); "
            "bad = [f for f in warnings.filters if f[0] == 'ignore' and ("
            "issubclass(optuna.exceptions.ExperimentalWarning, f[2]) and f[1] is None and f[3] is None"
            " or f[2] is optuna.exceptions.ExperimentalWarning"
            " or f[1] is not None and 'constraints_func' in f[1].pattern)]; "
            "assert not bad, f'filters hiding Optuna warnings: {bad}'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    study_file, _ = _old_store(tmp_path)
    journal = tmp_path / "new.journal"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["sweep", str(study_file), "--memory-only", "--storage",
                                          str(journal)])
    assert result.exit_code == 0, result.output
    optuna_warnings = [w for w in caught if issubclass(w.category, (FutureWarning,
                                                                      optuna.exceptions.ExperimentalWarning))]
    assert not optuna_warnings, [str(w.message) for w in optuna_warnings]
    study = optuna.load_study(study_name="tiny-memory", storage=open_storage(str(journal)))
    assert study.metric_names == ["params", "peak_bytes"]
    frame = study.trials_dataframe(multi_index=True)
    assert list(frame["values"].columns) == ["params", "peak_bytes"]
    infeasible = [t for t in study.get_trials() if t.user_attrs["status"] == "infeasible"]
    assert infeasible and all(t.constraints[CONSTRAINT_NAME] > 0 for t in infeasible)
    assert _optuna_front(study) == {t.number for t in pareto_front(study)}


def test_a_store_written_before_set_constraint_opens_and_resumes(tmp_path: Path) -> None:
    study_file, journal = _old_store(tmp_path)
    old = optuna.load_study(study_name="tiny-memory", storage=open_storage(str(journal)))
    assert old.metric_names is None
    assert [t.constraints for t in old.get_trials()] == [{"0": -340275.0}, {"0": 381133.0},
                                                         {"0": 381133.0}]
    result = CliRunner().invoke(app, ["sweep", str(study_file), "--memory-only", "--storage",
                                      str(journal), "--trials", "5"])
    assert result.exit_code == 0, result.output
    assert "resumed" in result.output
    study = optuna.load_study(study_name="tiny-memory", storage=open_storage(str(journal)))
    assert study.metric_names == ["params", "peak_bytes"]
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) >= 5
    assert all(t.constraints for t in trials)  # old and new constraints both read by Optuna
    assert 1 not in {t.number for t in pareto_front(study)}
    assert _optuna_front(study) == {t.number for t in pareto_front(study)}
