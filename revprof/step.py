"""The training step whose memory revprof measures, shared by every backend.

Forward on a ``(batch, in_channels, *patch)`` input, soft Dice loss over the region channels,
backward, Adam step (lr 1e-4, weight decay 1e-5, as the paper) and ``zero_grad(set_to_none=True)``.
Adam runs its ``foreach`` implementation everywhere, because that is what it runs on CUDA by
default and its temporaries are part of the peak.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from revprof.errors import look_up
from revprof.losses import soft_dice_loss
from revprof.spec import PRECISIONS, Precision

_AUTOCAST_DTYPES = dict(zip(PRECISIONS, (None, torch.bfloat16, torch.float16), strict=True))
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 1e-5


def make_optimizer(model: nn.Module) -> torch.optim.Adam:
    """Adam as the paper trains (lr 1e-4, weight decay 1e-5), ``foreach`` as on CUDA."""
    return torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY,
                            foreach=True)


def autocast_for(precision: Precision, device_type: str) -> AbstractContextManager[object]:
    """The autocast context of ``precision`` (``fp32``: none)."""
    dtype = _AUTOCAST_DTYPES[look_up("precision", precision, PRECISIONS)]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def attribution_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The network parts activation bytes are attributed to: stem, encoder.i, decoder.i, head."""
    parts: dict[str, nn.Module] = {}
    for name in ("stem", "encoders", "decoders", "head"):
        module = getattr(model, name, None)
        if isinstance(module, nn.ModuleList):
            for i, child in enumerate(module):
                parts[f"{name[:-1]}.{i}"] = child
        elif module is not None:
            parts[name] = module
    return parts


def optimizer_state_of(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    """Every tensor in the optimizer's state (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``)."""
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                yield value


class _WatchedState(dict):
    """One parameter's optimizer state that reports each tensor the moment it is set."""

    def __init__(self, on_state: Callable[[str, torch.Tensor], None]) -> None:
        super().__init__()
        self._on_state = on_state

    def __setitem__(self, key: str, value: object) -> None:
        super().__setitem__(key, value)
        if isinstance(value, torch.Tensor):
            self._on_state(key, value)


def watch_optimizer_state(optimizer: torch.optim.Optimizer,
                          on_state: Callable[[str, torch.Tensor], None]) -> None:
    """Call ``on_state(name, tensor)`` for each optimizer state tensor as soon as it exists.

    Adam creates ``step``, ``exp_avg`` and ``exp_avg_sq`` inside its first ``step()``, where a
    small network's peak can be; a measurement classifies them from that moment on (and leaves
    out ``step``, a host scalar on a GPU). Call before the first step: it replaces the (empty)
    ``optimizer.state`` by one that watches assignments.

    Raises:
        ValueError: the optimizer already has state.
    """
    if optimizer.state:
        raise ValueError("watch_optimizer_state must be called before the optimizer's first step")
    optimizer.state = defaultdict(lambda: _WatchedState(on_state))


def optimizer_step_counters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Adam's per-parameter ``step`` scalars, which live on the host on a GPU run."""
    return [s["step"] for s in optimizer.state.values()
            if isinstance(s.get("step"), torch.Tensor) and is_step_counter("step", s["step"])]


def is_step_counter(name: str, tensor: torch.Tensor) -> bool:
    """Whether an optimizer state entry is Adam's per-parameter ``step`` scalar."""
    return name == "step" and tensor.dim() == 0


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, image: torch.Tensor,
                  target: torch.Tensor, precision: Precision,
                  on_phase: Callable[[str, int], None] | None = None, step: int = 0,
                  loss_fn: Callable[[Any, Any], torch.Tensor] | None = None) -> torch.Tensor:
    """One step: forward, soft Dice loss, backward, Adam step, gradients set to ``None``.

    Args:
        image: ``(B, C_in, D, H, W)``.
        target: ``(B, C_out, D, H, W)`` region masks.
        on_phase: called with ``(phase, step)`` as ``forward``, ``backward`` and ``optimizer`` begin.
        loss_fn: ``loss_fn(output, target)`` instead of :func:`soft_dice_loss` (factory networks:
            :func:`revprof.memory.model_step.model_loss`).

    Returns:
        The loss, detached (a scalar tensor).
    """
    notify = on_phase or (lambda phase, step: None)
    notify("forward", step)
    with autocast_for(precision, image.device.type):
        probs = model(image)
    loss = (loss_fn or soft_dice_loss)(probs, target)
    del probs
    notify("backward", step)
    loss.backward()
    notify("optimizer", step)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()
