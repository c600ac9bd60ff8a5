"""Shared pytest configuration: deterministic torch, tiny shapes, CI strictness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
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
