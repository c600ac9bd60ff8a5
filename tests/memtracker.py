"""PyTorch's own ``MemTracker`` over revprof's training step: an independent count of its peak
(a helper for the tests, no tests here)."""

from __future__ import annotations

import math

import pytest
import torch

from revprof.nn import build_network
from revprof.recipe import Recipe
from revprof.step import TrainingStep, optimizer_step_counters, synthetic_batch


def memtracker_peak(network, patch: tuple[int, ...], recipe: Recipe,
                    monkeypatch: pytest.MonkeyPatch, steps: int = 2) -> tuple[int, int]:
    """``(peak, counter bytes)``: MemTracker's peak over ``steps`` steps of ``recipe`` under
    FakeTensorMode, every storage rounded up to 512 bytes as CUDA's allocator does, and the bytes
    of the optimizer's 0-d ``step`` counters, which MemTracker counts and revprof leaves out (host
    scalars on a GPU unless the optimizer is fused).

    MemTracker rounds only on CUDA devices, which a CPU-only torch cannot fake, so the rounding is
    applied to its per-storage record; that record is private, hence the loud check. Under
    autocast, CUDA's policy for the ops that differ from the CPU's is applied, as revprof's own
    measurement does (:func:`revprof.memory.cuda_autocast.cuda_autocast_policy`).
    """
    from contextlib import ExitStack

    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools import mem_tracker

    from revprof.memory.cuda_autocast import cuda_autocast_policy

    info = mem_tracker._WeakRefInfo
    assert hasattr(info, "_calculate_mem_consumed"), "MemTracker's per-storage record changed"
    monkeypatch.setattr(info, "_calculate_mem_consumed",
                        lambda self: math.ceil(self.size * self.element_size / 512) * 512)
    with ExitStack() as stack:
        if recipe.precision != "fp32":
            stack.enter_context(cuda_autocast_policy())
        stack.enter_context(FakeTensorMode())
        network = network.checked(patch, recipe.batch, recipe.targets)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_network(network, fake=True)
        runner = TrainingStep(model, recipe, network.output_kind, "cpu", simulated=True)
        batch = synthetic_batch(network, recipe, patch, torch.Generator().manual_seed(0))
        tracker = mem_tracker.MemTracker()
        resident = batch.tensors() if recipe.transfer == "resident" else []
        tracker.track_external(model, runner.optimizer, *resident)
        with tracker:
            for step in range(steps):
                runner(batch, step)
                tracker.reset_mod_stats()  # per-module stats only; the peak is kept across steps
            runner.release()
        peak = tracker.get_tracker_snapshot("peak")
        counters = len(optimizer_step_counters(runner.optimizer))
    (device,) = peak
    return peak[device]["Total"], 0 if recipe.implementation == "fused" else counters * 512
