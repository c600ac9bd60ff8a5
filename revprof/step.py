"""The training step a recipe describes, one implementation for every use.

:class:`TrainingStep` runs one optimizer step of a :class:`~revprof.recipe.Recipe`: forward
under autocast, the loss (:func:`revprof.losses.make_loss`), backward (scaled by a
``torch.amp.GradScaler`` when the recipe has one), gradient clipping, the optimizer step, and
``zero_grad`` where the recipe puts it, over ``accumulate`` micro-batches. Memory measurement
(every backend), short training runs, the sweep's time estimate and the benchmark all run it;
:func:`synthetic_batch` makes the random batch the first, third and fourth use.

The optimizer runs the implementation the recipe names (``foreach`` by default, what PyTorch picks
on CUDA), on every device, because its temporaries are part of the peak.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from revprof.errors import RevprofError, look_up
from revprof.losses import make_loss
from revprof.network import Network
from revprof.recipe import Recipe
from revprof.spec import PRECISIONS, Precision

_AUTOCAST_DTYPES = dict(zip(PRECISIONS, (None, torch.bfloat16, torch.float16), strict=True))
_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
}

Phase = Callable[[str, int], None]
"""``on_phase(phase, step)``, called as ``forward``, ``backward`` and ``optimizer`` begin."""


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``model``'s parameters, with its implementation.

    Raises:
        RevprofError: PyTorch refuses the settings (e.g. ``fused`` for parameters of a dtype or
            device it does not support).
    """
    try:
        return _OPTIMIZERS[recipe.optimizer](model.parameters(), **recipe.optimizer_kwargs())
    except (RuntimeError, ValueError) as error:
        raise RevprofError(f"recipe {recipe.name!r}: torch.optim refuses {recipe.optimizer} with "
                           f"{recipe.optimizer_kwargs()}: {error}") from None


def autocast_for(precision: Precision, device_type: str) -> AbstractContextManager[object]:
    """The autocast context of ``precision`` (``fp32``: none)."""
    dtype = _AUTOCAST_DTYPES[look_up("precision", precision, PRECISIONS)]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def optimizer_state_of(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    """Every tensor in the optimizer's state (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``)."""
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                yield value


class _WatchedState(dict[str, Any]):
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
    """Call ``on_state(name, tensor)`` for each optimizer state tensor: now for those that exist
    (Adagrad makes its ``sum`` and ``step`` in its constructor), and for the others the moment they
    exist (Adam makes ``step``, ``exp_avg`` and ``exp_avg_sq`` inside its first ``step()``, where a
    small network's peak can be). It replaces ``optimizer.state`` by one that watches assignments.
    """
    watched: defaultdict[Any, _WatchedState] = defaultdict(lambda: _WatchedState(on_state))
    for param, state in optimizer.state.items():
        for name, value in state.items():
            watched[param][name] = value
    optimizer.state = watched


def is_step_counter(name: str, tensor: torch.Tensor) -> bool:
    """Whether an optimizer state entry is a per-parameter ``step`` scalar (Adam, AdamW, RMSprop,
    Adagrad), which lives on the host on a GPU unless the optimizer is fused or capturable."""
    return name == "step" and tensor.dim() == 0


def optimizer_step_counters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The per-parameter ``step`` scalars of ``optimizer``'s state."""
    return [s["step"] for s in optimizer.state.values()
            if isinstance(s.get("step"), torch.Tensor) and is_step_counter("step", s["step"])]


def counters_on_device(recipe: Recipe) -> bool:
    """Whether the ``step`` counters live in device memory: only for fused optimizers (PyTorch
    keeps them on the host for ``foreach`` and for-loop ones, where they cost no device memory)."""
    return recipe.implementation == "fused"


@dataclass
class Batch:
    """One batch as a data loader hands it over.

    Attributes:
        image: ``(B, C_in, *S)`` float32.
        targets: one per network output: region masks ``(B, C, *S_i)`` float32, class indices
            ``(B, *S_i)`` int64, or class labels ``(B,)`` int64 (see
            :data:`revprof.recipe.Targets`); deep-supervision targets are nearest-downsampled to
            their output's size, as nnU-Net's loader does.
    """

    image: torch.Tensor
    targets: list[torch.Tensor]

    def tensors(self) -> list[torch.Tensor]:
        return [self.image, *self.targets]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.image.to(device), [t.to(device) for t in self.targets])


