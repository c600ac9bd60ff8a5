"""A dispatch-level tracker of live tensor storage bytes, with CUDA's allocation rounding.

Every aten op passes through :class:`StorageTracker` (a ``TorchDispatchMode``). Each storage an op
returns is registered once, with its size rounded up as CUDA's caching allocator rounds
allocations (to multiples of 512 bytes), and a finalizer takes it off the books the moment the
storage dies. The live total after every op forms the timeline; its maximum is the peak.

Because it only looks at storages, the tracker works the same on real CPU tensors and on fake
tensors (``FakeTensorMode``: nothing allocated, nothing computed), and it sees through custom
autograd code such as reversible sequences: forward under ``no_grad``, recomputation and nested
``torch.autograd.grad`` calls in backward are ordinary ops to it.

What it does not see: memory an op allocates and frees inside one kernel (cuDNN workspaces,
temporaries of fused kernels), and the allocator's cache (reserved but unallocated memory).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

CUDA_ROUNDING = 512
"""CUDA's caching allocator rounds every block up to a multiple of 512 bytes."""


def rounded(nbytes: int, rounding: int = CUDA_ROUNDING) -> int:
    """``nbytes`` rounded up to a multiple of ``rounding`` (0 stays 0)."""
    return -(-nbytes // rounding) * rounding


@dataclass
class PhaseMark:
    """The timeline index at which a phase of the step begins."""

    index: int
    name: str
    step: int


CATEGORIES = ("parameters", "gradients", "optimizer_state", "activations", "other")
"""Breakdown categories; ``other`` holds temporaries, incoming gradients, the batch and the loss."""


@dataclass
class PeakSnapshot:
    """What was live at one moment: copies of the books, classified on demand.

    Taking one is cheap (three dict copies), so the tracker takes one at every new peak.
    """

    bytes: int
    index: int
    phase: str
    step: int
    _sizes: dict[int, int]
    _roles: dict[int, str]
    _saved_scope: dict[int, str]

    @property
    def categories(self) -> dict[str, int]:
        """Bytes per category (see :data:`CATEGORIES`); they sum to :attr:`bytes`."""
        totals = dict.fromkeys(CATEGORIES, 0)
        for key, size in self._sizes.items():
            role = self._roles.get(key)
            if role is None:
                role = "activations" if key in self._saved_scope else "other"
            totals[role] += size
        return totals

    @property
    def activations_by_scope(self) -> dict[str, int]:
        """Saved-activation bytes per attribution scope (network part)."""
        by_scope: dict[str, int] = {}
        for key, size in self._sizes.items():
            scope = self._saved_scope.get(key)
            if scope is not None and key not in self._roles:
                by_scope[scope] = by_scope.get(scope, 0) + size
        return by_scope


_READ_VALUE = torch.ops.aten._local_scalar_dense.default
"""``Tensor.item()``: copies one value to the host."""


class StorageTracker(TorchDispatchMode):
    """Count live storage bytes op by op.

    Use it as a context manager around the work to measure, after registering the tensors that
    already exist (:meth:`register`). Attribution of saved activations to parts of a network
    needs :meth:`attribute` (module hooks) and :meth:`saving` (a ``saved_tensors_hooks``
    context that notes what autograd saves).

    Args:
        rounding: allocation granularity applied to every storage (CUDA: 512 bytes).
        device_type: count only storages on this device type (``cuda`` on GPU runs, where host
            tensors do not use GPU memory); ``None`` counts all.

    Attributes:
        live_bytes: bytes live now.
        peak: what was live at the highest ``live_bytes`` seen so far.
        timeline: ``live_bytes`` after every op.
        phases: where each phase of each step begins in ``timeline``.
    """

    def __init__(self, rounding: int = CUDA_ROUNDING, device_type: str | None = None) -> None:
        super().__init__()
        self.rounding = rounding
        self.device_type = device_type
        self.live_bytes = 0
        self.peak: PeakSnapshot | None = None
        self.timeline: list[int] = []
        self.phases: list[PhaseMark] = []
        self._sizes: dict[int, int] = {}
        self._saved_scope: dict[int, str] = {}
        self._scope_stack: list[str] = []
        self._roles: dict[int, str] = {}
        self._log = EventLog(self.timeline)
        self._ignored: set[int] = set()

    # ---- registration ------------------------------------------------------------------
    def register(self, tensors: Iterable[torch.Tensor]) -> None:
        """Count the storages of tensors created before tracking began (parameters, the batch)."""
        for tensor in tensors:
            self._register(tensor)
        self._after_op()

    def _register(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        if self.device_type is not None and storage.device.type != self.device_type:
            return
        key = id(storage)
        if key in self._ignored:
            return
        size = rounded(storage.nbytes(), self.rounding)
        old = self._sizes.get(key)
        if old is None:
            self._sizes[key] = size
            self.live_bytes += size
            weakref.finalize(storage, self._release, key)
            self._log.alloc(key, storage.nbytes())
        elif old != size:  # resized in place
            self._sizes[key] = size
            self.live_bytes += size - old
            self._log.resize(key, storage.nbytes())

    def _release(self, key: int) -> None:
        self._log.free(key)
        self.live_bytes -= self._sizes.pop(key)
        self._saved_scope.pop(key, None)
        self._roles.pop(key, None)
        self._ignored.discard(key)

    def uncount(self, tensors: Iterable[torch.Tensor]) -> None:
        """Stop counting these storages for as long as they live (e.g. Adam's step counters,
        host scalars on a GPU run), even when a later op returns them again (``t.add_(1)``)."""
        for tensor in tensors:
            key = id(tensor.untyped_storage())
            if key in self._sizes and key not in self._ignored:
                self._log.drop(key)
                self.live_bytes -= self._sizes[key]
                self._sizes[key] = 0
                self._ignored.add(key)

    def mark(self, role: str, tensors: Iterable[torch.Tensor]) -> None:
        """Give these storages a role (``parameters``, ``gradients``, ``optimizer_state``) for as
        long as they live; unmarked storages are activations (if autograd saved them) or other."""
        for tensor in tensors:
            key = id(tensor.untyped_storage())
            if key in self._sizes:
                self._roles[key] = role

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func.namespace == "prim" or func is _READ_VALUE:
            # metadata queries (fake tensors ask for .device this way) and reading a value to the
            # host (a GradScaler's .item()): no device memory changes, and fake tensors have no
            # value to read, so a simulated step runs none of them
            return out
        self._log.op = func
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self._register(value)
        self._after_op()
        return out

    def _after_op(self) -> None:
        self.timeline.append(self.live_bytes)
        if self.peak is None or self.live_bytes > self.peak.bytes:
            self.peak = self._snapshot()

    # ---- phases and roles --------------------------------------------------------------
    def mark_phase(self, name: str, step: int) -> None:
        """Note that phase ``name`` (``forward``, ``backward``, ``optimizer``) of ``step`` starts now."""
        self.phases.append(PhaseMark(len(self.timeline), name, step))

    # ---- attribution -------------------------------------------------------------------
    def attribute(self, parts: dict[str, nn.Module]) -> list[Any]:
        """Attribute what autograd saves while ``parts[name]`` runs to ``name``; returns hook handles."""
        handles = []
        for name, module in parts.items():
            handles.append(module.register_forward_pre_hook(self._enter(name)))
            handles.append(module.register_forward_hook(self._leave))
        return handles

    def _enter(self, name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            self._scope_stack.append(name)
        return hook

    def _leave(self, *_: Any) -> None:
        self._scope_stack.pop()

    def saving(self) -> torch.autograd.graph.saved_tensors_hooks:
        """A context in which every tensor autograd saves for backward is noted as an activation."""

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            key = id(tensor.untyped_storage())
            if key not in self._saved_scope:
                phase = self.phases[-1].name if self.phases else "forward"
                if phase != "forward":
                    scope = f"{phase} recompute"
                else:  # outside every attributed part of the forward: the loss
                    scope = self._scope_stack[-1] if self._scope_stack else "loss"
                self._saved_scope[key] = scope
            # Detached, so a saved output does not hold its own grad_fn in a reference cycle.
            return tensor.detach()

        return torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor)

    # ---- snapshots ---------------------------------------------------------------------
    def _snapshot(self) -> PeakSnapshot:
        mark = self.phases[-1] if self.phases else PhaseMark(0, "setup", 0)
        return PeakSnapshot(self.live_bytes, len(self.timeline) - 1, mark.name, mark.step,
                            dict(self._sizes), dict(self._roles), dict(self._saved_scope))

    def snapshot(self) -> PeakSnapshot:
        """What is live now, by category and scope."""
        return self._snapshot()

    # ---- allocation log ----------------------------------------------------------------
    def events(self) -> list[tuple[str, int, int]]:
        """Every counted allocation and free in order, for the allocator model
        (:func:`revprof.memory.allocator.replay`): ``("alloc", id, nbytes)`` with the storage's
        unrounded size, ``("free", id, 0)``; storages taken off the books by :meth:`uncount`
        are left out entirely (on a GPU they never were device memory)."""
        return self._log.counted()

    def event_details(self) -> list[tuple[str, int, int, str, int]]:
        """:meth:`events` with, per event, the aten op that allocated (``""`` for frees) and the
        index of the next :attr:`timeline` entry (events with index ``i`` happened before
        ``timeline[i]`` was recorded)."""
        return self._log.counted(details=True)


class EventLog:
    """The tracker's allocation log: each storage (and each in-place resize) gets a fresh id."""

    def __init__(self, timeline: list[int]) -> None:
        self.timeline = timeline
        self.entries: list[tuple[str, int, int, str, int]] = []
        self.op: Any = None
        self._ids: dict[int, int] = {}
        self._dropped: set[int] = set()
        self._next = 0

    def _new_id(self, key: int) -> int:
        self._next += 1
        self._ids[key] = self._next
        return self._next

    def alloc(self, key: int, nbytes: int) -> None:
        self.entries.append(("alloc", self._new_id(key), nbytes, str(self.op or "setup"), len(self.timeline)))

    def resize(self, key: int, nbytes: int) -> None:  # CUDA allocates the new size, then frees
        old = self._ids.get(key)
        self.alloc(key, nbytes)
        if old is not None:
            self.entries.append(("free", old, 0, "", len(self.timeline)))

    def free(self, key: int) -> None:
        ident = self._ids.pop(key, None)
        if ident is not None:
            self.entries.append(("free", ident, 0, "", len(self.timeline)))

    def drop(self, key: int) -> None:
        ident = self._ids.get(key)
        if ident is not None:
            self._dropped.add(ident)

    def counted(self, details: bool = False) -> list[tuple[Any, ...]]:
        rows = [e for e in self.entries if e[1] not in self._dropped]
        return rows if details else [e[:3] for e in rows]
