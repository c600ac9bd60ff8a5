"""``revprof sweep``: search the accuracy–memory Pareto front of a study file with Optuna.

A thin skin over :func:`revprof.sweep.run.run_sweep`: parse and check the options, run the
sweep, print its lines, the trials as they finish and the front (or ``--json``) at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from revprof.cli._common import (
    STORAGE_ENV, console, err_console, escape, handle_errors, set_quiet, shown_storage,
    storage_help,
)
from revprof.errors import RevprofError
from revprof.units import format_bytes

if TYPE_CHECKING:
    from revprof.sweep.run import SweepStart


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
) -> None:
    """Search architectures: maximise Dice, minimise peak memory, under a memory budget.

    Each trial predicts its peak memory first (seconds); one over the study's budget is recorded
    as infeasible without training. Re-running the same command resumes the study. Ctrl-C stops
    cleanly (exit 130); completed trials are kept.
    """
    from revprof.sweep.run import SweepInterrupted, run_sweep
    from revprof.sweep.storage import default_storage, storage_kind
    from revprof.sweep.studyfile import read_study_file

    from revprof.bounds import MAX_TRIALS, MAX_WORKERS, check_int, check_name, check_seed

    study_file = read_study_file(study_path)
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
    if report_path is not None and not report:
        raise RevprofError(f"unexpected argument {str(report_path)!r}; a report path goes after "
                           f"--report (revprof sweep STUDY.toml --report REPORT.html)")
    store = storage if storage is not None else default_storage()
    if storage_kind(store) == "journal" and storage is not None:
        store = str(Path(store).resolve())
    if as_json:  # stdout carries the JSON object only
        set_quiet()
    device_list = _parse_devices(devices)
    if workers is None:
        workers = len(device_list) if device_list else 1

    def info(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    def warn(text: str) -> None:
        err_console.print(text, highlight=False, soft_wrap=True)

    try:
        summary = run_sweep(study_file, store, trials=trials, workers=workers, devices=device_list,
                            memory_only=memory_only, study_name=study_name, seed=seed, data=data,
                            steps=steps, yes=yes, terminal=console.is_terminal,
                            on_start=_print_start, on_trial=_print_trial, on_message=info,
                            on_warning=warn)
    except SweepInterrupted as stop:
        err_console.print(f"interrupted; {stop.complete} complete trials kept; rerun to continue",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    study = summary.study
    if as_json:
        written = _write_report(summary.name, store, report_path) if report else None
        print(json.dumps(_summary(study, store, summary.target, summary.seconds, all_trials,
                                  written)))
        return
    _finish(study, summary.target, summary.seconds, all_trials)
    if report:
        _write_report(summary.name, store, report_path)


def _print_start(start: SweepStart) -> None:
    from revprof.sweep.storage import describe

    mode = "memory only (predicted peak, no training)" if start.memory_only else "training"
    budget = (f" · budget {format_bytes(start.budget_bytes)}"
              if start.budget_bytes is not None else "")
    console.print(f"[bold]study {escape(start.name)}[/] · {escape(describe(start.store))} · "
                  f"{'new' if start.created else 'resumed'}"
                  f" · {mode}{budget} · target {start.target} complete trials · {start.workers} "
                  f"worker{'s' if start.workers != 1 else ''}", highlight=False, markup=True)
    if start.enqueued:
        console.print(f"enqueued {start.enqueued} trials from {start.study_path}",
                      highlight=False)


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
        Console(width=max(console.width, 160), markup=False, emoji=False, quiet=console.quiet).print(table)


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
    from revprof.report import write_report

    out = report_path or Path("reports") / f"{name}.html"
    written = write_report(name, store, out)
    console.print(f"report: {written}", highlight=False)
    return Path(written)


def register(app: typer.Typer) -> None:
    app.command("sweep")(handle_errors(sweep))
