"""Output to a file or a pipe is not cut to rich's 80 columns (tables of `plan`, `data check`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from revprof.cli._common import PIPED_WIDTH, _console


def test_piped_console_is_wide_unless_columns_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert _console().width == PIPED_WIDTH  # pytest captures stdout: not a terminal
    monkeypatch.setenv("COLUMNS", "90")
    assert _console().width == 90


def test_a_piped_table_keeps_its_long_rows(tmp_path) -> None:
    """`revprof data check` of a folder with a long path, piped: the path stays on one line."""
    folder = tmp_path / ("a-rather-long-folder-name-" * 4) / "data"
    folder.mkdir(parents=True)
    env = {k: v for k, v in __import__("os").environ.items() if k != "COLUMNS"}
    result = subprocess.run([sys.executable, "-m", "revprof", "data", "check", str(folder)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert str(folder) in result.stdout + result.stderr, result.stdout + result.stderr
