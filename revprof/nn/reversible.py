"""Reversible execution of a coupling-block sequence: activations recomputed, not stored.

The forward keeps exactly one tensor for the whole sequence: its output. The backward walks the
blocks from last to first, reconstructing each block's input from its output in that same
buffer, differentiating ``G`` and then ``F`` on the reconstructed halves, and accumulating the
input gradient in place. Memory therefore does not grow with the number of blocks.

The functions ``F`` and ``G`` must be deterministic (no dropout): they are run twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from revprof.nn.coupling import CouplingBlock, halves


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


class _ReversibleFunction(torch.autograd.Function):
    """Autograd glue: ``forward(x, sequence, *params) -> y`` with only ``y`` saved."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, sequence: ReversibleSequence, *params: torch.Tensor):  # type: ignore[override]
        ctx.sequence = sequence
        ctx.autocast = _AutocastState.capture(x.device.type)
        z = x.detach().clone(memory_format=torch.contiguous_format)
        for block in sequence.blocks:
            block.forward_(z)
        ctx.save_for_backward(z)
        return z

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        z = z.detach()  # the saved output is ours to overwrite: it becomes the sequence input
        grad = grad_output.contiguous().clone()
        del grad_output
        sequence: ReversibleSequence = ctx.sequence
        param_grads: list[torch.Tensor | None] = []
        for block in reversed(sequence.blocks):
            param_grads[:0] = _block_backward(block, z, grad, ctx.autocast)
        return (grad, None, *param_grads)


def _residual_backward(
    function: nn.Module, source: torch.Tensor, target: torch.Tensor, grad_source: torch.Tensor,
    grad_target: torch.Tensor, autocast: _AutocastState,
) -> list[torch.Tensor | None]:
    """For ``target = other + function(source)``: undo it in place and backpropagate.

    Subtracts ``function(source)`` from ``target`` (reconstructing ``other``), adds the gradient
    that flows through ``function`` into ``grad_source`` (in place), and returns the gradients
    of ``function``'s parameters (``None`` for frozen ones).
    """
    params = list(function.parameters())
    trainable = [p for p in params if p.requires_grad]
    with torch.enable_grad(), autocast.restore():
        leaf = source.detach().requires_grad_(True)
        out = function(leaf)
    grads = torch.autograd.grad(out, [leaf, *trainable], grad_target)
    with torch.no_grad():
        target.sub_(out)
        del out
        grad_source.add_(grads[0])
    found = iter(grads[1:])
    return [next(found) if p.requires_grad else None for p in params]


def _block_backward(
    block: CouplingBlock, z: torch.Tensor, grad: torch.Tensor, autocast: _AutocastState
) -> list[torch.Tensor | None]:
    """Turn block output ``z`` and its gradient ``grad`` into the block input and its gradient, in place.

    With ``y1 = x1 + F(x2)`` and ``y2 = x2 + G(y1)``: ``dy1 += G'(y1)ᵀ dy2`` then ``x2 = y2 - G(y1)``;
    ``dx2 = dy2 + F'(x2)ᵀ dy1`` then ``x1 = y1 - F(x2)``; ``dx1 = dy1``.
    """
    z1, z2 = halves(z)
    d1, d2 = halves(grad)
    g_grads = _residual_backward(block.g, source=z1, target=z2, grad_source=d1, grad_target=d2,
                                 autocast=autocast)
    f_grads = _residual_backward(block.f, source=z2, target=z1, grad_source=d2, grad_target=d1,
                                 autocast=autocast)
    return [*f_grads, *g_grads]


class ReversibleSequence(nn.Module):
    """A sequence of coupling blocks on ``(B, C, D, H, W)`` run with one of three executions.

    Args:
        blocks: the coupling blocks, all of width ``C``.
        execution: ``"reversible"`` (inputs recomputed from outputs in backward), ``"plain"``
            (ordinary autograd) or ``"checkpoint"`` (activation checkpointing of the whole
            sequence, non-reentrant).

    The parameter names do not depend on ``execution``, so one ``state_dict`` serves all three.
    """

    def __init__(self, blocks: Sequence[CouplingBlock], execution: str = "reversible") -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.execution = execution

    def extra_repr(self) -> str:
        return f"execution={self.execution!r}"

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
        z = x.clone(memory_format=torch.contiguous_format)
        for block in self.blocks:
            block.forward_(z)
        return z
