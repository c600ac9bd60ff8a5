"""Running trials: one worker loop, and N local worker processes on one store.

A worker asks the study for trials until the study has ``target`` COMPLETE trials (counting
those of earlier runs and of other workers, so a rerun continues where the last one stopped).
It does not start a trial while the complete and running ones already reach the target; it waits
instead, in case a running trial fails and must be replaced. With several workers the study may
end with up to ``workers - 1`` trials more than the target (each worker counts, then asks).

Local workers are ``python -m revprof.sweep.worker STUDY --worker K ...`` processes
(:mod:`revprof.sweep.worker`) in their own sessions; the parent
(:func:`revprof.sweep.run.run_sweep`) follows the store, reports each finished trial, forwards
Ctrl-C to them (a second Ctrl-C kills them) and waits until they have recorded the running trials
as interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revprof.errors import RevprofError
from revprof.sweep.heartbeat import fail_stale_trials, pid_alive
from revprof.sweep.optuna_adapter import frozen_trial
from revprof.sweep.objective import Outcome, RunSettings, interrupt_trial, run_trial
from revprof.sweep.pareto import count_trials
from revprof.sweep.signals import deferred_interrupts

MAX_CONSECUTIVE_FAILURES = 5
STORAGE_ENV = "REVPROF_WORKER_STORAGE"
"""The environment variable that hands a worker its store: a URL may hold a password, and a
command line is visible to every user of the machine (``ps``), a process's environment is not."""
LOG_DIR = Path(".revprof") / "logs"


def run_worker(study: Any, settings: RunSettings, target: int,
               on_trial: Callable[[Any, Outcome], None] | None = None,
               poll: float = 1.0, parent_pid: int | None = None,
               checkpoint: Callable[[], None] | None = None,
               stop_file: Path | None = None) -> list[Outcome]:
    """Run trials of ``study`` until it holds ``target`` COMPLETE trials.

    Args:
        on_trial: called with the finished FrozenTrial and its outcome.
        parent_pid: stop asking for trials once this process is gone.
        checkpoint: called before each trial; raises KeyboardInterrupt when Ctrl-C is pending.
        stop_file: when this file exists, stop as if interrupted (the parent's request to
            stop, which also reaches a worker that was still starting when it came).

    Raises:
        KeyboardInterrupt: on Ctrl-C/SIGTERM, after recording the running trial as interrupted.
        RevprofError: :data:`MAX_CONSECUTIVE_FAILURES` trials in a row failed.
    """
    outcomes: list[Outcome] = []
    failures = 0
    while True:
        if stop_file is not None and stop_file.exists():
            raise KeyboardInterrupt
        if checkpoint is not None:
            checkpoint()
        fail_stale_trials(study)
        counts = count_trials(study.get_trials(deepcopy=False))
        if counts.complete >= target:
            break
        if parent_pid is not None and not pid_alive(parent_pid):
            break
        if counts.complete + counts.running >= target:
            time.sleep(poll)
            continue
        with deferred_interrupts(reraise=False) as received:
            trial = study.ask()
        if received:
            interrupt_trial(study, trial)
        outcome = run_trial(study, trial, settings)
        outcomes.append(outcome)
        if on_trial is not None:
            on_trial(frozen_trial(study, trial), outcome)
        failures = failures + 1 if outcome.state == "FAIL" else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise RevprofError(f"{failures} trials in a row failed; the last: {outcome.error} "
                               f"(trial {outcome.number})")
    return outcomes


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class WorkerProcess:
    """One local worker process."""

    index: int
    process: subprocess.Popen[bytes]
    log: Path
    device: str | None = None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class WorkerPool:
    """Local worker processes on one study."""

    stop_file: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def stop(self) -> None:
        """Ask every worker to stop: the stop file (seen before each trial, even by a worker that
        was still starting) and SIGINT (which interrupts a running trial at its next step)."""
        self.stop_file.touch()
        self.signal(signal.SIGINT)

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.process.poll() is None]

    def signal(self, signum: int) -> None:
        for worker in self.alive():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signum)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every worker; False when some still run after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                worker.process.wait(timeout=left)
            except subprocess.TimeoutExpired:
                return False
        return True


def spawn_workers(study_path: str, storage: str, study_name: str, target: int, count: int,
                  memory_only: bool, devices: Sequence[str] | None = None, data: str | None = None,
                  seed: int | None = None, log_dir: Path = LOG_DIR,
                  steps: int | None = None) -> WorkerPool:
    """Start ``count`` worker processes (``python -m revprof.sweep.worker STUDY --worker K ...``;
    the store goes in the environment variable :data:`STORAGE_ENV`, never on the command line).

    On the CPU each gets ``cores // count`` threads; with ``devices`` worker ``k`` trains on
    ``devices[k % len(devices)]``. Each writes its output to ``log_dir/NAME-worker-K.log``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    pool = WorkerPool(stop_file=log_dir / f"{study_name}.stop")
    pool.stop_file.unlink(missing_ok=True)  # a request of an earlier run
    threads = max(1, (os.cpu_count() or 1) // count)
    for index in range(count):
        device = devices[index % len(devices)] if devices else None
        command = [sys.executable, "-m", "revprof.sweep.worker", study_path, "--worker", str(index),
                   "--study-name", study_name, "--trials", str(target),
                   "--parent-pid", str(os.getpid()), "--stop-file", str(pool.stop_file)]
        if memory_only:
            command.append("--memory-only")
        if device:
            command += ["--device", device]
        if data:
            command += ["--data", data]
        if seed is not None:
            command += ["--seed", str(seed)]
        if steps is not None:
            command += ["--steps", str(steps)]
        env = dict(os.environ)
        if not device or not device.startswith("cuda"):
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(name, str(threads))
        env["PYTHONUNBUFFERED"] = "1"
        env[STORAGE_ENV] = storage
        log = log_dir / f"{study_name}-worker-{index}.log"
        handle = open(log, "wb")  # noqa: SIM115 - owned by the child
        try:
            # Ctrl-C stays ignored while the worker imports (a KeyboardInterrupt there can be
            # swallowed by an import-lock callback); the worker enables it once it is ready.
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                       preexec_fn=_ignore_interrupts)
        finally:
            handle.close()
        pool.workers.append(WorkerProcess(index, process, log, device))
    return pool
