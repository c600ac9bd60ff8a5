"""The additive coupling block of the partially reversible U-Net.

``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)`` on the two channel halves of ``x``; ``F`` and ``G`` are
each GroupNorm → LeakyReLU → 3×3×3 convolution (no bias) on half the channels. The inverse is
``x2 = y2 - G(y1)``, ``x1 = y1 - F(x2)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from revprof.errors import RevprofError

NEGATIVE_SLOPE = 0.01
"""LeakyReLU slope (PyTorch's default, as the paper's code)."""


class ResidualFunction(nn.Module):
    """``F`` or ``G`` of a coupling block: GroupNorm → LeakyReLU → 3×3×3 conv, ``(B, C, D, H, W)`` in and out.

    Args:
        channels: ``C``, half the coupling block's width.
        groups: GroupNorm groups; must divide ``channels``.
    """

    def __init__(self, channels: int, *, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = nn.Conv3d(channels, channels, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The activation overwrites the normalised tensor: GroupNorm's backward needs only its
        # input and statistics, and LeakyReLU's backward can read the sign from its output.
        return self.conv(F.leaky_relu(self.norm(x), NEGATIVE_SLOPE, inplace=True))

    def supports_undo_backward(self, x: torch.Tensor) -> bool:
        """Whether :meth:`undo_backward_` applies to input ``x``: affine GroupNorm, a bias-free
        zero-padded convolution, every parameter trainable and of ``x``'s dtype, no autocast."""
        norm, conv = self.norm, self.conv
        params = (norm.weight, norm.bias, conv.weight)
        return (
            type(self) is ResidualFunction and norm.affine and conv.bias is None
            and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
            and all(p is not None and p.requires_grad and p.dtype == x.dtype
                    and p.device == x.device for p in params)
            and not torch.is_autocast_enabled(x.device.type)
        )

    def undo_backward_(self, x: torch.Tensor, target: torch.Tensor | None, grad_x: torch.Tensor,
                       grad_out: torch.Tensor) -> list[torch.Tensor]:
        """For ``target = other + self(x)``: restore ``other`` and backpropagate, with few temporaries.

        Recomputes ``self(x)`` (without autograd), subtracts it from ``target`` in place and drops
        it (with ``target=None`` nothing needs ``other``: the output and its convolution are
        skipped, only the activation is recomputed); then backpropagates ``grad_out`` by hand: the convolution's input and weight
        gradients, LeakyReLU's backward in place on that input gradient (the recompute owns the
        activation), GroupNorm's backward, and adds the result into ``grad_x`` in place.
        At most two tensors of ``x``'s size are alive at once (activation and output, then
        activation and its gradient, then the two GroupNorm gradients); autograd would hold four.
        The kernels and their inputs are those of :meth:`forward`, so the subtraction undoes the
        forward exactly. Call only when :meth:`supports_undo_backward` is true.

        Returns:
            The gradients of ``norm.weight``, ``norm.bias`` and ``conv.weight``, in
            :meth:`parameters` order.
        """
        norm, conv = self.norm, self.conv
        batch, channels = x.shape[:2]
        spatial = x[0, 0].numel()
        with torch.no_grad():
            x = x.contiguous()  # as F.group_norm does (a copy only for a batch above 1)
            act, mean, rstd = torch.ops.aten.native_group_norm(
                x, norm.weight, norm.bias, batch, channels, spatial, norm.num_groups, norm.eps)
            torch.ops.aten.leaky_relu_(act, NEGATIVE_SLOPE)
            if target is not None:
                out = F.conv3d(act, conv.weight, None, conv.stride, conv.padding, conv.dilation,
                               conv.groups)
                target.sub_(out)
                del out
            grad_act, grad_weight, _ = torch.ops.aten.convolution_backward(
                grad_out, act, conv.weight, None, list(conv.stride), list(conv.padding),
                list(conv.dilation), False, [0] * len(conv.stride), conv.groups, [True, True, False])
            torch.ops.aten.leaky_relu_backward.grad_input(grad_act, act, NEGATIVE_SLOPE, True,
                                                          grad_input=grad_act)
            del act
            grad_norm_in, grad_gamma, grad_beta = torch.ops.aten.native_group_norm_backward(
                grad_act, x, mean, rstd, norm.weight, batch, channels, spatial, norm.num_groups,
                [True, True, True])
            del grad_act
            grad_x.add_(grad_norm_in)
        return [grad_gamma, grad_beta, grad_weight]


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two channel halves of ``(B, C, ...)`` as views ``(B, C/2, ...)``."""
    half = x.shape[1] // 2
    return x[:, :half], x[:, half:]


class CouplingBlock(nn.Module):
    """One additive coupling block on ``(B, C, D, H, W)`` tensors (``C`` even).

    :meth:`forward` is the ordinary autograd form. :meth:`forward_` and :meth:`inverse_` overwrite
    a tensor the caller owns with the block's output or input; :meth:`forward_into` writes the
    output into a new buffer. They are what a reversible sequence runs without autograd.

    Args:
        channels: ``C``, the width of the level (even, at least 2).
        groups: GroupNorm groups of ``F`` and ``G`` (divide ``C / 2``).

    Raises:
        RevprofError: an odd or non-positive ``channels``, or ``groups`` not dividing ``C / 2``.
    """

    def __init__(self, channels: int, *, groups: int) -> None:
        if channels < 2 or channels % 2:
            raise RevprofError(f"CouplingBlock channels={channels} must be even and at least 2 "
                               "(the block splits them into two halves)")
        if groups < 1 or (channels // 2) % groups:
            raise RevprofError(f"CouplingBlock groups={groups} must divide channels/2="
                               f"{channels // 2} (GroupNorm of each half)")
        super().__init__()
        self.channels = channels
        self.f = ResidualFunction(channels // 2, groups=groups)
        self.g = ResidualFunction(channels // 2, groups=groups)

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

    def forward_into(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output in a new contiguous buffer; ``x`` is only read.

        The same arithmetic as :meth:`forward_` (``x1 + F(x2)``, then ``x2 + G(y1)``), written
        straight into the output, so no copy of ``x`` is made first.
        """
        z = torch.empty_like(x, memory_format=torch.contiguous_format)
        x1, x2 = halves(x)
        z1, z2 = halves(z)
        torch.add(x1, self.f(x2), out=z1)
        torch.add(x2, self.g(z1), out=z2)
        return z

    def inverse_(self, z: torch.Tensor) -> torch.Tensor:
        """Overwrite block output ``z`` with the block's input, in place; returns ``z``."""
        z1, z2 = halves(z)
        z2.sub_(self.g(z1))
        z1.sub_(self.f(z2))
        return z