def synthetic_batch(network: Network, recipe: Recipe, patch: Sequence[int],
                    generator: torch.Generator) -> Batch:
    """A random batch for ``network`` (checked at ``patch``) and ``recipe``: a standard-normal image
    ``(recipe.batch, in_channels, *patch)`` and random targets in the recipe's form for each of
    the network's outputs (masks at probability 0.5, uniform classes or labels)."""
    shapes = network.output_shapes(recipe.batch, patch)
    image = torch.randn(recipe.batch, network.in_channels, *patch, generator=generator)
    first = shapes[0]
    if recipe.targets == "labels":
        return Batch(image, [torch.randint(0, first[1], (recipe.batch,), generator=generator)])
    if recipe.targets == "classes":
        full = torch.randint(0, first[1], (recipe.batch, *first[2:]), generator=generator)
        small = [F.interpolate(full.unsqueeze(1).float(), size=s[2:], mode="nearest").squeeze(1).long()
                 for s in shapes[1:]]
    else:
        full = (torch.rand(*first, generator=generator) < 0.5).float()
        small = [F.interpolate(full, size=s[2:], mode="nearest") for s in shapes[1:]]
    return Batch(image, [full, *small])


def as_outputs(output: Any) -> list[torch.Tensor]:
    """A network's output as a list: one tensor, or the tensors of a list/tuple (deep supervision).

    Raises:
        RevprofError: anything else.
    """
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)) and output and all(isinstance(o, torch.Tensor) for o in output):
        return list(output)
    raise RevprofError(f"the forward must return a tensor or a list/tuple of tensors; got "
                       f"{type(output).__name__}")


