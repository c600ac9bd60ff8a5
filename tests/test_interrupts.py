"""Ctrl-C stops long torch work at a safe point: exit 130, nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from revprof.data import synthesize
from revprof.interrupts import held_interrupts


def test_interrupt_is_held_until_a_checkpoint():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts() as checkpoint:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached.append("after the signal")  # the work goes on to its checkpoint
            checkpoint()
            reached.append("never")
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_interrupt_stops_at_once():
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
            pytest.fail("the second Ctrl-C did not interrupt")


def test_held_interrupt_is_raised_at_the_end_of_the_block():
    with pytest.raises(KeyboardInterrupt):
        with held_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)


def _read_until(fd: int, pattern: str, timeout: float) -> str:
    """Read a pseudo-terminal until ``pattern`` (a regex) appears in what was printed."""
    import re
    import select

    seen, deadline = "", time.monotonic() + timeout
    while re.search(pattern, seen) is None:
        left = deadline - time.monotonic()
        assert left > 0, f"{pattern!r} not printed within {timeout} s:\n{seen}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the program ended before printing {pattern!r}:\n{seen}"
            seen += chunk.decode(errors="replace")
    return seen


@pytest.mark.slow
def test_ctrl_c_stops_a_training_run_cleanly(tmp_path: Path):
    import pty

    data = tmp_path / "data"
    synthesize(data, 3, shape=(32, 32, 32), convention="brats2021", seed=0)
    table = tmp_path / "runs.csv"
    # On a terminal the run draws its progress bar, so the test can wait for real training steps.
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "revprof", "measure", "--levels", "3", "--width", "8", "--patch", "16",
         "--steps", "100000", "--device", "cpu", "--data", str(data), "--val-cases", "1",
         "--results", str(table)],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(follower)
    try:
        _read_until(leader, r"training .*? ([1-9]\d*)/100000", timeout=240)
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        output = _read_until(leader, r"interrupted", timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    assert not table.exists()
