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


@pytest.mark.slow
def test_ctrl_c_stops_a_training_run_cleanly(tmp_path: Path):
    data = tmp_path / "data"
    synthesize(data, 3, shape=(32, 32, 32), convention="brats2021", seed=0)
    table = tmp_path / "runs.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "revprof", "measure", "--levels", "3", "--width", "8", "--patch", "16",
         "--steps", "100000", "--device", "cpu", "--data", str(data), "--val-cases", "1",
         "--results", str(table)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    time.sleep(12)  # start-up, preprocessing, prediction, some steps
    assert process.poll() is None, process.communicate()[0]
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    assert not table.exists()
