"""Real sweeps in worker processes on the embedded journal store: two local workers, and
Ctrl-C / SIGKILL in the middle of a trial followed by a rerun that continues the study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from revprof.sweep.pareto import pareto_front
from revprof.sweep.storage import open_storage
from study_helpers import TINY_TRAINING

pytestmark = pytest.mark.slow

TRAIN = """
[study]
name = "train2"
trials = 6
""" + TINY_TRAINING + """
[space]
levels = 2
width = [4, 8]
reversible = ["all", "none", "encoder"]

[sampler]
name = "tpe"
seed = 0
"""

# Memory-only trials of a deep 5-level network take several seconds each: time to interrupt them.
SLOW = """
[study]
name = "slow"
trials = 2

[fixed]
patch = 32

[space]
levels = 5
width = 4
groups = 1
depth = [1, 16]

[sampler]
name = "random"
seed = 0

[[enqueue]]
depth = 1

[[enqueue]]
depth = 16
"""


def revprof(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "revprof", "sweep", *args], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def trials_of(folder: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(str(folder / ".revprof" / "studies.journal"), create=False)
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def wait_for(folder: Path, name: str, condition, timeout: float = 120) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (folder / ".revprof" / "studies.journal").exists():
            try:
                trials = trials_of(folder, name)
            except KeyError:
                trials = []
            if condition(trials):
                return trials
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting on study {name}")


def states(trials: list) -> list[str]:
    return [t.state.name for t in trials]


def running_with_worker(trials: list) -> bool:
    return any(t.state == TrialState.RUNNING and "predicted_peak_bytes" not in t.user_attrs
               and "spec" in t.user_attrs for t in trials)


def test_two_local_workers_share_one_study(tmp_path: Path) -> None:
    (tmp_path / "train2.toml").write_text(TRAIN)
    code, output = finish(revprof(tmp_path, "train2.toml", "--workers", "2"))
    assert code == 0, output
    assert "started 2 workers" in output and "Pareto front of train2" in output
    trials = trials_of(tmp_path, "train2")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert 6 <= len(complete) <= 7  # each worker counts, then asks: at most workers - 1 extra
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # each recorded once
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2  # both workers ran trials
    for trial in complete:
        assert trial.user_attrs["status"] == "ok"
        assert trial.values == [trial.user_attrs["dice"]["mean"], trial.user_attrs["peak_bytes"]]
    for number in range(len(trials)):
        assert f"trial {number} · ok" in output  # the parent reported every trial once
        assert output.count(f"trial {number} · ") == 1
    logs = sorted(p.name for p in (tmp_path / ".revprof" / "logs").iterdir())
    assert logs == ["train2-worker-0.log", "train2-worker-1.log"]
    front = pareto_front(optuna.load_study(
        study_name="train2", storage=open_storage(str(tmp_path / ".revprof/studies.journal"))))
    assert front and all(t in complete for t in front)


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_trial_is_kept_out_and_the_rerun_continues(tmp_path: Path, how: str) -> None:
    (tmp_path / "slow.toml").write_text(SLOW)
    process = revprof(tmp_path, "slow.toml", "--memory-only")
    # the quick enqueued trial is done and the slow one is mid-prediction
    wait_for(tmp_path, "slow-memory", lambda ts: states(ts)[:1] == ["COMPLETE"]
             and running_with_worker(ts))
    time.sleep(0.2)
    process.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
    code, output = finish(process, timeout=240)
    trials = trials_of(tmp_path, "slow-memory")
    if how == "sigint":
        assert code == 130, output
        assert output.strip().splitlines()[-1] == ("interrupted; 1 complete trials kept; "
                                                   "rerun to continue")
        assert "Traceback" not in output
        assert states(trials) == ["COMPLETE", "FAIL"]
        assert trials[1].user_attrs["status"] == "interrupted"
    else:
        assert code == -signal.SIGKILL
        assert states(trials) == ["COMPLETE", "RUNNING"]  # until someone looks

    code, output = finish(revprof(tmp_path, "slow.toml", "--memory-only"))
    assert code == 0, output
    assert "resumed" in output
    if how == "sigkill":
        assert "marked 1 trial(s) of a stopped worker as interrupted: 1" in output
    assert "re-queued 1 interrupted or failed enqueued trial(s) with the same parameters: 1" in output
    trials = trials_of(tmp_path, "slow-memory")
    assert states(trials)[:2] == ["COMPLETE", "FAIL"] and trials[1].user_attrs["status"] == "interrupted"
    assert "error" in trials[1].user_attrs
    assert [t.state for t in trials[2:]] == [TrialState.COMPLETE]
    # the interrupted enqueued configuration ran on the rerun, with its parameters
    assert trials[2].params == trials[1].params == {"depth": 16}
    assert trials[2].user_attrs["requeued_from"] == 1
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert not any(t.state == TrialState.RUNNING for t in trials)


def test_ctrl_c_with_local_workers_stops_them_cleanly(tmp_path: Path) -> None:
    (tmp_path / "slow.toml").write_text(SLOW.replace("trials = 2", "trials = 3"))
    process = revprof(tmp_path, "slow.toml", "--memory-only", "--workers", "2")
    wait_for(tmp_path, "slow-memory", running_with_worker)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    code, output = finish(process, timeout=120)
    assert code == 130, output
    assert "stopping the workers" in output
    assert output.strip().splitlines()[-1].startswith("interrupted; ")
    trials = trials_of(tmp_path, "slow-memory")
    assert not any(t.state == TrialState.RUNNING for t in trials)
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["status"] == "interrupted" for t in interrupted)
    for log in (tmp_path / ".revprof" / "logs").iterdir():
        assert "Traceback" not in log.read_text(), log.read_text()


def test_ctrl_c_while_workers_are_still_starting(tmp_path: Path) -> None:
    """A stop asked for while the workers import reaches them: nothing swallowed, no trial run."""
    (tmp_path / "slow.toml").write_text(SLOW)
    process = revprof(tmp_path, "slow.toml", "--memory-only", "--workers", "2")
    logs = tmp_path / ".revprof" / "logs"
    deadline = time.monotonic() + 60
    while not (logs.is_dir() and len(list(logs.glob("*.log"))) == 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # the workers are importing torch now
    code, output = finish(process, timeout=120)
    assert code == 130, output
    for log in logs.glob("*.log"):
        text = log.read_text()
        assert "Traceback" not in text and "Exception ignored" not in text, text
    assert not any(t.state == TrialState.RUNNING for t in trials_of(tmp_path, "slow-memory"))
