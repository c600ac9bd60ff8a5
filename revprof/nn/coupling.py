"""The additive coupling block of the partially reversible U-Net.

``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)`` on the two channel halves of ``x``; ``F`` and ``G`` are
each GroupNorm → LeakyReLU → 3×3×3 convolution (no bias) on half the channels. The inverse is
``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

NEGATIVE_SLOPE = 0.01
"""LeakyReLU slope (PyTorch's default, as the paper's code)."""


class ResidualFunction(nn.Module):
    """``F`` or ``G`` of a coupling block: GroupNorm → LeakyReLU → 3×3×3 conv, ``(B, C, D, H, W)`` in and out.

    Args:
        channels: ``C``, half the coupling block's width.
        groups: GroupNorm groups; must divide ``channels``.
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = nn.Conv3d(channels, channels, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The activation overwrites the normalised tensor: GroupNorm's backward needs only its
        # input and statistics, and LeakyReLU's backward can read the sign from its output.
        return self.conv(F.leaky_relu(self.norm(x), NEGATIVE_SLOPE, inplace=True))


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two channel halves of ``(B, C, ...)`` as views ``(B, C/2, ...)``."""
    half = x.shape[1] // 2
    return x[:, :half], x[:, half:]


class CouplingBlock(nn.Module):
    """One additive coupling block on ``(B, C, D, H, W)`` tensors (``C`` even).

    :meth:`forward` is the ordinary autograd form. :meth:`forward_` and :meth:`inverse_` overwrite
    a tensor the caller owns with the block's output or input; they are what a reversible
    sequence runs without autograd.

    Args:
        channels: ``C``, the width of the level.
        groups: GroupNorm groups of ``F`` and ``G`` (divide ``C / 2``).
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.f = ResidualFunction(channels // 2, groups)
        self.g = ResidualFunction(channels // 2, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = halves(x)
        y1 = x1 + self.f(x2)
        y2 = x2 + self.g(y1)
        return torch.cat([y1, y2], dim=1)

    def forward_(self, z: torch.Tensor) -> torch.Tensor:
        """Overwrite block input ``z`` with the block's output, in place; returns ``z``."""
        z1, z2 = halves(z)
        z1.add_(self.f(z2))
        z2.add_(self.g(z1))
        return z

    def inverse_(self, z: torch.Tensor) -> torch.Tensor:
        """Overwrite block output ``z`` with the block's input, in place; returns ``z``."""
        z1, z2 = halves(z)
        z2.sub_(self.g(z1))
        z1.sub_(self.f(z2))
        return z
