"""CUDA's autocast policy, applied to CPU autocast while a CPU or simulated measurement runs.

Autocast casts by op lists that differ between devices. For the ops revprof's networks use:

| op | CUDA | CPU |
|---|---|---|
| ``conv3d`` | lower precision | lower precision |
| ``group_norm`` | float32 | (not listed: runs in its input's dtype) |
| ``max_pool3d`` | (not listed) | float32 |
| ``upsample_trilinear3d``, ``leaky_relu``, ``sigmoid``, ``add`` | (not listed) | (not listed) |

A prediction is meant to be what a GPU would count, so :func:`cuda_autocast_policy` registers,
for the duration of a measurement, CPU autocast kernels that do what CUDA's do for the two ops
that differ. The registrations are removed afterwards, so CPU training keeps CPU's policy.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch

_AUTOCAST_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)


def _fp32(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return tensor.float() if tensor is not None and tensor.is_floating_point() else tensor


def _group_norm_in_fp32(input: torch.Tensor, num_groups: int, weight: torch.Tensor | None = None,
                        bias: torch.Tensor | None = None, eps: float = 1e-5,
                        cudnn_enabled: bool = True) -> torch.Tensor:
    """CUDA autocast runs ``group_norm`` in float32 (its ``fp32`` op list)."""
    with torch._C._ExcludeDispatchKeyGuard(_AUTOCAST_CPU):
        return torch.ops.aten.group_norm(_fp32(input), num_groups, _fp32(weight), _fp32(bias), eps,
                                         cudnn_enabled)


def _max_pool3d_as_is(self: torch.Tensor, kernel_size: Sequence[int], stride: Sequence[int] = (),
                      padding: Sequence[int] = (0, 0, 0), dilation: Sequence[int] = (1, 1, 1),
                      ceil_mode: bool = False) -> torch.Tensor:
    """CUDA autocast leaves ``max_pool3d`` in its input's dtype (CPU's casts it to float32)."""
    with torch._C._ExcludeDispatchKeyGuard(_AUTOCAST_CPU):
        return torch.ops.aten.max_pool3d(self, kernel_size, stride, padding, dilation, ceil_mode)


@contextlib.contextmanager
def cuda_autocast_policy() -> Iterator[None]:
    """Within the block, CPU autocast casts ``group_norm`` and ``max_pool3d`` as CUDA's does."""
    library = torch.library.Library("aten", "IMPL")
    try:
        with warnings.catch_warnings():  # "overriding a previously registered kernel": intended
            warnings.simplefilter("ignore")
            library.impl("group_norm", _group_norm_in_fp32, "AutocastCPU")
            library.impl("max_pool3d", _max_pool3d_as_is, "AutocastCPU")
        yield
    finally:
        library._destroy()
