"""The targets and the loss of a training step of a factory network (:class:`~revprof.nn.factory.ModelSpec`).

Targets are made before the step, as a data loader would hand them over: region masks
``(B, C, D, H, W)`` float32 for ``dice``, class indices ``(B, D, H, W)`` int64 for ``dice_ce``;
with deep supervision one per output, downsampled (nearest) to that output's size, as nnU-Net's
``DownsampleSegForDSTransform`` does in its loader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from revprof.losses import deep_supervision_loss, dice_ce_loss, region_dice_loss
from revprof.nn.factory import ModelSpec, as_outputs


def model_targets(spec: ModelSpec, batch: int, patch: tuple[int, int, int],
                  generator: torch.Generator) -> list[torch.Tensor]:
    """One random target per output of a checked ``spec`` (see the module docstring for shapes)."""
    assert spec.out_channels is not None and spec.outputs, "call ModelSpec.checked(patch) first"
    if spec.loss == "dice_ce":
        full = torch.randint(0, spec.out_channels, (batch, *patch), generator=generator)
    else:
        full = (torch.rand(batch, spec.out_channels, *patch, generator=generator) < 0.5).float()
    targets = [full]
    for shape in spec.outputs[1:]:
        if spec.loss == "dice_ce":
            small = F.interpolate(full.unsqueeze(1).float(), size=shape[2:], mode="nearest")
            targets.append(small.squeeze(1).long())
        else:
            targets.append(F.interpolate(full, size=shape[2:], mode="nearest"))
    return targets


def model_loss(spec: ModelSpec) -> Callable[[Any, list[torch.Tensor]], torch.Tensor]:
    """``loss(output, targets)`` for ``spec``: its loss on every output, weighted as nnU-Net's deep
    supervision when there are several."""
    single = dice_ce_loss if spec.loss == "dice_ce" else region_dice_loss

    def loss(output: Any, targets: list[torch.Tensor]) -> torch.Tensor:
        outputs = as_outputs(output, spec.factory)
        if len(outputs) == 1:
            return single(outputs[0], targets[0])
        return deep_supervision_loss(single, outputs, targets)

    return loss
