"""Shared pytest configuration: deterministic torch, tiny shapes, CI strictness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist gives its workers COLUMNS=80; a serial run has none. Tests of what the
    # commands print read it as piped output (revprof.cli._common.PIPED_WIDTH) either way;
    # the width rules themselves are tested in test_cli_width.py.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
REAL_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing, except under CI=true, where it fails the test."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