class TrainingStep:
    """One recipe's training step over one model: its optimizer, loss and ``GradScaler``.

    Args:
        model: the network, on its device.
        recipe: how it trains.
        output_kind: ``probabilities`` or ``logits`` (:data:`revprof.network.OutputKind`).
        device_type: ``cpu`` or ``cuda`` (autocast and the scaler).
        simulated: the step runs over fake tensors, where no value can be read: the scaler then
            takes every step (finite gradients are assumed) instead of reading ``found_inf``.

    Attributes:
        optimizer: the optimizer (its state is the optimizer state of a measurement).
        scaler: the ``GradScaler``, or ``None``.
        optimizer_steps: optimizer steps taken (a scaler skips the steps whose gradients are not
            finite, as it does in training).
    """

    def __init__(self, model: nn.Module, recipe: Recipe, output_kind: str, device_type: str,
                 simulated: bool = False) -> None:
        self.model = model
        self.recipe = recipe
        self.device_type = device_type
        self.simulated = simulated
        self.optimizer = build_optimizer(model, recipe)
        self.loss_fn = make_loss(recipe, output_kind)
        self.scaler = torch.amp.GradScaler(device_type) if recipe.uses_scaler else None
        self.optimizer_steps = 0
        self._kept: list[torch.Tensor] = []  # outputs and max() results an after-step op keeps
        self._transferred: Batch | None = None  # the last batch copied to the device

    def __call__(self, batch: Batch | Sequence[Batch], step: int = 0, on_phase: Phase | None = None,
                 device: torch.device | None = None) -> torch.Tensor:
        """One optimizer step over ``recipe.accumulate`` micro-batches.

        Args:
            batch: one batch (used for every micro-batch, as a measurement does) or one per
                micro-batch; with ``recipe.transfer == "per_step"`` on the host, copied to
                ``device`` (a new tensor, also on the CPU) for each micro-batch.
            on_phase: called with ``(phase, step)`` as ``forward``, ``backward`` and ``optimizer``
                begin.

        Returns:
            The loss of the last micro-batch, detached (a scalar tensor).

        Raises:
            RevprofError: a list of batches that is not one per micro-batch.
        """
        recipe = self.recipe
        batches = [batch] * recipe.accumulate if isinstance(batch, Batch) else list(batch)
        if len(batches) != recipe.accumulate:
            raise RevprofError(f"a step of recipe {recipe.name!r} takes {recipe.accumulate} "
                               f"micro-batch(es); got {len(batches)}")
        notify = on_phase or (lambda phase, step: None)
        if recipe.zero_grad == "start":
            self.optimizer.zero_grad(set_to_none=recipe.set_to_none)
        loss = None
        for micro in batches:
            if recipe.transfer == "per_step":
                # The last copy goes before this one is made: a loop ``for x, y in loader:
                # x, y = x.to(device), y.to(device)`` rebinds x and y to the next host batch first.
                self._transferred = None
                where = device or micro.image.device
                self._transferred = Batch(micro.image.to(where, copy=True),
                                          [t.to(where, copy=True) for t in micro.targets])
                micro = self._transferred
            notify("forward", step)
            with autocast_for(recipe.precision, self.device_type):
                output = self.model(micro.image)
            outputs = as_outputs(output)
            if recipe.after_step != "none":
                self._kept = self._kept[1:]  # the last step's outputs go once the new ones exist
            loss = self.loss_fn(outputs, micro.targets)
            if recipe.accumulate > 1:
                loss = loss / recipe.accumulate
            if recipe.zero_grad == "after_loss":
                self.optimizer.zero_grad(set_to_none=recipe.set_to_none)
            kept = outputs[0] if recipe.after_step != "none" else None
            del output, outputs
            notify("backward", step)
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        notify("optimizer", step)
        self._optimizer_step()
        if kept is not None:  # before a zero_grad at the end, as a loop computing accuracy does
            values, indices = torch.max(kept.detach(), 1)
            self._kept = [kept, values, indices]
        if recipe.zero_grad == "end":
            self.optimizer.zero_grad(set_to_none=recipe.set_to_none)
        assert loss is not None
        return loss.detach()

    def schedule(self) -> torch.optim.lr_scheduler.LRScheduler:
        """The recipe's learning-rate schedule over its ``steps`` (step it after each optimizer
        step): constant, nnU-Net's poly ``(1 - t/steps)**0.9`` or cosine annealing to 0."""
        total, kind = self.recipe.steps, self.recipe.schedule
        if kind == "poly":
            factor: Callable[[int], float] = lambda t: max(0.0, 1 - t / total) ** 0.9  # noqa: E731
        elif kind == "cosine":
            factor = lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total))  # noqa: E731
        else:
            factor = lambda t: 1.0  # noqa: E731
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def _optimizer_step(self) -> None:
        """Unscale and clip where the recipe says, then step (through the scaler)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.scaler is not None and (self.recipe.clip is not None or self.simulated):
            self.scaler.unscale_(self.optimizer)
        if self.recipe.clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.recipe.clip,
                                           foreach=self.recipe.implementation == "foreach")
        if self.scaler is None:
            self.optimizer.step()
            self.optimizer_steps += 1
        elif self.simulated:  # no value to read: the step a finite gradient gets
            self.optimizer.step()
            self.scaler.update()
            self.optimizer_steps += 1
        else:
            before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scaler.get_scale() >= before:  # a skipped step lowers the scale
                self.optimizer_steps += 1

    def release(self) -> None:
        """Drop what the loop keeps alive into the next step (the last batch copied to the
        device, what an after-step op kept)."""
        self._kept = []
        self._transferred = None
