"""Reversible execution of a coupling-block sequence: activations recomputed, not stored.

The forward keeps exactly one tensor for the whole sequence: its output. The first block writes
its output into a new buffer (the input is only read); the others overwrite that buffer in place.
The backward walks the blocks from last to first, reconstructing each block's input from its
output in that same buffer, differentiating ``G`` and then ``F`` on the reconstructed halves, and
accumulating the input gradient in place, in the incoming gradient itself when nothing else can
see it (otherwise in one copy of it). Memory therefore does not grow with the number of blocks.
The buffer is the output the caller received, so it is reconstructed in place only when nothing
outside the sequence still holds it (no variable, hook capture, view, ``detach()`` alias or other
graph node); otherwise the backward works in a copy and the caller's output keeps its values.
Both ownership tests live in :mod:`revprof.nn._ownership`.
The first block's ``x1`` half is not reconstructed: it would be the sequence input, which no
gradient needs, so that ``F`` is recomputed only up to its activation (one convolution fewer per
sequence); after the backward the buffer holds ``y1`` of block 0 and the input's ``x2``.

Per residual function the recompute keeps at most two tensors of its size alive: the recomputed
output is subtracted (reconstructing the other half) and dropped before any gradient is
computed, and for the paper's ``GroupNorm → LeakyReLU → conv`` the backward is written out by
hand (:meth:`ResidualFunction.undo_backward_`), with LeakyReLU's backward in place. Other
functions, and autocast, go through autograd on the recompute.

The functions ``F`` and ``G`` must be deterministic (no dropout): they are run twice. A graph
through a reversible sequence can be backpropagated again (``retain_graph``) only when its first
backward worked in a copy (the output was still held, for instance by the retained graph);
otherwise that backward consumed the stored output and a second one raises. Gradients are
first-order only: ``create_graph=True`` raises a ``RuntimeError`` instead of silently dropping
second-order terms.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from typing import cast

import torch
from torch import nn
from torch.autograd.graph import get_gradient_edge

from revprof.errors import RevprofError, look_up
from revprof.nn._ownership import (
    OWNERSHIP,
    gradient_is_private,
    output_is_private,
    preserve_version_counter,
    python_references,
)
from revprof.nn.coupling import CouplingBlock, ResidualFunction, halves
from revprof.spec import EXECUTIONS, Execution

__all__ = ["OWNERSHIP", "ReversibleSequence"]


@dataclass(frozen=True)
class _AutocastState:
    """The autocast state of the forward, restored for the backward's recompute."""

    device_type: str
    enabled: bool
    dtype: torch.dtype

    @classmethod
    def capture(cls, device_type: str) -> _AutocastState:
        kind = device_type if device_type in ("cuda", "cpu") else "cpu"
        return cls(kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))

    def restore(self) -> AbstractContextManager[object]:
        if not self.enabled:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=True)


