"""Who else can see a tensor: the one place revprof relies on PyTorch internals.

Why private APIs at all: a reversible sequence saves memory by overwriting two buffers in its
backward, the incoming gradient (accumulating the input gradient into it) and its own saved
output (reconstructing each block's input in it). Overwriting is safe only when nothing outside
the sequence can ever read the buffer again. PyTorch has no public "is this tensor shared?"
query, so the ownership tests below count references:

- Python references to the tensor object (``sys.getrefcount``, calibrated once against an
  engine-owned gradient, since the exact number is an implementation detail of the engine);
- C++ owners of the tensor (``Tensor._use_count``) and of its storage
  (``torch._C._storage_Use_Count``), so that views, ``detach()`` aliases, graph nodes that saved
  it (``retain_graph``) and hooks are all seen.

Why overwriting is then safe: a buffer is overwritten only when every reference to its storage
is one the autograd engine or the sequence itself holds for this backward (the engine's
gradient slot, the sequence's saved output). No user variable, hook capture, view, alias or
other graph node can read it afterwards, so no one can observe the rewrite; in every other
case the sequence works in a copy (always correct, one buffer more). The same argument covers
:func:`preserve_version_counter`: it hides in-place writes only on such a private buffer.

When these internals change, the calibration fails: the sequence then copies (correct, about
18% more peak on the paper network), :func:`reuse_status` says so with the reason, a
``RuntimeWarning`` is issued, measurements record ``gradient_reuse: false``, and
``tests/test_reversible.py::test_private_torch_internals_still_work`` fails.
"""

from __future__ import annotations

import sys
import warnings
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensor


@dataclass
class OwnershipCounters:
    """How often reversible backwards reused or copied their two buffers (for measurements)."""

    gradients_reused: int = 0
    gradients_copied: int = 0
    outputs_reused: int = 0
    outputs_copied: int = 0

    def reset(self) -> None:
        self.gradients_reused = self.gradients_copied = 0
        self.outputs_reused = self.outputs_copied = 0


OWNERSHIP = OwnershipCounters()
"""Process-wide counters, updated by every reversible backward."""


def python_references(tensor: torch.Tensor) -> int:
    """Python references to ``tensor`` as seen from a ``backward(ctx, grad)`` that calls this first."""
    return sys.getrefcount(tensor)


def storage_references(tensor: torch.Tensor) -> int:
    """C++ owners of ``tensor``'s storage, less the ``storage`` object made to ask."""
    storage = tensor.untyped_storage()
    return torch._C._storage_Use_Count(storage._cdata) - 1


def preserve_version_counter(tensor: torch.Tensor) -> AbstractContextManager[object] | None:
    """Undo the version-counter bump of in-place writes to ``tensor`` within the block.

    Only for a buffer the caller owns exclusively (see the module docstring): a graph built on
    one half of it must not be invalidated by a write to the other half, which it never reads.
    ``None`` when reuse is off (the caller must then build its graph on a copy).
    """
    if not reuse_status().active:
        return None
    return torch.autograd._unsafe_preserve_version_counter(tensor)


# ---- calibration -----------------------------------------------------------------------------
class _Probe(torch.autograd.Function):
    """Measures, inside a backward, the references of an engine-owned gradient and of a saved
    output that nothing else holds."""

    seen: list[tuple[int, int]] = []

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        z = x.clone()
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        references = python_references(grad_output)
        (z,) = ctx.saved_tensors
        _Probe.seen.append((references, storage_references(z)))
        return grad_output


@dataclass(frozen=True)
class ReuseStatus:
    """Whether the in-place reuse is available on this torch, and why not when it is not.

    Attributes:
        active: the ownership tests work; buffers nothing else holds are overwritten.
        gradient_references: Python references of an engine-owned incoming gradient.
        output_references: storage owners of a saved output nothing else holds.
        reason: why reuse is off (``None`` when active).
    """

    active: bool
    gradient_references: int | None = None
    output_references: int | None = None
    reason: str | None = None


def _calibrate() -> ReuseStatus:
    try:
        from torch.utils._python_dispatch import _disable_current_modes

        torch.autograd._unsafe_preserve_version_counter  # noqa: B018 - must exist, see below
        with _disable_current_modes(), torch.enable_grad():
            x = torch.zeros(2, requires_grad=True)
            # Nothing but the engine holds the incoming gradient, and no hook, view or user
            # variable holds the probe's output.
            (_Probe.apply(x) * 2).sum().backward()
            x._use_count()  # type: ignore[attr-defined]  # gradient_is_private uses it: fail here if gone
        gradient, output = _Probe.seen[-1]
    except Exception as error:  # noqa: BLE001 - reported, not swallowed: see reuse_status()
        reason = f"ownership calibration failed on torch {torch.__version__}: " \
                 f"{type(error).__name__}: {error}"
        warnings.warn(f"revprof: in-place buffer reuse in reversible backward is off ({reason}); "
                      "reversible sequences copy instead (correct, but a larger peak)",
                      RuntimeWarning, stacklevel=3)
        return ReuseStatus(False, reason=reason)
    return ReuseStatus(True, gradient, output)


_STATUS: list[ReuseStatus] = []


def reuse_status() -> ReuseStatus:
    """The calibrated ownership test (computed once per process)."""
    if not _STATUS:
        _STATUS.append(_calibrate())
    return _STATUS[0]


# ---- the two ownership tests -----------------------------------------------------------------
def gradient_is_private(grad: torch.Tensor, references: int) -> bool:
    """Whether the incoming gradient can be overwritten: nothing but the autograd engine's call
    into this backward refers to it, its tensor or its storage (no other graph input buffer, no
    hook, no caller, no view), and it is one dense contiguous block.

    ``references`` is :func:`python_references` taken first thing in the backward.
    """
    status = reuse_status()
    if not status.active or status.gradient_references is None \
            or references > status.gradient_references:
        return False
    # A weak reference could let someone read the gradient later. Fake tensors get weak
    # references from the fake-tensor machinery itself, which a real run never has; ignoring
    # those keeps simulated runs byte-identical to real ones.
    if weakref.getweakrefs(grad) and not isinstance(grad, FakeTensor):
        return False
    if grad._base is not None or grad.storage_offset() != 0 or not grad.is_contiguous():
        return False
    return (grad._use_count() == 1  # type: ignore[attr-defined]  # private: see the module docstring
            and _dense(grad) and storage_references(grad) == 1)


def output_is_private(saved: torch.Tensor, output: weakref.ref[torch.Tensor]) -> bool:
    """Whether a sequence's saved output can be overwritten by its backward.

    ``saved`` is the tensor just unpacked from ``ctx.saved_tensors``; ``output`` a weak
    reference to the tensor the forward returned. Private means: the returned tensor object is
    gone (no user variable or hook keeps it, no view keeps it as its base) and no storage owner
    exists beyond the saved copy and ``saved`` itself (no ``detach()`` alias, no other graph
    node that saved it).
    """
    status = reuse_status()
    if not status.active or status.output_references is None:
        return False
    if output() is not None:
        return False
    return _dense(saved) and storage_references(saved) <= status.output_references


def _dense(tensor: torch.Tensor) -> bool:
    return tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
