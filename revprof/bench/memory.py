"""Peak training memory of every peer, measured the same way side by side.

Each measurement is the memory engine's training step of a recipe (default the paper's: forward,
soft Dice loss, backward, Adam ``foreach``, ``zero_grad(set_to_none=True)``; two steps, so Adam's
state is live in the second)
counted by :class:`~revprof.memory.tracker.StorageTracker` with CUDA's 512-byte rounding, over
fake tensors (``simulate``: exact, nothing allocated) or real CPU tensors (``cpu``); or, on a
GPU, the CUDA caching allocator's ``max_memory_allocated`` (``cuda``).

It runs :func:`revprof.memory.measure_memory` with the network built by
:func:`~revprof.bench.peers.build_peer`, so the RevTorch peer is measured exactly like the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from revprof.bench.peers import Peer, PeerExecution, build_peer, peer_spec
from revprof.errors import RevprofError
from revprof.memory import measure_memory
from revprof.memory.tracker import rounded
from revprof.recipe import PAPER, Recipe
from revprof.spec import ArchSpec, validate_patch

Progress = Callable[[str], None]


@dataclass
class PeakRow:
    """The peak of one peer on one network and patch.

    Attributes:
        peer: execution (``reversible``, ``plain``, ``checkpoint``, ``revtorch``) or ``nonewnet``.
        table: which table the row belongs to (``paper`` or ``depth``).
        widths, depth: the revunet the peer runs (``depth`` blocks per level, encoder and decoder);
            for ``nonewnet`` the widths of the baseline itself and ``depth`` 0.
        patch: ``(D, H, W)``; the batch is 1.
        peak_bytes: the headline.
        state_bytes: parameter + gradient + Adam-state bytes (4 × the rounded parameter bytes),
            what a network costs before any activation.
        params: parameter count.
        peak_phase, peak_step: where the peak happened.
        breakdown: bytes by category at the peak (``cpu``/``simulate`` only).
        backend: ``simulate``, ``cpu`` or ``cuda``.
        seconds: how long the measurement took.
        status: ``ok``, or ``oom`` when the device ran out of memory (then ``peak_bytes`` is -1,
            shown as OOM, and ``oom`` holds the requested bytes and the device's capacity).
        untracked_bytes, reserved_bytes, gradient_reuse: as in
            :class:`~revprof.memory.measure.MemoryReport` (CUDA: allocator beyond tracked tensors).
    """

    peer: str
    table: str
    widths: list[int]
    depth: int
    patch: list[int]
    peak_bytes: int
    state_bytes: int
    params: int
    peak_phase: str
    peak_step: int
    backend: str
    breakdown: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    status: str = "ok"
    oom: dict[str, Any] | None = None
    untracked_bytes: int | None = None
    reserved_bytes: int | None = None
    gradient_reuse: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeakRow:
        return cls(**data)


def state_bytes(parameters: Iterable[torch.Tensor], recipe: Recipe = PAPER) -> int:
    """Parameter + gradient + optimizer-state bytes (Adam: ``exp_avg`` and ``exp_avg_sq``; see
    :meth:`revprof.recipe.Recipe.state_copies`), each rounded as on CUDA."""
    copies = 2 + recipe.state_copies()
    return copies * sum(rounded(p.numel() * p.element_size()) for p in parameters)


def measure_peer(peer: Peer, spec: ArchSpec, patch: Sequence[int] | int,
                 backend: Literal["simulate", "cpu", "cuda"] = "simulate",
                 steps: int = 2, seed: int = 0, table: str = "paper",
                 recipe: Recipe = PAPER) -> PeakRow:
    """Peak memory of ``steps`` training steps of ``peer`` built for the revunet ``spec``.

    Args:
        peer: one of :data:`~revprof.bench.peers.PEERS`.
        spec: the revunet the executions run (its own execution flags are ignored).
        patch: ``(D, H, W)`` or one size; the batch and precision are the recipe's.
        backend: ``simulate``, ``cpu`` or ``cuda``.
        recipe: the training step (default the paper's: batch 1, fp32, Adam).
    """
    if steps < 2:
        raise RevprofError(f"steps must be at least 2 (the optimizer's state exists from the "
                           f"first); got {steps}")
    built = peer_spec(peer, spec)
    patch = validate_patch(built, patch)
    if backend not in ("simulate", "cpu", "cuda"):
        raise RevprofError(f"backend must be simulate, cpu or cuda; got {backend!r}")
    report = measure_memory(built, patch, recipe, backend=backend, steps=steps,
                            seed=seed, build=lambda: build_peer(peer, spec))
    with torch.device("meta"):
        params = list(build_peer(peer, spec).parameters())
    return PeakRow(
        peer=peer, table=table, widths=list(built.widths),
        depth=0 if peer == "nonewnet" else spec.encoder_depth[0], patch=list(patch),
        peak_bytes=report.peak_bytes if report.status == "ok" else -1,
        state_bytes=state_bytes(params, recipe), params=report.params,
        peak_phase=report.peak_phase, peak_step=report.peak_step, backend=backend,
        breakdown=dict(report.breakdown), seconds=report.seconds, status=report.status,
        oom=report.oom, untracked_bytes=report.untracked_bytes,
        reserved_bytes=report.reserved_bytes, gradient_reuse=report.gradient_reuse,
    )


# ---- the tables -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryPlan:
    """What the memory tables cover.

    Attributes:
        paper_spec: the revunet of the main table (the paper's, widths 60–480).
        patches: patch sizes of the main table.
        depths: blocks per level in the main table.
        depth_spec: the smaller revunet of the memory-vs-depth table.
        depth_patch: its patch.
        depth_range: its depths.
        peers: the executions measured (``nonewnet`` is added once per patch of the main table).
    """

    paper_spec: ArchSpec
    patches: tuple[tuple[int, int, int], ...]
    depths: tuple[int, ...]
    depth_spec: ArchSpec
    depth_patch: tuple[int, int, int]
    depth_range: tuple[int, ...]
    peers: tuple[PeerExecution, ...]
    nonewnet: bool = True

    def jobs(self) -> list[tuple[str, Peer, ArchSpec, tuple[int, int, int]]]:
        """``(table, peer, spec, patch)`` for every measurement, in table order."""
        jobs: list[tuple[str, Peer, ArchSpec, tuple[int, int, int]]] = []
        for patch in self.patches:
            for depth in self.depths:
                for peer in self.peers:
                    jobs.append(("paper", peer, self.paper_spec.with_depth(depth), patch))
            if self.nonewnet:
                jobs.append(("paper", "nonewnet", self.paper_spec, patch))
        for depth in self.depth_range:
            for peer in self.peers:
                jobs.append(("depth", peer, self.depth_spec.with_depth(depth), self.depth_patch))
        return jobs

    def to_dict(self) -> dict[str, Any]:
        return {
            "paper_widths": list(self.paper_spec.widths), "patches": [list(p) for p in self.patches],
            "depths": list(self.depths), "depth_widths": list(self.depth_spec.widths),
            "depth_patch": list(self.depth_patch), "depth_range": list(self.depth_range),
            "peers": list(self.peers),
        }


def measure_tables(plan: MemoryPlan, backend: str = "simulate",
                   progress: Progress | None = None, recipe: Recipe = PAPER) -> list[PeakRow]:
    """Measure every job of ``plan`` trained by ``recipe``; ``progress`` is called with a label
    before each."""
    rows = []
    for table, peer, spec, patch in plan.jobs():
        if progress is not None:
            progress(f"{table}: {peer} depth {spec.encoder_depth[0]} at {'×'.join(map(str, patch))}")
        rows.append(measure_peer(peer, spec, patch, backend=backend, table=table,  # type: ignore[arg-type]
                                 recipe=recipe))
        if backend == "cuda":  # an oom leaves cached blocks behind; the next row starts clean
            torch.cuda.empty_cache()
    return rows
