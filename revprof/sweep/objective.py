"""One trial: build the network, predict its memory, then skip (over budget), stop (memory only)
or train, and record every figure in the trial's user attributes (docs/store-schema.md).

Outcomes:

- ``ok``: COMPLETE with the objective values.
- ``infeasible``: predicted peak over the budget; COMPLETE with ``dice = 0`` (the ``params`` objective
  0 in memory-only studies; the ``params`` user attribute keeps the count) and the predicted peak,
  not trained.
- ``oom`` / ``diverged``: COMPLETE with ``dice = 0`` and the measured (or predicted) peak, so the
  sampler learns from them; with the study's ``device_memory``, a trial the allocator replay says
  would run out of the card's memory is ``oom`` without training (and infeasible under a budget).
- ``failed``: any other error; FAIL with the message in ``error``.
- ``interrupted``: Ctrl-C (or SIGTERM) during the trial; FAIL, and the interrupt goes on.

With a budget, the constraint ``predicted_peak_bytes - budget_bytes`` (feasible when <= 0) is set
with Optuna's ``Trial.set_constraint`` under :data:`CONSTRAINT_NAME`, which Optuna's samplers and
``Study.best_trials`` read; the same value is mirrored in the list form optuna-dashboard reads
(:mod:`revprof.sweep.optuna_adapter`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from revprof.errors import RevprofError
from revprof.recipe import Recipe
from revprof.sweep.heartbeat import Heartbeat, identity
from revprof.sweep.optuna_adapter import mirror_constraint_list, storage_of, trial_id
from revprof.sweep.record import TrialWriter, record_of
from revprof.sweep.signals import deferred_interrupts
from revprof.sweep.space import suggest
from revprof.sweep.studyfile import StudyFile

#: The name of the memory-budget constraint (``trial.constraints[CONSTRAINT_NAME]``).
CONSTRAINT_NAME = "peak_over_budget_bytes"


@dataclass(frozen=True)
class RunSettings:
    """How this worker runs trials.

    Attributes:
        study_file: the study.
        memory_only: predict memory only (no training, no Dice).
        device: training device (``auto``, ``cpu``, ``cuda`` or ``cuda:N``).
        data: a data folder overriding the study file's ``[data] path``.
        progress: show the training run's own progress bars (a terminal).
        progress_lines: else print a plain progress line this often, in seconds (a log or a
            pipe; None: never). The store gets the trial's progress either way.
    """

    study_file: StudyFile
    memory_only: bool = False
    device: str | None = None
    data: str | None = None
    progress: bool = False
    progress_lines: float | None = None

    @property
    def budget(self) -> int | None:
        return self.study_file.budget_bytes


@dataclass(frozen=True)
class Outcome:
    """What became of a trial: its final state name, status and objective values."""

    number: int
    state: str
    status: str
    values: tuple[float, ...] | None
    error: str | None = None


def run_trial(study: Any, trial: Any, settings: RunSettings) -> Outcome:
    """Run ``trial`` (from ``study.ask()``) to the end and tell the study its outcome.

    Raises:
        KeyboardInterrupt: after marking the trial FAIL with ``status = "interrupted"``.
    """
    from optuna.trial import TrialState

    record = TrialWriter(trial)
    record.set(worker=identity(), status="running")
    try:
        with Heartbeat(storage_of(study), trial_id(trial)):
            status, values = _evaluate(trial, settings, record)
    except KeyboardInterrupt:
        interrupt_trial(study, trial)
    except Exception as error:  # a failure is a recorded outcome, never a crash of the sweep
        message = _one_line(error)
        record.set(status="failed")
        record.set(error=message)
        if not isinstance(error, RevprofError):
            record.set(traceback=traceback.format_exc()[-4000:])
        with deferred_interrupts():
            tell(study, trial, state=TrialState.FAIL)
        return Outcome(trial.number, "FAIL", "failed", None, message)
    predicted = record.record.predicted_peak_bytes
    if settings.budget is not None and predicted is not None:
        constraint = float(predicted - settings.budget)
        if status == "oom":  # out of memory on the card: infeasible whatever the peak says
            constraint = max(constraint, 1.0)
        trial.set_constraint(CONSTRAINT_NAME, constraint)
        mirror_constraint_list(study, trial, [constraint])
    with deferred_interrupts():
        tell(study, trial, values=list(values), state=TrialState.COMPLETE)
    return Outcome(trial.number, "COMPLETE", status, tuple(values))


def interrupt_trial(study: Any, trial: Any) -> None:
    """Record ``trial`` as interrupted (FAIL) and raise KeyboardInterrupt; further Ctrl-C and
    SIGTERM are ignored meanwhile so the record is complete."""
    from optuna.trial import TrialState

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    TrialWriter(trial).set(status="interrupted",
                           error="interrupted (Ctrl-C or SIGTERM) during the trial")
    tell(study, trial, state=TrialState.FAIL)
    raise KeyboardInterrupt


def tell(study: Any, trial: Any, **kwargs: Any) -> None:
    """``study.tell``, tolerating the grid sampler's ``study.stop()`` once the grid is used up.

    ``GridSampler.after_trial`` calls ``study.stop()``, which raises RuntimeError outside
    ``study.optimize`` (revprof asks and tells); Optuna stores the trial's state in a
    ``finally`` first, so the trial is recorded and the worker loop stops at its target anyway.
    """
    try:
        study.tell(trial, **kwargs)
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise


def _evaluate(trial: Any, settings: RunSettings, record: TrialWriter) -> tuple[str, list[float]]:
    from revprof.memory import measure_memory

    study_file = settings.study_file
    recipe = study_file.recipe
    spec, patch = suggest(trial, study_file)
    record.set(spec=spec.to_dict())
    record.set(spec_words=spec.describe())
    record.set(patch=list(patch))
    record.set(batch=recipe.batch)
    record.set(precision=recipe.precision)
    record.set(recipe=recipe.to_dict())
    if settings.budget is not None:
        record.set(budget_bytes=settings.budget)

    earlier = _same_network(trial, spec, patch, settings)
    if earlier is not None:
        return _reuse(earlier, record)

    report = measure_memory(spec, patch, recipe, backend="simulate",
                            device_memory=study_file.allocator_card())
    predicted = int(report.peak_bytes)
    record.set(predicted_peak_bytes=predicted)
    record.set(predicted_reserved_bytes=int(report.predicted_reserved_bytes or 0))
    record.set(breakdown={k: int(v) for k, v in report.breakdown.items()})
    record.set(activations_by_part={k: int(v) for k, v in report.saved_after_forward.items()})
    record.set(params=int(report.params))
    record.set(predict_seconds=round(report.seconds, 3))

    if report.status == "oom":  # the card's allocator would run out: not trained
        record.set(peak_bytes=predicted)
        record.set(device=report.device)
        record.set(environment=report.environment)
        record.set(error=report.oom["message"] if report.oom else "out of memory (predicted)")
        record.set(status="oom")
        if settings.memory_only:
            return "oom", [0.0, float(predicted)]
        return "oom", _values(study_file, 0.0, predicted, None)
    over = settings.budget is not None and predicted > settings.budget
    if settings.memory_only or over:
        record.set(peak_bytes=predicted)
        record.set(device=report.device)
        record.set(environment=report.environment)
        status = "infeasible" if over else "ok"
        record.set(status=status)
        if settings.memory_only:
            # an infeasible network scores 0 parameters (as 0 Dice when training), so a viewer
            # that ignores constraints (optuna-dashboard's front) does not rank it either
            return status, [0.0 if over else float(report.params), float(predicted)]
        return status, _values(study_file, 0.0, predicted, None)
    return _train(trial, settings, record, spec, patch, predicted)


_REUSED = ("predicted_peak_bytes", "breakdown", "activations_by_part", "params", "predict_seconds",
           "peak_bytes", "dice", "dice_per_case", "seconds_per_step", "voxels_per_second", "losses",
           "device", "environment", "steps_done", "error", "status", "weight_key", "training",
           "dice_from", "train_seconds", "source_train_seconds", "measure_steps",
           "predicted_reserved_bytes")


def _same_network(trial: Any, spec: Any, patch: tuple[int, int, int], settings: RunSettings) -> Any:
    """An earlier COMPLETE trial of this study with the same network and patch, or None.

    Runs are seeded, so the sampler proposing a network again gets the recorded figures
    (``duplicate_of`` names the trial) instead of a second identical run.
    """
    from optuna.trial import TrialState

    study = getattr(trial, "study", None)
    if study is None:
        return None
    wanted, wanted_patch = spec.to_dict(), list(patch)
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        stored = record_of(other)
        if (other.number != trial.number and stored.spec == wanted and
                stored.patch == wanted_patch and stored.duplicate_of is None and
                stored.status in ("ok", "infeasible", "oom", "diverged")):
            return other
    return None


def _reuse(earlier: Any, record: TrialWriter) -> tuple[str, list[float]]:
    source = record_of(earlier)
    record.copy(source, _REUSED)
    record.set(duplicate_of=earlier.number)
    return str(source.status), list(earlier.values)


EXECUTION_FIELDS = ("encoder_reversible", "decoder_reversible", "checkpoint")
"""Spec fields that change only how a network runs (memory, time), never what it learns:
reversible, plain and checkpointed execution compute the same gradients."""

MEASURE_STEPS = 3
"""Training steps run to measure the peak and step time of an execution whose weights were
already trained by another trial (the first step, which creates Adam's state, is not timed)."""


def weight_key(spec: Any, patch: Sequence[int], recipe: Recipe) -> str:
    """What decides a trial's weights (and so its Dice) in a study: the network without its
    execution fields, the patch and the recipe (its :meth:`~revprof.recipe.Recipe.key`); seed,
    data and the rest are fixed per study.

    Two trials with the same key train identical networks, so one training serves both.
    """
    network = {k: v for k, v in spec.to_dict().items() if k not in EXECUTION_FIELDS}
    return json.dumps({"network": network, "patch": [int(p) for p in patch],
                       "recipe": recipe.key()}, sort_keys=True)


def _trained_weights(trial: Any, spec: Any, patch: tuple[int, int, int], recipe: Recipe) -> Any:
    """The earliest COMPLETE trial of the study that trained the weights ``trial`` would train,
    or None.

    Two workers that reach one key at the same time both train it (neither sees a finished
    training): the results stay right, only time is lost; later trials reuse the earliest.
    """
    from optuna.trial import TrialState

    study = getattr(trial, "study", None)
    if study is None:
        return None
    key = weight_key(spec, patch, recipe)
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        stored = record_of(other)
        if (other.number != trial.number and stored.weight_key == key
                and stored.training == "trained" and stored.status in ("ok", "diverged")):
            return other
    return None


def _reuse_training(source: Any, settings: RunSettings, record: TrialWriter, spec: Any,
                    options: Any, predicted: int) -> tuple[str, list[float]]:
    """Take the Dice of ``source`` (same weights, other execution) and measure this execution's
    own peak and step time with :data:`MEASURE_STEPS` real training steps."""
    from revprof.train import run_training

    study_file = settings.study_file
    trained = record_of(source)
    record.set(training="reused", dice_from=source.number)
    record.copy(trained, ("dice", "dice_per_case", "losses", "steps_done"))
    if trained.train_seconds is not None:
        record.set(source_train_seconds=trained.train_seconds)
    try:
        measured = dataclasses.replace(options.recipe, steps=MEASURE_STEPS)
        result = run_training(spec, dataclasses.replace(options, recipe=measured),
                              progress=False, score=False)
    except Exception as error:
        if not _is_oom(error):
            raise
        result = None
    if result is None or result.status == "oom":
        record.set(status="oom")
        record.set(error=result.error if result is not None else "out of memory")
        record.set(peak_bytes=predicted)
        return "oom", _values(study_file, 0.0, predicted, None)
    peak = int(result.peak_bytes or predicted)
    record.set(peak_bytes=peak)
    record.set(measure_steps=MEASURE_STEPS)
    if _finite(result.seconds_per_step):
        record.set(seconds_per_step=float(result.seconds_per_step))
    if _finite(result.voxels_per_second):
        record.set(voxels_per_second=float(result.voxels_per_second))
    record.set(device=result.device)
    record.set(environment=result.environment)
    status = str(trained.status)
    if status != "ok":
        record.set(error=trained.error or status)
    record.set(status=status)
    mean = float(trained.dice_mean) if status == "ok" and _finite(trained.dice_mean) else 0.0
    return status, _values(study_file, mean, peak, result.seconds_per_step)


def train_settings(settings: RunSettings, patch: tuple[int, int, int] | None = None) -> Any:
    """The :class:`revprof.train.TrainSettings` of this worker's trials (``patch`` default: the
    study's fixed patch)."""
    from revprof.train import TrainSettings

    study_file = settings.study_file
    fixed, data = study_file.fixed, study_file.data
    data_path = settings.data or data.path
    return TrainSettings(
        data=Path(data_path) if data_path else None, patch=patch or fixed.patch,
        recipe=study_file.recipe, val_cases=fixed.val_cases,
        device=settings.device or fixed.device, seed=fixed.seed,
        convention=data.convention, crop=data.crop, synthetic_cases=data.synthetic_cases,
        synthetic_shape=data.synthetic_shape, spacing=data.spacing,
    )


def _train(trial: Any, settings: RunSettings, record: TrialWriter, spec: Any,
           patch: tuple[int, int, int], predicted: int) -> tuple[str, list[float]]:
    from revprof.train import run_training

    study_file = settings.study_file
    options = train_settings(settings, patch)
    record.set(weight_key=weight_key(spec, patch, study_file.recipe))
    source = _trained_weights(trial, spec, patch, study_file.recipe)
    if source is not None:
        return _reuse_training(source, settings, record, spec, options, predicted)
    started = time.perf_counter()
    try:
        result = run_training(spec, options, progress=settings.progress,
                              on_progress=TrialProgress(trial, settings.progress_lines))
    except Exception as error:
        if not _is_oom(error):
            raise
        record.set(status="oom")
        record.set(error=_one_line(error))
        record.set(peak_bytes=predicted)
        record.set(device=str(options.device))
        return "oom", _values(study_file, 0.0, predicted, None)

    record.set(training="trained")
    record.set(train_seconds=round(time.perf_counter() - started, 3))
    status = result.status
    dice = result.dice
    if status == "ok" and (not dice or not _finite(dice.get("mean"))):
        status = "diverged"
    peak = int(result.peak_bytes or 0)
    if status != "ok" and peak <= 0:
        peak = predicted
    if dice:
        record.set(dice={k: float(v) for k, v in dice.items() if _finite(v)})
    if result.dice_per_case:
        record.set(dice_per_case=[_case_dice(c) for c in result.dice_per_case])
    record.set(peak_bytes=peak)
    if _finite(result.seconds_per_step):
        record.set(seconds_per_step=float(result.seconds_per_step))
    if _finite(result.voxels_per_second):
        record.set(voxels_per_second=float(result.voxels_per_second))
    if result.losses:
        record.set(losses=[float(v) if _finite(v) else None for v in result.losses])
    record.set(device=result.device)
    record.set(environment=result.environment)
    if result.steps_done is not None:
        record.set(steps_done=int(result.steps_done))
    if status != "ok":
        record.set(error=result.error or status)
    record.set(status=status)
    if status == "ok" and dice:
        return status, _values(study_file, float(dice["mean"]), peak, result.seconds_per_step)
    return status, _values(study_file, 0.0, peak, result.seconds_per_step)


PROGRESS_KEY = "progress"
"""Trial user attribute a training trial updates while it runs: phase, done, total, loss,
seconds_left (the parent of local workers prints it)."""


class TrialProgress:
    """``on_progress`` of a trial's training run: writes the trial's progress to the store every
    ``store_every`` seconds and, when ``print_every`` is set, prints a plain line that often.

    The time left is the phase's elapsed time per step (or window) times what remains.
    """

    def __init__(self, trial: Any, print_every: float | None, store_every: float = 10.0) -> None:
        self.trial = trial
        self.print_every = print_every
        self.store_every = store_every
        self.phase = ""
        self.phase_started = self.stored = self.printed = time.monotonic()

    def __call__(self, phase: str, done: int, total: int, loss: float | None) -> None:
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.phase_started = phase, now
        left = (now - self.phase_started) / max(done, 1) * (total - done)
        state = {"phase": phase, "done": done, "total": total, "seconds_left": round(left, 1),
                 "loss": float(loss) if _finite(loss) else None}
        last = done == total
        if now - self.stored >= self.store_every or (last and phase == "validate"):
            self.stored = now
            try:
                self.trial.set_user_attr(PROGRESS_KEY, state)
            except Exception:  # progress is a courtesy; never fail a trial for it
                pass
        if self.print_every is not None and (now - self.printed >= self.print_every or last):
            self.printed = now
            print(f"  trial {self.trial.number}: {progress_words(state)}", flush=True)


def progress_words(state: dict[str, Any]) -> str:
    """``training step 40/200 · loss 0.4123 · about 1m20s left`` from a progress record."""
    what = "training step" if state.get("phase") == "train" else "validation window"
    parts = [f"{what} {state.get('done')}/{state.get('total')}"]
    if _finite(state.get("loss")):
        parts.append(f"loss {state['loss']:.4f}")
    left = state.get("seconds_left")
    if _finite(left) and state.get("done") != state.get("total"):
        minutes, seconds = divmod(int(round(left)), 60)
        parts.append(f"about {minutes}m{seconds:02d}s left" if minutes else f"about {seconds}s left")
    return " · ".join(parts)


def _case_dice(case: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(case) and not isinstance(case, type):
        case = dataclasses.asdict(case)
    if isinstance(case, dict):
        return {"case": str(case.get("case", "")),
                **{r: float(case[r]) if _finite(case.get(r)) else None for r in ("wt", "tc", "et")}}
    return {"case": str(case)}


def _values(study_file: StudyFile, dice: float, peak: int, seconds: float | None) -> list[float]:
    values = []
    for name in study_file.objectives:
        if name == "dice":
            values.append(float(dice))
        elif name == "peak_bytes":
            values.append(float(peak))
        else:
            values.append(float(seconds) if _finite(seconds) else math.inf)
    return values


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_oom(error: BaseException) -> bool:
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(error, RevprofError) else f"{type(error).__name__}: {first}"
