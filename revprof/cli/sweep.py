"""``revprof sweep``: search the accuracy–memory Pareto front of a study file with Optuna."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from revprof.cli._common import (
    STORAGE_ENV, console, err_console, escape, fail, handle_errors, set_quiet, shown_storage,
    storage_help,
)
from revprof.errors import RevprofError
from revprof.units import format_bytes


def sweep(
    study_path: Annotated[Path, typer.Argument(metavar="STUDY.toml", help="The study file.",
                                               show_default=False)],
    report_path: Annotated[Path | None, typer.Argument(
        metavar="REPORT.html", help="Where --report writes (default reports/STUDY.html).",
        show_default=False)] = None,
    trials: Annotated[int | None, typer.Option(
        "--trials", min=1, help="Complete trials wanted (default: the study file's); a rerun "
        "continues until the study holds this many.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Local worker processes on one store (default 1, or one per "
        "--devices entry).")] = None,
    devices: Annotated[str | None, typer.Option(
        "--devices", help="GPUs for the workers, e.g. 0,1 (worker k trains on the k-th).")] = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", envvar=STORAGE_ENV, show_envvar=False, help=storage_help(
            "Store: a journal file path (default .revprof/studies.journal), sqlite:///FILE.db or "
            "postgresql://USER:PASSWORD@HOST:PORT/DB."))] = None,
    memory_only: Annotated[bool, typer.Option(
        "--memory-only", help="Predict peak memory only (no training): objectives are "
        "parameters up, memory down; kept in study NAME-memory.")] = False,
    report: Annotated[bool, typer.Option(
        "--report", help="Write the HTML report at the end (to REPORT.html if given).")] = False,
    seed: Annotated[int | None, typer.Option("--seed", help="Sampler seed (worker k uses "
                                             "seed + k).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Data folder, overriding the study "
                                             "file's data path.")] = None,
    study_name: Annotated[str | None, typer.Option(
        "--study-name", help="Optuna study name (default: the study file's name, "
        "NAME-memory with --memory-only).")] = None,
    all_trials: Annotated[bool, typer.Option(
        "--all", help="At the end list every complete trial (Pareto ones starred), not only "
        "the front.")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object at the end (counts and the Pareto front) instead "
        "of the per-trial lines and the table.")] = False,
    steps: Annotated[int | None, typer.Option(
        "--steps", min=2, help="Training steps per trial instead of the study file's; kept in "
        "study NAME-stepsN so it never mixes with the study file's.")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", help="Start a CPU sweep estimated at hours without asking.")] = False,
    worker: Annotated[int | None, typer.Option("--worker", hidden=True)] = None,
    parent_pid: Annotated[int | None, typer.Option("--parent-pid", hidden=True)] = None,
    stop_file: Annotated[Path | None, typer.Option("--stop-file", hidden=True)] = None,
    device: Annotated[str | None, typer.Option("--device", hidden=True)] = None,
) -> None:
    """Search architectures: maximise Dice, minimise peak memory, under a memory budget.

    Each trial predicts its peak memory first (seconds); one over the study's budget is recorded
    as infeasible without training. Re-running the same command resumes the study. Ctrl-C stops
    cleanly (exit 130); completed trials are kept.
    """
    from revprof.sweep.storage import default_storage, describe, storage_kind
    from revprof.sweep.studyfile import load_study

    from revprof.bounds import MAX_TRIALS, MAX_WORKERS, check_int, check_name, check_seed

    study_file = load_study(study_path)
    check_seed(seed)
    if trials is not None:
        check_int("--trials", trials, 1, MAX_TRIALS)
    if workers is not None:
        check_int("--workers", workers, 1, MAX_WORKERS)
    if study_name is not None:
        check_name("--study-name", study_name)
    data_folder = data if data is not None else study_file.data.path
    if data_folder is not None and not Path(data_folder).is_dir():
        raise RevprofError(f"data folder {data_folder!r} ({'--data' if data is not None else 'data.path'}"
                           f" of {study_path}) is not an existing folder")
    if steps is not None and steps != study_file.fixed.steps:
        import dataclasses

        study_file = dataclasses.replace(study_file, name=f"{study_file.name}-steps{steps}",
                                         fixed=dataclasses.replace(study_file.fixed, steps=steps))
    if report_path is not None and not report:
        raise RevprofError(f"unexpected argument {str(report_path)!r}; a report path goes after "
                           f"--report (revprof sweep STUDY.toml --report REPORT.html)")
    target = trials or study_file.trials
    if worker is not None and storage is None:
        from revprof.sweep.workers import STORAGE_ENV

        storage = os.environ.get(STORAGE_ENV)
    store = storage if storage is not None else default_storage()
    storage_kind(store)
    if storage_kind(store) == "journal" and storage is not None:
        store = str(Path(store).resolve())
    name = study_name or study_file.study_name(memory_only)

    if worker is not None:
        _run_as_worker(study_file, store, name, target, memory_only, worker, device, data, seed,
                       parent_pid, stop_file)
        return

    if as_json:  # stdout carries the JSON object only
        set_quiet()
    device_list = _parse_devices(devices)
    if workers is None:
        workers = len(device_list) if device_list else 1
    from revprof import __version__
    from revprof.sweep.study import prepare_study

    handle = prepare_study(study_file, store, memory_only, study_name=name, seed=seed, data=data,
                           version=__version__)
    study = handle.study
    mode = "memory only (predicted peak, no training)" if memory_only else "training"
    budget = (f" · budget {format_bytes(study_file.budget_bytes)}"
              if study_file.budget_bytes is not None else "")
    console.print(f"[bold]study {escape(name)}[/] · {escape(describe(store))} · "
                  f"{'new' if handle.created else 'resumed'}"
                  f" · {mode}{budget} · target {target} complete trials · {workers} worker"
                  f"{'s' if workers != 1 else ''}", highlight=False, markup=True)
    if handle.enqueued:
        console.print(f"enqueued {handle.enqueued} trials from {study_file.path}", highlight=False)

    from revprof.sweep.heartbeat import fail_stale_trials
    from revprof.sweep.pareto import count_trials

    stale = fail_stale_trials(study)
    if stale:
        console.print(f"marked {len(stale)} trial(s) of a stopped worker as interrupted: "
                      f"{', '.join(map(str, stale))}", highlight=False)
    from revprof.sweep.space import requeue_lost

    requeued = requeue_lost(study)
    if requeued:
        console.print(f"re-queued {len(requeued)} interrupted or failed enqueued trial(s) with "
                      f"the same parameters: {', '.join(map(str, requeued))}", highlight=False)
    started = time.perf_counter()
    before = count_trials(study.get_trials(deepcopy=False))
    if not memory_only and before.complete < target and not device_list:
        _check_estimate(study_file, target - before.complete, yes)
    try:
        if before.complete >= target:
            console.print(f"the study already holds {before.complete} complete trials "
                          f"(target {target}); nothing to run", highlight=False)
        elif workers == 1:
            _run_in_process(study, study_file, memory_only, device_list[0] if device_list else None,
                            data, target)
        else:
            _run_pool(study, study_file, store, name, target, workers, memory_only, device_list,
                      data, seed, steps)
    except KeyboardInterrupt:
        counts = count_trials(study.get_trials(deepcopy=False))
        err_console.print(f"interrupted; {counts.complete} complete trials kept; rerun to continue",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    elapsed = time.perf_counter() - started
    if as_json:
        written = _write_report(name, store, report_path) if report else None
        print(json.dumps(_summary(study, store, target, elapsed, all_trials, written)))
        return
    _finish(study, target, elapsed, all_trials)
    if report:
        _write_report(name, store, report_path)


def _check_estimate(study_file: Any, trials: int, yes: bool) -> None:
    """On the CPU: print the sweep's estimated training time from one measured step, and refuse
    one of hours without ``--yes``."""
    from revprof.sweep.estimate import HOURS_NEED_CONSENT, estimate_sweep

    estimate = estimate_sweep(study_file, trials, study_file.fixed.device)
    if estimate.device != "CPU":
        return
    console.print(f"estimate: {estimate.words()}", highlight=False, soft_wrap=True)
    if estimate.seconds > HOURS_NEED_CONSENT * 3600 and not yes:
        raise RevprofError(f"this sweep would take {estimate.words().split(':')[0]}; start it "
                           f"with --yes, or shorten the trials with --steps N, or run the memory "
                           f"side only with --memory-only")


def _parse_devices(devices: str | None) -> list[str]:
    if devices is None:
        return []
    result = []
    for part in devices.replace(" ", "").split(","):
        if not part:
            continue
        if part.isdigit():
            result.append(f"cuda:{part}")
        elif part == "cpu" or (part.startswith("cuda") and (part == "cuda" or part[5:].isdigit())):
            result.append(part)
        else:
            raise RevprofError(f"--devices must list GPU indices like 0,1 (or cpu, cuda:N); got "
                               f"{devices!r}")
    if not result:
        raise RevprofError(f"--devices must list GPU indices like 0,1; got {devices!r}")
    return result


PROGRESS_LINES_EVERY = 30.0
"""Seconds between plain progress lines of a trial when the output is a log or a pipe."""


def _settings(study_file: Any, memory_only: bool, device: str | None, data: str | None) -> Any:
    from revprof.sweep.objective import RunSettings

    terminal = console.is_terminal
    return RunSettings(study_file=study_file, memory_only=memory_only, device=device, data=data,
                       progress=terminal, progress_lines=None if terminal else PROGRESS_LINES_EVERY)


def _run_in_process(study: Any, study_file: Any, memory_only: bool, device: str | None,
                    data: str | None, target: int) -> None:
    from revprof.interrupts import held_interrupts
    from revprof.sweep.signals import interrupt_on_sigterm
    from revprof.sweep.workers import run_worker

    previous = signal.getsignal(signal.SIGTERM)
    interrupt_on_sigterm()

    def on_trial(trial: Any, outcome: Any) -> None:
        _print_trial(study, trial, target)

    try:
        with held_interrupts() as checkpoint:  # Ctrl-C lands between trials or trial steps
            run_worker(study, _settings(study_file, memory_only, device, data), target,
                       on_trial=on_trial, checkpoint=checkpoint)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_as_worker(study_file: Any, store: str, name: str, target: int, memory_only: bool,
                   index: int, device: str | None, data: str | None, seed: int | None,
                   parent_pid: int | None, stop_file: Path | None = None) -> None:
    from revprof.interrupts import held_interrupts
    from revprof.sweep.signals import interrupt_on_sigterm
    from revprof.sweep.study import load_study as open_study
    from revprof.sweep.workers import run_worker

    interrupt_on_sigterm()
    study = open_study(study_file, store, name, seed_offset=index, seed=seed)
    console.print(f"worker {index} on study {name} (target {target})", highlight=False)

    def on_trial(trial: Any, outcome: Any) -> None:
        _print_trial(study, trial, target)

    # Started with Ctrl-C ignored (see spawn_workers); from here on it is held and raised at
    # safe points: before each trial, and between the steps of a trial's work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with held_interrupts() as checkpoint:
            run_worker(study, _settings(study_file, memory_only, device, data), target,
                       on_trial=on_trial, parent_pid=parent_pid, checkpoint=checkpoint,
                       stop_file=stop_file)
    except KeyboardInterrupt:
        console.print(f"worker {index} interrupted", highlight=False)
        raise typer.Exit(130) from None


def _run_pool(study: Any, study_file: Any, store: str, name: str, target: int, workers: int,
              memory_only: bool, devices: list[str], data: str | None, seed: int | None,
              steps: int | None = None) -> None:
    from optuna.trial import TrialState

    from revprof.interrupts import held_interrupts
    from revprof.sweep.workers import spawn_workers

    finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def report_new() -> None:
        for trial in study.get_trials(deepcopy=False):
            if trial.state.is_finished() and trial.number not in finished:
                finished.add(trial.number)
                _print_trial(study, trial, target)

    # Ctrl-C is held and acted on once a second: raised anywhere else (say, in a lock callback
    # while the workers start) it can be swallowed, and the workers would never be stopped.
    with held_interrupts() as checkpoint:
        pool = spawn_workers(study_file.path, store, name, target, workers, memory_only, devices,
                             data, seed, steps=steps)
        console.print(f"started {workers} workers (logs in {pool.workers[0].log.parent})",
                      highlight=False, soft_wrap=True)
        shown: dict[int, float] = {}
        try:
            while pool.alive():
                time.sleep(1.0)
                checkpoint()
                report_new()
                _report_progress(study, shown)
        except KeyboardInterrupt:
            _stop_pool(pool, study, report_new)
            raise
    report_new()
    broken = [w for w in pool.workers if w.process.returncode not in (0, 130)]
    for w in broken:
        err_console.print(f"worker {w.index} exited with status {w.process.returncode}; the end "
                          f"of {w.log}:\n{w.tail()}", highlight=False)
    running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    if broken and not any(w.process.returncode == 0 for w in pool.workers):
        raise RevprofError(f"all {len(broken)} workers failed; see {pool.workers[0].log.parent}"
                           + (f" ({len(running)} trials left running)" if running else ""))


def _report_progress(study: Any, shown: dict[int, float]) -> None:
    """Print, at most every :data:`PROGRESS_LINES_EVERY` seconds per trial, the progress each
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
        console.print(f"  trial {trial.number}{who}: {progress_words(state)}", highlight=False,
                      soft_wrap=True)