# ---- the autograd function -------------------------------------------------------------------
class _ReversibleFunction(torch.autograd.Function):
    """Autograd glue: ``forward(x, sequence, *params) -> y`` with only ``y`` saved."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sequence: ReversibleSequence, *params: torch.Tensor) -> torch.Tensor:
        ctx.sequence = sequence
        ctx.autocast = _AutocastState.capture(x.device.type)
        ctx.consumed = False
        z = _run_forward(sequence.couplings, x.detach())
        ctx.save_for_backward(z)
        ctx.output = weakref.ref(z)  # the tensor the caller gets: alive means someone holds it
        return z

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        references = python_references(grad_output)  # first: must match the calibration's
        if torch.is_grad_enabled():
            raise RuntimeError(
                "reversible sequences support first-order gradients only: backward with "
                "create_graph=True (double backward) through one is not supported; use "
                "execution='plain' or 'checkpoint' for higher-order gradients")
        if ctx.consumed:
            raise RuntimeError("a reversible sequence can be backpropagated once per forward when "
                               "its first backward consumed the stored output (retain_graph with "
                               "an output nothing else holds is not supported)")
        (z,) = ctx.saved_tensors
        # The saved output becomes the sequence input, block by block. In place only when
        # nothing outside the sequence can read it (see revprof/nn/_ownership.py); otherwise
        # (the caller or a hook still holds the output, a view or alias of it, or a graph
        # retained with retain_graph) in a copy, which leaves the output intact.
        if output_is_private(z, ctx.output):
            z = z.detach()
            ctx.consumed = True
            OWNERSHIP.outputs_reused += 1
        else:
            z = z.detach().clone(memory_format=torch.contiguous_format)
            OWNERSHIP.outputs_copied += 1
        if gradient_is_private(grad_output, references):
            grad = grad_output.detach()  # the engine's own buffer: accumulate into it
            OWNERSHIP.gradients_reused += 1
        else:
            grad = grad_output.clone(memory_format=torch.contiguous_format)
            OWNERSHIP.gradients_copied += 1
        del grad_output
        sequence: ReversibleSequence = ctx.sequence
        param_grads: list[torch.Tensor | None] = []
        couplings = sequence.couplings
        for index in reversed(range(len(couplings))):
            # The first block's ``x1`` would be the sequence input, which nothing reads: skip it.
            param_grads[:0] = _block_backward(couplings[index], z, grad, ctx.autocast,
                                              reconstruct_input=index > 0)
        del z
        return (grad, None, *param_grads)


def _run_forward(blocks: Sequence[CouplingBlock], x: torch.Tensor) -> torch.Tensor:
    """The sequence output in a new buffer; ``x`` is only read."""
    if len(blocks) == 0:
        return x.clone(memory_format=torch.contiguous_format)
    z = blocks[0].forward_into(x)
    for block in blocks[1:]:
        block.forward_(z)
    return z


def _residual_backward(
    function: nn.Module, source: torch.Tensor, target: torch.Tensor | None,
    grad_source: torch.Tensor, grad_target: torch.Tensor, autocast: _AutocastState,
) -> list[torch.Tensor | None]:
    """For ``target = other + function(source)``: undo it in place and backpropagate.

    Subtracts ``function(source)`` from ``target`` (reconstructing ``other``; skipped when
    ``target`` is ``None``), adds the gradient that flows through ``function`` into
    ``grad_source`` (in place), and returns the gradients of ``function``'s parameters (``None``
    for frozen ones).
    """
    if isinstance(function, ResidualFunction) and not autocast.enabled \
            and function.supports_undo_backward(source):
        return list(function.undo_backward_(source, target, grad_source, grad_target))
    params = list(function.parameters())
    trainable = [p for p in params if p.requires_grad]
    preserve = preserve_version_counter(target) if target is not None else None
    with torch.enable_grad(), autocast.restore():
        leaf = source.detach()
        if target is not None and preserve is None:  # (private API gone: a graph of its own)
            leaf = leaf.clone()
        out = function(leaf.requires_grad_(True))
    # The gradient needs only the graph, not the output's values: reconstruct with them and let
    # them go before backpropagating. ``target`` is the other half of the buffer ``leaf`` views,
    # a buffer private to this backward (the ownership test); the graph never reads that half,
    # so its shared version counter is put back after the write.
    edge = get_gradient_edge(out)
    if target is not None:
        with torch.no_grad(), preserve if preserve is not None else nullcontext():
            target.sub_(out)
    del out
    grads = torch.autograd.grad(edge, [leaf, *trainable], grad_target)
    with torch.no_grad():
        grad_source.add_(grads[0])
    found = iter(grads[1:])
    return [next(found) if p.requires_grad else None for p in params]


def _block_backward(
    block: CouplingBlock, z: torch.Tensor, grad: torch.Tensor, autocast: _AutocastState,
    reconstruct_input: bool = True,
) -> list[torch.Tensor | None]:
    """Turn block output ``z`` and its gradient ``grad`` into the block input and its gradient, in place.

    With ``y1 = x1 + F(x2)`` and ``y2 = x2 + G(y1)``: ``dy1 += G'(y1)ᵀ dy2`` then ``x2 = y2 - G(y1)``;
    ``dx2 = dy2 + F'(x2)ᵀ dy1`` then ``x1 = y1 - F(x2)``; ``dx1 = dy1``. Without
    ``reconstruct_input`` the last step is skipped (``z`` keeps ``y1`` in its first half): ``x2``
    is still needed, for ``F``'s backward, but ``x1`` only as the input of an earlier block.
    """
    z1, z2 = halves(z)
    d1, d2 = halves(grad)
    g_grads = _residual_backward(block.g, source=z1, target=z2, grad_source=d1, grad_target=d2,
                                 autocast=autocast)
    f_grads = _residual_backward(block.f, source=z2, target=z1 if reconstruct_input else None,
                                 grad_source=d2, grad_target=d1,
                                 autocast=autocast)
    return [*f_grads, *g_grads]


class ReversibleSequence(nn.Module):
    """A sequence of coupling blocks on ``(B, C, D, H, W)`` run with one of three executions.

    Args:
        blocks: the coupling blocks, all of width ``C``.
        execution: ``"reversible"`` (inputs recomputed from outputs in backward), ``"plain"``
            (ordinary autograd) or ``"checkpoint"`` (activation checkpointing of the whole
            sequence, non-reentrant).

    Raises:
        RevprofError: an unknown ``execution`` (with a "did you mean"), a block that is not a
            :class:`CouplingBlock` or of another width.

    Reversible execution supports first-order gradients only (``create_graph=True`` raises a
    ``RuntimeError``) and one backward per forward.

    The parameter names do not depend on ``execution``, so one ``state_dict`` serves all three.
    """

    def __init__(self, blocks: Sequence[CouplingBlock], *, execution: Execution = "reversible") -> None:
        execution = look_up("execution", execution, EXECUTIONS)
        blocks = list(blocks)
        for index, block in enumerate(blocks):
            if not isinstance(block, CouplingBlock):
                raise RevprofError(f"blocks[{index}] must be a CouplingBlock; got {type(block).__name__}")
            if block.channels != blocks[0].channels:
                raise RevprofError(f"blocks[{index}] has width {block.channels}; every block of a "
                                   f"sequence must have the width of blocks[0], width {blocks[0].channels}")
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.execution = execution

    def extra_repr(self) -> str:
        return f"execution={self.execution!r}"

    @property
    def couplings(self) -> list[CouplingBlock]:
        """The blocks as coupling blocks (``nn.ModuleList`` types them as plain modules)."""
        return [cast(CouplingBlock, block) for block in self.blocks]

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.execution == "plain":
            return self._plain(x)
        if self.execution == "checkpoint":
            if not torch.is_grad_enabled():
                return self._plain(x)
            # F and G are deterministic, so no RNG state needs stashing for the recompute.
            return torch.utils.checkpoint.checkpoint(self._plain, x, use_reentrant=False,
                                                     preserve_rng_state=False)
        params = [p for p in self.parameters()]
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _ReversibleFunction.apply(x, self, *params)
        return _run_forward(self.couplings, x)
