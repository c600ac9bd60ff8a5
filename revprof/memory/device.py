"""What a card needs for a training step: reserved memory + CUDA context + workspace allowance.

``device need = predicted reserved + CUDA context + workspace allowance``; every part is shown
wherever the total is. The two parts a CPU cannot see are explicit allowances:

- **CUDA context** (driver state, loaded kernels of torch, cuBLAS and cuDNN): it depends on the
  GPU and the CUDA/torch build. :data:`CONTEXT_BYTES` gives a documented allowance per device
  class (see ``docs/memory-model.md`` for the sources); ``--context`` overrides it, and on a CUDA
  run revprof measures it (``torch.cuda.mem_get_info`` minus what the allocator reserved).
- **Workspaces** (cuDNN convolution workspaces and cuBLAS workspaces, which go through the caching
  allocator but are never seen by the tracker): :data:`DEFAULT_WORKSPACE_BYTES`, overridable with
  ``--workspace``, until calibrated per convolution from GPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from revprof.errors import RevprofError, look_up
from revprof.memory.cards import DeviceCapacity
from revprof.units import format_bytes

MiB = 2**20

DeviceClass = Literal["default", "consumer", "datacenter", "eager-loading"]
"""The device classes with a CUDA-context allowance in :data:`CONTEXT_BYTES`."""
DEVICE_CLASSES: tuple[DeviceClass, ...] = get_args(DeviceClass)

CONTEXT_BYTES: dict[DeviceClass, int] = {
    "default": 512 * MiB,
    "consumer": 384 * MiB,
    "datacenter": 576 * MiB,
    "eager-loading": 640 * MiB,
}
"""CUDA-context allowance per device class (bytes).

``consumer``: GeForce/Titan/RTX workstation cards; ``datacenter``: A100/H100/H200-class cards
(more SMs, larger per-SM driver state); ``eager-loading``: any card with
``CUDA_MODULE_LOADING=EAGER`` (all kernels loaded up front); ``default``: unknown card, lazy
loading (torch's default since 1.13). Anchors: PyTorch PR #86509 measured 287,047,680 bytes
(lazy) vs 666,632,192 bytes (eager) for the context alone; cuBLAS/cuDNN kernels loaded on first
use add to the lazy figure. Allowances, not measurements: replace with ``--context`` or a GPU run.
"""

DEFAULT_WORKSPACE_BYTES = 256 * MiB
"""Allowance for cuDNN/cuBLAS workspaces the CPU cannot see: cuBLAS keeps up to 32 MiB per handle
on Hopper (torch's default ``CUBLAS_WORKSPACE_CONFIG``), and with ``cudnn.benchmark=False``
cuDNN's heuristic 3D-convolution algorithms need workspaces of tens to a few hundred MiB."""


@dataclass(frozen=True)
class DeviceNeed:
    """What a card needs, part by part (bytes)."""

    reserved: int
    context: int
    workspace: int
    device_class: str

    @property
    def total(self) -> int:
        return self.reserved + self.context + self.workspace

    def to_dict(self) -> dict[str, object]:
        return {"reserved_bytes": self.reserved, "context_bytes": self.context,
                "workspace_bytes": self.workspace, "device_class": self.device_class,
                "device_need_bytes": self.total}

    def words(self) -> str:
        """``12.31 GiB = 11.55 GiB reserved + 0.50 GiB context + 0.25 GiB workspace``."""
        return (f"{format_bytes(self.total)} = {format_bytes(self.reserved)} reserved + "
                f"{format_bytes(self.context)} CUDA context ({self.device_class}) + "
                f"{format_bytes(self.workspace)} workspace allowance")


def device_need(reserved: int, context: int | None = None, workspace: int | None = None,
                device_class: DeviceClass = "default") -> DeviceNeed:
    """The card's need for a step whose allocator reserves ``reserved`` bytes.

    Args:
        reserved: predicted (or measured) ``max_memory_reserved``.
        context: CUDA context bytes (default: the allowance of ``device_class``).
        workspace: workspace allowance bytes (default :data:`DEFAULT_WORKSPACE_BYTES`).
        device_class: a key of :data:`CONTEXT_BYTES`.

    Raises:
        RevprofError: an unknown device class.
    """
    look_up("device class", device_class, DEVICE_CLASSES)
    return DeviceNeed(reserved,
                      CONTEXT_BYTES[device_class] if context is None else context,
                      DEFAULT_WORKSPACE_BYTES if workspace is None else workspace,
                      device_class if context is None else "given")


CARD_CLASSES: dict[str, DeviceClass] = {
    "rtx3060": "consumer", "rtx4060": "consumer", "a100-40gb": "datacenter",
    "a100-80gb": "datacenter", "h100-80gb": "datacenter", "h200": "datacenter",
}
"""The device class (context allowance) of each named card of :data:`revprof.memory.cards.CARDS`."""


def device_class_of(card: DeviceCapacity) -> DeviceClass:
    """The device class of a named card; ``default`` for a plain size."""
    return CARD_CLASSES.get(card.name, "default")


def allocator_capacity(card: DeviceCapacity, context: int | None = None,
                       workspace: int | None = None,
                       device_class: DeviceClass | None = None) -> DeviceCapacity:
    """``card`` with ``usable_bytes`` what its caching allocator can give a training step's
    tensors: ``total_memory`` less the CUDA context and the workspace allowance, the two parts of
    the device need that are not the step's tensors (the defaults of :func:`device_need`, the
    context by the card's device class).

    Raises:
        RevprofError: the context and workspace leave nothing for the allocator.
    """
    need = device_need(0, context, workspace, device_class or device_class_of(card))
    usable = card.total_bytes - need.context - need.workspace
    if usable <= 0:
        raise RevprofError(f"device memory {card.words()} is not more than the CUDA context "
                           f"({format_bytes(need.context)}) and workspace allowance "
                           f"({format_bytes(need.workspace)})")
    return card.with_usable(usable)