def _stop_pool(pool: Any, study: Any, report_new: Any) -> None:
    """Stop the workers after Ctrl-C (a second Ctrl-C, or two minutes, kills them) and record
    what they left running as interrupted."""
    from revprof.sweep.heartbeat import fail_stale_trials

    err_console.print("stopping the workers (Ctrl-C again to kill them)", highlight=False)
    pool.stop()
    try:
        if not pool.wait(timeout=120):
            pool.signal(signal.SIGKILL)
            pool.wait()
    except KeyboardInterrupt:
        pool.signal(signal.SIGKILL)
        pool.wait()
    fail_stale_trials(study)
    report_new()


def _print_trial(study: Any, trial: Any, target: int) -> None:
    from revprof.sweep.pareto import count_trials, front_summary, trial_row

    row = trial_row(trial)
    status = row["status"]
    colour = {"ok": "green", "infeasible": "yellow", "oom": "yellow", "diverged": "yellow"}.get(
        status, "red")
    parts = [f"trial {trial.number}", f"[{colour}]{escape(str(status))}[/]",
             escape(row["network"] or "?")]
    if row["patch"]:
        parts.append(escape(str(row["patch"])))
    if row["dice"] is not None:
        parts.append(f"Dice {row['dice']:.3f}" + (f" (reused from trial {row['dice_from']}, same "
                                                  f"weights)" if row["dice_from"] is not None else ""))
    if isinstance(row["peak_bytes"], (int, float)):
        peak = f"peak {format_bytes(row['peak_bytes'])}"
        predicted = row["predicted_peak_bytes"]
        if isinstance(predicted, (int, float)) and predicted != row["peak_bytes"]:
            peak += f" (predicted {format_bytes(predicted)})"
        parts.append(peak)
    if isinstance(row["seconds_per_step"], (int, float)):
        parts.append(f"{row['seconds_per_step']:.2f} s/step")
    if status in ("failed", "interrupted") and trial.user_attrs.get("error"):
        parts.append(escape(str(trial.user_attrs["error"])))
    console.print(" · ".join(parts), highlight=False, soft_wrap=True, markup=True)
    trials = study.get_trials(deepcopy=False)
    console.print(f"  [dim]{escape(count_trials(trials).line(target))} · "
                  f"{escape(front_summary(study, trials))}[/]",
                  highlight=False, soft_wrap=True, markup=True)


