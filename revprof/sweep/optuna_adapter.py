"""The only place revprof reaches into Optuna below its public API (tests/test_optuna_adapter.py
fails loudly when any of this changes in an Optuna release).

Why each one is needed:

- :func:`trial_id` / :func:`storage_of`: a background thread refreshes the ``heartbeat`` of a
  running trial, and a worker marks the RUNNING trials of a dead worker FAIL. Both write to a
  trial that this process's :class:`optuna.Trial` object does not own (or from another thread);
  Optuna's public API has no call that takes a trial number for that, only the storage's calls
  that take the internal trial id.
- :func:`study_system_attrs` / :func:`set_study_system_attr`: the study-level marker that the
  study file's ``[[enqueue]]`` trials were enqueued once. ``Study.set_system_attr`` was removed
  from the public API; stores written by earlier revprof versions keep the marker there.
- :func:`mirror_constraint_list`: the constraint itself is set with the public
  ``Trial.set_constraint``; optuna-dashboard (0.21) still reads only the list-form
  ``system_attrs["constraints"]`` that Optuna's deprecated ``constraints_func`` wrote, so the
  same value is mirrored there for the dashboard to mark infeasible trials.
"""

from __future__ import annotations

from typing import Any

#: The system attribute Optuna's ``constraints_func`` machinery wrote (``optuna.study.
#: _constrained_optimization._CONSTRAINTS_KEY``); optuna-dashboard reads it.
LIST_CONSTRAINTS_KEY = "constraints"


def storage_of(study: Any) -> Any:
    """The :class:`optuna.storages.BaseStorage` behind ``study``."""
    return study._storage


def trial_id(trial: Any) -> int:
    """The storage's id of a :class:`optuna.Trial` or :class:`optuna.trial.FrozenTrial`."""
    return int(trial._trial_id)


def frozen_trial(study: Any, trial: Any) -> Any:
    """The current :class:`optuna.trial.FrozenTrial` of ``trial`` (one storage read)."""
    return storage_of(study).get_trial(trial_id(trial))


def study_system_attrs(study: Any) -> dict[str, Any]:
    """The study's system attributes."""
    return dict(storage_of(study).get_study_system_attrs(study._study_id))


def set_study_system_attr(study: Any, key: str, value: Any) -> None:
    """Set one study system attribute."""
    storage_of(study).set_study_system_attr(study._study_id, key, value)


def mirror_constraint_list(study: Any, trial: Any, values: list[float]) -> None:
    """Write ``values`` as the list-form ``constraints`` system attribute of ``trial`` (what
    optuna-dashboard reads); Optuna itself reads the value set by ``Trial.set_constraint``."""
    storage_of(study).set_trial_system_attr(trial_id(trial), LIST_CONSTRAINTS_KEY,
                                            [float(v) for v in values])
