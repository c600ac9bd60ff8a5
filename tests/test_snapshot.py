"""memory_viz snapshots of a simulated step: structure, consistency with the measurement, the CLI."""

from __future__ import annotations

import pickle

import pytest
import torch
from typer.testing import CliRunner

from revprof import spec_from_options
from revprof.cli.app import app
from revprof.memory import measure_memory
from revprof.memory.allocator import round_size, AllocatorConfig
from revprof.memory.snapshot import (
    BLOCK_KEYS, SEGMENT_KEYS, SNAPSHOT_KEYS, TRACE_KEYS, simulated_snapshot,
)

TINY = spec_from_options(width=8, levels=3)


@pytest.fixture(scope="module")
def report():
    return measure_memory(TINY, (16, 16, 16), backend="simulate")


def _documented_keys(name: str) -> set[str]:
    """Field names of a TypedDict in ``torch.cuda.memory._snapshot``'s docstring."""
    doc = (torch.cuda.memory._snapshot.__doc__ or "").split("    Args:")[0]
    body = doc.split(f"class {name}(TypedDict):", 1)[1].split("class ", 1)[0]
    return {line.split(":")[0].strip() for line in body.splitlines()
            if ":" in line and not line.strip().startswith("#")}


def test_snapshot_has_the_documented_structure(report):
    snap = simulated_snapshot(report.allocation_log, report.timeline.phases)
    snap = pickle.loads(pickle.dumps(snap))
    assert _documented_keys("Snapshot") == set(SNAPSHOT_KEYS) <= set(snap)
    assert _documented_keys("Segment") <= set(SEGMENT_KEYS)
    assert _documented_keys("Block") <= set(BLOCK_KEYS)
    documented_trace = _documented_keys("TraceEntry") - {"device_free"}  # device_free: OOM entries only
    (trace,) = snap["device_traces"]
    assert trace
    for e in trace:
        assert documented_trace <= set(e) and set(TRACE_KEYS) <= set(e)
        assert e["action"] in ("alloc", "free_requested", "free_completed", "segment_alloc", "segment_map")
    for seg in snap["segments"]:
        assert set(SEGMENT_KEYS) <= set(seg)
        assert sum(b["size"] for b in seg["blocks"]) == seg["total_size"]
        for b in seg["blocks"]:
            assert set(BLOCK_KEYS) <= set(b) and b["state"] in ("active_allocated", "inactive")
    # allocs name the op and phase that allocated
    assert any(e["frames"] and "backward" in e["frames"][0]["filename"] for e in trace if e["action"] == "alloc")


def test_live_bytes_at_the_peak_equal_peak_bytes_and_segments_match_reserved(report):
    snap = simulated_snapshot(report.allocation_log, report.timeline.phases)
    (trace,) = snap["device_traces"]
    live = peak = reserved = 0
    for e in trace:
        if e["action"] == "alloc":
            live += round_size(e["size"], AllocatorConfig())
            peak = max(peak, live)
        elif e["action"] == "free_completed":
            live -= round_size(e["size"], AllocatorConfig())
        elif e["action"] in ("segment_alloc", "segment_map"):
            reserved += e["size"]
    assert peak == report.peak_bytes
    assert reserved == report.predicted_reserved_bytes == sum(s["total_size"] for s in snap["segments"])


def test_torch_memory_viz_reads_the_snapshot(report):
    # torch's own snapshot tools (private module, used here only as an independent reader)
    from torch.cuda import _memory_viz

    snap = simulated_snapshot(report.allocation_log, report.timeline.phases)
    text = _memory_viz.trace(snap)
    assert "cudaMalloc" in text and "del " in text
    assert "<html>" in _memory_viz.trace_plot(snap)
    assert _memory_viz.segsum(snap)


def test_private_cuda_history_api_still_exists():
    # revprof/memory/snapshot.py records real snapshots through these private functions
    assert callable(torch.cuda.memory._record_memory_history)
    assert callable(torch.cuda.memory._dump_snapshot)


def test_measure_snapshot_command(tmp_path):
    out = tmp_path / "step.pickle"
    runner = CliRunner()
    result = runner.invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16",
                                 "--backend", "simulate", "--snapshot", str(out)])
    assert result.exit_code == 0, result.output
    assert "snapshot written" in result.output and "peak reserved (predicted)" in result.output
    with open(out, "rb") as f:
        snap = pickle.load(f)
    assert snap["segments"] and snap["device_traces"][0]
    bad = runner.invoke(app, ["measure", "--levels", "3", "--width", "8", "--patch", "16",
                              "--backend", "simulate", "--snapshot", str(tmp_path / "no" / "x.pickle")])
    assert bad.exit_code == 1 and "does not exist" in bad.output
