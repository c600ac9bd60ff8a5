"""The way out of a sweep: a trial's network as a spec file (:mod:`revprof.train.specfile`) that
``revprof measure/model/plan --spec FILE`` take, so it is measured, planned or trained exactly as
the sweep did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revprof.errors import RevprofError
from revprof.recipe import PAPER, Recipe, recipe_or_paper
from revprof.spec import ArchSpec
from revprof.train.settings import TrainSettings
from revprof.train.specfile import SpecFile, write_spec_file

_HEADER_ATTRS = ("status", "label", "spec_words", "peak_bytes", "predicted_peak_bytes", "params",
                 "seconds_per_step", "device", "budget_bytes", "duplicate_of")


@dataclass(frozen=True)
class Exported:
    """One written spec file."""

    number: int
    path: Path
    on_front: bool


def spec_file_name(study_name: str, number: int) -> str:
    """``STUDY-trial0007.json``: the file name ``revprof export`` gives trial ``number``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study_name)
    return f"{safe}-trial{number:04d}.json"


def trial_spec_file(study: Any, trial: Any, on_front: bool, store: str) -> SpecFile:
    """The spec file of one trial: its network, and its training settings whole (its patch, the
    recipe it trained with, the study's data settings), with what the sweep recorded about it in
    the header.

    Raises:
        RevprofError: the trial has no network recorded (failed before building it).
    """
    attrs = trial.user_attrs
    if "spec" not in attrs or "patch" not in attrs:
        raise RevprofError(f"trial {trial.number} of study {study.study_name!r} has no network "
                           f"recorded (state {trial.state.name.lower()}, status "
                           f"{attrs.get('status', '?')})")
    study_attrs = study.user_attrs
    fixed = study_attrs.get("fixed") or {}
    data = (study_attrs.get("study") or {}).get("data") or {}
    train: dict[str, Any] = {key: fixed[key] for key in ("val_cases", "seed", "device") if key in fixed}
    train["data"] = data.get("path")
    for key in ("convention", "crop", "synthetic_cases", "synthetic_shape"):
        if data.get(key) is not None:
            train[key] = data[key]
    train["patch"] = attrs["patch"]
    train["recipe"] = trial_recipe(study_attrs, attrs).to_dict()
    header: dict[str, Any] = {"study": study.study_name, "store": store, "trial": trial.number,
                              "state": trial.state.name.lower(), "pareto_front": on_front,
                              "memory_only": bool(study_attrs.get("memory_only"))}
    if trial.values is not None:
        names = study.metric_names or study_attrs.get("objectives") or []
        header["objectives"] = dict(zip(names, trial.values, strict=False))
    dice = attrs.get("dice")
    if isinstance(dice, dict):
        header["dice"] = dice
    for key in _HEADER_ATTRS:
        if key in attrs:
            header[key] = attrs[key]
    if header.get("memory_only"):
        header["peak_source"] = "predicted (simulate backend)"
    source = f"trial {trial.number} of study {study.study_name!r}"
    return SpecFile(ArchSpec.from_dict(attrs["spec"]),
                    TrainSettings.from_dict(train, source=source), header)


def trial_recipe(study_attrs: Mapping[str, Any], attrs: Mapping[str, Any]) -> Recipe:
    """The recipe a trial trained with: its own record, else its study's, else (a store written
    before recipes existed) the paper's with the study's ``fixed`` batch, precision, steps,
    learning rate, schedule and foreground."""
    if attrs.get("recipe") is not None:
        return recipe_or_paper(attrs["recipe"], source="the trial's recipe")
    stored = (study_attrs.get("study") or {}).get("recipe")
    if stored is not None:
        return recipe_or_paper(stored, source="the study's recipe")
    fixed = study_attrs.get("fixed") or {}
    overrides = {key: fixed[key] for key in ("steps", "lr", "schedule", "foreground") if key in fixed}
    overrides["batch"] = attrs.get("batch", fixed.get("batch", 1))
    overrides["precision"] = attrs.get("precision", fixed.get("precision", "fp32"))
    return PAPER.with_overrides(overrides, source="the study's fixed settings")


def select_trials(study: Any, front: bool, numbers: Sequence[int]) -> list[Any]:
    """The Pareto-front trials (``front``) and the trials numbered ``numbers``, in order.

    Raises:
        RevprofError: neither asked for, an unknown trial number, or an empty front.
    """
    from revprof.sweep.pareto import pareto_front

    if not front and not numbers:
        raise RevprofError("say which trials: --front (the Pareto front) or --trial N")
    trials = study.get_trials(deepcopy=False)
    chosen: dict[int, Any] = {}
    if front:
        on_front = pareto_front(study, trials)
        if not on_front:
            raise RevprofError(f"study {study.study_name!r} has no feasible complete trial yet, so "
                               f"no Pareto front; export one with --trial N")
        chosen.update((t.number, t) for t in on_front)
    by_number = {t.number: t for t in trials}
    for number in numbers:
        if number not in by_number:
            span = f"0–{max(by_number)}" if by_number else "none"
            raise RevprofError(f"no trial {number} in study {study.study_name!r} (trials: {span})")
        chosen.setdefault(number, by_number[number])
    return list(chosen.values())


def export_trials(study: Any, trials: Sequence[Any], out: Path, store: str) -> list[Exported]:
    """Write one spec file per trial into ``out`` (``STUDY-trialNNNN.json``); ``store`` (already
    redacted) goes into each header.

    Raises:
        RevprofError: a trial without a network, or ``out`` cannot be written.
    """
    from revprof.sweep.pareto import pareto_front

    front = {t.number for t in pareto_front(study)}
    files = [(t, trial_spec_file(study, t, t.number in front, store)) for t in trials]
    written = []
    for trial, spec_file in files:
        path = write_spec_file(Path(out) / spec_file_name(study.study_name, trial.number), spec_file)
        written.append(Exported(trial.number, path, trial.number in front))
    return written
