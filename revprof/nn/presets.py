"""Short names for the MONAI and nnU-Net networks people train on BraTS, as zero-argument factories.

Every preset is a BraTS-like configuration: 4 input channels (T1, T1ce, T2, FLAIR), 1 mm isotropic
voxels, 3 output channels (the WT/TC/ET regions; pass ``out_channels``/``num_classes`` 4 for
softmax classes). Keyword arguments override the defaults, so ``--model-kwargs`` reaches them.

Where the numbers come from:

- ``monai:segresnet``: MONAI's BraTS 3D segmentation tutorial (``brats_segmentation_3d``):
  ``SegResNet(blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1), init_filters=16, dropout_prob=0.2)``.
- ``monai:dynunet``: MONAI's DynUNet pipeline for the Decathlon brain-tumour task, which derives
  kernels and strides the nnU-Net way: kernel 3 at every stage, strides ``1, 2, 2, 2, 2, 2``
  (a 128³ patch at 1 mm), instance norm, no deep supervision.
- ``monai:unet``: the residual UNet of MONAI's documentation and 3D tutorials:
  channels ``16, 32, 64, 128, 256``, strides ``2, 2, 2, 2``, ``num_res_units=2``, batch norm.
- ``nnunet:plainconvunet``: nnU-Net v2's default ``ExperimentPlanner`` (3d_fullres):
  ``PlainConvUNet`` with 32 features at the top, doubled per stage up to 320, two convolutions per
  stage in the encoder and the decoder, conv bias, InstanceNorm (eps 1e-5, affine), LeakyReLU,
  deep supervision on (as nnU-Net trains). Kernels and strides follow nnU-Net's topology rule for
  ``patch`` (default 128³) at 1 mm: see :func:`nnunet_topology`.
- ``nnunet:resenc-m`` / ``nnunet:resenc-l``: nnU-Net's residual-encoder presets
  (``nnUNetPlannerResEncM``/``L``): ``ResidualEncoderUNet`` with ``1, 3, 4, 6, 6, 6`` basic
  blocks per encoder stage and one convolution per decoder stage, the same widths, norm and
  topology rule. M and L build the same network for a given patch; they differ in the GPU target
  their planners fill (8 and 24 GB), hence in the patch and batch they plan (see
  ``benchmarks/nnunet_compare.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

BRATS_IN_CHANNELS = 4
BRATS_REGIONS = 3
NNUNET_BASE_FEATURES = 32
NNUNET_MAX_FEATURES_3D = 320
NNUNET_MIN_EDGE = 4
"""nnU-Net's ``UNet_featuremap_min_edge_length``: no axis is pooled below this many voxels."""
NNUNET_RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)


@dataclass(frozen=True)
class Topology:
    """nnU-Net's network topology for a patch: one entry per stage.

    Attributes:
        patch: the patch, padded up to a multiple of ``2**pools`` per axis.
        strides: per stage and axis; the first stage is ``(1, 1, 1)``.
        kernels: convolution kernel sizes per stage and axis.
        pools: poolings per axis.
    """

    patch: tuple[int, int, int]
    strides: tuple[tuple[int, int, int], ...]
    kernels: tuple[tuple[int, int, int], ...]
    pools: tuple[int, int, int]

    @property
    def stages(self) -> int:
        return len(self.strides)


