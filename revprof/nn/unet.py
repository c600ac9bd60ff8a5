"""The two networks of the paper: the partially reversible U-Net and the No New-Net baseline.

Both map ``(B, in_channels, D, H, W)`` to ``(B, out_channels, D, H, W)`` sigmoid probabilities
(WT, TC, ET) and expose the same four parts, which the memory engine attributes bytes to:
``stem`` (may be empty), ``encoders[i]`` and ``decoders[i]`` (one per level ``i``, level 0 at full
resolution; decoders run from the bottom level up) and ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from revprof.nn.coupling import NEGATIVE_SLOPE, CouplingBlock
from revprof.nn.reversible import ReversibleSequence
from revprof.spec import ArchSpec, Execution


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)


class RevEncoderLevel(nn.Module):
    """Encoder level ``i``: (max-pool ×2 and 1×1×1 conv to the width, when ``i > 0``), then blocks."""

    def __init__(self, in_width: int, width: int, *, depth: int, groups: int, execution: Execution,
                 downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.channels = nn.Conv3d(in_width, width, kernel_size=1) if downsample else None
        self.blocks = ReversibleSequence([CouplingBlock(width, groups=groups) for _ in range(depth)],
                                         execution=execution)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels is not None:
            x = self.channels(F.max_pool3d(x, 2))
        return self.blocks(x)


class RevDecoderLevel(nn.Module):
    """Decoder level ``i``: blocks, then (1×1×1 conv to the next width and trilinear ×2, when ``i > 0``)."""

    def __init__(self, width: int, out_width: int, *, depth: int, groups: int, execution: Execution,
                 upsample: bool) -> None:
        super().__init__()
        self.blocks = ReversibleSequence([CouplingBlock(width, groups=groups) for _ in range(depth)],
                                         execution=execution)
        self.channels = nn.Conv3d(width, out_width, kernel_size=1) if upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        if self.channels is not None:
            x = _upsample(self.channels(x))
        return x


class UNet3D(nn.Module):
    """The U-Net skeleton shared by both architectures: stem, encoders, decoders with additive
    skips, 1×1×1 head and sigmoid.

    Shapes: ``(B, in_channels, D, H, W) -> (B, out_channels, D, H, W)``; every spatial size must
    be divisible by ``2**(levels - 1)``.
    """

    def __init__(self, spec: ArchSpec, *, stem: nn.Module, encoders: Sequence[nn.Module],
                 decoders: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.spec = spec
        self.stem = stem
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < len(self.encoders) - 1:
                skips.append(x)
        for level in reversed(range(len(self.decoders))):
            x = self.decoders[level](x)
            if level > 0:
                x = x + skips[level - 1]
        return torch.sigmoid(self.head(x))


def build_revunet(spec: ArchSpec) -> UNet3D:
    """The partially reversible U-Net of Brügger et al. (2019) described by ``spec``."""
    w = spec.widths
    encoders = [
        RevEncoderLevel(w[max(i - 1, 0)], w[i], depth=spec.encoder_depth[i], groups=spec.groups,
                        execution=spec.level_execution(i, "encoder"), downsample=i > 0)
        for i in range(spec.levels)
    ]
    decoders = [
        RevDecoderLevel(w[i], w[max(i - 1, 0)], depth=spec.decoder_depth[i], groups=spec.groups,
                        execution=spec.level_execution(i, "decoder"), upsample=i > 0)
        for i in range(spec.levels)
    ]
    stem = nn.Conv3d(spec.in_channels, w[0], kernel_size=3, padding=1, bias=False)
    head = nn.Conv3d(w[0], spec.out_channels, kernel_size=1)
    return UNet3D(spec, stem=stem, encoders=encoders, decoders=decoders, head=head)


class ConvNormAct(nn.Sequential):
    """3×3×3 conv (no bias) → GroupNorm → LeakyReLU (in place)."""

    def __init__(self, in_channels: int, out_channels: int, *, groups: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )


class _Checkpointed(nn.Module):
    """Runs ``body`` under non-reentrant activation checkpointing when ``enabled`` and grad is on."""

    def __init__(self, body: nn.Module, *, enabled: bool) -> None:
        super().__init__()
        self.body = body
        self.enabled = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.enabled and torch.is_grad_enabled():
            return checkpoint(self.body, x, use_reentrant=False, preserve_rng_state=False)
        return self.body(x)


def build_nonewnet(spec: ArchSpec) -> UNet3D:
    """The No New-Net style baseline of the paper: two conv–norm–activation units per level.

    Encoder level ``i``: max-pool (``i > 0``), conv to ``widths[i]``, and a second conv except at
    the bottom. Decoder level ``i``: a first conv (except at the bottom), a conv to
    ``widths[i-1]`` and trilinear ×2 (``i > 0``). With ``checkpoint`` each level is checkpointed.
    """
    w, g, last = spec.widths, spec.groups, spec.levels - 1
    encoders: list[nn.Module] = []
    for i in range(spec.levels):
        units: list[nn.Module] = [nn.MaxPool3d(2)] if i > 0 else []
        units.append(ConvNormAct(w[i - 1] if i > 0 else spec.in_channels, w[i], groups=g))
        if i < last:
            units.append(ConvNormAct(w[i], w[i], groups=g))
        encoders.append(_Checkpointed(nn.Sequential(*units), enabled=spec.checkpoint))
    decoders: list[nn.Module] = []
    for i in range(spec.levels):
        units = [ConvNormAct(w[i], w[i], groups=g)] if i < last else []
        units.append(ConvNormAct(w[i], w[max(i - 1, 0)], groups=g))
        if i > 0:
            units.append(nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False))
        decoders.append(_Checkpointed(nn.Sequential(*units), enabled=spec.checkpoint))
    head = nn.Conv3d(w[0], spec.out_channels, kernel_size=1)
    return UNet3D(spec, stem=nn.Identity(), encoders=encoders, decoders=decoders, head=head)


def build_model(spec: ArchSpec) -> UNet3D:
    """Build the network ``spec`` describes.

    Returns:
        A module mapping ``(B, spec.in_channels, D, H, W)`` to ``(B, spec.out_channels, D, H, W)``
        sigmoid probabilities; spatial sizes must be divisible by ``2**(spec.levels - 1)``.

    Example:
        >>> model = build_model(ArchSpec.paper_revunet())
        >>> sum(p.numel() for p in model.parameters())
        12365283
    """
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"build_model needs an ArchSpec; got {type(spec).__name__}")
    return build_revunet(spec) if spec.arch == "revunet" else build_nonewnet(spec)
