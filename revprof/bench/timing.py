"""Step time of every execution of one small network, alternated in one process.

Absolute times on a shared machine are noise; ratios measured side by side are not (much). So
every execution gets its own copy of the same weights and its own optimizer (the recipe's,
default the paper's Adam), all are warmed up, and
then each repetition times one training step of each, in an order rotated every repetition; the
result is the median per execution and the ratios of medians.

On the CPU the step runs on one compute thread and is timed by that thread's CPU time
(``time.thread_time``), which other processes on the machine barely disturb; wall time is kept
too. On a GPU (``device="cuda"``) each step is timed with CUDA events.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from revprof.bench.peers import Peer, build_peer
from revprof.environment import require_cuda
from revprof.errors import RevprofError
from revprof.recipe import PAPER, Recipe
from revprof.spec import ArchSpec, validate_patch
from revprof.step import Batch, TrainingStep, synthetic_batch


@dataclass
class TimingResult:
    """Step times of each execution on one network.

    Attributes:
        device: ``cpu`` or the CUDA device name.
        clock: what was timed (``thread_time`` on the CPU, ``cuda_events`` on a GPU).
        threads: CPU compute threads during the measurement.
        widths, depth, patch: the network and input (batch 1, fp32).
        warmup, repetitions: untimed and timed steps per execution.
        samples: seconds per timed step, per execution.
        wall: wall-clock seconds per timed step, per execution.
        median: median of ``samples`` per execution.
        ratio_vs_plain, ratio_vs_revtorch: median ratios (``None`` when the peer is absent).
    """

    device: str
    clock: str
    threads: int
    widths: list[int]
    depth: int
    patch: list[int]
    warmup: int
    repetitions: int
    samples: dict[str, list[float]]
    wall: dict[str, list[float]] = field(default_factory=dict)
    median: dict[str, float] = field(default_factory=dict)
    ratio_vs_plain: dict[str, float | None] = field(default_factory=dict)
    ratio_vs_revtorch: dict[str, float | None] = field(default_factory=dict)

    def finish(self) -> TimingResult:
        """Fill the medians and ratios from the samples."""
        self.median = {peer: statistics.median(v) for peer, v in self.samples.items()}
        for name, reference in (("ratio_vs_plain", "plain"), ("ratio_vs_revtorch", "revtorch")):
            base = self.median.get(reference)
            setattr(self, name, {peer: (m / base if base else None) for peer, m in self.median.items()})
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimingResult:
        return cls(**data)


def time_executions(spec: ArchSpec, patch: Sequence[int] | int, peers: Sequence[Peer],
                    repetitions: int = 7, warmup: int = 2, device: str = "cpu", threads: int = 1,
                    progress: Callable[[str], None] | None = None, seed: int = 0,
                    recipe: Recipe = PAPER) -> TimingResult:
    """Median step time of each of ``peers`` (executions of the revunet ``spec``), alternated.

    Args:
        spec: the network (its execution flags are ignored).
        patch: ``(D, H, W)`` or one size; the batch and precision are the recipe's.
        peers: executions to compare (``nonewnet`` is not one: it is another network).
        repetitions: timed steps per execution.
        warmup: untimed steps per execution first (the first creates the optimizer's state).
        device: ``cpu`` or ``cuda``.
        threads: CPU compute threads while timing on the CPU (restored afterwards).
        recipe: the training step (default the paper's).
    """
    if repetitions < 1 or warmup < 1:
        raise RevprofError("timing needs at least one warm-up step and one repetition")
    if device == "cuda":
        require_cuda("timing on 'cuda'")
    patch = validate_patch(spec, patch)
    target_device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = build_peer("reversible", spec).state_dict()
        batch = synthetic_batch(spec, recipe, patch, torch.Generator().manual_seed(seed))
        if recipe.transfer == "resident":
            batch = batch.to(target_device)
    runs = {}
    for peer in peers:
        model = build_peer(peer, spec)
        model.load_state_dict(state)
        model.to(target_device)
        runs[peer] = TrainingStep(model, recipe, spec.output_kind, target_device.type)

    previous_threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(threads)
    samples: dict[str, list[float]] = {peer: [] for peer in peers}
    wall: dict[str, list[float]] = {peer: [] for peer in peers}
    gc_enabled = gc.isenabled()
    try:
        for round_ in range(warmup + repetitions):
            timed = round_ >= warmup
            order = list(peers[round_ % len(peers):]) + list(peers[:round_ % len(peers)])
            for peer in order:
                if progress is not None:
                    progress(f"timing: {peer} {'step' if timed else 'warm-up'} {round_ + 1}")
                gc.collect()
                gc.disable()
                seconds, wall_seconds = _time_step(runs[peer], batch, target_device)
                if gc_enabled:
                    gc.enable()
                if timed:
                    samples[peer].append(seconds)
                    wall[peer].append(wall_seconds)
    finally:
        if gc_enabled:
            gc.enable()
        torch.set_num_threads(previous_threads)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return TimingResult(
        device=name, clock="cuda_events" if device == "cuda" else "thread_time",
        threads=threads if device == "cpu" else previous_threads, widths=list(spec.widths),
        depth=spec.encoder_depth[0], patch=list(patch), warmup=warmup, repetitions=repetitions,
        samples=samples, wall=wall,
    ).finish()


def _time_step(runner: TrainingStep, batch: Batch, device: torch.device) -> tuple[float, float]:
    """``(timed seconds, wall seconds)`` of one training step."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        wall_start = time.perf_counter()
        start.record()
        runner(batch, device=device)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0, time.perf_counter() - wall_start
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    runner(batch, device=device)
    return time.thread_time() - cpu_start, time.perf_counter() - wall_start