def _finish(study: Any, target: int, elapsed: float, all_trials: bool) -> None:
    from optuna.trial import TrialState

    from revprof.sweep.pareto import count_trials, pareto_front, training_saving, trials_table

    trials = study.get_trials(deepcopy=False)
    counts = count_trials(trials)
    front = pareto_front(study, trials)
    console.print(f"{counts.line(target)} · {elapsed:.0f} s", highlight=False)
    saving = training_saving(trials)
    if saving:
        console.print(saving, highlight=False, soft_wrap=True)
    if all_trials:
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        table = trials_table(study, done, f"All complete trials of {study.study_name} "
                             f"(* on the Pareto front)", mark={t.number for t in front})
    else:
        table = trials_table(study, front, f"Pareto front of {study.study_name} "
                             f"({len(front)} of {counts.complete} complete trials)")
    if console.is_terminal:
        console.print(table)
    else:  # a log or a pipe: do not squeeze the table into 80 columns
        Console(width=max(console.width, 160), markup=False, quiet=console.quiet).print(table)


def _summary(study: Any, store: str, target: int, elapsed: float, all_trials: bool,
             report: Path | None) -> dict[str, Any]:
    """``sweep --json``: the study's counts and its Pareto front (or every complete trial)."""
    import dataclasses

    from optuna.trial import TrialState

    from revprof.sweep.pareto import count_trials, pareto_front, trial_row

    trials = study.get_trials(deepcopy=False)
    front = pareto_front(study, trials)
    on_front = {t.number for t in front}
    shown = [t for t in trials if t.state == TrialState.COMPLETE] if all_trials else front
    return {"kind": "sweep", "study": study.study_name, "store": shown_storage(store),
            "objectives": study.metric_names, "target": target,
            "counts": dataclasses.asdict(count_trials(trials)), "seconds": round(elapsed, 1),
            "pareto_front": [t.number for t in front],
            "trials": [{**trial_row(t), "values": t.values, "pareto_front": t.number in on_front}
                       for t in shown],
            "report": str(report) if report else None}


def _write_report(name: str, store: str, report_path: Path | None) -> Path:
    try:
        from revprof.report import write_report
    except ImportError as error:
        raise fail(f"--report needs revprof.report, which cannot be imported ({error})") from None
    out = report_path or Path("reports") / f"{name}.html"
    written = write_report(name, store, out)
    console.print(f"report: {written}", highlight=False)
    return Path(written)


def register(app: typer.Typer) -> None:
    app.command("sweep")(handle_errors(sweep))
