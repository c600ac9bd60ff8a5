"""Memory snapshots in the format ``torch.cuda.memory._dump_snapshot`` writes (pytorch.org/memory_viz).

:func:`simulated_snapshot` replays a measurement's allocation log through the caching-allocator
model and writes what the allocator would have recorded with ``_record_memory_history`` on: the
final ``segments`` with their ``blocks``, and ``device_traces`` with ``segment_alloc`` /
``segment_map``, ``alloc``, ``free_requested`` and ``free_completed`` actions. Each ``alloc``
carries one frame naming the aten op that allocated and the phase of the step (forward, backward,
optimizer), the only stack revprof has.

On CUDA the real snapshot is written instead. Recording and dumping use torch's private
``torch.cuda.memory._record_memory_history`` / ``_dump_snapshot``: there is no public API for
it, so both calls live here only (``tests/test_snapshot.py`` checks they still exist).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from revprof.bounds import replace_file
from revprof.errors import RevprofError
from revprof.memory.allocator import AllocatorConfig, Block, CachingAllocatorModel

SNAPSHOT_KEYS = ("segments", "device_traces")
"""Top-level keys of ``torch.cuda.memory._snapshot()`` (its docstring's ``Snapshot``)."""
SEGMENT_KEYS = ("device", "address", "total_size", "allocated_size", "active_size", "requested_size",
                "stream", "segment_type", "segment_pool_id", "is_expandable", "frames", "blocks")
BLOCK_KEYS = ("address", "size", "requested_size", "state", "frames")
TRACE_KEYS = ("action", "addr", "size", "stream", "frames", "time_us")


def _phase_at(phases: Sequence[tuple[int, str, int]], index: int) -> str:
    name = "setup"
    for start, phase, step in phases:
        if start > index:
            break
        name = f"{phase} of step {step + 1}"
    return name


def simulated_snapshot(log: Sequence[tuple[str, int, int, str, int]],
                       phases: Sequence[tuple[int, str, int]] = (),
                       config: AllocatorConfig | None = None) -> dict[str, Any]:
    """The snapshot a CUDA run of this allocation log would dump.

    Args:
        log: ``(action, id, nbytes, op, timeline_index)`` events (``MemoryReport.allocation_log``).
        phases: ``(timeline_index, phase, step)`` marks (``MemoryReport.timeline.phases``).
        config: the allocator options modelled.
    """
    model = CachingAllocatorModel(config)
    trace: list[dict[str, Any]] = []
    frames_of: dict[int, list[dict[str, Any]]] = {}
    live: dict[int, Block] = {}

    def entry(action: str, addr: int, size: int, frames: list[dict[str, Any]]) -> None:
        trace.append({"action": action, "addr": addr, "size": size, "stream": 0, "frames": frames,
                      "time_us": len(trace), "pool_id": (0, 0)})

    for action, ident, nbytes, op, index in log:
        if action == "alloc":
            if nbytes <= 0:
                continue
            seen = len(model.trace)
            block = model.malloc(nbytes, tag=ident)
            live[ident] = block
            frames = [{"filename": _phase_at(phases, index), "line": index, "name": op}]
            frames_of[block.address] = frames
            for kind, addr, size in model.trace[seen:]:
                if kind == "alloc":
                    entry("alloc", addr, nbytes, frames)
                else:
                    entry(kind, addr, size, [])
        else:
            if ident not in live:
                continue
            block = live.pop(ident)
            address, requested = block.address, block.requested
            frames = frames_of.pop(address, [])
            entry("free_requested", address, requested, frames)
            model.free(block)
            entry("free_completed", address, requested, frames)
    segments = []
    for segment in model.segments:
        blocks: list[dict[str, Any]] = [{"address": b.address, "size": b.size, "requested_size": b.requested if b.allocated else 0,
                   "state": "active_allocated" if b.allocated else "inactive",
                   "frames": frames_of.get(b.address, []) if b.allocated else []}
                  for b in model.blocks(segment)]
        allocated = sum(b["size"] for b in blocks if b["state"] == "active_allocated")
        segments.append({
            "device": 0, "address": segment.address, "total_size": segment.size,
            "allocated_size": allocated, "active_size": allocated,
            "requested_size": sum(b["requested_size"] for b in blocks),
            "stream": 0, "segment_type": segment.pool, "segment_pool_id": (0, 0),
            "is_expandable": segment.expandable, "frames": [], "blocks": blocks,
        })
    return {"segments": segments, "device_traces": [trace]}


def write_snapshot(snapshot: dict[str, Any], path: Path) -> None:
    """Pickle ``snapshot`` to ``path`` as ``_dump_snapshot`` does, atomically
    (:func:`revprof.bounds.replace_file`)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RevprofError(f"cannot write snapshot {path}: folder {path.parent} does not exist")
    replace_file(path, pickle.dumps(snapshot), name=f"snapshot {path}")


@contextmanager
def recording_cuda_history(path: Path, max_entries: int = 1_000_000) -> Iterator[None]:
    """Record the real allocator's history while inside, then dump it to ``path`` and stop."""
    torch.cuda.memory._record_memory_history(max_entries=max_entries)
    try:
        yield
        torch.cuda.memory._dump_snapshot(str(path))
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
