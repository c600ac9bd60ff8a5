"""Peak training memory of every peer, measured the same way side by side.

Each measurement is the memory engine's training step (forward, soft Dice loss, backward, Adam
``foreach``, ``zero_grad(set_to_none=True)``; two steps, so Adam's state is live in the second)
counted by :class:`~revprof.memory.tracker.StorageTracker` with CUDA's 512-byte rounding, over
fake tensors (``simulate``: exact, nothing allocated) or real CPU tensors (``cpu``); or, on a
GPU, the CUDA caching allocator's ``max_memory_allocated`` (``cuda``).

It follows :func:`revprof.memory.measure.measure_memory` step for step, but builds the network
through :func:`~revprof.bench.peers.build_peer`, so the RevTorch peer is measured exactly like
the others (the tests check both give the same bytes for revprof's own executions).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from revprof.bench.peers import build_peer, peer_spec
from revprof.errors import RevprofError
from revprof.memory.step import (
    attribution_parts,
    make_optimizer,
    optimizer_state_of,
    optimizer_step_counters,
    training_step,
)
from revprof.memory.tracker import CATEGORIES, StorageTracker, rounded
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeakRow:
        return cls(**data)


def state_bytes(parameters: Iterable[torch.Tensor]) -> int:
    """Parameter + gradient + Adam ``exp_avg`` + ``exp_avg_sq`` bytes, each rounded as on CUDA."""
    return 4 * sum(rounded(p.numel() * p.element_size()) for p in parameters)


def measure_peer(peer: str, spec: ArchSpec, patch: Sequence[int] | int, backend: str = "simulate",
                 steps: int = 2, seed: int = 0, table: str = "paper") -> PeakRow:
    """Peak memory of ``steps`` training steps of ``peer`` built for the revunet ``spec``.

    Args:
        peer: one of :data:`~revprof.bench.peers.PEERS`.
        spec: the revunet the executions run (its own execution flags are ignored).
        patch: ``(D, H, W)`` or one size; batch 1, fp32.
        backend: ``simulate``, ``cpu`` or ``cuda``.
    """
    if steps < 2:
        raise RevprofError(f"steps must be at least 2 (Adam creates its state in the first); got {steps}")
    built = peer_spec(peer, spec)
    patch = validate_patch(built, patch)
    if backend == "cuda":
        return _measure_cuda(peer, spec, built, patch, steps, seed, table)
    if backend not in ("simulate", "cpu"):
        raise RevprofError(f"backend must be simulate, cpu or cuda; got {backend!r}")
    started = time.perf_counter()
    with ExitStack() as stack:
        if backend == "simulate":
            from torch._subclasses.fake_tensor import FakeTensorMode

            stack.enter_context(FakeTensorMode())
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_peer(peer, spec)
        optimizer = make_optimizer(model)
        image = torch.randn(1, built.in_channels, *patch, generator=generator)
        target = (torch.rand(1, built.out_channels, *patch, generator=generator) < 0.5).float()
        params = list(model.parameters())

        tracker = StorageTracker()
        handles = tracker.attribute(attribution_parts(model))
        for p in params:
            handles.append(p.register_post_accumulate_grad_hook(
                lambda p: tracker.mark("gradients", [p.grad])))
        try:
            with tracker, tracker.saving():
                tracker.register([*params, image, target])
                tracker.mark("parameters", params)
                for step in range(steps):
                    training_step(model, optimizer, image, target, "fp32",
                                  lambda phase, step: tracker.mark_phase(phase, step), step)
                    if step == 0:  # on a GPU Adam's step counters are host scalars
                        tracker.uncount(optimizer_step_counters(optimizer))
                        tracker.mark("optimizer_state", optimizer_state_of(optimizer))
        finally:
            for handle in handles:
                handle.remove()
    peak = tracker.peak
    assert peak is not None
    return PeakRow(
        peer=peer, table=table, widths=list(built.widths),
        depth=0 if peer == "nonewnet" else spec.encoder_depth[0], patch=list(patch),
        peak_bytes=peak.bytes, state_bytes=state_bytes(params),
        params=sum(p.numel() for p in params), peak_phase=peak.phase, peak_step=peak.step,
        backend=backend, breakdown={c: peak.categories[c] for c in CATEGORIES},
        seconds=time.perf_counter() - started,
    )


def _measure_cuda(peer: str, spec: ArchSpec, built: ArchSpec, patch: tuple[int, int, int],
                  steps: int, seed: int, table: str) -> PeakRow:
    """The same steps on the GPU; the peak is the caching allocator's ``max_memory_allocated``."""
    if not torch.cuda.is_available():
        raise RevprofError("backend 'cuda' needs a CUDA GPU and none is visible")
    started = time.perf_counter()
    device = torch.device("cuda")
    torch.cuda.empty_cache()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_peer(peer, spec).to(device)
    optimizer = make_optimizer(model)
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(1, built.in_channels, *patch, generator=generator).to(device)
    target = (torch.rand(1, built.out_channels, *patch, generator=generator) < 0.5).float().to(device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    marks: list[tuple[str, int, int]] = []

    def on_phase(phase: str, step: int) -> None:
        marks.append((phase, step, torch.cuda.max_memory_allocated()))

    try:
        for step in range(steps):
            training_step(model, optimizer, image, target, "fp32", on_phase, step)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    except torch.cuda.OutOfMemoryError:
        peak = -1
    params = list(model.parameters())
    phase, step = _cuda_peak_phase(marks, peak)
    row = PeakRow(
        peer=peer, table=table, widths=list(built.widths),
        depth=0 if peer == "nonewnet" else spec.encoder_depth[0], patch=list(patch),
        peak_bytes=peak, state_bytes=state_bytes(params), params=sum(p.numel() for p in params),
        peak_phase=phase, peak_step=step, backend="cuda", seconds=time.perf_counter() - started,
    )
    del model, optimizer, image, target, params
    torch.cuda.empty_cache()
    return row


def _cuda_peak_phase(marks: list[tuple[str, int, int]], peak: int) -> tuple[str, int]:
    """The phase during which the running maximum first reached ``peak`` (the phase after the
    last mark below it)."""
    for (phase, step, _), (_, _, reached) in zip(marks, [*marks[1:], ("end", 0, peak)]):
        if reached >= peak:
            return phase, step
    return "unknown", 0


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
    peers: tuple[str, ...]
    nonewnet: bool = True

    def jobs(self) -> list[tuple[str, str, ArchSpec, tuple[int, int, int]]]:
        """``(table, peer, spec, patch)`` for every measurement, in table order."""
        jobs = []
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
                   progress: Progress | None = None) -> list[PeakRow]:
    """Measure every job of ``plan``; ``progress`` is called with a label before each."""
    rows = []
    for table, peer, spec, patch in plan.jobs():
        if progress is not None:
            progress(f"{table}: {peer} depth {spec.encoder_depth[0]} at {'×'.join(map(str, patch))}")
        rows.append(measure_peer(peer, spec, patch, backend=backend, table=table))
    return rows
