"""A whole sweep from Python: create or resume the study, run trials in this process or in N
local worker processes on one store, and stop cleanly on Ctrl-C.

:func:`run_sweep` prints nothing itself: it reports through callbacks (``on_start``, ``on_trial``,
``on_message``, ``on_warning``), so ``revprof sweep`` (``revprof/cli/sweep.py``) and any Python
caller see the same sweep. Local workers are ``python -m revprof.sweep.worker`` processes
(:mod:`revprof.sweep.worker`, started by :func:`revprof.sweep.workers.spawn_workers`).
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from revprof.errors import RevprofError
from revprof.sweep.pareto import Counts, count_trials
from revprof.sweep.studyfile import StudyFile

PROGRESS_LINES_EVERY = 30.0
"""Seconds between plain progress lines of a trial when the output is a log or a pipe."""

STOP_TIMEOUT = 120.0
"""Seconds the workers get to record their running trials after Ctrl-C before they are killed."""


@dataclass(frozen=True)
class SweepStart:
    """The study a sweep is about to run, as :func:`run_sweep` hands it to ``on_start``.

    Attributes:
        study: the open ``optuna.Study``.
        name: its study name.
        store: the store string (may hold a password: show it redacted).
        created: a new study (False: resumed).
        enqueued: trials of the study file enqueued now.
        target: complete trials wanted.
        workers: local worker processes (1: trials run in this process).
        memory_only: predicted memory only, no training.
        budget_bytes: the study's memory budget, if any.
        study_path: the study file.
    """

    study: Any
    name: str
    store: str
    created: bool
    enqueued: int
    target: int
    workers: int
    memory_only: bool
    budget_bytes: int | None
    study_path: str


@dataclass(frozen=True)
class SweepSummary:
    """What a finished sweep left in the store.

    Attributes:
        study: the open ``optuna.Study`` (read the trials and the front from it).
        name: its study name.
        store: the store string.
        target: complete trials wanted.
        before: the trial counts when the sweep started.
        counts: the trial counts at the end.
        seconds: wall-clock seconds of the sweep's run (after the study was prepared).
        ran: False when the study already held ``target`` complete trials.
    """

    study: Any
    name: str
    store: str
    target: int
    before: Counts
    counts: Counts
    seconds: float
    ran: bool


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the sweep; its running trials are recorded as interrupted.

    Attributes:
        complete: complete trials the study keeps.
    """

    def __init__(self, complete: int) -> None:
        super().__init__(complete)
        self.complete = complete


TrialCallback = Callable[[Any, Any, int], None]
"""``on_trial(study, trial, target)``: a trial (``FrozenTrial``) finished."""


def with_steps(study_file: StudyFile, steps: int | None) -> StudyFile:
    """The study file with ``steps`` training steps per trial, in study ``NAME-stepsN`` (so it
    never mixes with the study file's own); unchanged when ``steps`` is None or the same."""
    if steps is None or steps == study_file.recipe.steps:
        return study_file
    return dataclasses.replace(study_file, name=f"{study_file.name}-steps{steps}",
                               recipe=study_file.recipe.with_overrides({"steps": steps},
                                                                       source="--steps"))


def run_settings(study_file: StudyFile, memory_only: bool, device: str | None, data: str | None,
                 terminal: bool) -> Any:
    """The :class:`~revprof.sweep.objective.RunSettings` of a worker: progress bars on a
    terminal, else a plain progress line every :data:`PROGRESS_LINES_EVERY` seconds."""
    from revprof.sweep.objective import RunSettings

    return RunSettings(study_file=study_file, memory_only=memory_only, device=device, data=data,
                       progress=terminal,
                       progress_lines=None if terminal else PROGRESS_LINES_EVERY)


