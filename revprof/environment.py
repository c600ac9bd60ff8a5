"""The software and device facts recorded with every measurement and training run."""

from __future__ import annotations

import platform
from typing import Any

import torch


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
