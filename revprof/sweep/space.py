"""From an Optuna trial to a network, through the study file's search space.

:func:`suggest` turns a trial into an :class:`~revprof.spec.ArchSpec` and a patch size following
the study file's ``[space]``; :func:`enqueue` puts the study file's ``[[enqueue]]`` trials in the
study once, before the sampler proposes its own; :func:`requeue_lost` puts an enqueued trial that
was interrupted or crashed back. Each dimension asks the trial itself
(:mod:`revprof.sweep.studyfile.dims`: ``suggest`` is the only caller of ``trial.suggest_*``).
"""

from __future__ import annotations

from typing import Any

from revprof.errors import RevprofError
from revprof.spec import ArchSpec, parse_patch, validate_patch
from revprof.sweep.studyfile.dims import PER_LEVEL_FLAG
from revprof.sweep.studyfile.schema import StudyFile, spec_for, widths_levels

ENQUEUED_KEY = "revprof:enqueued"
"""Study system attribute set once the study file's ``[[enqueue]]`` trials are in the study."""


def suggest(trial: Any, study: StudyFile) -> tuple[ArchSpec, tuple[int, int, int]]:
    """The network and patch of ``trial``.

    A trial enqueued with a fixed spec (user attribute ``enqueued_spec``) uses it as given;
    every other trial asks the sampler for each searched dimension. Dimensions that do not apply
    to the chosen network are not suggested: depth and reversibility for ``nonewnet``, the
    per-level values of levels that do not exist.

    Raises:
        RevprofError: the values give an invalid network or patch.
    """
    space = study.space
    attrs = getattr(trial, "user_attrs", {}) or {}
    if "enqueued_spec" in attrs:
        spec = ArchSpec.from_dict(attrs["enqueued_spec"])
    else:
        spec = _suggest_spec(trial, study)
    if "enqueued_patch" in attrs:
        patch = parse_patch(attrs["enqueued_patch"])
    elif "patch" in space:
        patch = parse_patch(space["patch"].suggest(trial, "patch"))
    else:
        patch = study.fixed.patch
    return spec, validate_patch(spec, patch)


def _suggest_spec(trial: Any, study: StudyFile) -> ArchSpec:
    space = study.space
    values: dict[str, Any] = {}

    def take(key: str) -> Any:
        return space[key].suggest(trial, key) if key in space else None

    values["arch"] = take("arch") or "revunet"
    if "widths" in space:
        values["widths"] = take("widths")
        levels = widths_levels(values["widths"])
    else:
        for key in ("levels", "width", "growth", "max_width"):
            values[key] = take(key)
        levels = values["levels"] or 5
    values["checkpoint"] = take("checkpoint")
    values["groups"] = take("groups")
    if values["arch"] == "revunet":
        depth_keys = [k for k in ("depth", "encoder_depth", "decoder_depth") if k in space]
        if study.per_level_depth:
            for key in depth_keys:
                if key == "depth" and "encoder_depth" in space and "decoder_depth" in space:
                    continue
                values[key] = [space[key].suggest(trial, f"{key}_{i}") for i in range(levels)]
        else:
            for key in depth_keys:
                values[key] = take(key)
        if study.per_level_reversible:
            flags = [bool(PER_LEVEL_FLAG.suggest(trial, f"reversible_{i}")) for i in range(levels)]
            values["encoder_reversible"] = flags
            values["decoder_reversible"] = flags
        else:
            values["reversible"] = take("reversible")
    return spec_for(values)


def enqueue(study: Any, study_file: StudyFile) -> int:
    """Enqueue the study file's ``[[enqueue]]`` trials, once per study.

    Returns:
        how many trials were enqueued now (0 when they already were).
    """
    from revprof.sweep.optuna_adapter import set_study_system_attr, study_system_attrs

    if not study_file.enqueue or study_system_attrs(study).get(ENQUEUED_KEY):
        return 0
    for entry in study_file.enqueue:
        study.enqueue_trial(dict(entry.params), user_attrs=entry.user_attrs() or None,
                            skip_if_exists=bool(entry.params) and entry.spec is None)
    set_study_system_attr(study, ENQUEUED_KEY, len(study_file.enqueue))
    return len(study_file.enqueue)


REQUEUED_FROM = "requeued_from"
"""User attribute of a re-queued trial: the number of the interrupted or crashed trial it replaces."""

_REQUEUED_ATTRS = ("label", "enqueued_spec", "enqueued_patch")


def requeue_lost(study: Any) -> list[int]:
    """Enqueue again, with the same parameters, every enqueued trial that ended interrupted
    (Ctrl-C, SIGTERM, a stopped worker) or crashed (``failed``) and was not re-queued yet, so a
    configuration the study file asked for never drops out of the study.

    Call it once per run, after stale trials are marked: a trial that fails again is re-queued
    on the next run, not in a loop within one.

    Returns:
        the numbers of the trials re-queued now.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    replaced = {t.user_attrs.get(REQUEUED_FROM) for t in trials}
    requeued = []
    for trial in trials:
        if (trial.state != TrialState.FAIL or "fixed_params" not in trial.system_attrs
                or trial.user_attrs.get("status") not in ("interrupted", "failed")
                or trial.number in replaced):
            continue
        attrs = {k: trial.user_attrs[k] for k in _REQUEUED_ATTRS if k in trial.user_attrs}
        attrs[REQUEUED_FROM] = trial.number
        study.enqueue_trial(dict(trial.system_attrs["fixed_params"]), user_attrs=attrs)
        requeued.append(trial.number)
    return requeued


def check_enqueued(study_file: StudyFile) -> None:
    """Build every enqueued trial's network now, so a bad entry fails before the study starts.

    Raises:
        RevprofError: naming the entry and the problem.
    """
    for index, entry in enumerate(study_file.enqueue):
        try:
            suggest(_FixedTrial(entry.params, entry.user_attrs()), study_file)
        except RevprofError as error:
            raise RevprofError(f"{study_file.path}: enqueue[{index}] gives an invalid network: "
                               f"{error}") from None


def first_network(study_file: StudyFile) -> tuple[ArchSpec, tuple[int, int, int]]:
    """The study's first trial's network and patch: its first enqueued entry, else the first
    choice of every searched dimension."""
    if study_file.enqueue:
        entry = study_file.enqueue[0]
        return suggest(_FixedTrial(entry.params, entry.user_attrs()), study_file)
    return suggest(_FixedTrial({}, {}), study_file)


class _FixedTrial:
    """A stand-in trial that answers enqueued values and the first choice otherwise."""

    def __init__(self, params: dict[str, Any], user_attrs: dict[str, Any]) -> None:
        self.params = params
        self.user_attrs = user_attrs

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self.params.get(name, choices[0])

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return int(self.params.get(name, low))