def nnunet_topology(patch: Sequence[int], min_edge: int = NNUNET_MIN_EDGE) -> Topology:
    """Strides and kernels nnU-Net v2 derives for ``patch`` at isotropic spacing.

    The rule (``get_pool_and_conv_props`` with isotropic spacing): while some axis is at least
    ``2 * min_edge`` voxels, halve every such axis (a lone axis only while it is at least
    ``3 * min_edge``); every kernel is 3; the patch is padded to a multiple of ``2**pools`` per axis.
    """
    size = [int(s) for s in patch]
    pools = [0, 0, 0]
    strides: list[tuple[int, int, int]] = [(1, 1, 1)]
    while True:
        axes = [a for a in range(3) if size[a] >= 2 * min_edge]
        if not axes or (len(axes) == 1 and size[axes[0]] < 3 * min_edge):
            break
        for a in axes:
            pools[a] += 1
            size[a] = -(-size[a] // 2)
        strides.append((2 if 0 in axes else 1, 2 if 1 in axes else 1, 2 if 2 in axes else 1))
    d, h, w = (-(-int(s) // 2 ** p) * 2 ** p for s, p in zip(patch, pools))
    kernels = tuple((3, 3, 3) for _ in strides)
    return Topology((d, h, w), tuple(strides), kernels, (pools[0], pools[1], pools[2]))


def nnunet_features(stages: int) -> tuple[int, ...]:
    """nnU-Net's widths: 32 doubled per stage, capped at 320."""
    return tuple(min(NNUNET_MAX_FEATURES_3D, NNUNET_BASE_FEATURES * 2 ** i) for i in range(stages))


def _nnunet_common(patch: Sequence[int], in_channels: int, num_classes: int,
                   deep_supervision: bool) -> dict[str, Any]:
    topology = nnunet_topology(patch)
    return dict(
        input_channels=in_channels, n_stages=topology.stages,
        features_per_stage=nnunet_features(topology.stages), conv_op=nn.Conv3d,
        kernel_sizes=[list(k) for k in topology.kernels], strides=[list(s) for s in topology.strides],
        num_classes=num_classes, conv_bias=True, norm_op=nn.InstanceNorm3d,
        norm_op_kwargs={"eps": 1e-5, "affine": True}, dropout_op=None, dropout_op_kwargs=None,
        nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=deep_supervision,
    )


def nnunet_plainconvunet(patch: Sequence[int] = (128, 128, 128), in_channels: int = BRATS_IN_CHANNELS,
                         num_classes: int = BRATS_REGIONS, deep_supervision: bool = True) -> nn.Module:
    """nnU-Net v2's default 3d_fullres network for ``patch`` at 1 mm (input ``(B, 4, *patch)``;
    outputs ``(B, num_classes, *patch)`` and, with deep supervision, one per lower stage)."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    kwargs = _nnunet_common(patch, in_channels, num_classes, deep_supervision)
    stages = kwargs["n_stages"]
    return PlainConvUNet(**kwargs, n_conv_per_stage=[2] * stages, n_conv_per_stage_decoder=[2] * (stages - 1))


def nnunet_resenc(patch: Sequence[int] = (128, 128, 128), in_channels: int = BRATS_IN_CHANNELS,
                  num_classes: int = BRATS_REGIONS, deep_supervision: bool = True) -> nn.Module:
    """nnU-Net's residual-encoder U-Net (ResEnc M/L presets) for ``patch`` at 1 mm."""
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

    kwargs = _nnunet_common(patch, in_channels, num_classes, deep_supervision)
    stages = kwargs["n_stages"]
    return ResidualEncoderUNet(**kwargs, n_blocks_per_stage=list(NNUNET_RESENC_BLOCKS[:stages]),
                               n_conv_per_stage_decoder=[1] * (stages - 1))


def monai_segresnet(**overrides: Any) -> nn.Module:
    """MONAI's SegResNet as its BraTS tutorial trains it: ``(B, 4, D, H, W) -> (B, 3, D, H, W)``."""
    from monai.networks.nets import SegResNet

    kwargs: dict[str, Any] = dict(spatial_dims=3, in_channels=BRATS_IN_CHANNELS, out_channels=BRATS_REGIONS,
                                  init_filters=16, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1),
                                  dropout_prob=0.2)
    return SegResNet(**{**kwargs, **overrides})


def monai_dynunet(**overrides: Any) -> nn.Module:
    """MONAI's DynUNet with nnU-Net-style kernels and strides for a 128³ patch at 1 mm."""
    from monai.networks.nets import DynUNet

    strides = [1, 2, 2, 2, 2, 2]
    kwargs: dict[str, Any] = dict(spatial_dims=3, in_channels=BRATS_IN_CHANNELS, out_channels=BRATS_REGIONS,
                                  kernel_size=[3] * len(strides), strides=strides,
                                  upsample_kernel_size=strides[1:], norm_name="instance",
                                  deep_supervision=False, res_block=False)
    return DynUNet(**{**kwargs, **overrides})


def monai_unet(**overrides: Any) -> nn.Module:
    """MONAI's residual UNet of its documentation (5 levels, 2 residual units, batch norm)."""
    from monai.networks.nets import UNet

    kwargs: dict[str, Any] = dict(spatial_dims=3, in_channels=BRATS_IN_CHANNELS, out_channels=BRATS_REGIONS,
                                  channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2,
                                  norm="batch")
    return UNet(**{**kwargs, **overrides})


@dataclass(frozen=True)
class Preset:
    """A preset: the factory it names, the package it needs, its patch multiple ``2**(levels-1)``
    and the smallest edge its lowest stage trains with (instance norm needs more than one voxel;
    nnU-Net keeps at least :data:`NNUNET_MIN_EDGE`)."""

    factory: str
    package: str
    levels: int
    bottleneck_edge: int = 1


_DNA = "dynamic_network_architectures"

PRESETS: dict[str, Preset] = {
    "monai:segresnet": Preset("revprof.nn.presets:monai_segresnet", "monai", 4),
    "monai:dynunet": Preset("revprof.nn.presets:monai_dynunet", "monai", 6, 2),
    "monai:unet": Preset("revprof.nn.presets:monai_unet", "monai", 5),
    "nnunet:plainconvunet": Preset("revprof.nn.presets:nnunet_plainconvunet", _DNA, 6, NNUNET_MIN_EDGE),
    "nnunet:resenc-m": Preset("revprof.nn.presets:nnunet_resenc", _DNA, 6, NNUNET_MIN_EDGE),
    "nnunet:resenc-l": Preset("revprof.nn.presets:nnunet_resenc", _DNA, 6, NNUNET_MIN_EDGE),
}
"""Preset name -> factory. ``levels`` is the default patch multiple ``2**(levels-1)`` (nnU-Net presets:
the number of stages at their default 128³; a ``patch`` keyword re-derives it)."""


def _levels_of_strides(strides: Sequence[Any]) -> int:
    total = 1
    for s in strides:
        total *= max(s) if isinstance(s, (list, tuple)) else int(s)
    return max(1, total.bit_length())  # a power of two 2**k -> k + 1 levels


def preset_levels(name: str, kwargs: dict[str, Any]) -> int:
    """The levels of preset ``name`` built with ``kwargs``: patches must be multiples of
    ``2**(levels-1)`` (re-derived when the keywords change the strides, blocks or patch)."""
    preset = PRESETS[name]
    if name.startswith("nnunet:") and "patch" in kwargs:  # the axis pooled least sets the multiple;
        return 1 + min(nnunet_topology(kwargs["patch"]).pools)  # the forward check catches the rest
    if name == "monai:segresnet" and "blocks_down" in kwargs:
        return len(kwargs["blocks_down"])
    if name in ("monai:dynunet", "monai:unet") and "strides" in kwargs:
        return _levels_of_strides(kwargs["strides"])
    return preset.levels