def run_sweep(study_file: StudyFile, store: str, *, trials: int | None = None, workers: int = 1,
              devices: Sequence[str] = (), memory_only: bool = False,
              study_name: str | None = None, seed: int | None = None, data: str | None = None,
              steps: int | None = None, yes: bool = False, terminal: bool = False,
              on_start: Callable[[SweepStart], None] | None = None,
              on_trial: TrialCallback | None = None,
              on_message: Callable[[str], None] | None = None,
              on_warning: Callable[[str], None] | None = None) -> SweepSummary:
    """Run a sweep until the study holds ``trials`` complete trials (a rerun resumes it).

    Args:
        study_file: the validated study file (:func:`revprof.sweep.studyfile.read_study_file`).
        store: a journal file path or a database URL (:mod:`revprof.sweep.storage`).
        trials: complete trials wanted (default: the study file's).
        workers: 1 runs the trials in this process; more start that many local processes.
        devices: devices for the workers (worker ``k`` trains on ``devices[k % len]``).
        memory_only: predict peak memory only (study ``NAME-memory``).
        study_name: the Optuna study name (default from the study file).
        seed: sampler seed (worker ``k`` uses ``seed + k``).
        data: a data folder overriding the study file's.
        steps: training steps per trial instead of the study file's (:func:`with_steps`).
        yes: start a CPU training sweep estimated at hours without refusing.
        terminal: the output is a terminal (progress bars instead of progress lines).
        on_start: called once the study is open, before any trial.
        on_trial: called with ``(study, trial, target)`` for each trial finished now.
        on_message: informational lines (stale or re-queued trials, the estimate, progress).
        on_warning: lines about trouble (stopping the workers, a worker that failed).

    Returns:
        The counts before and after, the elapsed seconds and the open study.

    Raises:
        SweepInterrupted: Ctrl-C or SIGTERM, after the running trials were recorded as
            interrupted (a :class:`KeyboardInterrupt`).
        RevprofError: a bad store or study, a CPU sweep of hours without ``yes``, every
            worker failed, or five trials in a row failed.
    """
    from revprof import __version__
    from revprof.sweep.heartbeat import fail_stale_trials
    from revprof.sweep.space import requeue_lost
    from revprof.sweep.study import prepare_study

    message = on_message or (lambda text: None)
    study_file = with_steps(study_file, steps)
    target = trials or study_file.trials
    name = study_name or study_file.study_name(memory_only)
    handle = prepare_study(study_file, store, memory_only, study_name=name, seed=seed, data=data,
                           version=__version__)
    study = handle.study
    if on_start is not None:
        on_start(SweepStart(study, name, store, handle.created, handle.enqueued, target, workers,
                            memory_only, study_file.budget_bytes, str(study_file.path)))
    stale = fail_stale_trials(study)
    if stale:
        message(f"marked {len(stale)} trial(s) of a stopped worker as interrupted: "
                f"{', '.join(map(str, stale))}")
    requeued = requeue_lost(study)
    if requeued:
        message(f"re-queued {len(requeued)} interrupted or failed enqueued trial(s) with the same "
                f"parameters: {', '.join(map(str, requeued))}")
    started = time.perf_counter()
    before = count_trials(study.get_trials(deepcopy=False))
    if not memory_only and before.complete < target and not devices:
        _check_estimate(study_file, target - before.complete, yes, message)
    trial_done: Callable[[Any], None] = (
        (lambda trial: on_trial(study, trial, target)) if on_trial is not None else
        (lambda trial: None))
    try:
        if before.complete >= target:
            message(f"the study already holds {before.complete} complete trials (target "
                    f"{target}); nothing to run")
        elif workers == 1:
            _run_in_process(study, run_settings(study_file, memory_only,
                                                devices[0] if devices else None, data, terminal),
                            target, trial_done)
        else:
            _run_pool(study, study_file, store, name, target, workers, memory_only, list(devices),
                      data, seed, steps, trial_done, message, on_warning or message)
    except SweepInterrupted:
        raise
    except KeyboardInterrupt:
        raise SweepInterrupted(count_trials(study.get_trials(deepcopy=False)).complete) from None
    return SweepSummary(study, name, store, target, before,
                        count_trials(study.get_trials(deepcopy=False)),
                        time.perf_counter() - started, before.complete < target)


def _check_estimate(study_file: StudyFile, trials: int, yes: bool,
                    message: Callable[[str], None]) -> None:
    """On the CPU: report the sweep's estimated training time from one measured step, and refuse
    one of hours without ``yes``."""
    from revprof.sweep.estimate import HOURS_NEED_CONSENT, estimate_sweep

    estimate = estimate_sweep(study_file, trials, study_file.fixed.device)
    if estimate.device != "CPU":
        return
    message(f"estimate: {estimate.words()}")
    if estimate.seconds > HOURS_NEED_CONSENT * 3600 and not yes:
        raise RevprofError(f"this sweep would take {estimate.words().split(':')[0]}; start it "
                           f"with --yes, or shorten the trials with --steps N, or run the memory "
                           f"side only with --memory-only")


