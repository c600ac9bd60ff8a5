"""One local worker process of a sweep: ``python -m revprof.sweep.worker STUDY --worker K ...``.

Started by :func:`revprof.sweep.workers.spawn_workers` (never by hand): the store comes through
the environment variable :data:`~revprof.sweep.workers.STORAGE_ENV`, never on the command line
(a URL may hold a password, and every user of the machine can read command lines). The worker
runs trials until the study holds ``--trials`` complete ones, its parent is gone, or the stop
file appears; Ctrl-C or SIGTERM records its running trial as interrupted (exit 130). Its output
goes to the log file its parent opened.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from revprof.errors import RevprofError
from revprof.redaction import redact_text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m revprof.sweep.worker",
        description="One local worker of revprof sweep (started by its parent; the store comes "
                    "through the environment).")
    parser.add_argument("study", help="the study file")
    parser.add_argument("--worker", type=int, required=True, help="this worker's index K")
    parser.add_argument("--study-name", required=True, help="the Optuna study name")
    parser.add_argument("--trials", type=int, required=True, help="complete trials wanted")
    parser.add_argument("--parent-pid", type=int, help="stop once this process is gone")
    parser.add_argument("--stop-file", type=Path, help="stop once this file exists")
    parser.add_argument("--memory-only", action="store_true", help="predict memory only")
    parser.add_argument("--device", help="training device")
    parser.add_argument("--data", help="data folder overriding the study file's")
    parser.add_argument("--seed", type=int, help="sampler seed (this worker uses seed + K)")
    parser.add_argument("--steps", type=int, help="training steps per trial (study NAME-stepsN)")
    return parser


def work(study_path: str, store: str, name: str, target: int, index: int, *,
         memory_only: bool = False, device: str | None = None, data: str | None = None,
         seed: int | None = None, steps: int | None = None, parent_pid: int | None = None,
         stop_file: Path | None = None) -> None:
    """Run trials of study ``name`` in ``store`` as worker ``index`` until it holds ``target``
    complete trials, printing a line per finished trial.

    Raises:
        KeyboardInterrupt: Ctrl-C, SIGTERM or the stop file, after the running trial was
            recorded as interrupted.
        RevprofError: a bad study file or store, or five trials in a row failed.
    """
    from revprof.interrupts import held_interrupts
    from revprof.sweep.pareto import count_trials
    from revprof.sweep.run import run_settings, with_steps
    from revprof.sweep.signals import interrupt_on_sigterm
    from revprof.sweep.study import open_worker_study as open_study
    from revprof.sweep.studyfile import read_study_file
    from revprof.sweep.workers import run_worker

    study_file = with_steps(read_study_file(Path(study_path)), steps)
    interrupt_on_sigterm()
    study = open_study(study_file, store, name, seed_offset=index, seed=seed)
    print(f"worker {index} on study {name} (target {target})")

    def on_trial(trial: Any, outcome: Any) -> None:
        counts = count_trials(study.get_trials(deepcopy=False))
        error = f" · {outcome.error}" if outcome.error else ""
        print(f"trial {trial.number} · {outcome.status}{error}\n  {counts.line(target)}")

    # Started with Ctrl-C ignored (see spawn_workers); from here on it is held and raised at
    # safe points: before each trial, and between the steps of a trial's work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with held_interrupts() as checkpoint:
        run_worker(study, run_settings(study_file, memory_only, device, data, terminal=False),
                   target, on_trial=on_trial, parent_pid=parent_pid, checkpoint=checkpoint,
                   stop_file=stop_file)


def main(argv: Sequence[str] | None = None) -> int:
    """The worker's entry point; returns the exit status (0, 1 on an error, 130 interrupted)."""
    from revprof.sweep.storage import storage_kind
    from revprof.sweep.workers import STORAGE_ENV

    args = _parser().parse_args(argv)
    index = args.worker
    try:
        store = os.environ.get(STORAGE_ENV)
        if not store:
            raise RevprofError(f"no store: a worker gets it in ${STORAGE_ENV} from its parent "
                               f"(revprof sweep --workers N starts workers)")
        if storage_kind(store) == "journal":
            store = str(Path(store).resolve())
        work(args.study, store, args.study_name, args.trials, index,
             memory_only=args.memory_only, device=args.device, data=args.data, seed=args.seed,
             steps=args.steps, parent_pid=args.parent_pid, stop_file=args.stop_file)
    except RevprofError as error:
        print(f"error: {redact_text(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"worker {index} interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
