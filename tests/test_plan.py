"""The memory-budget planner: largest patch and best network, checked against direct predictions."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from revprof import RevprofError, spec_from_options
from revprof.cli.app import app
from revprof.memory import measure_memory
from revprof.memory.planner import Criterion, best_networks, largest_patch, shape_preference
from tests.data_helpers import make_old_case

TINY = spec_from_options(width=8, levels=3)
ALLOCATED = Criterion("allocated")


def _peak(spec, patch) -> int:
    return measure_memory(spec, patch, backend="simulate").peak_bytes


@pytest.mark.slow
def test_largest_patch_fits_and_nothing_with_more_voxels_does():
    budget = _peak(TINY, (32, 24, 24))
    plan = largest_patch(TINY, budget, max_patch=(48, 48, 48), criterion=ALLOCATED)
    (best,) = plan.candidates
    assert best.verified and best.peak_bytes <= budget
    assert best.peak_bytes == _peak(TINY, best.patch)
    assert best.voxels >= 32 * 24 * 24
    assert best in plan.checked and any("matched the synthesised log to the byte" in n for n in plan.notes)
    for axis in range(3):  # no axis can grow by one step and still fit
        bigger = list(best.patch)
        bigger[axis] += 4
        if bigger[axis] <= 48:
            assert _peak(TINY, tuple(bigger)) > budget
    # the next voxel count up (any shape within 48^3) does not fit either
    counts = sorted({d * h * w for d in range(4, 49, 4) for h in range(4, 49, 4) for w in range(4, 49, 4)})
    following = next(v for v in counts if v > best.voxels)
    shape = next((d, h, w) for d in range(4, 49, 4) for h in range(4, 49, 4) for w in range(4, 49, 4)
                 if d * h * w == following)
    assert _peak(TINY, shape) > budget


@pytest.mark.slow
def test_reserved_and_device_criteria_with_margin_fit_what_they_say():
    report = measure_memory(TINY, (32, 32, 32), backend="simulate")
    budget = report.predicted_reserved_bytes
    plan = largest_patch(TINY, budget, max_patch=(48, 48, 48), criterion=Criterion("reserved", margin=0.05))
    (best,) = plan.candidates
    direct = measure_memory(TINY, best.patch, backend="simulate")
    assert best.reserved_bytes == direct.predicted_reserved_bytes <= 0.95 * budget
    assert best.reserved_bytes >= best.peak_bytes
    device = Criterion("device", context=300 * 2**20, workspace=100 * 2**20)
    plan = largest_patch(TINY, 400 * 2**20 + budget, max_patch=(48, 48, 48), criterion=device)
    (best,) = plan.candidates
    assert best.context_bytes == 300 * 2**20 and best.workspace_bytes == 100 * 2**20
    assert best.device_bytes == best.reserved_bytes + 400 * 2**20 <= 400 * 2**20 + budget
    with pytest.raises(RevprofError, match="criterion must be one of device, reserved, allocated"):
        Criterion("peak")
    with pytest.raises(RevprofError, match="margin"):
        Criterion(margin=1.5)


def test_shapes_follow_the_median_shape_else_cubes():
    cube = shape_preference(None)
    assert min([(64, 16, 16), (32, 32, 16), (16, 32, 32)], key=cube) == (32, 32, 16)
    flat = shape_preference((240, 240, 60))
    assert min([(32, 32, 16), (64, 32, 8), (32, 16, 32)], key=flat) == (64, 32, 8)


def test_largest_patch_too_small_budget_is_an_error():
    with pytest.raises(RevprofError, match="even the smallest patch 4x4x4 needs"):
        largest_patch(TINY, 1024, criterion=ALLOCATED)


@pytest.mark.slow
def test_best_networks_fit_and_are_ordered_by_parameters():
    budget = _peak(TINY.with_depth(3), (16, 16, 16))
    plan = best_networks(TINY, (16, 16, 16), budget, max_depth=4, width_scales=(0.5, 1.0, 2.0),
                         criterion=ALLOCATED)
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
                                 "--max-patch", "32,32,32", "--json", "--criterion", "allocated"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["question"] == "largest patch" and data["candidates"][0]["peak_bytes"] <= 64 * 2**20
    assert data["criterion"] == "allocated" and data["checked"][0]["fits"]
    # default criterion: the device need, every part printed
    result = runner.invoke(app, ["plan", "--budget", "1GiB", "--levels", "3", "--width", "8",
                                 "--max-patch", "32,32,32", "--margin", "5%", "--context", "300MiB"])
    assert result.exit_code == 0, result.output
    for word in ("device need", "reserved", "CUDA context (given)", "workspace allowance", "allocated",
                 "checked by simulation", "300.00 MiB", "256.00 MiB", "5% margin"):
        assert word in result.output, word
    result = runner.invoke(app, ["plan", "--budget", "64MiB", "--levels", "3", "--width", "8"])
    assert result.exit_code == 1 and "by the device criterion" in result.output
    result = runner.invoke(app, ["plan", "--budget", "11 gigs"])
    assert result.exit_code == 1
    assert "memory size must be a number with a unit" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["plan", "--budget", "100KiB", "--levels", "3", "--width", "8", "--patch", "16"])
    assert result.exit_code == 1
    assert "nothing fits in 100.00 KiB at patch 16x16x16" in result.output


def test_plan_follows_the_median_shape_of_a_dataset(tmp_path):
    for i, shape in enumerate([(40, 24, 12), (44, 24, 12), (40, 28, 12)]):
        make_old_case(tmp_path, f"BraTS2021_0000{i}", None, shape=shape, seed=i)
    result = CliRunner().invoke(app, ["plan", "--budget", "64MiB", "--levels", "3", "--width", "8",
                                      "--criterion", "allocated", "--data", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    d, h, w = data["candidates"][0]["patch"]
    assert d >= h >= w and d <= 40 and h <= 24 and w <= 12  # capped by the median 40x24x12, rounded up
