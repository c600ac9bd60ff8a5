"""The software and device facts recorded with every measurement and training run, and the one
check that a CUDA device asked for is there."""

from __future__ import annotations

import platform
from typing import Any

import torch

from revprof.errors import RevprofError


def require_cuda(what: str, instead: str | None = None) -> None:
    """Check that a CUDA GPU is visible before ``what`` (e.g. ``"device 'cuda'"``) uses one.

    Raises:
        RevprofError: no CUDA GPU is visible; the message names ``what`` and, when given, the
            option to use ``instead``.
    """
    if not torch.cuda.is_available():
        hint = f"; use {instead}" if instead else ""
        raise RevprofError(f"{what} needs a CUDA GPU and none is visible "
                           f"(torch.cuda.is_available() is False){hint}")


def resolve_device(device: str) -> torch.device:
    """``auto`` → the first CUDA device when visible, else the CPU.

    Raises:
        RevprofError: an unknown device or CUDA asked for without a GPU.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise RevprofError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise RevprofError(f"device must be auto, cpu, cuda or cuda:N; got {device!r}")
    if resolved.type == "cuda":
        require_cuda(f"device {device!r}", "--device cpu")
    return resolved


def environment(device: str) -> dict[str, Any]:
    """Versions and device facts recorded with every measurement."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        env.update({
            "device_name": torch.cuda.get_device_name(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "allow_tf32": torch.backends.cudnn.allow_tf32,
        })
    return env
