"""The memory-budget planner: largest patch and best network, checked against direct predictions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from revprof import RevprofError, spec_from_options
from revprof.cli.app import app
from revprof.memory import measure_memory
from revprof.memory.planner import best_networks, largest_patch

TINY = spec_from_options(width=8, levels=3)


def _peak(spec, patch) -> int:
    return measure_memory(spec, patch, backend="simulate").peak_bytes


def test_largest_patch_fits_and_one_more_step_does_not():
    budget = _peak(TINY, (32, 24, 24))
    plan = largest_patch(TINY, budget, max_patch=(48, 48, 48))
    (best,) = plan.candidates
    assert best.peak_bytes <= budget
    assert best.peak_bytes == _peak(TINY, best.patch)
    for axis in range(3):  # no axis can grow by one step and still fit
        bigger = list(best.patch)
        bigger[axis] += 4
        if bigger[axis] <= 48:
            assert _peak(TINY, tuple(bigger)) > budget


def test_largest_patch_too_small_budget_is_an_error():
    with pytest.raises(RevprofError, match="even the smallest patch 4x4x4 needs"):
        largest_patch(TINY, 1024)


def test_best_networks_fit_and_are_ordered_by_parameters():
    budget = _peak(TINY.with_depth(3), (16, 16, 16))
    plan = best_networks(TINY, (16, 16, 16), budget, max_depth=4, width_scales=(0.5, 1.0, 2.0))
    assert plan.candidates
    params = [c.params for c in plan.candidates]
    assert params == sorted(params, reverse=True)
    for candidate in plan.candidates:
        assert candidate.peak_bytes <= budget
        assert candidate.peak_bytes == _peak(candidate.spec, (16, 16, 16))
    assert any(c.spec.encoder_depth[0] >= 3 for c in plan.candidates)


def test_plan_command_json_and_errors():
    runner = CliRunner()
    result = runner.invoke(app, ["plan", "--budget", "64MiB", "--levels", "3", "--width", "8",
                                 "--max-patch", "32,32,32", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["question"] == "largest patch" and data["candidates"][0]["peak_bytes"] <= 64 * 2**20
    result = runner.invoke(app, ["plan", "--budget", "11 gigs"])
    assert result.exit_code == 1
    assert "memory size must be a number with a unit" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["plan", "--budget", "100KiB", "--levels", "3", "--width", "8", "--patch", "16"])
    assert result.exit_code == 1
    assert "nothing fits in 100.00 KiB at patch 16x16x16" in result.output
