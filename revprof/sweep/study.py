"""Create, resume and describe the Optuna study behind a study file."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from revprof.errors import RevprofError
from revprof.recipe import with_newer_fields
from revprof.sweep.dataset import IDENTITY_KEY, check_data_exists, check_same_data, data_identity
from revprof.sweep.objective import RunSettings, train_settings
from revprof.sweep.space import check_enqueued, enqueue
from revprof.sweep.storage import describe, load_study, open_storage
from revprof.sweep.studyfile import StudyFile


def quiet_optuna() -> None:
    """Optuna's per-trial log lines off (revprof prints its own). Warnings are left alone: the
    two experimental features revprof uses are acknowledged where it calls them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _experimental(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)`` with Optuna's ExperimentalWarning silenced for this call only
    (revprof pins the behaviour it relies on in its tests)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return call(*args, **kwargs)


def name_objectives(study: Any, names: list[str]) -> None:
    """Name the study's objectives with Optuna's ``Study.set_metric_names`` (read by
    optuna-dashboard, ``trials_dataframe()`` and ``plot_pareto_front``), once."""
    if study.metric_names != names:
        _experimental(study.set_metric_names, names)


def make_sampler(study_file: StudyFile, seed_offset: int = 0, seed: int | None = None,
                 existing: int = 0) -> Any:
    """The study file's sampler; worker ``k`` gets seed ``seed + k`` so workers differ, and a
    resumed study (``existing`` trials) another one, so a rerun does not repeat the proposals
    of the first run."""
    import optuna

    settings = study_file.sampler
    base = settings.seed if seed is None else seed
    worker_seed = None if base is None else (base + seed_offset + 7919 * existing) % 2**32
    # With a budget each trial sets its constraint (Trial.set_constraint); Optuna 5's samplers
    # read it from the trial, so no sampler ``constraints_func`` (deprecated in Optuna 5).
    if settings.name == "tpe":
        kwargs: dict[str, Any] = {"seed": worker_seed, "multivariate": settings.multivariate}
        if settings.multivariate:
            kwargs["group"] = True  # conditional spaces (arch-dependent depth)
        if settings.n_startup_trials is not None:
            kwargs["n_startup_trials"] = settings.n_startup_trials
        return _experimental(optuna.samplers.TPESampler, **kwargs)  # ``group`` is experimental
    if settings.name == "nsga2":
        kwargs = {"seed": worker_seed}
        if settings.population_size is not None:
            kwargs["population_size"] = settings.population_size
        return optuna.samplers.NSGAIISampler(**kwargs)
    if settings.name == "random":
        return optuna.samplers.RandomSampler(seed=worker_seed)
    return optuna.samplers.GridSampler(study_file.grid(), seed=worker_seed)


@dataclass(frozen=True)
class StudyHandle:
    """An open study and where it lives."""

    study: Any
    storage: str
    name: str
    created: bool
    enqueued: int


def prepare_study(study_file: StudyFile, storage: str, memory_only: bool,
                  study_name: str | None = None, seed: int | None = None,
                  data: str | None = None, version: str = "unknown") -> StudyHandle:
    """Create the study (or resume it), record the study attributes and the identity of its
    training data, and enqueue the study file's trials once.

    Args:
        data: the ``--data`` folder overriding the study file's.
        version: the revprof version recorded with a new study (the caller's ``__version__``).

    Raises:
        RevprofError: ``data`` does not exist, the store cannot be opened, or the stored study
            was made from a different study file (other space, fixed settings, data or
            objectives) or trained on other data (:mod:`revprof.sweep.dataset`).
    """
    import optuna

    quiet_optuna()
    check_enqueued(study_file)
    check_data_exists(data)
    identity = None
    if not memory_only:  # before the store is touched: bad data leaves nothing behind
        identity = data_identity(train_settings(RunSettings(study_file, data=data)))
    name = study_name or study_file.study_name(memory_only)
    backend = open_storage(storage, create=True)
    directions = study_file.directions(memory_only)
    existing = _find(backend, name)
    if existing is not None:
        _check_compatible(existing, study_file, memory_only, name, storage)
        if identity is not None:
            check_same_data(existing.user_attrs.get(IDENTITY_KEY), identity, name, describe(storage))
    study = optuna.create_study(storage=backend, study_name=name, directions=directions,
                                sampler=make_sampler(study_file, 0, seed), load_if_exists=True)
    created = existing is None
    study.sampler = make_sampler(study_file, 0, seed, len(study.get_trials(deepcopy=False)))
    attrs = {
        "revprof_version": version,
        "study_file": study_file.path,
        "study": study_file.to_dict(),
        "objectives": list(study_file.objective_names(memory_only)),
        "budget_bytes": study_file.budget_bytes,
        "memory_only": memory_only,
        "fixed": study_file.fixed_dict(),
    }
    if identity is not None:
        attrs[IDENTITY_KEY] = identity
    current = study.user_attrs
    for key, value in attrs.items():
        if current.get(key) != value:
            study.set_user_attr(key, value)
    name_objectives(study, list(study_file.objective_names(memory_only)))
    enqueued = enqueue(study, study_file)
    return StudyHandle(study, storage, name, created, enqueued)


def open_worker_study(study_file: StudyFile, storage: str, name: str, seed_offset: int = 0,
                      seed: int | None = None) -> Any:
    """Open an existing study for a worker, with this worker's sampler."""
    quiet_optuna()
    study = load_study(name, storage, sampler=make_sampler(study_file, seed_offset, seed))
    existing = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    study.sampler = make_sampler(study_file, seed_offset, seed, existing)
    return study


def _find(backend: Any, name: str) -> Any:
    import optuna

    for summary in optuna.get_all_study_summaries(backend, include_best_trial=False):
        if summary.study_name == name:
            return summary
    return None


def _check_compatible(summary: Any, study_file: StudyFile, memory_only: bool, name: str,
                      storage: str) -> None:
    directions = [d.name.lower() for d in summary.directions]
    wanted = study_file.directions(memory_only)
    stored_objectives = summary.user_attrs.get("objectives")
    objectives = list(study_file.objective_names(memory_only))
    if directions != wanted or (stored_objectives is not None and stored_objectives != objectives):
        raise RevprofError(
            f"study {name!r} in {describe(storage)} has objectives "
            f"{stored_objectives or directions}; this run asks for {objectives}. "
            f"Use --study-name NEW to start another study")
    stored = summary.user_attrs.get("study")
    if not isinstance(stored, dict):
        return
    mine = study_file.identity()
    if isinstance(stored.get("recipe"), dict):  # stored before a recipe field was added
        stored = {**stored, "recipe": with_newer_fields(stored["recipe"])}
    changed = [k for k in mine if k in stored and stored.get(k) != mine[k]]
    if changed:
        raise RevprofError(
            f"study {name!r} in {describe(storage)} was created from a study file with other "
            f"{', '.join(changed)}; resuming would mix incomparable trials. Restore the file, or "
            f"use --study-name NEW to start another study")
