"""Predicted reserved memory and device need in every measurement (library, ``measure`` CLI)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from revprof import RevprofError, spec_from_options
from revprof.cli.app import app
from revprof.memory import MemoryReport, measure_memory
from revprof.memory.allocator import AllocatorConfig, parse_alloc_conf, replay
from revprof.memory.device import CONTEXT_BYTES, DEFAULT_WORKSPACE_BYTES, device_need
from revprof.memory.tracker import StorageTracker, rounded

TINY = spec_from_options(width=8, levels=3)


@pytest.fixture(scope="module")
def report() -> MemoryReport:
    return measure_memory(TINY, (16, 16, 16), backend="simulate")


def test_the_allocation_log_replays_to_the_tracker_peak(report):
    live = peak = 0
    sizes: dict[int, int] = {}
    for action, ident, nbytes, op, index in report.allocation_log:
        assert 0 <= index <= len(report.timeline.bytes)
        if action == "alloc":
            sizes[ident] = rounded(nbytes)
            live += sizes[ident]
            peak = max(peak, live)
        else:
            live -= sizes.pop(ident)
    assert peak == report.peak_bytes
    assert any("convolution" in op for _, _, _, op, _ in report.allocation_log)


def test_uncounted_storages_leave_the_log():
    import torch

    tracker = StorageTracker()
    with tracker:
        kept, dropped = torch.ones(1000), torch.ones(10)
        tracker.uncount([dropped])
    idents = {e[1] for e in tracker.events()}
    assert len(idents) == 1 and tracker.events()[0][2] == kept.untyped_storage().nbytes()


def test_every_measurement_carries_predicted_reserved(report):
    assert report.predicted_reserved_bytes == replay(
        [e[:3] for e in report.allocation_log], AllocatorConfig()).max_reserved_bytes
    assert report.predicted_reserved_bytes >= report.peak_bytes
    assert report.allocator["max_allocated_bytes"] >= report.peak_bytes
    data = report.to_dict(timeline=False)
    assert "allocation_log" not in data and data["predicted_reserved_bytes"] == report.predicted_reserved_bytes
    again = MemoryReport.from_dict(json.loads(json.dumps(data)))
    assert again.predicted_reserved_bytes == report.predicted_reserved_bytes
    assert again.allocator == report.allocator


def test_alloc_conf_changes_the_prediction_and_bad_options_fail_early():
    expandable = measure_memory(TINY, (16, 16, 16), backend="simulate", alloc_conf="expandable_segments:True")
    assert expandable.allocator["config"] == "expandable_segments:True"
    assert expandable.predicted_reserved_bytes >= expandable.peak_bytes
    with pytest.raises(RevprofError, match="Unrecognized key .expandable."):
        measure_memory(TINY, (16, 16, 16), backend="simulate", alloc_conf="expandable:True")


def test_device_need_parts():
    need = device_need(10 * 2**30)
    assert need.total == 10 * 2**30 + CONTEXT_BYTES["default"] + DEFAULT_WORKSPACE_BYTES
    given = device_need(2**30, context=300 * 2**20, workspace=0)
    assert given.total == 2**30 + 300 * 2**20 and given.device_class == "given"
    assert "reserved" in given.words() and "CUDA context" in given.words()
    with pytest.raises(RevprofError, match="device class must be one of"):
        device_need(1, device_class="gamer")


def test_measure_command_shows_and_returns_reserved_and_device_need():
    runner = CliRunner()
    result = runner.invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16",
                                 "--backend", "simulate", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["predicted_reserved_bytes"] >= data["peak_bytes"] > 0
    need = data["device_need"]
    assert need["device_need_bytes"] == need["reserved_bytes"] + need["context_bytes"] + need["workspace_bytes"]
    assert need["reserved_bytes"] == data["predicted_reserved_bytes"]
    result = runner.invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16",
                                 "--backend", "simulate", "--alloc-conf", "max_split_size_mb:5"])
    assert result.exit_code == 1 and "max_split_size_mb too small, must be >= 20" in result.output
    assert parse_alloc_conf("max_split_size_mb:64").max_split_size == 64 * 2**20


def test_report_timeline_carries_the_reserved_series(report):
    from revprof.memory.allocator import reserved_timeline
    from revprof.report.panels.timeline import timeline_panel

    series = reserved_timeline(report.allocation_log, len(report.timeline.bytes))
    assert max(series) == report.predicted_reserved_bytes
    assert all(r >= b for r, b in zip(series, report.timeline.bytes))  # reserved >= live, op by op
    assert series == sorted(series)  # nothing is given back during a step
    panel = timeline_panel("reversible", "words", report, max_points=50)
    assert len(panel.reserved) == len(panel.bytes) and max(panel.reserved) <= report.predicted_reserved_bytes


def test_real_cpu_tensors_give_the_same_allocation_log_as_fake_ones(report):
    real = measure_memory(TINY, (16, 16, 16), backend="cpu")
    assert [e[:3] for e in real.allocation_log] == [e[:3] for e in report.allocation_log]
    assert real.predicted_reserved_bytes == report.predicted_reserved_bytes