def _run_in_process(study: Any, settings: Any, target: int,
                    trial_done: Callable[[Any], None]) -> None:
    from revprof.interrupts import held_interrupts
    from revprof.sweep.signals import interrupt_on_sigterm
    from revprof.sweep.workers import run_worker

    previous = signal.getsignal(signal.SIGTERM)
    interrupt_on_sigterm()
    try:
        with held_interrupts() as checkpoint:  # Ctrl-C lands between trials or trial steps
            run_worker(study, settings, target, on_trial=lambda trial, outcome: trial_done(trial),
                       checkpoint=checkpoint)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_pool(study: Any, study_file: StudyFile, store: str, name: str, target: int,
              workers: int, memory_only: bool, devices: list[str], data: str | None,
              seed: int | None, steps: int | None, trial_done: Callable[[Any], None],
              message: Callable[[str], None], warning: Callable[[str], None]) -> None:
    from optuna.trial import TrialState

    from revprof.interrupts import held_interrupts
    from revprof.sweep.workers import spawn_workers

    finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def report_new() -> None:
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished() and trial.number not in finished:
                finished.add(trial.number)
                trial_done(trial)

    # Ctrl-C is held and acted on once a second: raised anywhere else (say, in a lock callback
    # while the workers start) it can be swallowed, and the workers would never be stopped.
    with held_interrupts() as checkpoint:
        pool = spawn_workers(str(study_file.path), store, name, target, workers, memory_only,
                             devices, data, seed, steps=steps)
        message(f"started {workers} workers (logs in {pool.workers[0].log.parent})")
        shown: dict[int, float] = {}
        try:
            while pool.alive():
                time.sleep(1.0)
                checkpoint()
                report_new()
                _report_progress(study, shown, message)
        except KeyboardInterrupt:
            _stop_pool(pool, study, report_new, warning)
            raise
    report_new()
    broken = [w for w in pool.workers if w.process.returncode not in (0, 130)]
    for w in broken:
        warning(f"worker {w.index} exited with status {w.process.returncode}; the end of "
                f"{w.log}:\n{w.tail()}")
    running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    if broken and not any(w.process.returncode == 0 for w in pool.workers):
        raise RevprofError(f"all {len(broken)} workers failed; see {pool.workers[0].log.parent}"
                           + (f" ({len(running)} trials left running)" if running else ""))


def _report_progress(study: Any, shown: dict[int, float], message: Callable[[str], None]) -> None:
    """Report, at most every :data:`PROGRESS_LINES_EVERY` seconds per trial, the progress each
    running trial of the local workers recorded in the store."""
    from optuna.trial import TrialState

    from revprof.sweep.objective import PROGRESS_KEY, progress_words

    now = time.monotonic()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        state = trial.user_attrs.get(PROGRESS_KEY)
        if not isinstance(state, dict) or now - shown.get(trial.number, 0.0) < PROGRESS_LINES_EVERY:
            continue
        shown[trial.number] = now
        worker = trial.user_attrs.get("worker") or {}
        who = f" (pid {worker['pid']})" if isinstance(worker, dict) and worker.get("pid") else ""
        message(f"  trial {trial.number}{who}: {progress_words(state)}")


def _stop_pool(pool: Any, study: Any, report_new: Callable[[], None],
               warning: Callable[[str], None]) -> None:
    """Stop the workers after Ctrl-C (a second Ctrl-C, or :data:`STOP_TIMEOUT`, kills them) and
    record what they left running as interrupted."""
    from revprof.sweep.heartbeat import fail_stale_trials

    warning("stopping the workers (Ctrl-C again to kill them)")
    pool.stop()
    try:
        if not pool.wait(timeout=STOP_TIMEOUT):
            pool.signal(signal.SIGKILL)
            pool.wait()
    except KeyboardInterrupt:
        pool.signal(signal.SIGKILL)
        pool.wait()
    fail_stale_trials(study)
    report_new()
