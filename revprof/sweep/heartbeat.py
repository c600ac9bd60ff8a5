"""Liveness of running trials, for every store kind: no trial stays RUNNING after its worker died.

Each worker records who runs a trial (user attribute ``worker``: host, process id and process
start time) and refreshes a ``heartbeat`` user attribute (Unix time) every
:data:`HEARTBEAT_INTERVAL` seconds from a background thread. :func:`fail_stale_trials`, run by
every worker before it asks for a trial and by the CLI before a sweep starts, marks a RUNNING
trial FAIL with ``status = "interrupted"`` when

- its worker ran on this host and that process is gone (immediate: a SIGKILLed worker is
  noticed by the next run at once), or
- its last heartbeat (or its start, before the first one) is older than :data:`GRACE_PERIOD`
  seconds (a worker on another machine that died or lost its network).

This works the same on the journal file, SQLite and PostgreSQL; unlike Optuna's own RDB
heartbeat it also leaves the trial's ``status`` user attribute right.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime
from typing import Any

from revprof.processes import pid_alive

HEARTBEAT_INTERVAL = float(os.environ.get("REVPROF_HEARTBEAT_INTERVAL", "10"))
GRACE_PERIOD = float(os.environ.get("REVPROF_HEARTBEAT_GRACE", "120"))


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return int(fields[19])  # field 22 (starttime); fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


def identity() -> dict[str, Any]:
    """This worker: host name, process id and process start time (guards against pid reuse)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_ticks(os.getpid())}


def process_alive(worker: dict[str, Any]) -> bool | None:
    """Whether the worker's process still runs: True/False on this host, None elsewhere."""
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return None
    pid = worker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    if not pid_alive(pid):
        return False
    started = worker.get("started")
    if started is not None and _start_ticks(pid) not in (None, started):
        return False  # the pid now belongs to another process
    return True


class Heartbeat:
    """Refresh a trial's ``heartbeat`` user attribute every ``interval`` seconds while open."""

    def __init__(self, storage: Any, trial_id: int, interval: float = HEARTBEAT_INTERVAL) -> None:
        self._storage = storage
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="revprof-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._storage.set_trial_user_attr(self._trial_id, "heartbeat", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.set_trial_user_attr(self._trial_id, "heartbeat", time.time())
            except Exception:  # the trial finished meanwhile, or the store hiccupped
                if self._stop.is_set():
                    return


def stale_reason(trial: Any, now: float | None = None, grace: float = GRACE_PERIOD) -> str | None:
    """Why a RUNNING trial is stale, or None when its worker may still be running it."""
    now = time.time() if now is None else now
    attrs = trial.user_attrs
    worker = attrs.get("worker")
    alive = process_alive(worker) if worker else None
    if alive is False:
        return (f"worker process {worker.get('pid')} on {worker.get('host')} is gone "
                f"(killed or crashed)")
    if alive is True:
        return None
    last = attrs.get("heartbeat")
    if not isinstance(last, (int, float)):
        start = trial.datetime_start
        last = start.timestamp() if isinstance(start, datetime) else None
    if last is not None and now - last > grace:
        return f"no heartbeat for {now - last:.0f} s"
    return None


def fail_stale_trials(study: Any, grace: float = GRACE_PERIOD) -> list[int]:
    """Mark the study's stale RUNNING trials FAIL (``status = "interrupted"``).

    Returns:
        the numbers of the trials failed now.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from revprof.sweep.optuna_adapter import storage_of, trial_id

    storage = storage_of(study)
    failed = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, now, grace)
        if reason is None:
            continue
        try:
            storage.set_trial_user_attr(trial_id(trial), "status", "interrupted")
            storage.set_trial_user_attr(trial_id(trial), "error", f"interrupted: {reason}")
            if storage.set_trial_state_values(trial_id(trial), state=TrialState.FAIL):
                failed.append(trial.number)
        except (UpdateFinishedTrialError, RuntimeError):
            continue  # it finished (or another worker failed it) meanwhile
    return failed
